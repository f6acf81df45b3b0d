"""The call center's agent console and wallboard (web/callcenter/) in
Chromium, logged in to sao (fixtures: conftest.py), with real SIP calls.

bob (agent 1002 of the demo's hotline 5000) opens Call Center > Agent
Console and goes available. The telephony test rig of crm_callcenter
(addons/crm_callcenter/tests/rig: Kamailio and baresip phones on
127.0.0.1, started here and stopped by pid) places the calls: a customer's
phone calls 5000, Kamailio asks the served CRM's routing API, which picks
bob, and rings bob's phone (SIP user 1002), posting the call's events to
the CRM's event API (signed with the key of a 'crm_callcenter'
application). The caller card pops up within the screen-pop budget; bob's
phone answers, then hangs up; bob wraps up in the browser with a
disposition; the call keeps its disposition and durations and lands on
the customer's history. Calls from a number nobody has and from a number
two parties share ring bob's phone too. The manager, a supervisor, opens
Call Center > Wallboard.

The server is the one of conftest.py: trytond in its own process on a
SQLite file, so Kamailio's requests, the console's and the test's each
get their own connection to the same database (the module tests of
crm_callcenter need PostgreSQL only because they serve an in-memory
database from the test process). Kamailio's and the phones' logs are
copied to tests/artifacts/callcenter-rig/.
"""
import importlib.util
import json
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import phonenumbers
import pytest
from playwright.sync_api import expect

from conftest import ARTIFACTS, DEMO_PASSWORD, login, rpc

ROOT = Path(__file__).resolve().parents[2]
RIG_PATH = ROOT / 'addons' / 'crm_callcenter' / 'tests' / 'rig' / 'rig.py'
AGENT, EXTENSION, QUEUE = 'bob', '1002', '5000'
QUEUE_NAME = "Customer Hotline"
SUPERVISOR = 'manager'
DISPOSITION = "Question answered"
# The screen pop must show within a second of the ringing (the console
# polls every 0.8 s while available): what the test allows at most between
# the agent's phone ringing and the caller card showing
SCREEN_POP_MS = 2000
WAIT = 10                   # seconds for a phone event
TALK = 2                    # seconds at least on the line


def load_rig():
    """rig.py (standard library only) as a module of its own: the test
    process does not import trytond"""
    spec = importlib.util.spec_from_file_location('crm_sip_rig', RIG_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sip = load_rig()

# Run in the served database (as other browser tests run the demo data
# script): the telephony's user and its validated key; bob the only
# hotline agent who may be available (the ACD must ring his phone); a
# demo customer whose phone no other party has and who is not bob's last
# caller (nor the company itself), and a number two parties share (a twin
# party made with the number of another customer). Prints them as JSON.
SETUP = r'''
import json, sys
from trytond.pool import Pool
from trytond.transaction import Transaction

database = sys.argv[1]
Pool(database).init()
with Transaction().start(database, 0, context={'language': 'en'}) as tx:
    pool = Pool()
    User = pool.get('res.user')
    Application = pool.get('res.user.application')
    Agent = pool.get('callcenter.agent')
    Queue = pool.get('callcenter.queue')
    Party = pool.get('party.party')
    Mechanism = pool.get('party.contact_mechanism')
    agent, = Agent.search([('extension', '=', sys.argv[2])])
    company = agent.user.company
    queue, = Queue.search([('number', '=', sys.argv[3])])
    others = [a for a in queue.members
        if a != agent and a.status != 'offline']
    if others:
        Agent.set_status(others, 'offline', call=False)
    users = User.search([('login', '=', 'crm_pbx')])
    if users:
        pbx, = users
    else:
        pbx, = User.create([{
            'name': "Telephony (browser tests)", 'login': 'crm_pbx',
            'company': company.id, 'companies': [('add', [company.id])]}])
    applications = Application.search([
        ('user', '=', pbx.id), ('application', '=', 'crm_callcenter'),
        ('state', '=', 'validated')])
    if not applications:
        applications = Application.create([{
            'user': pbx.id, 'application': 'crm_callcenter',
            'state': 'validated'}])
    last = agent.current_call.party if agent.current_call else None
    mechanisms = Mechanism.search([
        ('type', 'in', ['phone', 'mobile']), ('party.active', '=', True)],
        order=[('id', 'ASC')])
    found = Party._parties_by_contact(
        phones=[m.value_compact for m in mechanisms])
    customer = next(m for m in mechanisms
        if len(found.get(m.value_compact.lower(), ())) == 1
        and m.party not in {last, company.party})
    # A number two parties share: a twin of a demo customer's
    twin_name = "Browser Test Twin"
    twins = Party.search([('name', '=', twin_name)])
    if twins:
        shared = twins[0].phone
    else:
        other = next(m for m in reversed(mechanisms)
            if len(found.get(m.value_compact.lower(), ())) == 1
            and m.party not in {last, company.party, customer.party})
        shared = other.value_compact
        with Transaction().set_context(party_duplicate_warning=False):
            Party.create([{'name': twin_name, 'contact_mechanisms': [
                ('create', [{'type': 'phone', 'value': shared}])]}])
    found = Party._parties_by_contact(phones=[shared])
    result = {
        'key': applications[0].key,
        'agent_id': agent.id,
        'queue_id': queue.id,
        'phone': customer.value_compact,
        'party': customer.party.rec_name,
        'party_id': customer.party.id,
        'shared': shared,
        'shared_parties': sorted(
            Party(i).rec_name for i in found[shared.lower()]),
        }
    tx.commit()
print(json.dumps(result))
'''


@pytest.fixture(scope='module')
def telephony(crm_server):
    "The key of the telephony, the callers and their parties"
    result = subprocess.run(
        [sys.executable, '-c', SETUP, crm_server.db, EXTENSION, QUEUE],
        env=crm_server.env, cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def rig(crm_server, telephony):
    """Kamailio on 127.0.0.1 asking the served CRM where calls go and
    telling it their events; stopped (with every phone) by pid at the end,
    also when a test failed"""
    missing = sip.missing_binaries('kamailio', 'baresip')
    if not missing and not sip.hmac_available():
        missing = ['kamailio module crypto.so (kamailio-tls-modules)']
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} "
            "(scripts/telephony.sh; scripts/test.sh browser runs it)")
    api = f'{crm_server.url}/{crm_server.db}/callcenter'
    with sip.Rig(routing_url=f'{api}/route', events_url=f'{api}/events',
            api_key=telephony['key']) as rig:
        try:
            yield rig
        finally:
            # What Kamailio and the phones said, before the rig removes it
            logs = ARTIFACTS / 'callcenter-rig'
            shutil.rmtree(logs, ignore_errors=True)
            for log in Path(rig.dir).glob('**/*.log'):
                target = logs / log.relative_to(rig.dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, target)


@pytest.fixture
def phones(rig):
    """phones(user): a baresip phone registered as user at the rig's
    Kamailio; each one hangs up and is stopped when the test ends"""
    started = []

    def start(user):
        phone = rig.phone(user)
        started.append(phone)
        return phone
    try:
        yield start
    finally:
        for phone in started:
            try:
                if phone.alive():
                    phone.command('hangup', timeout=2)
            except Exception:
                pass
            phone.stop()


def assert_peers_up(crm_server, rig, *phones):
    """What a call goes through answers: the CRM, Kamailio and the phones
    (registered, and reachable through Kamailio). A call to a dead peer
    takes 32 s to fail; this takes at most a few."""
    with urllib.request.urlopen(crm_server.url + '/', timeout=5) as response:
        assert response.status == 200, f"CRM at {crm_server.url}"
    assert rig.kamailio.poll() is None, rig.kamailio_log_text()[-3000:]
    assert sip.sip_options(rig.sip_port) == 200, "Kamailio does not answer"
    for phone in phones:
        assert phone.registered(), f"{phone} is not registered"
        assert rig.reachable(phone.user), f"{phone} is not reachable"


def read_call(page, call_id, fields):
    "The call of the SIP Call-ID, read with the page's session"
    calls = rpc(page, 'model.callcenter.call.search_read',
        [['call_id', '=', call_id]], 0, None, None, fields)
    assert len(calls) == 1, calls
    return calls[0]


def screen_pop(console, caller, text, call_id):
    """Wait for the caller card to show text; else fail saying what the
    console and the CRM know of the call"""
    try:
        expect(caller).to_have_text(text, timeout=SCREEN_POP_MS)
    except AssertionError as error:
        state = rpc(console, 'model.callcenter.agent.console_state')
        calls = rpc(console, 'model.callcenter.call.search_read',
            [['call_id', '=', call_id]], 0, None, None,
            ['state', 'agent', 'party', 'queue'])
        raise AssertionError(
            f"no caller card within {SCREEN_POP_MS} ms; the console's "
            f"call: {state['call']}, its agent: {state['agent']}; the "
            f"call in the CRM: {calls}") from error


def rpc_timings(page, db, method, count=10):
    "Milliseconds of count calls of method from the page, one at a time"
    return page.evaluate("""async ([db, method, count]) => {
        const times = [];
        for (let i = 0; i < count; i++) {
            const start = performance.now();
            const response = await fetch('/' + db + '/rpc/', {
                method: 'POST', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({id: i, method, params: [{}]})});
            const data = await response.json();
            if (data.error) {
                throw new Error(JSON.stringify(data.error));
            }
            times.push(performance.now() - start);
        }
        return times;
    }""", [db, method, count])


def open_page(page, menu_item):
    "Open Call Center > menu_item from sao's menu: a new tab"
    menu = page.locator('#menu')
    menu.locator('tr', has_text='Call Center').locator(
        '.expander').first.click()
    item = menu.locator('.column-char', has_text=menu_item)
    with page.context.expect_page() as new_page:
        item.click()
    opened = new_page.value
    opened.wait_for_load_state()
    return opened


def available_console(page, crm_server):
    "bob's Agent Console, once bob is available"
    login(page, crm_server, AGENT, DEMO_PASSWORD)
    console = open_page(page, 'Agent Console')
    assert console.url.endswith(f'/{crm_server.db}/callcenter/console')
    badge = console.locator('#status-badge')
    expect(badge).to_be_visible()
    expect(console.locator('#agent-name')).to_contain_text(EXTENSION)
    if badge.get_attribute('data-status') != 'available':
        console.locator('#go-available').click()
    expect(badge).to_have_attribute('data-status', 'available')
    expect(console.locator('#go-available')).to_be_disabled()
    return console


def test_agent_takes_a_call(page, crm_server, telephony, rig, phones):
    """A customer calls the hotline: bob's phone rings, his console shows
    the caller, he answers, hangs up and wraps up with a disposition"""
    phone, party = telephony['phone'], telephony['party']
    agent_phone = phones(EXTENSION)
    customer = phones(phone)
    console = available_console(page, crm_server)
    badge = console.locator('#status-badge')
    assert_peers_up(crm_server, rig, agent_phone, customer)

    dialled = time.time()
    customer.dial(QUEUE)
    # Kamailio asked the CRM, which chose bob: his phone rings
    incoming = agent_phone.wait_for('CALL_INCOMING', timeout=WAIT)
    rang = incoming['time']
    call_id = incoming['id']
    assert phone in incoming.get('peeruri', ''), incoming
    # The screen pop: the caller card of the customer
    caller = console.locator('#caller-name')
    screen_pop(console, caller, party, call_id)
    popped = time.time()
    assert popped - rang <= SCREEN_POP_MS / 1000, (
        f"caller card {popped - rang:.2f}s after the ringing")
    expect(console.locator('#call-state')).to_have_attribute(
        'data-state', 'ringing')
    expect(badge).to_have_attribute('data-status', 'ringing')
    expect(console.locator('#call-number')).to_have_text(phone)
    expect(console.locator('#call-queue')).to_have_text(
        f'{QUEUE_NAME} ({QUEUE})')
    expect(caller).to_have_attribute(
        'href', f'/#{crm_server.db}/model/party.party/'
        f'{telephony["party_id"]}')
    expect(console).to_have_title(re.compile(re.escape(party)))
    customer.wait_for('CALL_RINGING', timeout=WAIT)
    # What the page asks every second, over HTTP with the caller card
    times = sorted(rpc_timings(
            console, crm_server.db, 'model.callcenter.agent.console_state'))
    (ARTIFACTS / 'callcenter-timings.txt').write_text(
        f"routing and ringing (dial to the agent's phone ringing): "
        f"{(rang - dialled) * 1000:.0f} ms\n"
        f"screen pop after the agent's phone rang: "
        f"{(popped - rang) * 1000:.0f} ms\n"
        f"console_state over HTTP, ringing: median "
        f"{times[len(times) // 2]:.1f} ms, max {times[-1]:.1f} ms\n")
    assert times[len(times) // 2] < 500, times

    # bob's phone answers
    agent_phone.accept()
    established = agent_phone.wait_for(
        'CALL_ESTABLISHED', timeout=WAIT, id=call_id)['time']
    customer.wait_for('CALL_ESTABLISHED', timeout=WAIT)
    expect(console.locator('#call-state')).to_have_attribute(
        'data-state', 'answered')
    expect(badge).to_have_attribute('data-status', 'on_call')
    # The running timer, and no status to choose while on the line
    expect(console.locator('#call-timer')).to_have_text(
        re.compile(r'^\d+:\d\d$'))
    expect(console.locator('#go-paused')).to_be_disabled()
    # A ticket for the caller (crm_helpdesk), opened in sao in a new tab;
    # the caller card lists it
    with console.context.expect_page() as opened:
        console.locator('#new-ticket').click()
    tab = opened.value
    tab.wait_for_url(re.compile(
            rf'/#{crm_server.db}/model/helpdesk\.ticket/\d+$'))
    tab.close()
    expect(console.locator('#notice')).to_contain_text("Ticket created")
    expect(console.locator('#caller-tickets')).to_contain_text(
        f"Call from {party}")

    # then hangs up
    time.sleep(max(0, established + TALK - time.time()))
    hung_up = time.time()
    agent_phone.hangup()
    customer.wait_for('CALL_CLOSED', timeout=WAIT)
    agent_phone.wait_for('CALL_CLOSED', timeout=WAIT, id=call_id)
    form = console.locator('#wrap-up-form')
    expect(form).to_be_visible()
    expect(badge).to_have_attribute('data-status', 'wrap_up')
    expect(console.locator('#wrap-up-hint')).to_contain_text(party)
    console.locator('#disposition').select_option(label=DISPOSITION)
    console.locator('#notes').fill("Asked for the delivery date")
    console.locator('#wrap-up-submit').click()
    expect(console.locator('#notice')).to_have_text(
        "The call is wrapped up.")
    expect(form).to_be_hidden()
    expect(badge).to_have_attribute('data-status', 'available')

    # As stored: read back with bob's session
    call = read_call(console, call_id, [
            'wrapped_up', 'disposition.name', 'notes', 'state', 'party',
            'direction', 'agent', 'queue', 'from_number', 'wait_seconds',
            'talk_seconds', 'answered', 'ended', 'activity'])
    assert call['wrapped_up']
    assert call['disposition.']['name'] == DISPOSITION
    assert call['notes'] == "Asked for the delivery date"
    assert (call['state'], call['direction'], call['from_number']) == (
        'ended', 'inbound', phone)
    assert (call['party'], call['agent'], call['queue']) == (
        telephony['party_id'], telephony['agent_id'], telephony['queue_id'])
    assert call['answered'] and call['ended']
    talk, wait = hung_up - established, established - rang
    assert abs(call['talk_seconds'] - talk) <= 1.5, (call, talk)
    assert abs(call['wait_seconds'] - wait) <= 1.5, (call, wait)
    # On the customer's history, with the disposition
    history = rpc(console, 'model.crm.activity.search_read',
        [['party', '=', telephony['party_id']],
            ['origin', '=', f'callcenter.call,{call["id"]}']],
        0, None, None, ['type', 'state', 'outcome', 'subject'])
    assert [(h['id'], h['type'], h['state'], h['outcome'])
        for h in history] == [
        (call['activity'], 'call', 'done', DISPOSITION)], history
    assert phone in history[0]['subject'], history
    agent, = rpc(console, 'model.callcenter.agent.search_read',
        [['extension', '=', EXTENSION]], 0, None, None, ['status'])
    assert agent['status'] == 'available'

    # The wallboard is for supervisors
    console.goto(f'{crm_server.url}/{crm_server.db}/callcenter/wallboard')
    expect(console.locator('#alert-text')).to_contain_text('supervisors')


def unknown_number():
    "A valid phone number no demo party has"
    while True:
        number = f'+49151{random.randrange(10 ** 7, 10 ** 8)}'
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def ring_and_give_up(agent_phone, caller, pick):
    """caller calls the hotline; once bob's phone rings, pick(call_id)
    runs, then the caller gives up"""
    caller.dial(QUEUE)
    incoming = agent_phone.wait_for('CALL_INCOMING', timeout=WAIT)
    assert caller.user in incoming.get('peeruri', ''), incoming
    pick(incoming['id'])
    caller.hangup()
    agent_phone.wait_for('CALL_CLOSED', timeout=WAIT, id=incoming['id'])
    return incoming['id']


def test_unknown_and_shared_numbers(page, crm_server, telephony, rig, phones):
    """A number nobody has: bob creates the contact; a number two parties
    share: bob says which one calls; both callers give up"""
    agent_phone = phones(EXTENSION)
    number, shared = unknown_number(), telephony['shared']
    assert len(telephony['shared_parties']) == 2
    stranger, twin = phones(number), phones(shared)
    console = available_console(page, crm_server)
    badge = console.locator('#status-badge')
    assert_peers_up(crm_server, rig, agent_phone, stranger, twin)

    def create_contact(call_id):
        expect(console.locator('#unknown')).to_be_visible(
            timeout=SCREEN_POP_MS)
        console.locator('#create-contact').click()
        expect(console.locator('#caller-name')).to_have_text(number)
        expect(console.locator('#notice')).to_contain_text("Contact created")
    ring_and_give_up(agent_phone, stranger, create_contact)
    expect(console.locator('#no-call')).to_have_text(
        "Waiting for the next call.")
    expect(badge).to_have_attribute('data-status', 'available')

    chosen = telephony['shared_parties'][-1]

    def choose(call_id):
        matches = console.locator('#match-list li')
        expect(matches).to_have_count(len(telephony['shared_parties']),
            timeout=SCREEN_POP_MS)
        matches.filter(has_text=chosen).locator('button').click()
        expect(console.locator('#caller-name')).to_have_text(chosen)
        expect(console.locator('#matches')).to_be_hidden()
    call_id = ring_and_give_up(agent_phone, twin, choose)
    expect(console.locator('#no-call')).to_be_visible()
    expect(badge).to_have_attribute('data-status', 'available')
    call = read_call(console, call_id, ['party.rec_name', 'state'])
    assert call['party.']['rec_name'] == chosen
    assert call['state'] in {'missed', 'abandoned'}, call


def test_supervisor_wallboard(page, crm_server):
    login(page, crm_server, SUPERVISOR, DEMO_PASSWORD)
    wallboard = open_page(page, 'Wallboard')
    assert wallboard.url.endswith(f'/{crm_server.db}/callcenter/wallboard')
    hotline = wallboard.locator('.wb-queue', has_text='Customer Hotline')
    expect(hotline).to_be_visible()
    expect(wallboard.locator('.wb-queue', has_text='Sales Line')
        ).to_be_visible()
    for name in ['waiting', 'longest-wait', 'answered', 'abandoned',
            'service-level', 'average-handle']:
        expect(hotline.locator(f'[data-figure="{name}"] .wb-value')
            ).not_to_be_empty()
    expect(hotline.locator('.wb-target')).to_contain_text('%')
    # Every agent of the demo, with their status
    rows = wallboard.locator('#agents tr')
    expect(rows).to_have_count(3)
    expect(wallboard.locator('#agents tr', has_text='1002')).to_be_visible()
    times = sorted(rpc_timings(
            wallboard, crm_server.db, 'model.callcenter.queue.wallboard_data'))
    with open(ARTIFACTS / 'callcenter-timings.txt', 'a') as file:
        file.write(f"wallboard_data over HTTP: median "
            f"{times[len(times) // 2]:.1f} ms, max {times[-1]:.1f} ms\n")
    # It refreshes by itself
    updated = wallboard.locator('#updated')
    expect(updated).to_contain_text('Updated')
    first = updated.inner_text()
    expect(updated).not_to_have_text(first, timeout=5000)
