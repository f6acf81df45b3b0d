"""Real calls end to end: baresip phones call through Kamailio, which asks
the CRM (served over real HTTP) where a call goes and posts the call's
events to it; the test then reads what the CRM made of them.

The CRM is served by rig/crm_http.py: needs PostgreSQL (the HTTP server's
threads open their own connections to the committed test database: an
SQLite :memory: database is one per connection) and the telephony packages
(scripts/telephony.sh)."""
import datetime as dt
import time
import unittest

from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import RouteTestCase

from crm_core.tests.tools import create_user

from .rig.crm_http import CrmHttpTestMixin, skip_reason
from .test_callcenter import CallCenterSetup

CUSTOMER = '+4930901820'        # the SIP user of the customer's phone
QUEUE = '5000'
WAIT = 5                        # seconds for a phone event or a DB state

SKIP = skip_reason('kamailio', 'baresip')


@unittest.skipIf(SKIP, SKIP)
class SipTestCase(CrmHttpTestMixin, RouteTestCase):
    "Calls through a real SIP proxy and phones to the CRM over HTTP"
    module = 'crm_callcenter'
    TEST_TIMEOUT = 30           # seconds: a test that runs longer fails

    @classmethod
    def setUpDatabase(cls):
        "Committed: the CRM server's threads read it"
        pool = Pool()
        UserApplication = pool.get('res.user.application')
        cc = CallCenterSetup(strategy='longest_idle')
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
            'customer': cc.customer.id,
            'a1001': cc.a1001.id,
            'a1002': cc.a1002.id,
            'ann': cc.ann.id,
            'ben': cc.ben.id,
            'hotline': cc.hotline.id,
            }

    def setUp(self):
        super().setUp()
        self.reset_agents()
        self.url = self.serve()

    def reset_agents(self):
        """Agents 1001 and 1002 available, 1002 idle for longer; whatever
        an earlier test left (wrap-up, ringing) is gone"""
        now = dt.datetime.now()
        with self.transaction():
            Agent = Pool().get('callcenter.agent')
            a1001 = Agent(self.ids['a1001'])
            a1002 = Agent(self.ids['a1002'])
            Agent.set_status([a1001, a1002], 'available', call=False)
            Agent.write([a1001], {
                    'last_call_end': now - dt.timedelta(minutes=1),
                    'wrap_up_until': None, 'current_call': None})
            Agent.write([a1002], {
                    'last_call_end': now - dt.timedelta(hours=1),
                    'wrap_up_until': None, 'current_call': None})

    def rig(self, **kwargs):
        "Kamailio asking and telling this CRM, stopped when the test ends"
        return self.start_rig(self.url, **kwargs)

    def start_phones(self, rig):
        return (rig.phone('1001'), rig.phone('1002'), rig.phone(CUSTOMER))

    def wait_call(self, call_id, states, timeout=WAIT):
        "The call's values once its state is one of states"
        def values(pool):
            Call = pool.get('callcenter.call')
            calls = Call.search([('call_id', '=', call_id)])
            if not calls:
                return None
            call, = calls
            return {
                'id': call.id,
                'state': call.state,
                'direction': call.direction,
                'party': call.party.id if call.party else None,
                'agent': call.agent.id if call.agent else None,
                'queue': call.queue.id if call.queue else None,
                'talk_seconds': call.talk_seconds,
                'wait_seconds': call.wait_seconds,
                'callback': call.callback.id if call.callback else None,
                }
        deadline = time.monotonic() + timeout
        while True:
            call = self.read(values)
            if call and call['state'] in states:
                return call
            if time.monotonic() > deadline:
                self.fail('call %s: %s, not %s, after %ss' % (
                        call_id, call and call['state'], states, timeout))
            time.sleep(0.1)

    def history(self, call):
        "[(type, state, party)] of the call's history entries"
        def read(pool):
            Activity = pool.get('crm.activity')
            return [(a.type, a.state, a.party.id if a.party else None)
                for a in Activity.search([
                        ('origin', '=', 'callcenter.call,%s' % call['id'])])]
        return self.read(read)

    def agent_status(self, name):
        return self.read(lambda pool: pool.get('callcenter.agent')(
                self.ids[name]).status)

    def answered_call(self, talk=2):
        """The customer calls the queue, 1002 answers, they talk for talk
        seconds, the customer hangs up: the call's values once ended"""
        rig = self.rig()
        p1001, p1002, customer = self.start_phones(rig)
        customer.dial(QUEUE)
        incoming = p1002.wait_for('CALL_INCOMING', timeout=WAIT)
        p1002.accept()
        customer.wait_for('CALL_ESTABLISHED', timeout=WAIT)
        p1002.wait_for('CALL_ESTABLISHED', timeout=WAIT)
        time.sleep(talk)
        customer.hangup()
        p1002.wait_for('CALL_CLOSED', timeout=WAIT)
        call = self.wait_call(incoming['id'], {'ended'})
        self.assertFalse([e for e in p1001.events
                if e.get('type') == 'CALL_INCOMING'], "1001 rang too")
        return call

    def test_answered_call_goes_to_the_history(self):
        """The queue rings the agent idle the longest; the answered call
        ends on the customer's history with its times"""
        call = self.answered_call(talk=2)
        self.assertEqual(
            (call['direction'], call['party'], call['agent']),
            ('inbound', self.ids['customer'], self.ids['a1002']))
        self.assertAlmostEqual(call['talk_seconds'], 2, delta=1)
        self.assertLessEqual(call['wait_seconds'], 2)
        self.assertEqual(self.history(call),
            [('call', 'done', self.ids['customer'])])
        self.assertIsNone(call['callback'])
        self.assertEqual(self.agent_status('a1001'), 'available')
        # Not ringing nor on call any more
        self.assertIn(self.agent_status('a1002'), {'wrap_up', 'available'})

    def test_answered_call_keeps_its_queue(self):
        """The call answered from the queue is the queue's, and its agent
        goes to the queue's wrap-up"""
        call = self.answered_call(talk=1)
        self.assertEqual(call['agent'], self.ids['a1002'])
        self.assertEqual(call['queue'], self.ids['hotline'])
        self.assertEqual(self.agent_status('a1002'), 'wrap_up')

    def test_ringing_call_pops_up(self):
        """While the agent's phone rings, the CRM shows the call ringing
        and notifies the agent's user (screen pop)"""
        rig = self.rig()
        _, p1002, customer = self.start_phones(rig)
        customer.dial(QUEUE)
        incoming = p1002.wait_for('CALL_INCOMING', timeout=WAIT)
        customer.wait_for('CALL_RINGING', timeout=WAIT)
        self.assertEqual(self.agent_status('a1002'), 'ringing')
        # Kamailio relays the 180 once the CRM answered the ringing
        # event, and its task ran before that answer
        call = self.wait_call(incoming['id'], {'ringing'}, timeout=2)
        self.assertEqual(call['agent'], self.ids['a1002'])

        def pops(pool):
            return pool.get('res.notification').search_count([
                    ('user', '=', self.ids['ben']),
                    ('model', '=', 'callcenter.call'),
                    ('records', '=', '[%s]' % call['id']),
                    ])
        self.assertEqual(self.read(pops), 1)

    def test_cancelled_call_asks_for_a_callback(self):
        """The customer hangs up while the agent's phone rings: a missed
        call on the history and a callback planned for an agent"""
        rig = self.rig()
        _, p1002, customer = self.start_phones(rig)
        customer.dial(QUEUE)
        incoming = p1002.wait_for('CALL_INCOMING', timeout=WAIT)
        customer.wait_for('CALL_RINGING', timeout=WAIT)
        time.sleep(0.5)
        customer.hangup()
        p1002.wait_for('CALL_CLOSED', timeout=WAIT)
        self.assert_missed(incoming['id'])

    def test_unanswered_call_asks_for_a_callback(self):
        "Nobody answers: the ring time ends, a callback is planned"
        rig = self.rig(ring_timeout=2)
        _, p1002, customer = self.start_phones(rig)
        customer.dial(QUEUE)
        incoming = p1002.wait_for('CALL_INCOMING', timeout=WAIT)
        closed = customer.wait_for('CALL_CLOSED', timeout=WAIT)
        self.assertIn('408', closed.get('param', ''))
        p1002.wait_for('CALL_CLOSED', timeout=WAIT)
        self.assert_missed(incoming['id'])

    def test_agent_phone_offline(self):
        """The agent chosen is available in the CRM but its phone is not
        registered: the call is missed, a callback planned, and the agent
        is not left ringing"""
        rig = self.rig()
        p1001 = rig.phone('1001')
        customer = rig.phone(CUSTOMER)
        customer.dial(QUEUE)
        closed = customer.wait_for('CALL_CLOSED', timeout=WAIT)
        self.assertIn('480', closed.get('param', ''))
        call = self.wait_call(closed['id'], {'missed'})
        self.assertEqual(call['party'], self.ids['customer'])
        self.assertFalse([e for e in p1001.events
                if e.get('type') == 'CALL_INCOMING'], "1001 rang")
        self.assertNotEqual(self.agent_status('a1002'), 'ringing')
        self.assertIsNotNone(call['callback'])

    def assert_missed(self, call_id):
        call = self.wait_call(call_id, {'missed', 'abandoned'})
        self.assertEqual((call['party'], call['agent']),
            (self.ids['customer'], self.ids['a1002']))
        self.assertIsNotNone(call['callback'])

        def callback(pool):
            activity = pool.get('crm.activity')(call['callback'])
            return (activity.type, activity.state,
                activity.party.id if activity.party else None,
                activity.user.id if activity.user else None)
        type_, state, party, user = self.read(callback)
        self.assertEqual((type_, state, party),
            ('call', 'planned', self.ids['customer']))
        self.assertIn(user, {self.ids['ann'], self.ids['ben']})
        self.assertEqual(self.history(call),
            [('call', 'done', self.ids['customer'])])
        # Free again for the next call
        self.assertEqual(self.agent_status('a1002'), 'available')
