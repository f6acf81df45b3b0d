"""Real SIP calls through the whole chain, for bench/callcenter.py: SIPp
customers call the queue numbers through the test rig's Kamailio, which
asks the CRM's routing API where each call goes, relays it to the agent's
extension (one SIPp UAS answers for all of them) and posts the call's
events to the CRM. Each call rings 100 ms (bench/sipp/uas.xml), lasts
TALK_MS and the caller hangs up. The call rate goes up in steps until a
step no longer holds; sustained_rate() returns the rate of the last one
that held.

A step holds when at least 99 % of its calls are answered (200 OK at the
caller) and every answered call is, once the worker has applied its
events, in callcenter_call ended, with an agent and the caller's party.
"""
import glob
import importlib.util
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from urllib.parse import quote

from benchlib import log, transaction

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, 'sipp')
RIG = os.path.join(os.path.dirname(HERE), 'addons', 'crm_callcenter',
    'tests', 'rig', 'rig.py')
HOST = '127.0.0.1'
# Calls per second of the steps, in order, until one does not hold
RATES = [5, 10, 15, 20, 25, 30, 40, 50, 60, 80]
STEP_S, QUICK_STEP_S = 10, 5
# Short calls: 40 agents must not be what limits the rate (with 1 s of
# talk they held 15 to 20 calls/s: every agent busy)
TALK_MS = 200
ANSWERED = 0.99
# Kamailio gives up ringing an agent after this; SIPp gives up waiting for
# an answer a little later: no call of a step hangs on
RING_S = 10
RECV_TIMEOUT_MS = 15_000


def load_rig():
    "The test rig's module, by its path (it is no package of the bench)"
    spec = importlib.util.spec_from_file_location('crm_rig', RIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def missing(rig):
    "What the SIP phase lacks, as readable strings"
    lacking = rig.missing_binaries('kamailio')
    if not shutil.which('sipp'):
        lacking.append('sipp (Debian package sip-tester)')
    if not rig.hmac_available():
        # The CRM answers 401 to unsigned routing requests and events
        lacking.append("Kamailio's crypto module (kamailio-tls-modules)")
    return lacking


def udp_port():
    "A free UDP port of 127.0.0.1 for the SIPp UAS"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def write_csv(path, rows):
    "A SIPp injection file: one call (or registration) a line"
    with open(path, 'w') as f:
        f.write('SEQUENTIAL\n')
        f.writelines(';'.join(row) + '\n' for row in rows)
    return path


def sipp(work, scenario, *args):
    """A SIPp process on the scenario of bench/sipp, working in work (its
    trace files), its stderr in a file"""
    with open(os.path.join(work, f'{scenario}.log'), 'ab') as err:
        return subprocess.Popen(['sipp', *args,
                '-sf', os.path.join(SCENARIOS, f'{scenario}.xml'),
                '-i', HOST, '-nostdin', '-trace_err'],
            cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=err, start_new_session=True)


def errors(work):
    "The end of SIPp's logs and unexpected messages in work"
    text = ''
    for path in sorted(glob.glob(os.path.join(work, '*.log'))):
        with open(path, errors='replace') as f:
            text += f'{os.path.basename(path)}: {f.read()[-1000:]}\n'
    return text or 'no log'


def stop(process):
    "Stop a process we started, by its pid"
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_agents(kamailio, work, extensions):
    """The SIPp UAS answering every call, and the extensions registered at
    Kamailio with its address (a short-lived SIPp UAC sends the REGISTERs)"""
    port = udp_port()
    uas = sipp(work, 'uas', '-p', str(port),
        '-recv_timeout', str(2 * RECV_TIMEOUT_MS))
    try:
        agents = write_csv(os.path.join(work, 'agents.csv'),
            [(e, f'{HOST}:{port}') for e in extensions])
        register = sipp(work, 'register', f'{HOST}:{kamailio.sip_port}',
            '-inf', agents, '-m', str(len(extensions)), '-r', '50')
        try:
            code = register.wait(30)
        finally:
            stop(register)
        if code != 0 or uas.poll() is not None:
            raise RuntimeError(f"SIPp could not register the agents (exit "
                f"{code}, UAS {uas.poll()}): {errors(work)}")
    except BaseException:
        stop(uas)
        raise
    log(f"SIPp UAS pid {uas.pid} on port {port} answers for "
        f"{len(extensions)} registered extensions")
    return uas


def no_wrap_up(name, cc):
    """No wrap-up time in the queues: an agent takes the next call as soon
    as the last one ended (the bench runs no cron that ends wrap-ups)"""
    from trytond.pool import Pool
    with transaction(name, cc['admin'], {'company': cc['company']}):
        Queue = Pool().get('callcenter.queue')
        Queue.write(Queue.search([]), {'wrap_up_seconds': 0})


def free_agents(name, cc):
    """Every agent available without a current call: each step starts
    alike, whatever the events phase or the last step left"""
    from trytond.pool import Pool
    with transaction(name, cc['admin'], {'company': cc['company']}):
        Agent = Pool().get('callcenter.agent')
        Agent.set_status(Agent.search([]), 'available', call=False)


def crm_state(name, prefix, timeout=60):
    """Once no event of the calls (call id prefix) is pending: how many
    ended with an agent and the caller's party, the calls by state, and
    the agents by status (those still ringing for a call that is over)"""
    from trytond.transaction import Transaction
    deadline = time.monotonic() + timeout
    while True:
        with transaction(name, readonly=True):
            cursor = Transaction().connection.cursor()
            cursor.execute('SELECT COUNT(*) FROM callcenter_event '
                'WHERE pending AND call_id LIKE %s', (prefix + '%',))
            pending, = cursor.fetchone()
            if not pending or time.monotonic() > deadline:
                cursor.execute('SELECT c.state, COUNT(*), COUNT(*) FILTER ('
                    "WHERE c.state = 'ended' AND c.agent IS NOT NULL "
                    'AND EXISTS (SELECT 1 FROM party_contact_mechanism m '
                    'WHERE m.party = c.party '
                    'AND m.value_compact = c.from_number)) '
                    'FROM callcenter_call c WHERE c.call_id LIKE %s '
                    'GROUP BY c.state', (prefix + '%',))
                rows = cursor.fetchall()
                cursor.execute("SELECT a.status || CASE WHEN a.status = "
                    "'ringing' AND c.state IN ('ended', 'missed', "
                    "'abandoned', 'voicemail') THEN ' (call over)' "
                    "ELSE '' END, COUNT(*) FROM callcenter_agent a "
                    'LEFT JOIN callcenter_call c ON c.id = a.current_call '
                    'GROUP BY 1')
                agents = dict(cursor.fetchall())
                break
        time.sleep(0.2)
    if pending:
        log(f"{pending} events of {prefix}* still pending after {timeout} s")
    return sum(ok for *_, ok in rows), {s: n for s, n, _ in rows}, agents


def kamailio_counts(kamailio, prefix):
    """What Kamailio's log says of the calls: routing decisions, and the
    answers of the CRM other than 2xx"""
    counts = Counter()
    for line in kamailio.kamailio_log_text().splitlines():
        if prefix not in line:
            continue
        if match := re.search(r'routed: (\w*)', line):
            counts[f'routed {match.group(1) or "?"}'] += 1
        elif match := re.search(r'(routing|events) URL answered (\d+)',
                line):
            counts[f'{match.group(1)} HTTP {match.group(2)}'] += 1
        elif 'not registered' in line:
            counts['target not registered'] += 1
    return dict(counts)


def last_stats(path):
    "The cumulative counters of SIPp's statistics file (its last line)"
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    return dict(zip(lines[0].split(';'), lines[-1].split(';')))


def answers(path):
    """(ms since SIPp started, response time ms) of each 200 OK to an
    INVITE (SIPp's -trace_rtt file)"""
    try:
        with open(path) as f:
            rows = [l.split(';') for l in f.read().splitlines()[1:] if l]
    except FileNotFoundError:
        return []
    return [(float(at), float(ms)) for at, ms, *_ in rows]


def step(name, kamailio, work, rate, seconds, callers, tag):
    """rate calls/s for seconds to the queues, their call ids starting with
    tag; return (holds, achieved calls/s)"""
    count = rate * seconds
    prefix = f'{tag}-'
    calls = write_csv(os.path.join(work, f'{tag}.csv'), callers(count))
    stats = os.path.join(work, f'{tag}-stats.csv')
    uac = sipp(work, 'uac', f'{HOST}:{kamailio.sip_port}', '-inf', calls,
        '-r', str(rate), '-m', str(count), '-d', str(TALK_MS),
        # No cap of SIPp's own on calls in progress: a slow chain shows
        '-l', str(count),
        '-cid_str', f'{prefix}%u@bench',
        '-recv_timeout', str(RECV_TIMEOUT_MS),
        '-trace_stat', '-stf', stats, '-trace_rtt', '-rtt_freq', '1')
    try:
        uac.wait(seconds + 3 * RECV_TIMEOUT_MS / 1000 + 30)
    except subprocess.TimeoutExpired:
        log(f"SIPp at {rate} calls/s did not finish")
    finally:
        stop(uac)
    counters = last_stats(stats) if os.path.exists(stats) else {}
    attempted = int(counters.get('OutgoingCall(C)', 0))
    failed = int(counters.get('FailedCall(C)', 0))
    answered = answers(os.path.join(work, f'uac_{uac.pid}_rtt.csv'))
    times = sorted(ms for _, ms in answered)
    # The rate at which the answers came: a chain that falls behind
    # stretches them over more time than the calls were placed in
    span = (answered[-1][0] - answered[0][0]) / 1000 if answered else 0
    achieved = (len(answered) - 1) / span if span else 0
    ok, states, agents = crm_state(name, prefix)
    holds = (attempted == count and len(answered) >= ANSWERED * count
        and ok >= len(answered))
    log(f"SIP step {rate} calls/s for {seconds} s: {attempted} attempted, "
        f"{len(answered)} answered, {failed} failed; answers at "
        f"{achieved:.1f} calls/s; SIPp response time (INVITE to 200 OK) "
        + (f"median {statistics.median(times):.0f} ms, p95 "
            f"{times[int(len(times) * 0.95)]:.0f} ms" if times else "none")
        + f"; CRM: {ok} calls ended with agent and party {states}, "
        f"agents {agents}; Kamailio: {kamailio_counts(kamailio, prefix)} -> "
        + ("holds" if holds else "does NOT hold"))
    return holds, achieved


def sustained_rate(name, cc, servers, phone, quick=False):
    """The calls per second the chain SIPp -> Kamailio -> CRM (routing on
    the first server, events on the last, the worker making the calls)
    sustains, callers from cc['parties'] (phone: a party's number); None
    when SIPp or Kamailio is not installed, or the phase failed (logged:
    the other figures of the bench stay)"""
    rig = load_rig()
    lacking = missing(rig)
    if lacking:
        log(f"SIP calls skipped, not installed: {', '.join(lacking)}")
        return None
    try:
        return ramp(name, cc, servers, phone, quick, rig)
    except Exception:
        log(f"SIP calls failed:\n{traceback.format_exc()}")
        return None


def ramp(name, cc, servers, phone, quick, rig):
    "The steps of RATES until one does not hold; the rate that held last"
    no_wrap_up(name, cc)
    url = f'http://{HOST}:{{}}/{quote(name)}/callcenter/{{}}'
    kamailio = rig.Rig(routing_url=url.format(servers[0][1], 'route'),
        events_url=url.format(servers[-1][1], 'events'), api_key=cc['key'],
        ring_timeout=RING_S, phones=False)
    # Calls to the four queues in turn: their 40 agents share the load
    numbers = [q['number'] for q in cc['queues']]
    extensions = [e for q in cc['queues'] for *_, e in q['agents']]
    rnd = random.Random(31)

    def callers(count):
        return [(phone(rnd.choice(cc['parties'])), numbers[i % len(numbers)])
            for i in range(count)]
    seconds = QUICK_STEP_S if quick else STEP_S
    run = f'sipp{os.getpid()}'
    sustained = 0
    uas = None
    with tempfile.TemporaryDirectory(prefix='crm-sipp-') as work:
        try:
            kamailio.start()
            log(f"Kamailio pid {kamailio.kamailio.pid} on port "
                f"{kamailio.sip_port}")
            uas = start_agents(kamailio, work, extensions)
            for rate in RATES:
                free_agents(name, cc)
                holds, achieved = step(name, kamailio, work, rate, seconds,
                    callers, f'{run}-{rate}')
                if not holds:
                    break
                sustained = achieved
        finally:
            if uas is not None:
                stop(uas)
            kamailio.stop()
    log(f"SIP calls sustained: {sustained:.1f} calls/s")
    return sustained
