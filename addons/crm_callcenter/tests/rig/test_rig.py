"""The telephony rig works with real processes: Kamailio, baresip, espeak-ng.

Run: pytest addons/crm_callcenter/tests/rig
"""
import hashlib
import hmac
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

try:
    from . import rig as R
except ImportError:             # collected outside its package
    import rig as R

API_KEY = 'test-key-0123456789'
AGENT, CUSTOMER, QUEUE = '1001', '+4930123456', '5000'
TEST_TIMEOUT = 60               # seconds: no test may hang longer


def needs(*binaries):
    missing = R.missing_binaries(*binaries)
    return pytest.mark.skipif(bool(missing), reason='not installed: %s '
        '(run scripts/telephony.sh)' % ', '.join(missing))


@pytest.fixture(autouse=True)
def _deadline():
    "Fail (instead of hanging) a test that runs longer than TEST_TIMEOUT."
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise TimeoutError('test ran longer than %ss' % TEST_TIMEOUT)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class CrmStub:
    """What the CRM will be: routing URL + events URL, on 127.0.0.1."""

    def __init__(self):
        self.requests = []
        self.route_answer = {'action': 'agent', 'target': AGENT}
        self.cond = threading.Condition()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                size = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(size)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                request = {'path': self.path, 'headers': self.headers,
                    'raw': raw, 'json': body, 'time': time.time()}
                if self.path == '/route':
                    answer = stub.route_answer
                else:
                    answer = {'ok': True}
                out = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                with stub.cond:
                    stub.requests.append(request)
                    stub.cond.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((R.HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = 'http://%s:%d' % (R.HOST, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever,
            daemon=True)
        self.thread.start()

    def of(self, path):
        return [r for r in self.requests if r['path'] == path]

    def events(self, call_id=None):
        return [r['json'] for r in self.of('/events')
            if call_id is None or r['json'].get('call_id') == call_id]

    def wait_event(self, event_type, call_id, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for event in self.events(call_id):
                    if event.get('type') == event_type:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError('no %s event for %s; got %s' % (
                        event_type, call_id, self.events()))
                self.cond.wait(min(left, 0.2))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def crm():
    stub = CrmStub()
    yield stub
    stub.close()


@pytest.fixture
def rig(crm):
    with R.Rig(routing_url=crm.url + '/route', events_url=crm.url + '/events',
            api_key=API_KEY) as rig:
        yield rig


def check_auth(request):
    headers = request['headers']
    assert headers['Authorization'] == 'Bearer ' + API_KEY
    assert headers['Content-Type'] == 'application/json'
    if R.hmac_available():
        expected = hmac.new(API_KEY.encode(), request['raw'],
            hashlib.sha256).hexdigest()
        assert headers['X-CRM-Signature'] == 'sha256=' + expected


def establish(caller, callee, number):
    caller.dial(number)
    incoming = callee.wait_for('CALL_INCOMING')
    caller.wait_for('CALL_RINGING')
    callee.accept()
    caller.wait_for('CALL_ESTABLISHED')
    callee.wait_for('CALL_ESTABLISHED')
    return incoming['id']


def closed_recording(phone, timeout=5):
    "The phone's last recording once its writer has closed it."
    deadline = time.monotonic() + timeout
    while True:
        path = phone.recording_path
        if path and os.path.getsize(path) > 44:
            with open(path, 'rb') as f:
                f.seek(40)
                data_size = int.from_bytes(f.read(4), 'little')
            if data_size:       # header written at close by libsndfile
                return path
        assert time.monotonic() < deadline, 'no closed recording'
        time.sleep(0.1)


@needs('kamailio', 'baresip', 'espeak-ng', 'sox')
def test_call_with_audio(rig, tmp_path):
    "A calls B, B answers, A speaks a prompt, B receives audio, A hangs up."
    a, b = rig.phone('2001'), rig.phone('2002')
    assert a.registered() and b.registered()
    prompt = R.tts('Welcome to the call center test.', str(tmp_path / 'p.wav'))
    assert R.rms(prompt) > 0.02

    call_id = establish(a, b, '2002')
    a.play(prompt)
    time.sleep(R.wav_duration(prompt) + 0.4)
    a.hangup()
    assert a.wait_for('CALL_CLOSED')['id'] == call_id
    assert b.wait_for('CALL_CLOSED')['id'] == call_id

    received = R.rms(closed_recording(b))
    silence = R.rms(closed_recording(a))       # B sent silence
    assert received > 0.01, received
    assert silence < 0.002, silence
    assert received > 10 * silence


@needs('kamailio', 'baresip')
def test_routing_and_events(rig, crm):
    "A call to the queue number 5000 is routed to agent 1001 and reported."
    agent, customer = rig.phone(AGENT), rig.phone(CUSTOMER)
    started = time.time()

    call_id = establish(customer, agent, QUEUE)
    time.sleep(0.3)
    agent.hangup()
    agent.wait_for('CALL_CLOSED')
    customer.wait_for('CALL_CLOSED')
    crm.wait_event('ended', call_id)

    routing = crm.of('/route')
    assert len(routing) == 1
    assert routing[0]['json'] == {
        'call_id': call_id, 'from': CUSTOMER, 'to': QUEUE}
    check_auth(routing[0])
    for request in crm.of('/events'):
        check_auth(request)

    events = crm.events(call_id)
    assert [e['type'] for e in events] == ['ringing', 'answered', 'ended']
    for event in events:
        assert event['id'] == '%s:%s' % (call_id, event['type'])
        assert event['call_id'] == call_id
        assert event['from'] == CUSTOMER
        assert event['to'] == QUEUE
        assert event['direction'] == 'inbound'
        assert event['extension'] == AGENT
        assert isinstance(event['timestamp'], (int, float))
    stamps = [e['timestamp'] for e in events]
    assert started - 1 <= stamps[0] <= stamps[1] < stamps[2] <= time.time()


@needs('kamailio', 'baresip')
def test_missed_call(rig, crm):
    "Nobody answers the queue call and the customer gives up: missed."
    agent, customer = rig.phone(AGENT), rig.phone(CUSTOMER)
    customer.dial(QUEUE)
    call_id = agent.wait_for('CALL_INCOMING')['id']
    customer.wait_for('CALL_RINGING')
    crm.wait_event('ringing', call_id)
    customer.hangup()           # CANCEL
    customer.wait_for('CALL_CLOSED')
    agent.wait_for('CALL_CLOSED')

    missed = crm.wait_event('missed', call_id)
    assert missed['id'] == call_id + ':missed'
    assert missed['extension'] == AGENT
    assert (missed['from'], missed['to']) == (CUSTOMER, QUEUE)
    time.sleep(0.3)
    assert [e['type'] for e in crm.events(call_id)] == ['ringing', 'missed']


@needs('kamailio', 'baresip')
def test_dtmf(rig):
    "A sends DTMF 2 after the call is established: B sees it."
    a, b = rig.phone('3001'), rig.phone('3002')
    call_id = establish(a, b, '3002')
    a.send_dtmf('2')
    event = b.wait_for('CALL_DTMF_START', param='2')
    assert event['id'] == call_id
    b.wait_for('CALL_DTMF_END')
    b.hangup()
    a.wait_for('CALL_CLOSED')
    b.wait_for('CALL_CLOSED')


@needs('kamailio', 'baresip')
def test_reject_and_unreachable_target(rig, crm):
    "Routing says reject: 404; routes to a user not registered: 480, missed."
    customer = rig.phone(CUSTOMER)
    crm.route_answer = {'action': 'reject', 'target': ''}
    customer.dial(QUEUE)
    closed = customer.wait_for('CALL_CLOSED')
    assert '404' in closed['param']
    assert crm.events(closed['id']) == []

    crm.route_answer = {'action': 'queue', 'target': 1999}   # a number
    customer.dial(QUEUE)
    closed = customer.wait_for('CALL_CLOSED')
    assert '480' in closed['param']
    missed = crm.wait_event('missed', closed['id'])
    assert missed['extension'] == '1999'
    assert len(crm.of('/route')) == 2


@needs('kamailio', 'baresip')
def test_dead_phone_fails_fast(rig):
    """A phone that died while registered: dial() refuses, the proxy gives
    up after 3 s (fr_timer) instead of the 32 s of SIP timer B."""
    a, b = rig.phone('4001'), rig.phone('4002')
    b.proc.kill()
    b.proc.wait(5)
    assert not b.registered()
    with pytest.raises(R.RigError):
        a.dial('4002')
    started = time.monotonic()
    a.dial(rig.uri('4002'))     # a full URI is not checked
    closed = a.wait_for('CALL_CLOSED', timeout=10)
    assert '408' in closed['param']
    assert time.monotonic() - started < 6


@needs('kamailio')
def test_kamailio_alone(crm):
    "phones=False: Kamailio alone (bench/sipp.py registers SIPp instead)."
    with R.Rig(routing_url=crm.url + '/route', events_url=crm.url + '/events',
            api_key=API_KEY, phones=False) as rig:
        assert R.sip_options(rig.sip_port) == 200
        with pytest.raises(R.RigError):
            rig.phone(AGENT)
