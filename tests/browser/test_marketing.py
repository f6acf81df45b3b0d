"""Marketing in sao, as the demo's marketing user mia works (fixtures:
conftest.py).

mia builds a segment from criteria in the form (lifecycle status Customer,
a country), sees its member count (the database's own count of those
parties), then creates an email campaign on it with an email A and starts
it.  The campaign runs, its members are the segment's parties whose email
may receive marketing, and its marketing_automation scenario exists; when
the cron processes the scenario, the served database mails each member
once, through a real SMTP server (conftest's mail_server).
"""
import base64
import email
import json
import re
import time
import urllib.request
from email.policy import default as default_policy

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from conftest import (
    ADMIN_PASSWORD, DEMO_PASSWORD, active_tab, assert_no_error_dialog, login,
    open_menu, rpc, save_record, wait_idle)

MARKETER = 'mia'
# Boulangeries Dupont SA and its two contacts in the demo data
COUNTRY, COUNTRY_CODE = "France", 'FR'
SUBJECT = "A spring offer for ${record.party.name}"
BODY = ('<html><body><p>Hello ${record.party.name},</p>'
    '<p><a href="https://example.com/spring-offer">Our spring offer</a></p>'
    '<p><a href="unsubscribe">Unsubscribe</a></p></body></html>')


def server_rpc(crm_server, login_, password):
    """A JSON-RPC session of login_ on the served database, as non-browser
    clients open one (Authorization: Session ...): call(method, *params)"""
    url = f'{crm_server.url}/{crm_server.db}/rpc/'
    auth = {}

    def call(method, *params):
        request = urllib.request.Request(url, method='POST',
            data=json.dumps({'id': 1, 'method': method,
                    'params': list(params)}).encode(),
            headers={'Content-Type': 'application/json', **auth})
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
        assert 'error' not in answer, (method, answer['error'])
        return answer['result']
    user_id, token, *_ = call(
        'common.db.login', login_, {'password': password}, 'en')
    session = base64.b64encode(
        f'{login_}:{user_id}:{token}'.encode()).decode()
    auth['Authorization'] = f'Session {session}'
    return call


def pick_completion(page, entry, text):
    """Type text into a relation field and choose its completion (a late
    redisplay of the form may clear what was typed: type again)"""
    completion = page.locator('li.completion', has_text=text).first
    for _ in range(3):
        entry.fill(text)
        try:
            completion.wait_for(timeout=5000)
            break
        except PlaywrightTimeoutError:
            continue
    completion.click()
    wait_idle(page)


def fill_text(page, entry, text):
    """Type text into a field and leave it; again when a late redisplay of
    the form on a loaded machine cleared it (seen with the campaign's
    name, while the whole test suite ran beside)"""
    for _ in range(3):
        if entry.input_value() != text:
            entry.fill(text)
            entry.press('Tab')
            wait_idle(page)
        try:
            expect(entry).to_have_value(text, timeout=3000)
            return
        except AssertionError:
            continue
    expect(entry).to_have_value(text)


def first_emails(page, party_ids):
    """The address an email campaign takes for each party: its first
    active, deliverable email (as add_members does)"""
    mechanisms = rpc(page, 'model.party.contact_mechanism.search_read', [
            ['party', 'in', party_ids], ['type', '=', 'email'],
            ['active', '=', True], ['undeliverable', '=', False]],
        0, None, None, ['party', 'value'])
    emails = {}
    for mechanism in mechanisms:
        party = mechanism['party']
        emails[party] = min(emails.get(party, mechanism['value']),
            mechanism['value'])
    return emails


def blocked(page, addresses):
    "The addresses opted out or suppressed (lower case)"
    addresses = [a.lower() for a in addresses]
    opted_out = rpc(page, 'model.marketing.consent.search_read', [
            ['email', 'in', addresses], ['status', '=', 'opted_out']],
        0, None, None, ['email'])
    suppressed = rpc(page, 'model.marketing.suppression.search_read', [
            ['email', 'in', addresses]], 0, None, None, ['email'])
    return {r['email'] for r in opted_out + suppressed}


def test_marketer_segments_and_starts_email_campaign(
        page, crm_server, mail_server):
    stamp = time.strftime('%H%M%S')
    segment_name = f"Customers in {COUNTRY} {stamp}"
    campaign_name = f"spring-offer-{stamp}"
    login(page, crm_server, MARKETER, DEMO_PASSWORD)

    # A dynamic segment from criteria chosen in the form
    open_menu(page, 'Marketing', 'Segments')
    tab = active_tab(page)
    expect(page.locator('#tablist .active')).to_contain_text('Segments')
    wait_idle(page)
    tab.locator('button#new_').click()
    name = tab.locator('input[name="name"]')
    expect(name).to_be_visible()
    # Typed once the new record is shown: typing earlier is wiped out
    wait_idle(page)
    expect(tab.locator('select[name="kind"] option:checked')).to_have_text(
        "Dynamic")
    name.fill(segment_name)
    name.press('Tab')
    wait_idle(page)
    tab.locator('select[name="lifecycle_statuses"]').select_option(
        label="Customer")
    wait_idle(page)
    pick_completion(page, tab.locator('input[name="countries"]'), COUNTRY)
    countries = tab.locator('.form-many2many', has=page.locator(
            'input[name="countries"]'))
    expect(countries.locator('tbody tr', has_text=COUNTRY)).to_be_visible()
    expect(name).to_have_value(segment_name)
    # Saved when the server answered sao's create (the Save button's state
    # once timed out on a loaded machine)
    save_record(page, tab, 'crm.segment')
    # Saving refreshed its members: the count the form shows
    count_field = tab.get_by_label('Members:', exact=True)
    expect(count_field).not_to_have_value(re.compile(r'^0?$'))
    shown = int(count_field.input_value())

    # The database's count of those parties, by another road than the
    # segment's own query
    customers = set(rpc(page, 'model.party.party.search', [
                ['lifecycle_status', '=', 'customer'],
                ['addresses.country.code', '=', COUNTRY_CODE]],
            0, None, None))
    segment, = rpc(page, 'model.crm.segment.search_read',
        [['name', '=', segment_name]], 0, None, None,
        ['member_count', 'kind'])
    assert segment['kind'] == 'dynamic'
    assert shown == segment['member_count'] == len(customers) > 1
    assert set(rpc(page, 'model.party.party.search',
            [['crm_segments', '=', segment['id']]], 0, None, None)) == (
        customers)

    # A customer told us on the phone: no more newsletters
    emails = first_emails(page, sorted(customers))
    allowed = {p: e for p, e in emails.items()
        if e.lower() not in blocked(page, list(emails.values()))}
    assert len(allowed) >= 2, allowed
    refused = max(allowed)
    existing = rpc(page, 'model.marketing.consent.search',
        [['email', '=', allowed[refused].lower()]], 0, None, None)
    values = {'status': 'opted_out', 'method': 'manual',
        'source': "Phone call", 'party': refused}
    if existing:
        rpc(page, 'model.marketing.consent.write', existing, values)
    else:
        rpc(page, 'model.marketing.consent.create',
            [dict(values, email=allowed[refused])])
    del allowed[refused]

    # An email campaign to the segment, with its email A
    open_menu(page, 'Marketing', 'Campaigns')
    expect(page.locator('#tablist .active')).to_contain_text('Campaigns')
    tab = active_tab(page)
    wait_idle(page)
    tab.locator('button#new_').click()
    name = tab.locator('input[name="name"]')
    expect(name).to_be_visible()
    wait_idle(page)
    expect(tab.locator('select[name="type"] option:checked')).to_have_text(
        "Email")
    fill_text(page, name, campaign_name)
    pick_completion(page, tab.locator('input[name="segment"]'),
        segment_name)
    expect(tab.locator('input[name="segment"]')).to_have_value(segment_name)
    tab.locator('.nav-tabs a', has_text='Emails').click()
    variants = tab.locator('.form-one2many', has=page.locator(
            '.form-one2many-string', has_text='Emails'))
    variants.locator('button[title="New"]').click()
    dialog = page.locator('.modal-dialog', has=page.locator(
            'textarea[name="body"]'))
    expect(dialog).to_be_visible()
    wait_idle(page)
    expect(dialog.locator('select[name="name"] option:checked')).to_have_text(
        "A")
    dialog.locator('input[name="subject"]').fill(SUBJECT)
    body = dialog.locator('textarea[name="body"]')
    body.fill(BODY)
    body.press('Tab')
    wait_idle(page)
    dialog.locator('.modal-footer button', has_text=re.compile(
            r'^\s*Add\s*$', re.I)).click()
    expect(dialog).to_be_hidden()
    wait_idle(page)
    expect(variants.locator('tbody tr', has_text=SUBJECT)).to_be_visible()
    # What was typed is still there when it is saved
    fill_text(page, name, campaign_name)
    campaign_id, = save_record(page, tab, 'marketing.campaign')
    assert rpc(page, 'model.marketing.campaign.search',
        [['name', '=', campaign_name]], 0, None, None) == [campaign_id]

    # Start, confirmed
    tab.locator('button', has_text='Start').click()
    confirm = page.locator('.modal-dialog', has_text="Start the campaign?")
    expect(confirm).to_be_visible()
    confirm.locator('.modal-footer button', has_text=re.compile(
            r'^\s*OK\s*$', re.I)).click()
    expect(confirm).to_be_hidden()
    wait_idle(page)
    assert_no_error_dialog(page)
    expect(tab.locator('select[name="status"] option:checked')).to_have_text(
        "Running")
    expect(tab.locator('button', has_text='Start')).to_be_hidden()

    # What the server made of it
    campaign, = rpc(page, 'model.marketing.campaign.search_read',
        [['name', '=', campaign_name]], 0, None, None,
        ['status', 'type', 'segment', 'scenario', 'start_date', 'targeted'])
    assert campaign['status'] == 'running'
    assert campaign['type'] == 'email'
    assert campaign['segment'] == segment['id']
    assert campaign['start_date']
    members = rpc(page, 'model.marketing.campaign.member.search_read',
        [['campaign', '=', campaign['id']]], 0, None, None,
        ['party', 'email', 'status', 'variant'])
    # the segment's parties with an email allowed to receive marketing
    assert {m['party']: m['email'] for m in members} == allowed
    assert refused not in {m['party'] for m in members}
    assert {(m['status'], m['variant']) for m in members} == {
        ('targeted', 'a')}
    assert campaign['targeted'] == len(allowed)
    assert campaign['scenario']
    scenario, = rpc(page, 'model.marketing.automation.scenario.read',
        [campaign['scenario']], ['state', 'model', 'activities'])
    assert scenario['state'] == 'running'
    assert scenario['model'] == 'marketing.campaign.member'
    assert len(scenario['activities']) == 1

    # The cron sends what the scenario has due (the queue runs in the
    # server after the call): one email per member, to the SMTP server
    admin = server_rpc(crm_server, 'admin', ADMIN_PASSWORD)
    cron, = admin('model.ir.cron.search', [
            ['method', '=', 'marketing.automation.record.activity|process']],
        0, None, None, {})
    admin('model.ir.cron.run_once', [cron], {})
    expected = {e.lower() for e in allowed.values()}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        received = [m for m in mail_server.messages
            if {r.lower() for r in m.rcpt_tos} & expected]
        if len(received) >= len(expected):
            break
        time.sleep(0.5)
    assert sorted(r.lower() for m in received for r in m.rcpt_tos) == (
        sorted(expected))
    names = {p['id']: p['name'] for p in rpc(page,
            'model.party.party.read', list(allowed), ['name'])}
    subjects = {email.message_from_bytes(m.original_content,
            policy=default_policy)['Subject'] for m in received}
    assert subjects == {f"A spring offer for {names[p]}" for p in allowed}
    message = email.message_from_bytes(received[0].original_content,
        policy=default_policy)
    html = message.get_body(('html',)).get_content()
    # links tracked through the server, the unsubscribe link made
    assert 'https://example.com/spring-offer' not in html
    assert '/unsubscribe?' in html
    members = rpc(page, 'model.marketing.campaign.member.search_read',
        [['campaign', '=', campaign['id']]], 0, None, None,
        ['status', 'sent'])
    assert all(m['status'] == 'sent' and m['sent'] for m in members)
