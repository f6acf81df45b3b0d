"""The IVR end to end: a customer's baresip phone calls the menu's number
through Kamailio, which asks the CRM (served over real HTTP) and relays
the call to the IVR runner (a real process driving its own baresip); the
runner speaks the prompt, hears the key and transfers the caller (SIP
REFER) to the agent the CRM chose.

The CRM is served by rig/crm_http.py: needs PostgreSQL (the HTTP server's
threads open their own connections to the committed test database) and the
telephony packages (scripts/telephony.sh)."""
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import RouteTestCase

from crm_core.tests.tools import create_user

from .. import ivr_routes  # noqa: F401 (the step API's routes)
from .rig.crm_http import CrmHttpTestMixin, skip_reason
from .rig.rig import rms, tts, wav_duration
from .test_callcenter import CallCenterSetup
from .test_ivr import WELCOME, create_menu

CUSTOMER = '+4930901820'
IVR_NUMBER, RUNNER = '7000', 'ivr-7000'
WAIT = 10                       # seconds for a phone event
ADDONS = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))

SKIP = skip_reason('kamailio', 'baresip', 'espeak-ng', 'sox')


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is dead too
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(') ')[-1][:1] != 'Z'
    except OSError:
        return False


def _kill(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def onset(path, threshold=0.01, step=0.05):
    "The second at which the sound of a recording starts, or None"
    t, end = 0.0, wav_duration(path)
    while t < end:
        if rms(path, t, t + step) > threshold:
            return t
        t += step
    return None


@unittest.skipIf(SKIP, SKIP)
class IVRSipTestCase(CrmHttpTestMixin, RouteTestCase):
    "Calls through a real SIP proxy to the IVR runner and on to an agent"
    module = 'crm_callcenter'
    TEST_TIMEOUT = 90           # seconds: a test that runs longer fails

    @classmethod
    def setUpDatabase(cls):
        "Committed: the CRM server's threads read it"
        pool = Pool()
        UserApplication = pool.get('res.user.application')
        cc = CallCenterSetup(strategy='longest_idle')
        create_menu(cc, number=IVR_NUMBER, extension=RUNNER)
        pbx = create_user('pbx', cc.company, group=None)
        with set_company(cc.company):
            application, = UserApplication.create([{
                        'user': pbx.id,
                        'application': 'crm_callcenter',
                        'state': 'validated',
                        }])
        cls.key = application.key
        cls.ids = {
            'company': cc.company.id,
            'a1001': cc.a1001.id,
            'a1002': cc.a1002.id,
            'a2001': cc.a2001.id,
            }

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='crm-ivr-test-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.reset_agents()
        self.base_url = self.serve()
        self.rig = self.start_rig(self.base_url)
        self.runner = self.start_runner()

    def reset_agents(self):
        "The agents available, 1002 idle longer than 1001"
        now = dt.datetime.now()
        with self.transaction():
            Agent = Pool().get('callcenter.agent')
            agents = Agent.browse([self.ids[a]
                    for a in ['a1001', 'a1002', 'a2001']])
            Agent.set_status(agents, 'available', call=False)
            for agent, idle in zip(agents, [1, 60, 5]):
                Agent.write([agent], {
                        'last_call_end': now - dt.timedelta(minutes=idle),
                        'wrap_up_until': None, 'current_call': None})

    def start_runner(self, timeout=15):
        """The IVR runner of the menu, registered at the rig's Kamailio;
        stopped (and its baresip) by pid when the test ends"""
        self.runner_log = os.path.join(self.tmp, 'runner.log')
        self.pid_file = os.path.join(self.tmp, 'runner.pid')
        env = dict(os.environ, CRM_IVR_KEY=self.key,
            PYTHONPATH=os.pathsep.join(
                [ADDONS] + os.environ.get('PYTHONPATH', '').split(
                    os.pathsep)).rstrip(os.pathsep))
        with open(self.runner_log, 'wb') as log:
            runner = subprocess.Popen([sys.executable, '-m',
                    'crm_callcenter.ivr_runner',
                    '--crm-url', self.base_url,
                    '--ivr', IVR_NUMBER,
                    '--sip-user', RUNNER,
                    '--registrar', '127.0.0.1:%d' % self.rig.sip_port,
                    '--work-dir', os.path.join(self.tmp, 'runner'),
                    '--pid-file', self.pid_file,
                    '--transfer-timeout', '20',
                    ], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.baresip_pid = None
        self.addCleanup(self.stop_runner, runner)
        deadline = time.monotonic() + timeout
        while True:
            if self.baresip_pid is None and os.path.exists(self.pid_file):
                with open(self.pid_file) as f:
                    pids = f.read().split()
                if len(pids) == 2:
                    self.baresip_pid = int(pids[1])
            if self.baresip_pid and self.rig.reachable(RUNNER, timeout=1):
                return runner
            if runner.poll() is not None or time.monotonic() > deadline:
                self.fail('the runner did not register:\n' + self.log())
            time.sleep(0.2)

    def stop_runner(self, runner):
        "SIGTERM: the runner stops its baresip and exits; else SIGKILL"
        if runner.poll() is None:
            runner.send_signal(signal.SIGTERM)
            try:
                runner.wait(10)
            except subprocess.TimeoutExpired:
                _kill(runner.pid)
                runner.wait(5)
        clean = runner.returncode == 0
        baresip = self.baresip_pid
        deadline = time.monotonic() + 5
        while baresip and _alive(baresip) and time.monotonic() < deadline:
            time.sleep(0.1)
        if baresip and _alive(baresip):
            _kill(baresip)
            clean = False
        self.assertTrue(clean, 'the runner did not stop cleanly (exit %s):'
            '\n%s' % (runner.returncode, self.log()))

    def log(self):
        try:
            with open(self.runner_log, errors='replace') as f:
                return f.read()[-5000:]
        except OSError:
            return ''

    def closed_recording(self, phone, index, timeout=5):
        "The phone's index-th recording (by name) once it is complete"
        deadline = time.monotonic() + timeout
        while True:
            paths = sorted(phone.recordings)
            if len(paths) > index:
                path = paths[index]
                with open(path, 'rb') as f:
                    f.seek(40)
                    if int.from_bytes(f.read(4), 'little'):
                        return path
            if time.monotonic() > deadline:
                self.fail('no complete recording %d of %s' % (index, phone))
            time.sleep(0.1)

    def test_caller_presses_2_and_reaches_a_sales_agent(self):
        """The prompt reaches the caller, key 2 transfers the call to the
        free agent of sales, who answers"""
        prompt = tts(WELCOME, os.path.join(self.tmp, 'welcome.wav'))
        seconds = wav_duration(prompt)
        hotline = self.rig.phone('1001')
        sales = self.rig.phone('2001')
        customer = self.rig.phone(CUSTOMER)
        customer.dial(IVR_NUMBER)
        established = customer.wait_for('CALL_ESTABLISHED', timeout=WAIT)
        call_id = established['id']
        # The prompt, a moment of silence, then the key
        time.sleep(seconds + 2.0)
        customer.send_dtmf('2')

        incoming = sales.wait_for('CALL_INCOMING', timeout=WAIT)
        self.assertIn(CUSTOMER, incoming.get('peeruri', ''))
        sales.accept()
        sales.wait_for('CALL_ESTABLISHED', timeout=WAIT)
        transferred = customer.wait_for('CALL_ESTABLISHED', timeout=WAIT)
        self.assertNotEqual(transferred['id'], call_id)
        closed = customer.wait_for('CALL_CLOSED', timeout=WAIT, id=call_id)
        self.assertTrue(closed)
        self.assertFalse([e for e in hotline.events
                if e.get('type') == 'CALL_INCOMING'], "1001 rang")

        # What the caller heard of the menu: the prompt, then silence
        heard = self.closed_recording(customer, 0)
        start = onset(heard)
        self.assertIsNotNone(start, "the caller heard nothing")
        self.assertLess(start, 1.5, "the prompt came late")
        spoken = rms(heard, start + 0.2, start + seconds - 0.3)
        silence = rms(heard, start + seconds + 0.5, start + seconds + 1.3)
        self.assertGreater(spoken, 0.01)
        self.assertLess(silence, 0.002)
        self.assertGreater(spoken, 10 * silence)

        def dtmf(pool):
            Event = pool.get('callcenter.event')
            return [(e.digits, e.to_number) for e in Event.search([
                        ('call_id', '=', call_id), ('type', '=', 'dtmf')])]
        self.assertEqual(self.read(dtmf), [('2', IVR_NUMBER)])

        customer.hangup()
        sales.wait_for('CALL_CLOSED', timeout=WAIT)

    def test_calls_one_after_the_other(self):
        """The runner takes a call after the other: a caller who presses
        nothing hears the prompt twice and the goodbye; the next one
        presses 1 and reaches the hotline agent idle the longest"""
        hotline = self.rig.phone('1002')
        customer = self.rig.phone(CUSTOMER)
        customer.dial(IVR_NUMBER)
        first = customer.wait_for('CALL_ESTABLISHED', timeout=WAIT)['id']
        # prompt + 4 s, prompt + 4 s, goodbye: the runner hangs up
        closed = customer.wait_for('CALL_CLOSED', timeout=30, id=first)
        self.assertTrue(closed)
        heard = self.closed_recording(customer, 0)
        self.assertGreater(wav_duration(heard), 8)

        customer.dial(IVR_NUMBER)
        second = customer.wait_for('CALL_ESTABLISHED', timeout=WAIT)['id']
        self.assertNotEqual(second, first)
        time.sleep(1)
        customer.send_dtmf('1')
        hotline.wait_for('CALL_INCOMING', timeout=WAIT)
        hotline.accept()
        hotline.wait_for('CALL_ESTABLISHED', timeout=WAIT)
        customer.wait_for('CALL_CLOSED', timeout=WAIT, id=second)
        hotline.hangup()
        customer.wait_for('CALL_CLOSED', timeout=WAIT)
        self.assertIn("call %s done" % second, self.log())


del RouteTestCase
