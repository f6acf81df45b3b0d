"The RPC methods of the agent console and the wallboard (console.py)"
import datetime as dt
import time
from contextlib import ExitStack
from urllib.parse import quote

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import RouteTestCase, with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import (
    CrmDatabaseTestCase, count_queries, create_party)

from .test_callcenter import CallCenterSetup, event

# The most queries console_state may run while a call rings, the caches of
# the process warm (measured: 13 with the caller card)
STATE_QUERIES = 20


def as_user(cc, user, **context):
    "Act as the user through JSON-RPC: access rights and rules apply"
    stack = ExitStack()
    stack.enter_context(Transaction().set_user(user.id))
    stack.enter_context(Transaction().set_context(
            _check_access=True, company=cc.company.id, **context))
    return stack


def future(**delta):
    "An ISO 8601 UTC moment from now, as the page sends it"
    return (dt.datetime.now(dt.timezone.utc)
        + dt.timedelta(**delta)).isoformat()


class ConsoleTestCase(CrmDatabaseTestCase):
    "Test the agent console and the wallboard"
    modules = ['crm_callcenter']

    def disposition(self, code='solved'):
        Disposition = Pool().get('callcenter.disposition')
        disposition, = Disposition.create([{
                    'name': code.title(), 'code': code}])
        return disposition

    @with_transaction()
    def test_console_state_of_a_call(self):
        """The state shows the ringing call with the caller card, then the
        call on the line, then the wrap-up form"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Lead = pool.get('crm.lead')
        Activity = pool.get('crm.activity')
        cc = CallCenterSetup(wrap_up_required=True)
        disposition = self.disposition()
        with set_company(cc.company):
            lead, = Lead.create([{
                        'name': "Yearly plan", 'party': cc.customer.id,
                        'team': cc.team.id}])
            Lead.create([{'name': "Old deal", 'party': cc.customer.id,
                        'state': 'lost'}])
            Activity.create([{
                        'type': 'meeting', 'subject': "Visit %s" % i,
                        'party': cc.customer.id, 'user': cc.ann.id,
                        'state': 'done',
                        'start': dt.datetime(2026, 11, i + 1, 10)}
                    for i in range(7)])
            callback, = Activity.create([{
                        'type': 'call', 'subject': "Call back Zed",
                        'user': cc.ben.id, 'state': 'planned',
                        'start': dt.datetime.now() - dt.timedelta(hours=1)}])
            cc.post(event('ringing', at=0, extension='1002'))
        with as_user(cc, cc.ben):
            Agent.console_state()
            # As in a new request: the caches of the process are warm,
            # the records are read again
            Transaction().cache.clear()
            with count_queries() as queries:
                state = Agent.console_state()
            self.assertLessEqual(len(queries), STATE_QUERIES)
        self.assertEqual(state['agent']['status'], 'ringing')
        self.assertEqual(state['agent']['extension'], '1002')
        self.assertEqual(state['statuses']['on_call'], "On Call")
        call = state['call']
        self.assertEqual((call['state'], call['number'], call['queue'][
                    'number']), ('ringing', '+4930901820', '5000'))
        self.assertEqual(call['created'], '2026-12-02T09:00:00.000Z')
        caller = state['caller']
        self.assertEqual((caller['id'], caller['name']),
            (cc.customer.id, "Customer Ltd"))
        self.assertEqual(caller['lifecycle_status'], 'prospect')
        self.assertIsInstance(caller['quality_score'], int)
        self.assertEqual([l['name'] for l in caller['leads']],
            ["Yearly plan"])
        self.assertIsNone(caller['tickets'])  # no crm_helpdesk
        self.assertEqual([a['subject'] for a in caller['activities']],
            ["Visit 6", "Visit 5", "Visit 4", "Visit 3", "Visit 2"])
        self.assertEqual(state['matches'], [])
        self.assertIsNone(state['wrap_up'])
        self.assertEqual([(c['id'], c['overdue'])
                for c in state['callbacks']], [(callback.id, True)])

        with set_company(cc.company):
            cc.post(event('answered', at=8, extension='1002'))
        with as_user(cc, cc.ben):
            state = Agent.console_state()
        self.assertEqual(state['agent']['status'], 'on_call')
        self.assertEqual(state['call']['answered'],
            '2026-12-02T09:00:08.000Z')

        with set_company(cc.company):
            cc.post(event('ended', at=68))
        with as_user(cc, cc.ben):
            state = Agent.console_state()
        self.assertEqual(state['agent']['status'], 'wrap_up')
        self.assertEqual((state['call']['state'],
                state['call']['talk_seconds']), ('ended', 60))
        wrap_up = state['wrap_up']
        self.assertEqual((wrap_up['call'], wrap_up['required']),
            (call['id'], True))
        self.assertEqual([d['id'] for d in wrap_up['dispositions']],
            [disposition.id])
        # The queue requires the form before the next call
        with as_user(cc, cc.ben), self.assertRaises(UserError) as error:
            Agent.set_my_status('available')
        self.assertIn('wrap-up', error.exception.message)

        with as_user(cc, cc.ben):
            state = Agent.wrap_up(call['id'], disposition.id,
                "  Wants the yearly plan ", future(days=1))
        self.assertEqual(state['agent']['status'], 'available')
        self.assertIsNone(state['wrap_up'])
        # Wrapped up: no call to show until the next one
        self.assertIsNone(state['call'])
        the_call = cc.call()
        self.assertTrue(the_call.wrapped_up)
        self.assertEqual((the_call.disposition, the_call.notes),
            (disposition, "Wants the yearly plan"))
        follow_up, = Activity.search([
                ('origin', '=', str(the_call)), ('state', '=', 'planned')])
        self.assertEqual((follow_up.type, follow_up.user, follow_up.party),
            ('call', cc.ben, cc.customer))
        self.assertEqual(follow_up.subject, "Follow up: Customer Ltd")
        self.assertGreater(follow_up.start, dt.datetime.now())

    @with_transaction()
    def test_wrap_up_rules(self):
        "The wrap-up comes once, after the end, with a disposition"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        cc = CallCenterSetup(wrap_up_seconds=30)
        disposition = self.disposition()
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1002'),
                event('answered', at=5, extension='1002'))
        call = cc.call()
        with as_user(cc, cc.ben):
            # Not ended yet; the status follows the call meanwhile
            with self.assertRaises(UserError):
                Agent.wrap_up(call.id, disposition.id, "x", None)
            with self.assertRaises(UserError):
                Agent.set_my_status('paused', "Coffee")
            # Statuses the calls set are not chosen
            with self.assertRaises(UserError):
                Agent.set_my_status('on_call')
        with set_company(cc.company):
            cc.post(event('ended', at=65))
        with as_user(cc, cc.ben):
            state = Agent.console_state()
            self.assertFalse(state['wrap_up']['required'])
            for disposition_id in [None, 0, 'sold', -3]:
                with self.assertRaises(UserError):
                    Agent.wrap_up(call.id, disposition_id, "x", None)
            for follow_up in ['tomorrow', future(hours=-2), 42]:
                with self.assertRaises(UserError):
                    Agent.wrap_up(call.id, disposition.id, "x", follow_up)
            # Not required by this queue: available at once, the form
            # stays to fill in
            state = Agent.set_my_status('available')
            self.assertEqual(state['agent']['status'], 'available')
            self.assertEqual(state['wrap_up']['call'], call.id)
            with self.assertRaises(UserError):
                Agent.set_my_status('paused', "  ")
            state = Agent.set_my_status('paused', " Lunch ")
            self.assertEqual((state['agent']['status'],
                    state['agent']['pause_reason']), ('paused', "Lunch"))
            state = Agent.wrap_up(call.id, disposition.id, None, None)
            # Paused stays paused
            self.assertEqual(state['agent']['status'], 'paused')
            self.assertIsNone(state['wrap_up'])
            self.assertIsNone(state['call'])
            with self.assertRaises(UserError):
                Agent.wrap_up(call.id, disposition.id, None, None)
            state = Agent.set_my_status('offline')
            self.assertEqual((state['agent']['status'],
                    state['agent']['pause_reason']), ('offline', None))
        self.assertTrue(cc.call().wrapped_up)
        self.assertEqual(cc.call().notes, None)

    @with_transaction()
    def test_another_agents_call_refused(self):
        "The actions refuse the call of another agent and a non-agent"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Call = pool.get('callcenter.call')
        cc = CallCenterSetup()
        disposition = self.disposition()
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1001'),
                event('answered', at=5, extension='1001'),
                event('ended', at=65))
        call = cc.call()
        with as_user(cc, cc.ben):
            # ben reads the calls of his queue, but cannot act on ann's
            self.assertEqual(Call.search([]), [call])
            for action, args in [
                    (Agent.wrap_up, (call.id, disposition.id, "x", None)),
                    (Agent.choose_party, (call.id, cc.customer.id)),
                    (Agent.create_contact, (call.id,)),
                    (Agent.create_lead, (call.id,)),
                    (Agent.create_ticket, (call.id,)),
                    ]:
                with self.assertRaises(AccessError) as error:
                    action(*args)
                self.assertIn('not one of your calls',
                    error.exception.message)
            with self.assertRaises(AccessError):
                Agent.wrap_up(10 ** 9, disposition.id, "x", None)
            with self.assertRaises(UserError):
                Agent.wrap_up('1', disposition.id, "x", None)
            state = Agent.console_state()
            self.assertIsNone(state['call'])
        self.assertFalse(cc.call().wrapped_up)
        # sue, a supervisor, is no agent
        with as_user(cc, cc.sue):
            state = Agent.console_state()
            self.assertIsNone(state['agent'])
            with self.assertRaises(AccessError) as error:
                Agent.set_my_status('available')
            self.assertIn('not an agent', error.exception.message)

    @with_transaction()
    def test_caller_chosen_or_created(self):
        """Several parties with the number: the agent chooses; none: the
        agent creates the contact"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        cc = CallCenterSetup()
        twin = create_party("Twin GmbH", phones=['+4930901820'])
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1002'),
                event('missed', at=20, reason='abandoned'),
                event('ringing', call_id='c2', at=30, extension='1002',
                    **{'from': '+4930555000'}))
        first, second = cc.call('c1'), cc.call('c2')
        with set_company(cc.company):
            # ben took c2; c1, which he missed, is his too
            self.assertEqual(first.agent, cc.a1002)
        with as_user(cc, cc.ben):
            state = Agent.console_state()
            self.assertEqual(state['call']['id'], second.id)
            self.assertIsNone(state['caller'])
            self.assertEqual(state['matches'], [])
            state = Agent.create_contact(second.id)
            self.assertEqual(state['caller']['name'], '+4930555000')
            self.assertEqual(cc.call('c2').party.name, '+4930555000')

            state = Agent.choose_party(first.id, twin.id)
        first = cc.call('c1')
        self.assertEqual(first.party, twin)
        # What the missed call left follows the choice
        self.assertEqual(first.activity.party, twin)
        self.assertEqual(first.callback.party, twin)
        with as_user(cc, cc.ben), self.assertRaises(UserError):
            Agent.choose_party(first.id, 10 ** 9)

    @with_transaction()
    def test_matches_offered(self):
        "A ringing call from a shared number offers the parties"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        cc = CallCenterSetup()
        twin = create_party("Twin GmbH", phones=['+4930901820'])
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1002'))
        with as_user(cc, cc.ben):
            state = Agent.console_state()
            self.assertIsNone(state['caller'])
            self.assertEqual(sorted(m['name'] for m in state['matches']),
                ["Customer Ltd", "Twin GmbH"])
            state = Agent.choose_party(state['call']['id'], twin.id)
            self.assertEqual(state['caller']['name'], "Twin GmbH")
            self.assertEqual(state['matches'], [])

    @with_transaction()
    def test_create_lead(self):
        "A lead of the caller, which the call is about"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Lead = pool.get('crm.lead')
        cc = CallCenterSetup()
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1002'),
                event('answered', at=5, extension='1002'))
        call = cc.call()
        with as_user(cc, cc.ben):
            result = Agent.create_lead(call.id)
            lead = Lead(result['id'])
            self.assertEqual((lead.party, lead.phone, lead.type),
                (cc.customer, '+4930901820', 'lead'))
            self.assertEqual(lead.name, "Call from Customer Ltd")
            with self.assertRaises(UserError):
                # no crm_helpdesk in this database
                Agent.create_ticket(call.id)
        self.assertEqual(cc.call().lead, lead)

    @with_transaction()
    def test_wallboard_data(self):
        "The wallboard's figures, for supervisors only"
        pool = Pool()
        Queue = pool.get('callcenter.queue')
        cc = CallCenterSetup()
        now = dt.datetime.now()
        with set_company(cc.company):
            cc.post(
                event('ringing', call_id='a', extension='1001',
                    timestamp=now.isoformat() + 'Z'),
                event('ringing', call_id='w',
                    timestamp=(now - dt.timedelta(seconds=40)).isoformat()
                    + 'Z'))
        with as_user(cc, cc.sue):
            data = Queue.wallboard_data()
        queues = {q['number']: q for q in data['queues']}
        self.assertEqual(set(queues), {'5000', '6000'})
        hotline = queues['5000']
        self.assertEqual(hotline['waiting'], 2)
        self.assertGreaterEqual(hotline['longest_wait'], 39)
        self.assertEqual((hotline['service_level_target'],
                hotline['service_level_seconds']), (80, 20))
        self.assertEqual(hotline['agents'], {'ringing': 1, 'available': 1})
        self.assertEqual(queues['6000']['agents'], {'available': 1})
        self.assertEqual(data['totals'], {'ringing': 1, 'available': 2})
        self.assertEqual(
            {a['extension']: a['queues'] for a in data['agents']},
            {'1001': [cc.hotline.id], '1002': [cc.hotline.id],
                '2001': [cc.sales.id]})
        self.assertEqual(data['statuses']['wrap_up'], "Wrap-Up")
        with as_user(cc, cc.ben), self.assertRaises(AccessError) as error:
            Queue.wallboard_data()
        self.assertIn('supervisors', error.exception.message)

    @with_transaction()
    def test_console_state_cost(self):
        "The state of a ringing call is cheap enough to ask every second"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        cc = CallCenterSetup()
        with set_company(cc.company):
            cc.post(event('ringing', at=0, extension='1002'))
        with as_user(cc, cc.ben):
            Agent.console_state()
            took = 0
            for _ in range(20):
                Transaction().cache.clear()
                start = time.perf_counter()
                Agent.console_state()
                took += (time.perf_counter() - start) / 20
        # A generous bound (a busy CI machine): measured about 5 ms
        self.assertLess(took, 0.25)

    @with_transaction()
    def test_menu_url_actions(self):
        "The menus open the pages of the current database"
        pool = Pool()
        Action = pool.get('ir.action')
        ModelData = pool.get('ir.model.data')
        database = quote(Transaction().database.name, safe='')
        for xml_id, page in [
                ('url_console', 'console'), ('url_wallboard', 'wallboard')]:
            action_id = ModelData.get_id('crm_callcenter', xml_id)
            values, = Action.get_action_values(
                'ir.action.url', [Action.get_action_id(action_id)])
            self.assertEqual(values['url'],
                f'/{database}/callcenter/{page}')


class ConsolePagesTestCase(RouteTestCase):
    "Test the routes of the console and wallboard pages"
    module = 'crm_callcenter'

    def test_pages(self):
        "The pages and their files are served"
        client = self.client()
        for path, mimetype, text in [
                ('console', 'text/html', b'console.js'),
                ('wallboard', 'text/html', b'wallboard.js'),
                ('static/console.js', 'javascript', b'console_state'),
                ('static/wallboard.js', 'javascript', b'wallboard_data'),
                ('static/callcenter.css', 'text/css', b'.console'),
                ]:
            with self.subTest(path=path):
                response = client.get(
                    f'/{self.db_name}/callcenter/{path}')
                self.assertEqual(response.status_code, 200)
                self.assertIn(mimetype, response.mimetype)
                self.assertIn(text, response.data)

    def test_static_refused(self):
        "Nothing outside web/callcenter/ is served"
        client = self.client()
        for path in [
                '../../etc/passwd',
                '../crm/rpc.js',
                '../package.json',
                '%2e%2e/package.json',
                '/etc/passwd',
                'missing.js',
                ]:
            with self.subTest(path=path):
                response = client.get(
                    f'/{self.db_name}/callcenter/static/{path}')
                self.assertIn(response.status_code, {404, 308})
                self.assertNotIn(b'root:', response.data)
                self.assertNotIn(b'"dependencies"', response.data)


del CrmDatabaseTestCase, RouteTestCase
