"The telephony's API over HTTP: events, routing, Generic CTI"
import hashlib
import hmac
import json
import time

from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, RouteTestCase
from trytond.transaction import Transaction

from crm_core.tests.tools import create_party, create_user


class CallCenterRouteTestCase(RouteTestCase):
    "Test the CTI event and routing API"
    module = 'crm_callcenter'

    @classmethod
    def setUpDatabase(cls):
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Queue = pool.get('callcenter.queue')
        Application = pool.get('res.user.application')
        company = create_company()
        pbx = create_user('pbx', company, group=None)
        ann = create_user('ann_cc', company)
        with set_company(company):
            agent, = Agent.create([{'user': ann.id, 'extension': '1001'}])
            Agent.go_available([agent])
            Queue.create([{'name': "Hotline", 'number': '5000',
                        'members': [('add', [agent.id])]}])
        create_party("Caller Ltd", phones=['+4930901820'])
        # A user without company: its key is refused too
        homeless, = pool.get('res.user').create([{
                    'name': "Homeless", 'login': 'homeless_pbx',
                    'companies': [], 'company': None}])
        application, other, cancelled, no_company = Application.create([
                {'user': pbx.id, 'application': 'crm_callcenter'},
                {'user': pbx.id, 'application': 'rest'},
                {'user': pbx.id, 'application': 'crm_callcenter'},
                {'user': homeless.id, 'application': 'crm_callcenter'},
                ])
        Application.cancel([cancelled])
        cls.key, cls.rest_key = application.key, other.key
        cls.cancelled_key, cls.no_company_key = (
            cancelled.key, no_company.key)

    def post(self, path, data, key=None, sign=True, signature=None,
            content_type='application/json'):
        key = self.key if key is None else key
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        headers = {'Authorization': f'Bearer {key}'}
        if sign:
            headers['X-CRM-Signature'] = signature or 'sha256=' + hmac.new(
                key.encode(), body, hashlib.sha256).hexdigest()
        return self.client().post(f'/{self.db_name}/callcenter/{path}',
            data=body, headers=headers, content_type=content_type)

    def count(self, model, domain=None):
        with Transaction().start(DB_NAME, 1):
            return Pool().get(model).search_count(domain or [])

    def event(self, type_, call_id, **values):
        return {'id': f'{call_id}:{type_}', 'type': type_,
            'call_id': call_id, 'from': '+4930901820', 'to': '5000',
            'queue': '5000', 'extension': '1001',
            'timestamp': time.time(), **values}

    def test_events_stored_once_and_made_calls(self):
        "Events are stored once each and make their call"
        response = self.post('events', self.event('ringing', 'h1'))
        self.assertEqual(response.status_code, 202)
        self.assertEqual(json.loads(response.data),
            {'received': 1, 'stored': 1, 'duplicates': 0})
        response = self.post('events', {'events': [
                    self.event('ringing', 'h1'),
                    self.event('answered', 'h1'),
                    self.event('ended', 'h1')]})
        self.assertEqual(json.loads(response.data),
            {'received': 3, 'stored': 2, 'duplicates': 1})
        response = self.post('events', [self.event('ended', 'h1')])
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.count('callcenter.event',
                [('call_id', '=', 'h1')]), 3)
        # The queue task ran after the commit
        with Transaction().start(DB_NAME, 1):
            call, = Pool().get('callcenter.call').search(
                [('call_id', '=', 'h1')])
            self.assertEqual((call.state, call.party.name,
                    call.agent.extension), ('ended', "Caller Ltd", '1001'))

    def test_refused_without_key_or_signature(self):
        """No key, another application's key, a cancelled key, a wrong
        signature: 401; a key of a user without company: 403"""
        events = self.count('callcenter.event')
        for response, error in [
                (self.post('events', self.event('ringing', 'x'), key=''),
                    'unauthorized'),
                (self.post('events', self.event('ringing', 'x'),
                        key=self.rest_key), 'unauthorized'),
                (self.post('events', self.event('ringing', 'x'),
                        key=self.cancelled_key), 'unauthorized'),
                (self.post('events', self.event('ringing', 'x'),
                        signature='sha256=' + '0' * 64), 'bad_signature'),
                (self.post('events', self.event('ringing', 'x'),
                        sign=False), 'bad_signature'),
                ]:
            with self.subTest(error=error):
                self.assertEqual(response.status_code, 401)
                self.assertEqual(json.loads(response.data)['error'], error)
        response = self.post('events', self.event('ringing', 'x'),
            key=self.no_company_key)
        self.assertEqual((response.status_code,
                json.loads(response.data)['error']), (403, 'no_company'))
        self.assertEqual(self.count('callcenter.event'), events)

    def test_invalid_input_names_fields_and_stores_nothing(self):
        "Bad JSON, bad fields: 400 with the fields, nothing stored"
        events = self.count('callcenter.event')
        response = self.post('events', b'{not json')
        self.assertEqual(response.status_code, 400)
        self.assertEqual(json.loads(response.data)['fields'], ['body'])
        response = self.post('events', b'[]', content_type='text/plain')
        self.assertEqual(json.loads(response.data)['fields'],
            ['Content-Type'])
        response = self.post('events', [self.event('ringing', 'ok'),
                self.event('rang', 'bad', timestamp='soon')])
        self.assertEqual(response.status_code, 400)
        self.assertEqual(json.loads(response.data)['fields'],
            ['events[1].timestamp', 'events[1].type'])
        self.assertEqual(self.count('callcenter.event'), events)
        response = self.post('events', [self.event('ringing', str(i))
                for i in range(1001)])
        self.assertEqual(json.loads(response.data)['fields'], ['events'])

    def test_route(self):
        "The routing API answers the agent to ring"
        with Transaction().start(DB_NAME, 1):
            # Other tests' calls leave the agent in wrap-up
            Agent = Pool().get('callcenter.agent')
            Agent.go_available(Agent.search([]))
            Transaction().commit()
        response = self.post('route', {'call_id': 'r1',
                'from': '+4930901820', 'to': '5000'})
        self.assertEqual(response.status_code, 200)
        decision = json.loads(response.data)
        self.assertEqual((decision['action'], decision['target']),
            ('agent', '1001'))
        response = self.post('route', {'call_id': 'r2', 'to': ''})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(json.loads(response.data)['fields'], ['to'])

    def test_generic_cti(self):
        "Generic CTI form posts: newCall, answer, hangup"
        for form in [
                {'event': 'newCall', 'callId': 'g1', 'from': '+4930901820',
                    'to': '5000', 'direction': 'in', 'user[]': '1001'},
                {'event': 'answer', 'callId': 'g1',
                    'answeringNumber': '1001'},
                {'event': 'hangup', 'callId': 'g1',
                    'cause': 'normalClearing'},
                ]:
            response = self.client().post(
                f'/{self.db_name}/callcenter/generic?key={self.key}',
                data=form)
            self.assertEqual(response.status_code, 202, response.data)
        response = self.client().post(
            f'/{self.db_name}/callcenter/generic?key={self.key}',
            data={'event': 'ringing', 'callId': 'g2'})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(json.loads(response.data)['fields'], ['event'])
        with Transaction().start(DB_NAME, 1):
            call, = Pool().get('callcenter.call').search(
                [('call_id', '=', 'g1')])
            self.assertEqual((call.state, call.agent.extension),
                ('ended', '1001'))


del RouteTestCase
