"IVR menus: the nodes, their checks, the runner's step API"
import datetime as dt
import hashlib
import hmac
import io
import json
import wave

from trytond.exceptions import UserError
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, RouteTestCase, with_transaction
from trytond.transaction import Transaction

from crm_core.savepoint import savepoint
from crm_core.tests.tools import CrmDatabaseTestCase, create_team, create_user

from . import WITH_EXTRAS
from .. import ivr_routes  # noqa: F401 (the step API's routes)
from .test_callcenter import T0, CallCenterSetup

WELCOME = "Welcome. For support press 1, for sales press 2."
SATURDAY = dt.datetime(2026, 12, 5, 10, 0, 0)


def wav_bytes(seconds=0.2):
    "A short WAV file (8 kHz mono silence)"
    buffer = io.BytesIO()
    with wave.open(buffer, 'wb') as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(8000)
        f.writeframes(b'\0\0' * int(8000 * seconds))
    return buffer.getvalue()


def create_menu(cc, root=None, **values):
    """The IVR menu 7000 of the call center set-up: a welcome menu whose
    key 1 leads to the hotline (5000), 2 to sales (6000), and nothing to
    a goodbye"""
    pool = Pool()
    IVR = pool.get('callcenter.ivr')
    if root is None:
        root = {
            'name': "Welcome",
            'kind': 'menu',
            'prompt': WELCOME,
            'timeout': 4,
            'retries': 1,
            'children': [('create', [{
                            'name': "Support",
                            'digit': '1',
                            'kind': 'queue',
                            'queue': cc.hotline.id,
                            }, {
                            'name': "Sales",
                            'digit': '2',
                            'kind': 'queue',
                            'queue': cc.sales.id,
                            'prompt': "Connecting you to sales.",
                            }, {
                            'name': "Goodbye",
                            'kind': 'hangup',
                            'prompt': "Goodbye.",
                            }])],
            }
    values.setdefault('name', "Main Menu")
    values.setdefault('number', '7000')
    values.setdefault('extension', 'ivr-7000')
    with set_company(cc.company):
        menu, = IVR.create([{'nodes': [('create', [root])], **values}])
    return IVR(menu.id)


def node(menu, name):
    Node = Pool().get('callcenter.ivr.node')
    found, = Node.search([('ivr', '=', menu.id), ('name', '=', name)])
    return found


class IVRTestCase(CrmDatabaseTestCase):
    "Test the IVR menus"
    modules = ['crm_callcenter']

    @with_transaction()
    def test_menu_key_leads_to_a_free_agent_of_the_queue(self):
        """The call starts with the welcome prompt; key 2 transfers it to
        the free agent of sales, who is ringing, and is stored as a dtmf
        event"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Event = pool.get('callcenter.event')
        cc = CallCenterSetup()
        menu = create_menu(cc)
        welcome = node(menu, "Welcome")
        with set_company(cc.company):
            answer = menu.step('c1', '+4930901820', now=T0)
            self.assertEqual(answer, {
                    'node': welcome.id,
                    'say': WELCOME,
                    'lang': 'en',
                    'play': None,
                    'collect': {'max_digits': 1, 'timeout': 4},
                    'then': None,
                    'attempt': 1,
                    'retry_after': None,
                    })
            answer = menu.step('c1', '+4930901820', welcome, '2', 1, now=T0)
            self.assertEqual(answer['node'], node(menu, "Sales").id)
            self.assertEqual(answer['say'], "Connecting you to sales.")
            self.assertEqual(answer['then'], {
                    'action': 'queue', 'target': '2001', 'queue': '6000'})
            self.assertIsNone(answer['collect'])
            self.assertEqual(cc.agent(cc.a2001).status, 'ringing')
            self.assertEqual(
                [a.status for a in Agent.browse([cc.a1001, cc.a1002])],
                ['available', 'available'])
            dtmf, = Event.search([('type', '=', 'dtmf')])
            self.assertEqual(
                (dtmf.call_id, dtmf.digits, dtmf.from_number,
                    dtmf.to_number, dtmf.timestamp),
                ('c1', '2', '+4930901820', '7000', T0))
            # The same step again (a retried request) is stored once
            menu.step('c1', '+4930901820', welcome, '2', 1, now=T0)
            self.assertEqual(Event.search_count([('type', '=', 'dtmf')]), 1)

    @with_transaction()
    def test_timeout_and_retries(self):
        """Nothing or a wrong key: the prompt again (retries times), then
        the node without key"""
        cc = CallCenterSetup()
        menu = create_menu(cc)
        welcome = node(menu, "Welcome")
        with set_company(cc.company):
            answer = menu.step('c2', None, welcome, None, 1, now=T0)
            self.assertEqual(
                (answer['node'], answer['say'], answer['attempt']),
                (welcome.id, WELCOME, 2))
            self.assertIsNotNone(answer['collect'])
            answer = menu.step('c2', None, welcome, None, 2, now=T0)
            self.assertEqual(
                (answer['node'], answer['say'], answer['then']),
                (node(menu, "Goodbye").id, "Goodbye.", {'action': 'hangup'}))

            answer = menu.step('c3', None, welcome, '9', 1, now=T0)
            self.assertEqual(answer['say'],
                "Sorry, that is not a valid choice. " + WELCOME)
            self.assertEqual((answer['node'], answer['attempt']),
                (welcome.id, 2))
            answer = menu.step('c3', None, welcome, '9', 2, now=T0)
            self.assertEqual(answer['node'], node(menu, "Goodbye").id)

    @with_transaction()
    def test_no_fallback_hangs_up(self):
        "A menu without node for no key hangs up after its retries"
        cc = CallCenterSetup()
        menu = create_menu(cc, root={
                'name': "Only", 'kind': 'menu', 'prompt': "Press 1.",
                'retries': 0, 'children': [('create', [{
                                'name': "Bye", 'digit': '1',
                                'kind': 'hangup'}])]})
        with set_company(cc.company):
            answer = menu.step('c4', None, node(menu, "Only"), None, 1,
                now=T0)
        self.assertEqual((answer['then'], answer['say']),
            ({'action': 'hangup'}, None))

    @with_transaction()
    def test_business_hours_branch(self):
        "Open: the menu; closed: the announcement of the opening hours"
        pool = Pool()
        Calendar = pool.get('crm.working_calendar')
        cc = CallCenterSetup()
        with set_company(cc.company):
            calendar, = Calendar.create([{
                        'name': "Office",
                        'timezone': 'UTC',
                        'hours': [('create', [{
                                        'weekday': str(d),
                                        'start': dt.time(8),
                                        'end': dt.time(18),
                                        } for d in range(5)])],
                        }])
        office = create_team("Office", cc.company, [cc.ann],
            calendar=calendar.id)
        menu = create_menu(cc, team=office.id, root={
                'name': "Hours",
                'kind': 'hours',
                'children': [('create', [{
                                'name': "Open",
                                'condition': 'yes',
                                'kind': 'menu',
                                'prompt': WELCOME,
                                'children': [('create', [{
                                                'name': "Sales",
                                                'digit': '2',
                                                'kind': 'queue',
                                                'queue': cc.sales.id,
                                                }])],
                                }, {
                                'name': "Closed",
                                'condition': 'no',
                                'kind': 'hangup',
                                'prompt': "We are open from 8 to 18.",
                                }])],
                })
        with set_company(cc.company):
            answer = menu.step('h1', None, now=T0)
            self.assertEqual((answer['node'], answer['say']),
                (node(menu, "Open").id, WELCOME))
            answer = menu.step('h2', None, now=SATURDAY)
            self.assertEqual(
                (answer['node'], answer['say'], answer['then']),
                (node(menu, "Closed").id, "We are open from 8 to 18.",
                    {'action': 'hangup'}))

    @with_transaction()
    def test_ticket_nodes_need_helpdesk(self):
        """Without crm_helpdesk the ticket kinds are not offered nor
        accepted, and a ticket branch left in a menu takes its "no"
        node"""
        pool = Pool()
        Node = pool.get('callcenter.ivr.node')
        cc = CallCenterSetup()
        kinds = [k for k, _ in Node.fields_get(['kind'])['kind']['selection']]
        self.assertNotIn('ticket', kinds)
        self.assertNotIn('ticket_status', kinds)
        self.assertIn('hours', kinds)
        menu = create_menu(cc, root={
                'name': "Tickets",
                'kind': 'hours',
                'children': [('create', [{
                                'name': "Known", 'condition': 'yes',
                                'kind': 'queue', 'queue': cc.hotline.id,
                                }, {
                                'name': "Unknown", 'condition': 'no',
                                'kind': 'queue', 'queue': cc.sales.id,
                                }])],
                })
        tickets = node(menu, "Tickets")
        with self.assertRaises(UserError) as context, \
                savepoint('ivr_ticket'):
            Node.write([tickets], {'kind': 'ticket'})
        self.assertIn("crm_helpdesk", context.exception.message)
        # Left by a crm_helpdesk that was deactivated
        table = Node.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update([table.kind], ['ticket'],
                where=table.id == tickets.id))
        with set_company(cc.company):
            answer = menu.step('t1', '+4930901820', now=T0)
        self.assertEqual((answer['node'], answer['then']['target']),
            (node(menu, "Unknown").id, '2001'))

    @with_transaction()
    def test_validation(self):
        "Menus that cannot work are refused with a message saying why"
        pool = Pool()
        IVR = pool.get('callcenter.ivr')
        Node = pool.get('callcenter.ivr.node')
        cc = CallCenterSetup()
        menu = create_menu(cc)
        welcome = node(menu, "Welcome")

        def refused(values, text, record=welcome, model=Node):
            with self.subTest(text=text):
                with self.assertRaises(UserError) as context, \
                        savepoint('ivr_refused'):
                    with Transaction().set_context(_skip_warnings=True):
                        if isinstance(values, dict):
                            model.write([record], values)
                        else:
                            values()
                self.assertIn(text, context.exception.message)

        refused({'children': [('create', [{'name': "Again", 'digit': '1',
                            'kind': 'hangup'}])]},
            'Under "Welcome" the key "1" leads to more than one node: '
            '"Support", "Again".')
        refused({'children': [('create', [{'name': "Also", 'kind':
                            'hangup'}])]},
            'more than one node has no key')
        refused({'queue': None}, 'sends the call to a queue: choose the '
            'queue.', record=node(menu, "Sales"))
        refused({'kind': 'agent'}, 'choose the agent',
            record=node(menu, "Goodbye"))
        refused({'kind': 'external'}, 'enter the number',
            record=node(menu, "Goodbye"))
        refused({'kind': 'external', 'number': '0049 30 12'},
            'is not valid: use a phone number',
            record=node(menu, "Goodbye"))
        refused({'children': [('delete', [
                            n.id for n in welcome.children])]},
            'The menu node "Welcome" has no option')
        refused({'prompt': None}, 'needs a prompt')
        refused({'digit': 'x'}, 'The key "x" of node "Sales" is not valid',
            record=node(menu, "Sales"))
        refused({'prompt_audio': b'not a wav file'}, 'must be a WAV file')
        # (a new node: trytond skips ids deleted earlier in the
        # transaction, even when a savepoint undid the deletion)
        refused(lambda: Node.create([{'name': "Lonely", 'kind': 'hours',
                        'ivr': menu.id}]),
            'The branch node "Lonely" needs a node under it')
        refused(lambda: create_menu(cc, number='7001',
                extension='ivr 7001'), 'is not valid: use the SIP user')
        other = create_menu(cc, number='7002', extension='ivr-7002')
        refused({'root': node(other, "Welcome").id},
            'for field "First Node"', record=menu, model=IVR)
        # What passes
        Node.write([welcome], {'prompt': None, 'prompt_audio': wav_bytes()})
        IVR.write([menu], {'root': welcome.id})

    @with_transaction()
    def test_children_take_the_menu_of_their_parent(self):
        "A node made under another one belongs to its menu"
        pool = Pool()
        Node = pool.get('callcenter.ivr.node')
        cc = CallCenterSetup()
        menu = create_menu(cc)
        sales = node(menu, "Sales")
        child, = Node.create([{'name': "Late", 'kind': 'hangup',
                    'parent': node(menu, "Welcome").id, 'digit': '3'}])
        self.assertEqual((child.ivr, sales.ivr), (menu, menu))

    @with_transaction()
    def test_queue_without_free_agent_waits_then_overflows(self):
        """Nobody free: hold (asked again after retry_after), then the
        queue's overflow: a callback request"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Queue = pool.get('callcenter.queue')
        Activity = pool.get('crm.activity')
        cc = CallCenterSetup()
        menu = create_menu(cc)
        support = node(menu, "Support")
        with set_company(cc.company):
            Agent.pause([cc.a1001, cc.a1002], "Lunch")
            Queue.write([cc.hotline], {'overflow': 'callback',
                    'overflow_seconds': 30})
            answer = menu.step('w1', '+4930901820', node(menu, "Welcome"),
                '1', 1, now=T0)
            self.assertEqual((answer['node'], answer['then'],
                    answer['retry_after'], answer['attempt']),
                (support.id, None, 5, 2))
            self.assertEqual(answer['say'],
                "All our agents are busy. Please hold the line.")
            answer = menu.step('w1', '+4930901820', support, None, 2,
                waited=10, now=T0)
            self.assertEqual((answer['say'], answer['retry_after'],
                    answer['attempt']), (None, 5, 3))
            answer = menu.step('w1', '+4930901820', support, None, 3,
                waited=31, now=T0)
            self.assertEqual(answer['then'], {'action': 'callback',
                    'target': '5000', 'queue': '5000'})
            self.assertIn("call you back", answer['say'])
            # Nobody of the queue free: the team's leader calls back
            callback, = Activity.search([('state', '=', 'planned')])
            self.assertEqual((callback.party, callback.user),
                (cc.customer, cc.sue))

    @with_transaction()
    def test_other_actions(self):
        """An agent (busy: the next node), an external number, a callback
        request, an announcement and its next node"""
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Activity = pool.get('crm.activity')
        cc = CallCenterSetup()
        menu = create_menu(cc, root={
                'name': "Choices",
                'kind': 'menu',
                'prompt': "Choose.",
                'children': [('create', [{
                                'name': "Ann", 'digit': '1', 'kind': 'agent',
                                'agent': cc.a1001.id,
                                'children': [('create', [{
                                                'name': "Ann busy",
                                                'kind': 'queue',
                                                'queue': cc.hotline.id}])],
                                }, {
                                'name': "Out", 'digit': '2',
                                'kind': 'external', 'number': '+4930555',
                                }, {
                                'name': "Later", 'digit': '3',
                                'kind': 'callback', 'queue': cc.hotline.id,
                                }, {
                                'name': "News", 'digit': '4', 'kind': 'say',
                                'prompt': "We moved.",
                                'children': [('create', [{
                                                'name': "Bye",
                                                'kind': 'hangup',
                                                'prompt': "Bye."}])],
                                }])],
                })
        choices = node(menu, "Choices")
        with set_company(cc.company):
            def press(digit, call_id):
                return menu.step(call_id, '+4930901820', choices, digit, 1,
                    now=T0)
            self.assertEqual(press('1', 'o1')['then'],
                {'action': 'agent', 'target': '1001'})
            self.assertEqual(cc.agent(cc.a1001).status, 'ringing')
            answer = press('1', 'o2')
            self.assertEqual((answer['node'], answer['then']['target']),
                (node(menu, "Ann busy").id, '1002'))
            self.assertTrue(answer['say'].startswith(
                    "The person you are calling is busy."))
            self.assertEqual(press('2', 'o3')['then'],
                {'action': 'external', 'target': '+4930555'})
            Agent.go_available([cc.a1001, cc.a1002])
            answer = press('3', 'o4')
            self.assertEqual(answer['then'],
                {'action': 'callback', 'target': '5000'})
            callback, = Activity.search([('state', '=', 'planned')])
            self.assertEqual((callback.party, callback.user),
                (cc.customer, cc.ann))
            answer = press('4', 'o5')
            self.assertEqual((answer['say'], answer['then'],
                    answer['collect']), ("We moved.", None, None))
            answer = menu.step('o5', None, node(menu, "News"), None, 1,
                now=T0)
            self.assertEqual((answer['say'], answer['then']),
                ("Bye.", {'action': 'hangup'}))

    @with_transaction()
    def test_language_and_audio(self):
        """A prompt speaks the language of its node, else of its menu, else
        of the company; a recorded prompt is played from the CRM"""
        pool = Pool()
        Lang = pool.get('ir.lang')
        Node = pool.get('callcenter.ivr.node')
        IVR = pool.get('callcenter.ivr')
        cc = CallCenterSetup()
        menu = create_menu(cc)
        welcome = node(menu, "Welcome")
        french, = Lang.search([('code', '=', 'fr')])
        german, = Lang.search([('code', '=', 'de')])
        with set_company(cc.company):
            IVR.write([menu], {'language': french.id})
            self.assertEqual(menu.step('l1', None, now=T0)['lang'], 'fr')
            Node.write([welcome], {'language': german.id,
                    'prompt_audio': wav_bytes(),
                    'prompt_audio_name': 'welcome.wav'})
            answer = menu.step('l2', None, now=T0)
        self.assertEqual(answer['lang'], 'de')
        self.assertRegex(answer['play'],
            r'^/[^/]+/callcenter/ivr/audio/%d\?v=\d+-\d+$' % welcome.id)

    @with_transaction()
    def test_route_call_to_the_runner(self):
        "A call to the menu's number goes to the runner's extension"
        from ..cti import Router
        cc = CallCenterSetup()
        create_menu(cc)
        with set_company(cc.company):
            self.assertEqual(
                Router(cc.company.id).route('r1', '+4930901820', '7000',
                    now=T0),
                {'action': 'ivr', 'target': 'ivr-7000', 'ivr': '7000'})

    @with_transaction()
    def test_access(self):
        "Supervisors set menus up; agents read nothing of them"
        pool = Pool()
        IVR = pool.get('callcenter.ivr')
        Node = pool.get('callcenter.ivr.node')
        cc = CallCenterSetup()
        menu = create_menu(cc)
        context = {'_check_access': True, 'company': cc.company.id}
        with Transaction().set_user(cc.ann.id), \
                Transaction().set_context(**context):
            for Model in [IVR, Node]:
                with self.subTest(model=Model.__name__):
                    with self.assertRaises(UserError):
                        Model.search([])
                    with self.assertRaises(UserError):
                        Model.read([menu.id], ['name'])
        with Transaction().set_user(cc.sue.id), \
                Transaction().set_context(**context):
            self.assertEqual(IVR.search([]), [menu])
            IVR.write([IVR(menu.id)], {'name': "Renamed"})
            self.assertEqual(len(Node.search([])), 4)
            IVR.create([{'name': "Second", 'number': '7003',
                        'company': cc.company.id}])


class IVRRouteTestCase(RouteTestCase):
    "Test the IVR runner's API over HTTP"
    module = 'crm_callcenter'

    @classmethod
    def setUpDatabase(cls):
        pool = Pool()
        Application = pool.get('res.user.application')
        cc = CallCenterSetup()
        menu = create_menu(cc)
        Pool().get('callcenter.ivr.node').write(
            [node(menu, "Goodbye")], {'prompt_audio': wav_bytes()})
        pbx = create_user('ivr_runner', cc.company, group=None)
        application, = Application.create([{
                    'user': pbx.id, 'application': 'crm_callcenter'}])
        other, = Application.create([{
                    'user': pbx.id, 'application': 'rest'}])
        cls.key, cls.rest_key = application.key, other.key
        cls.welcome = node(menu, "Welcome").id
        cls.goodbye = node(menu, "Goodbye").id
        cls.sales_agent = cc.a2001.id

    def post(self, data, key=None, sign=True):
        key = self.key if key is None else key
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        headers = {'Authorization': f'Bearer {key}'}
        if sign:
            headers['X-CRM-Signature'] = 'sha256=' + hmac.new(
                key.encode(), body, hashlib.sha256).hexdigest()
        return self.client().post(f'/{self.db_name}/callcenter/ivr/step',
            data=body, headers=headers, content_type='application/json')

    def step(self, **values):
        data = {'call_id': 'x1', 'ivr': '7000', 'from': '+4930901820',
            'node': None, 'digits': None, 'attempt': 1}
        data.update(values)
        return self.post(data)

    def test_step_menu_key_queue(self):
        "The welcome menu, key 2: transfer to the agent of sales"
        with Transaction().start(DB_NAME, 1):
            Agent = Pool().get('callcenter.agent')
            Agent.go_available(Agent.search([]))
            Transaction().commit()
        response = self.step()
        self.assertEqual(response.status_code, 200, response.data)
        answer = json.loads(response.data)
        self.assertEqual((answer['node'], answer['say'], answer['collect']),
            (self.welcome, WELCOME, {'max_digits': 1, 'timeout': 4}))
        response = self.step(node=self.welcome, digits='2')
        answer = json.loads(response.data)
        self.assertEqual(answer['then'],
            {'action': 'queue', 'target': '2001', 'queue': '6000'})
        with Transaction().start(DB_NAME, 1):
            pool = Pool()
            Event = pool.get('callcenter.event')
            self.assertEqual(
                pool.get('callcenter.agent')(self.sales_agent).status,
                'ringing')
            self.assertEqual(Event.search_count([
                        ('call_id', '=', 'x1'), ('type', '=', 'dtmf'),
                        ('digits', '=', '2')]), 1)

    def test_step_plays_the_recorded_prompt(self):
        "A node with a recording: its URL, which gives the WAV to the key"
        response = self.step(call_id='x2', node=self.welcome, attempt=2)
        answer = json.loads(response.data)
        self.assertEqual(answer['node'], self.goodbye)
        self.assertTrue(answer['play'].startswith('http://'))
        path = answer['play'].split('/', 3)[3]
        response = self.client().get('/' + path,
            headers={'Authorization': f'Bearer {self.key}'})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers['Content-Type'], 'audio/wav')
        self.assertEqual(response.data, wav_bytes())
        response = self.client().get('/' + path)
        self.assertEqual(response.status_code, 401)
        response = self.client().get(
            f'/{self.db_name}/callcenter/ivr/audio/{self.welcome}',
            headers={'Authorization': f'Bearer {self.key}'})
        self.assertEqual(response.status_code, 404)

    def test_refused(self):
        "No key, another application's key, no signature, bad input"
        data = {'call_id': 'x3', 'ivr': '7000'}
        for response, status, error in [
                (self.post(data, key=''), 401, 'unauthorized'),
                (self.post(data, key=self.rest_key), 401, 'unauthorized'),
                (self.post(data, sign=False), 401, 'bad_signature'),
                (self.step(ivr='7999'), 404, 'unknown_ivr'),
                (self.step(node=self.welcome + 10 ** 6), 400, 'invalid'),
                ]:
            with self.subTest(error=error, status=status):
                self.assertEqual(response.status_code, status, response.data)
                self.assertEqual(json.loads(response.data)['error'], error)
        response = self.post({'call_id': '', 'ivr': '7000', 'node': 'one',
                'digits': '2x', 'attempt': 0, 'waited': -1})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(json.loads(response.data)['fields'],
            ['call_id', 'node', 'digits', 'attempt', 'waited'])
        response = self.post(b'[1, 2]')
        self.assertEqual(json.loads(response.data)['fields'], ['body'])


del RouteTestCase


class IVRHelpdeskTestCase(CrmDatabaseTestCase):
    "Test the caller-aware nodes with crm_helpdesk activated"
    modules = WITH_EXTRAS

    @with_transaction()
    def test_open_ticket_branch_and_status(self):
        """A caller with an open ticket hears its status, then the menu;
        other callers go the "no" way"""
        pool = Pool()
        Node = pool.get('callcenter.ivr.node')
        Ticket = pool.get('helpdesk.ticket')
        Stage = pool.get('helpdesk.stage')
        cc = CallCenterSetup()
        kinds = [k for k, _ in Node.fields_get(['kind'])['kind']['selection']]
        self.assertIn('ticket', kinds)
        self.assertIn('ticket_status', kinds)
        menu = create_menu(cc, root={
                'name': "Known?",
                'kind': 'ticket',
                'children': [('create', [{
                                'name': "Status",
                                'condition': 'yes',
                                'kind': 'ticket_status',
                                'children': [('create', [{
                                                'name': "Support",
                                                'kind': 'queue',
                                                'queue': cc.hotline.id,
                                                }])],
                                }, {
                                'name': "New caller",
                                'condition': 'no',
                                'kind': 'hangup',
                                'prompt': "Welcome, new caller.",
                                }])],
                })
        status = node(menu, "Status")
        with set_company(cc.company):
            ticket, = Ticket.create([{
                        'subject': "Broken",
                        'party': cc.customer.id,
                        'opened': T0 - dt.timedelta(hours=1),
                        }])
            older, = Ticket.create([{
                        'subject': "Older",
                        'party': cc.customer.id,
                        'opened': T0 - dt.timedelta(days=3),
                        }])
            ticket = Ticket(ticket.id)
            answer = menu.step('k1', '+4930901820', now=T0)
            self.assertEqual((answer['node'], answer['say'], answer['then']),
                (status.id, "Your ticket %s is %s." % (
                        ticket.number, ticket.stage.name), None))
            answer = menu.step('k1', '+4930901820', status, None, 1, now=T0)
            self.assertEqual(answer['then']['action'], 'queue')

            Node.write([status], {'prompt': "Ticket %(number)s: %(stage)s."})
            answer = menu.step('k2', '+4930901820', now=T0)
            self.assertEqual(answer['say'], "Ticket %s: %s." % (
                    ticket.number, ticket.stage.name))

            # Solved tickets are not open; an unknown caller has none
            solved, = Stage.search([('kind', '=', 'solved')], limit=1)
            Ticket.write([ticket, Ticket(older.id)], {'stage': solved.id})
            for caller in ['+4930901820', '+4930999999', None]:
                with self.subTest(caller=caller):
                    answer = menu.step('k3', caller, now=T0)
                    self.assertEqual(answer['say'], "Welcome, new caller.")
