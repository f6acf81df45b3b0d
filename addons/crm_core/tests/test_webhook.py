"Outgoing webhooks: events, signed deliveries from the queue, retries"
import datetime as dt
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.tests.test_tryton import RouteTestCase, with_transaction
from trytond.transaction import Transaction

from ..exceptions import WebhookValidationError
from .tools import CrmSetup

SECRET = 'the-receivers-secret'
DOC = Path(__file__).resolve().parents[1] / 'doc' / 'api.rst'


def documented_verify():
    "The verify_signature() of doc/api.rst, as a receiver would copy it"
    text = DOC.read_text(encoding='utf-8')
    match = re.search(
        r'\.\. code-block:: python\n\n((?:   .*\n|\n)+)', text)
    code = '\n'.join(
        line[3:] for line in match.group(1).splitlines())
    assert 'def verify_signature' in code, code
    namespace = {}
    exec(compile(code, str(DOC), 'exec'), namespace)
    return namespace['verify_signature']


class Receiver(BaseHTTPRequestHandler):
    "Answers 500 to the first `failures` posts of a path, then 204"
    server_version = 'TestReceiver/1'

    def do_POST(self):
        server = self.server
        body = self.rfile.read(int(self.headers['Content-Length']))
        headers = self.headers
        valid = server.verify(SECRET, headers, body)
        with server.lock:
            count = server.counts.get(self.path, 0) + 1
            server.counts[self.path] = count
            server.received.append((self.path, headers, body, valid))
        if not valid:
            self.send_response(401)
        elif count <= server.failures.get(self.path, 0):
            self.send_response(500)
        else:
            self.send_response(204)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


class CrmWebhookTestCase(RouteTestCase):
    "Test CRM webhooks"
    module = 'crm_core'

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        server = ThreadingHTTPServer(('127.0.0.1', 0), Receiver)
        server.verify = documented_verify()
        server.lock = threading.Lock()
        server.counts, server.received = {}, []
        server.failures = {'/flaky': 2, '/down': 100}
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        cls.server = server
        cls.base_url = f'http://127.0.0.1:{server.server_address[1]}'
        cls.addClassCleanup(server.server_close)
        cls.addClassCleanup(server.shutdown)

    def received(self, path):
        with self.server.lock:
            return [r for r in self.server.received if r[0] == path]

    def webhook(self, crm, path, events, **values):
        pool = Pool()
        Webhook = pool.get('crm.webhook')
        webhook, = Webhook.create([{
                    'name': path,
                    'url': self.base_url + path,
                    'secret': SECRET,
                    'events': events,
                    'company': crm.company.id,
                    **values,
                    }])
        return webhook

    def run_queue(self):
        "Run the queued tasks as trytond does after the commit"
        pool = Pool()
        Queue = pool.get('ir.queue')
        transaction = Transaction()
        while transaction.tasks:
            task = Queue(transaction.tasks.pop(0))
            task.run()
            yield task

    def lead(self, crm, **values):
        pool = Pool()
        Lead = pool.get('crm.lead')
        with crm.company_context():
            lead, = Lead.create([{
                        'name': "Webhook deal", 'team': crm.north.id,
                        'owner': crm.alice.id, **values}])
        return lead

    @with_transaction()
    def test_delivery_retried_until_done(self):
        "A flaky receiver gets the signed event again until it accepts it"
        pool = Pool()
        Delivery = pool.get('crm.webhook.delivery')
        crm = CrmSetup()
        webhook = self.webhook(crm, '/flaky', ['lead_created'])
        lead = self.lead(crm, email='flaky@example.net')

        delivery, = Delivery.search([('webhook', '=', webhook.id)])
        self.assertEqual(delivery.state, 'pending')
        self.assertEqual(delivery.resource, lead)
        self.assertFalse(self.received('/flaky'),
            "nothing is sent before the queue runs (after the commit)")

        tasks = list(self.run_queue())
        # The first attempt failed and scheduled its retry one minute later;
        # that retry task, run at once here, is not due and sends nothing.
        self.assertEqual(len(tasks), 2)
        retry = tasks[1]
        self.assertAlmostEqual(
            (retry.scheduled_at - retry.enqueued_at).total_seconds(), 60,
            delta=5)
        delivery = Delivery(delivery.id)
        self.assertEqual(delivery.attempts, 1)
        self.assertEqual(delivery.response_code, 500)
        self.assertEqual(delivery.state, 'pending')
        self.assertIn('500', delivery.last_error)
        wait = delivery.next_attempt - dt.datetime.now()
        self.assertTrue(dt.timedelta(seconds=50) < wait
            < dt.timedelta(seconds=61), wait)
        self.assertEqual(len(self.received('/flaky')), 1)

        # The worker runs the retries when they are due
        Delivery.deliver([delivery], force=True)
        delivery = Delivery(delivery.id)
        self.assertEqual(delivery.attempts, 2)
        wait = delivery.next_attempt - dt.datetime.now()
        self.assertTrue(dt.timedelta(minutes=4) < wait
            < dt.timedelta(minutes=5, seconds=1), wait)
        list(self.run_queue())
        Delivery.deliver([delivery], force=True)

        delivery = Delivery(delivery.id)
        self.assertEqual(delivery.state, 'done')
        self.assertEqual(delivery.attempts, 3)
        self.assertEqual(delivery.response_code, 204)
        self.assertIsNone(delivery.next_attempt)
        self.assertIsNotNone(delivery.date_done)
        self.assertEqual(
            sorted((a.number, a.response_code)
                for a in delivery.attempt_logs),
            [(1, 500), (2, 500), (3, 204)])

        received = self.received('/flaky')
        self.assertEqual(len(received), 3)
        self.assertTrue(all(valid for *_, valid in received))
        _, headers, body, _ = received[-1]
        self.assertEqual(headers['X-CRM-Event'], 'lead_created')
        self.assertEqual(headers['X-CRM-Delivery'], delivery.uuid)
        self.assertEqual({h['X-CRM-Delivery'] for _, h, _, _ in received},
            {delivery.uuid})
        self.assertEqual(body.decode(), delivery.payload)
        payload = json.loads(body)
        self.assertEqual(payload['event'], 'lead_created')
        self.assertEqual(payload['data']['id'], lead.id)
        self.assertEqual(payload['data']['email'], 'flaky@example.net')
        self.assertEqual(payload['data']['stage']['name'], "New")

        # Done: a new delivery run sends nothing more
        Delivery.deliver([delivery], force=True)
        self.assertEqual(len(self.received('/flaky')), 3)

    def test_documented_verification_refuses_tampering(self):
        "The receiver code of the doc accepts our signature, nothing else"
        from ..webhook import sign
        verify = documented_verify()
        import time
        now = int(time.time())
        body = b'{"event": "lead_won"}'
        headers = {
            'X-CRM-Timestamp': str(now),
            'X-CRM-Signature': sign(SECRET, now, body),
            }
        self.assertTrue(verify(SECRET, headers, body))
        self.assertFalse(verify(SECRET, headers, b'{"event": "lead_lost"}'))
        self.assertFalse(verify('another secret', headers, body))
        self.assertFalse(verify(SECRET,
                {**headers, 'X-CRM-Timestamp': str(now + 1)}, body))
        self.assertFalse(verify(SECRET,
                {**headers, 'X-CRM-Signature': 'sha256=' + '0' * 64}, body))
        old = now - 3600
        self.assertFalse(verify(SECRET, {
                    'X-CRM-Timestamp': str(old),
                    'X-CRM-Signature': sign(SECRET, old, body)}, body))

    @with_transaction()
    def test_failed_after_max_attempts_and_replay(self):
        "After the last retry a delivery fails; Replay sends it again"
        pool = Pool()
        Delivery = pool.get('crm.webhook.delivery')
        Queue = pool.get('ir.queue')
        crm = CrmSetup()
        webhook = self.webhook(crm, '/down', ['lead_won'])
        lead = self.lead(crm)
        self.assertFalse(Delivery.search([('webhook', '=', webhook.id)]))
        lead.__class__.won([lead])
        delivery, = Delivery.search([('webhook', '=', webhook.id)])
        self.assertEqual(delivery.event, 'lead_won')
        Transaction().tasks.clear()
        for i in range(6):
            Delivery.deliver([delivery], force=True)
        delivery = Delivery(delivery.id)
        self.assertEqual(delivery.state, 'failed')
        self.assertEqual(delivery.attempts, 6)
        self.assertEqual(len(delivery.attempt_logs), 6)
        self.assertIsNone(delivery.next_attempt)
        Delivery.deliver([delivery], force=True)
        self.assertEqual(len(self.received('/down')), 6)

        Transaction().tasks.clear()
        Delivery.replay([delivery])
        delivery = Delivery(delivery.id)
        self.assertEqual(delivery.state, 'pending')
        self.assertEqual(delivery.attempts, 0)
        task, = Transaction().tasks
        self.assertEqual(Queue(task).data['method'], 'deliver')
        list(self.run_queue())
        self.assertEqual(len(self.received('/down')), 7)
        self.assertEqual(Delivery(delivery.id).attempts, 1)

    @with_transaction()
    def test_events(self):
        "Each event is emitted once, to the subscribed webhooks only"
        pool = Pool()
        Delivery = pool.get('crm.webhook.delivery')
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        Reason = pool.get('crm.lost_reason')
        crm = CrmSetup()
        webhook = self.webhook(crm, '/events', [
                'party_created', 'party_changed', 'lead_created',
                'lead_stage_changed', 'lead_won', 'lead_lost'])
        self.webhook(crm, '/nothing', [])

        def events():
            return sorted(d.event for d in Delivery.search([
                        ('webhook', '=', webhook.id)]))

        party, = Party.create([{'name': "Event Party"}])
        self.assertEqual(events(), ['party_created'])
        Party.write([party], {'name': "Event Party Ltd"})
        self.assertEqual(events(), ['party_changed', 'party_created'])

        Delivery.delete(Delivery.search([]))
        lead = self.lead(crm, party=party.id)
        won_lead = self.lead(crm, party=party.id)
        self.assertEqual(events(), ['lead_created', 'lead_created'])

        Delivery.delete(Delivery.search([]))
        Lead.write([lead], {'stage': crm.stage("Qualified").id})
        self.assertEqual(events(), ['lead_stage_changed'])
        Lead.write([lead], {'description': "no stage change"})
        self.assertEqual(events(), ['lead_stage_changed'])

        Delivery.delete(Delivery.search([]))
        Lead.won([won_lead])
        # The party becomes a customer: party_changed too
        self.assertEqual(
            events(), ['lead_stage_changed', 'lead_won', 'party_changed'])

        Delivery.delete(Delivery.search([]))
        reason, = Reason.search([], limit=1)
        Lead.mark_lost([lead], reason)
        self.assertEqual(events(), ['lead_lost', 'lead_stage_changed'])
        delivery, = Delivery.search([('event', '=', 'lead_lost')])
        payload = json.loads(delivery.payload)
        self.assertEqual(payload['data']['state'], 'lost')
        self.assertEqual(payload['data']['lost_reason']['id'], reason.id)

    @with_transaction()
    def test_erase_party_erases_payloads(self):
        "Erasing a party erases the payloads sent about it and its leads"
        pool = Pool()
        Delivery = pool.get('crm.webhook.delivery')
        Party = pool.get('party.party')
        Erase = pool.get('party.erase', type='wizard')
        crm = CrmSetup()
        webhook = self.webhook(
            crm, '/erase', ['party_created', 'lead_created'])
        party, other = Party.create([
                {'name': "Erased Person"}, {'name': "Kept Person"}])
        self.lead(crm, party=party.id, email='erased@example.net')
        self.lead(crm, party=other.id, email='kept@example.net')
        self.assertEqual(Delivery.search([], count=True), 4)
        Party.write([party], {'active': False})
        session_id, _, _ = Erase.create()
        erase = Erase(session_id)
        erase.ask.party = party
        erase.transition_erase()
        payloads = {d.id: p for d, p in (
                (d, Delivery.read([d.id], ['payload'])[0]['payload'])
                for d in Delivery.search([('webhook', '=', webhook.id)]))}
        erased = [p for p in payloads.values() if p is None]
        kept = [p for p in payloads.values() if p is not None]
        self.assertEqual(len(erased), 2)
        self.assertEqual(len(kept), 2)
        self.assertFalse(any('Erased' in p or 'erased@' in p for p in kept))

    @with_transaction()
    def test_no_subscription_no_delivery(self):
        "Inactive or other-company webhooks get nothing"
        pool = Pool()
        Delivery = pool.get('crm.webhook.delivery')
        Webhook = pool.get('crm.webhook')
        from trytond.modules.company.tests import create_company
        crm = CrmSetup()
        webhook = self.webhook(crm, '/inactive', ['lead_created'])
        Webhook.write([webhook], {'active': False})
        other_company = create_company(name="Other Company")
        self.webhook(crm, '/other', ['lead_created'],
            company=other_company.id)
        self.lead(crm)
        self.assertEqual(Delivery.search([], count=True), 0)
        Webhook.write([webhook], {'active': True})
        self.lead(crm)
        self.assertEqual(Delivery.search([], count=True), 1)

    @with_transaction()
    def test_url_validated(self):
        "A webhook URL must be http(s)"
        crm = CrmSetup()
        for url in ['ftp://example.com/hook', 'example.com/hook', '']:
            with self.subTest(url=url):
                with self.assertRaises(Exception):
                    self.webhook(crm, '/bad', [], url=url)
        with self.assertRaises(WebhookValidationError):
            self.webhook(crm, '/bad', [], url='javascript:alert(1)')

    @with_transaction()
    def test_access(self):
        "Only CRM managers see and manage webhooks and their log"
        pool = Pool()
        Webhook = pool.get('crm.webhook')
        Delivery = pool.get('crm.webhook.delivery')
        crm = CrmSetup()
        webhook = self.webhook(crm, '/access', ['lead_created'])
        self.lead(crm)
        with crm.as_user(crm.alice):
            with self.assertRaises(AccessError):
                Webhook.search([])
            with self.assertRaises(AccessError):
                Delivery.search([])
        with crm.as_user(crm.manager):
            self.assertEqual(Webhook.search([]), [webhook])
            delivery, = Delivery.search([])
            with self.assertRaises(AccessError):
                Delivery.create([{
                            'webhook': webhook.id, 'event': 'lead_won',
                            'payload': '{}'}])
