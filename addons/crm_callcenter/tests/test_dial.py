"Click-to-dial: a real baresip phone dials, a PBX's originate URL is called"
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from trytond.exceptions import UserError
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase

from .rig.rig import Rig, missing_binaries
from .test_callcenter import CallCenterSetup


class DialTestCase(CrmDatabaseTestCase):
    "Test click-to-dial"
    modules = ['crm_callcenter']

    def configure(self, **values):
        Configuration = Pool().get('callcenter.configuration')
        config = Configuration(1)
        for name, value in values.items():
            setattr(config, name, value)
        config.save()

    def dial(self, cc, user):
        "The Call button of the customer's phone, as user"
        Mechanism = Pool().get('party.contact_mechanism')
        phone, = [m for m in cc.customer.contact_mechanisms
            if m.type == 'phone']
        with Transaction().set_user(user.id), \
                Transaction().set_context(company=cc.company.id):
            return Mechanism.callcenter_dial([Mechanism(phone.id)])

    @with_transaction()
    def test_no_connector_gives_a_tel_link(self):
        "Without a connector the number opens as a tel: link"
        cc = CallCenterSetup()
        with set_company(cc.company):
            self.assertEqual(self.dial(cc, cc.ann),
                {'type': 'ir.action.url', 'url': 'tel:+4930901820'})

    @with_transaction()
    def test_webhook_connector(self):
        "The PBX's originate URL gets the extension and number, signed"
        received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                received.append((body, self.headers['X-CRM-Signature']))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass
        server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        cc = CallCenterSetup()
        with set_company(cc.company):
            self.configure(connector='webhook', originate_secret='s3cret',
                originate_url=f'http://127.0.0.1:{server.server_port}/dial')
            self.assertIsNone(self.dial(cc, cc.ann))
            body, signature = received[0]
            self.assertEqual(json.loads(body),
                {'extension': '1001', 'number': '+4930901820'})
            self.assertEqual(signature, 'sha256=' + hmac.new(
                    b's3cret', body, hashlib.sha256).hexdigest())
            self.configure(
                originate_url=f'http://127.0.0.1:{server.server_port + 1}/')
            with self.assertRaises(UserError) as context:
                self.dial(cc, cc.ann)
            self.assertIn('+4930901820', context.exception.message)

    @with_transaction()
    def test_baresip_phone_dials(self):
        "The agent's baresip phone calls the customer's phone (real SIP)"
        missing = missing_binaries('kamailio', 'baresip')
        if missing:
            self.skipTest(f"not installed: {', '.join(missing)}")
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        cc = CallCenterSetup()
        with Rig() as rig:
            agent_phone = rig.phone('1001')
            customer = rig.phone('4930901820')
            with set_company(cc.company):
                self.configure(connector='baresip',
                    sip_domain=f'127.0.0.1:{rig.sip_port}')
                Agent.write([cc.a1001], {
                        'phone_control': f'127.0.0.1:{agent_phone.ctrl_port}'})
                Pool().get('party.contact_mechanism').write(
                    [m for m in cc.customer.contact_mechanisms],
                    {'value': '+4930901820'})
                with Transaction().set_user(cc.ann.id):
                    self.assertTrue(Agent.dial('4930901820'))
                incoming = customer.wait_for('CALL_INCOMING', timeout=10)
                self.assertIn('1001', json.dumps(incoming))
                # baresip has one ctrl_tcp client: the connector's took over
                # the agent phone's, so the customer hangs up
                customer.hangup()
                # An agent without phone control is told so
                Agent.write([cc.a1001], {'phone_control': None})
                with Transaction().set_user(cc.ann.id):
                    with self.assertRaises(UserError) as context:
                        Agent.dial('4930901820')
                self.assertIn('phone control', context.exception.message)


del CrmDatabaseTestCase
