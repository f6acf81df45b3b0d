"Access to leads through JSON-RPC, as the web client and integrations use it"
import base64
import json

from trytond.pool import Pool
from trytond.tests.test_tryton import RouteTestCase
from trytond.transaction import Transaction

from .tools import CrmSetup


class CrmRpcTestCase(RouteTestCase):
    "Test CRM access through RPC"
    module = 'crm_core'

    @classmethod
    def setUpDatabase(cls):
        pool = Pool()
        Lead = pool.get('crm.lead')
        Session = pool.get('ir.session')
        crm = CrmSetup()
        with crm.company_context():
            cls.north_lead, cls.south_lead = [l.id for l in Lead.create([{
                            'name': "North deal", 'team': crm.north.id,
                            'owner': crm.bob.id,
                            }, {
                            'name': "South deal", 'team': crm.south.id,
                            'owner': crm.carol.id,
                            }])]
        cls.south_stage = crm.stage("Qualified").id
        cls.headers = {}
        for user in [crm.alice, crm.manager]:
            with Transaction().set_user(user.id):
                key = Session.new()
            token = base64.b64encode(
                f'{user.login}:{user.id}:{key}'.encode()).decode()
            cls.headers[user.login] = {'Authorization': f'Session {token}'}

    def rpc(self, login, method, *params, context=None):
        response = self.client().post(
            f'/{self.db_name}/rpc/',
            data=json.dumps({
                    'id': 1, 'method': method,
                    'params': [*params, context or {}]}),
            headers={
                'Content-Type': 'application/json',
                **self.headers.get(login, {})})
        return response

    def assertAccessRefused(self, response):
        self.assertIn('error', response.json)
        kind, (message, *_) = response.json['error']
        self.assertEqual(kind, 'UserError')
        self.assertRegex(message, r'(?i)access|not allowed|rule')

    def test_salesperson_reads_only_own_team(self):
        "A salesperson lists only their team's leads"
        response = self.rpc('alice', 'model.crm.lead.search_read',
            [], 0, None, None, ['name'])
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            [r['name'] for r in response.json['result']], ["North deal"])

    def test_salesperson_cannot_read_other_team(self):
        "Reading another team's lead is refused"
        response = self.rpc('alice', 'model.crm.lead.read',
            [self.south_lead], ['name'])
        self.assertIn('error', response.json)
        self.assertAccessRefused(response)

    def test_salesperson_cannot_write_other_team(self):
        "Moving another team's lead is refused and changes nothing"
        response = self.rpc('alice', 'model.crm.lead.write',
            [self.south_lead], {'stage': self.south_stage})
        self.assertIn('error', response.json)
        self.assertAccessRefused(response)
        response = self.rpc('manager', 'model.crm.lead.read',
            [self.south_lead], ['stage.name'])
        self.assertEqual(response.json['result'][0]['stage.']['name'], "New")

    def test_manager_reads_all(self):
        "A manager sees every team's leads"
        response = self.rpc('manager', 'model.crm.lead.search_count', [])
        self.assertEqual(response.json['result'], 2)

    def test_no_session(self):
        "Without a session nothing is answered"
        response = self.rpc(None, 'model.crm.lead.search_read',
            [], 0, None, None, ['name'])
        self.assertEqual(response.status_code, 401)
