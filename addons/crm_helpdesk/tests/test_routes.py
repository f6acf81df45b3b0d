"""The customer's status page of a ticket (signed link, no login) and the
JSON errors of the email webhook"""
import io
import json
import time
import uuid
from contextlib import contextmanager
from email.message import EmailMessage
from unittest.mock import patch
from urllib.parse import unquote, urlsplit

from trytond.exceptions import UserError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, RouteTestCase
from trytond.transaction import Transaction

from crm_core.tests.tools import create_party, create_team

CUSTOMER = 'michael@example.com'
CONFIGURATION = 'helpdesk_configuration'
HTML = '<script>alert("x")</script> & <b>bold</b>'


class HelpdeskStatusRouteTestCase(RouteTestCase):
    "Test the status page of a ticket"
    module = 'crm_helpdesk'

    @classmethod
    def setUpDatabase(cls):
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        company = create_company()
        with set_company(company):
            team = create_team("Support", company, [])
            party = create_party("Michael Scott", emails=[CUSTOMER])
            # No email yet: a public answer would be sent by email
            ticket, = Ticket.create([{
                        'company': company.id,
                        'subject': "Printer on fire",
                        'party': party.id,
                        'team': team.id,
                        }])
            ticket.post_answer("We are looking into it.\nSecond line.")
            ticket.post_answer("secret note", audience='internal')
            Ticket.write([ticket], {'email': CUSTOMER})
        cls.company_id = company.id
        cls.team_id = team.id
        cls.party_id = party.id
        cls.ticket_id = ticket.id

    @contextmanager
    def transaction(self):
        """A transaction of the admin in the company, committed at the end;
        the configuration is locked as its singleton row may be created"""
        with Transaction().start(DB_NAME, 1, context={
                    'company': self.company_id},
                _lock_tables=[CONFIGURATION]) as transaction:
            yield transaction

    def create_ticket(self, **values):
        "A committed ticket of the customer (with no message)"
        with self.transaction():
            Ticket = Pool().get('helpdesk.ticket')
            ticket, = Ticket.create([{
                        'company': self.company_id,
                        'subject': "Another request",
                        'party': self.party_id,
                        'team': self.team_id,
                        **values,
                        }])
            return ticket.id

    def url(self, ticket_id, expires=None):
        "The path of the status link of the ticket"
        with self.transaction():
            Ticket = Pool().get('helpdesk.ticket')
            return urlsplit(Ticket(ticket_id).status_url(
                    expires=expires)).path

    def set_kind(self, ticket_id, kind):
        with self.transaction():
            Ticket = Pool().get('helpdesk.ticket')
            Ticket._to_kind([Ticket(ticket_id)], kind)

    def kind(self, ticket_id):
        with self.transaction():
            return Pool().get('helpdesk.ticket')(ticket_id).kind

    def messages(self, ticket_id):
        "The (audience, user, email, content) of the ticket's messages"
        with self.transaction():
            Message = Pool().get('ir.chat.message')
            return [(m.audience, m.user.id if m.user else None, m.email,
                    m.content) for m in Message.search([
                        ('channel.resource', '=',
                            f'helpdesk.ticket,{ticket_id}'),
                        ], order=[('id', 'ASC')])]

    def attachments(self, ticket_id):
        with self.transaction():
            Attachment = Pool().get('ir.attachment')
            return [(a.name, bytes(a.data)) for a in Attachment.search([
                        ('resource', '=', f'helpdesk.ticket,{ticket_id}'),
                        ], order=[('id', 'ASC')])]

    @contextmanager
    def max_size(self, size):
        "The helpdesk configuration's maximum size (MB) within the block"
        with self.transaction():
            Configuration = Pool().get('helpdesk.configuration')
            config = Configuration(1)
            old, config.max_size = config.max_size, size
            config.save()
        try:
            yield
        finally:
            with self.transaction():
                config = Pool().get('helpdesk.configuration')(1)
                config.max_size = old
                config.save()

    def assertSecure(self, response):
        headers = response.headers
        self.assertEqual(headers['Cache-Control'], 'no-store')
        self.assertEqual(headers['Referrer-Policy'], 'no-referrer')
        self.assertEqual(headers['X-Frame-Options'], 'DENY')
        self.assertEqual(headers['Content-Security-Policy'],
            "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'")

    def assertInvalid(self, response):
        self.assertEqual(response.status_code, 404)
        self.assertIn(b'This link is not valid or has expired',
            response.data)
        self.assertNotIn(b'Printer on fire', response.data)
        self.assertSecure(response)

    # The page -------------------------------------------------------------

    def test_page(self):
        "The page shows the ticket and its public messages, not the notes"
        response = self.client().get(self.url(self.ticket_id))

        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.mimetype, 'text/html')
        self.assertSecure(response)
        page = response.get_data(as_text=True)
        with self.transaction():
            number = Pool().get('helpdesk.ticket')(self.ticket_id).number
        self.assertIn(number, page)
        self.assertIn('Printer on fire', page)
        self.assertIn('We are looking into it.\nSecond line.', page)
        self.assertNotIn('secret note', page)
        self.assertIn('New', page)  # the stage kind in words
        self.assertIn('enctype="multipart/form-data"', page)
        self.assertIn('type="file"', page)
        # Not solved: no rating
        self.assertNotIn('name="rating"', page)
        self.assertNotIn('<script', page)

    def test_altered_signature(self):
        "A link whose signature was changed gives the 404 page"
        url = self.url(self.ticket_id)
        last = url[-1]
        altered = url[:-1] + ('0' if last != '0' else '1')
        self.assertInvalid(self.client().get(altered))
        # Not hexadecimal, or not ASCII: 404 too, never an error
        base = url.rsplit('/', 1)[0]
        for signature in ['x' * 32, 'é' * 32, url.rsplit('/', 1)[1][:-2]]:
            with self.subTest(signature=signature):
                self.assertInvalid(
                    self.client().get(f'{base}/{signature}'))

    def test_altered_expiry(self):
        "A later expiry with the signature of the link gives 404"
        url = self.url(self.ticket_id)
        prefix, expires, signature = url.rsplit('/', 2)
        self.assertInvalid(self.client().get(
                f'{prefix}/{int(expires) + 86400}/{signature}'))

    def test_expired(self):
        "A link signed for a moment in the past gives 404"
        expires = int(time.time()) - 3600
        self.assertInvalid(self.client().get(
                self.url(self.ticket_id, expires=expires)))

    def test_other_ticket(self):
        "The signature of a ticket does not open another one"
        other_id = self.create_ticket(subject="Someone else's")
        url = self.url(self.ticket_id)
        _, _, _, _, _, expires, signature = url.split('/')
        response = self.client().get(
            f'/{self.db_name}/helpdesk/status/{other_id}/{expires}/'
            f'{signature}')
        self.assertInvalid(response)
        self.assertNotIn(b"Someone else", response.data)
        # Nor does it for a ticket that does not exist
        self.assertInvalid(self.client().get(
                f'/{self.db_name}/helpdesk/status/999999/{expires}/'
                f'{signature}'))

    def test_escaped(self):
        "HTML in the subject and the messages is shown as text"
        ticket_id = self.create_ticket(subject=HTML)
        with self.transaction():
            Ticket = Pool().get('helpdesk.ticket')
            Ticket(ticket_id).post_answer(HTML)

        page = self.client().get(self.url(ticket_id)).get_data(as_text=True)

        self.assertNotIn('<script', page)
        self.assertNotIn('<b>bold', page)
        self.assertIn(
            '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; '
            '&lt;b&gt;bold&lt;/b&gt;', page)

    def test_language(self):
        "The page is in the language of the ticket's customer"
        with self.transaction():
            pool = Pool()
            Lang = pool.get('ir.lang')
            Party = pool.get('party.party')
            lang, = Lang.search([('code', '=', 'fr')])
            party, = Party.create([{'name': "Jean", 'lang': lang.id}])
            party_id = party.id
        ticket_id = self.create_ticket(party=party_id)
        page = self.client().get(self.url(ticket_id)).get_data(as_text=True)
        self.assertIn('<html lang="fr">', page)

    def test_merged(self):
        "A merged ticket says where it went and takes no reply"
        ticket_id = self.create_ticket(email=CUSTOMER)
        target_id = self.create_ticket(subject="The one kept")
        with self.transaction():
            Ticket = Pool().get('helpdesk.ticket')
            Ticket(ticket_id).merge_into(Ticket(target_id))
            number = Ticket(target_id).number
        page = self.client().get(self.url(ticket_id)).get_data(as_text=True)
        self.assertIn(f'merged into request {number}', page)
        self.assertNotIn('The one kept', page)
        self.assertNotIn('<textarea id="message"', page)

    # Reply ----------------------------------------------------------------

    def test_reply(self):
        "A reply is a public message of the customer with its file"
        ticket_id = self.create_ticket(email=CUSTOMER)
        url = self.url(ticket_id)

        response = self.client().post(url, data={
                'message': "It still smokes.",
                'file': (io.BytesIO(b'%PDF-1.4 data'), 'photos/fire.pdf'),
                })

        self.assertEqual(response.status_code, 303)
        self.assertEqual(
            unquote(urlsplit(response.headers['Location']).path), url)
        self.assertSecure(response)
        self.assertEqual(self.messages(ticket_id), [
                ('public', None, CUSTOMER, "It still smokes.")])
        self.assertEqual(self.attachments(ticket_id), [
                ('fire.pdf', b'%PDF-1.4 data')])
        # The customer's history has it
        with self.transaction():
            Activity = Pool().get('crm.activity')
            activity, = Activity.search([
                    ('origin', '=', f'helpdesk.ticket,{ticket_id}')])
            self.assertEqual(activity.party.id, self.party_id)

        page = self.client().get(
            response.headers['Location']).get_data(as_text=True)
        self.assertIn('Your message was sent.', page)
        self.assertIn('It still smokes.', page)
        self.assertIn('>You<', page)
        self.assertIn('fire.pdf', page)

    def test_reply_file_only(self):
        "A file without text is a reply too"
        ticket_id = self.create_ticket(email=CUSTOMER)
        response = self.client().post(self.url(ticket_id), data={
                'message': "  ",
                'file': (io.BytesIO(b'log'), 'log.txt'),
                })
        self.assertEqual(response.status_code, 303)
        (audience, user, email, content), = self.messages(ticket_id)
        self.assertEqual((audience, user, email), ('public', None, CUSTOMER))
        self.assertIn('log.txt', content)
        self.assertEqual(self.attachments(ticket_id), [('log.txt', b'log')])

    def test_reply_waiting(self):
        "A reply to a ticket waiting on the customer brings it back"
        ticket_id = self.create_ticket(email=CUSTOMER)
        self.set_kind(ticket_id, 'waiting')

        response = self.client().post(
            self.url(ticket_id), data={'message': "Here it is."})

        self.assertEqual(response.status_code, 303)
        self.assertEqual(self.kind(ticket_id), 'in_progress')

    def test_reply_solved(self):
        "A reply to a solved ticket reopens it"
        ticket_id = self.create_ticket(email=CUSTOMER)
        self.set_kind(ticket_id, 'solved')

        response = self.client().post(
            self.url(ticket_id), data={'message': "Not solved at all."})

        self.assertEqual(response.status_code, 303)
        self.assertEqual(self.kind(ticket_id), 'in_progress')
        self.assertEqual(len(self.messages(ticket_id)), 1)

    def test_reply_cancelled(self):
        "A cancelled ticket takes no reply and shows no form"
        ticket_id = self.create_ticket(email=CUSTOMER)
        self.set_kind(ticket_id, 'cancelled')
        url = self.url(ticket_id)

        page = self.client().get(url).get_data(as_text=True)
        self.assertNotIn('<textarea id="message"', page)
        response = self.client().post(url, data={'message': "Hello?"})
        self.assertEqual(response.status_code, 409)
        self.assertEqual(self.messages(ticket_id), [])

    def test_reply_empty(self):
        "An empty reply is refused and nothing is written"
        ticket_id = self.create_ticket(email=CUSTOMER)
        response = self.client().post(self.url(ticket_id), data={
                'message': " \n ",
                'file': (io.BytesIO(b''), ''),
                })
        self.assertEqual(response.status_code, 400)
        self.assertIn(b'Write a message or add a file.', response.data)
        self.assertSecure(response)
        self.assertEqual(self.messages(ticket_id), [])

    def test_reply_file_too_large(self):
        "A file larger than the configuration allows is refused"
        ticket_id = self.create_ticket(email=CUSTOMER)
        with self.max_size(1):
            response = self.client().post(self.url(ticket_id), data={
                    'message': "The log",
                    'file': (io.BytesIO(b'x' * (1024 * 1024 + 1)), 'a.log'),
                    })
        self.assertEqual(response.status_code, 413)
        self.assertIn(b'The file is too large.', response.data)
        self.assertEqual(self.messages(ticket_id), [])
        self.assertEqual(self.attachments(ticket_id), [])
        # Above trytond's request limit: the same page
        response = self.client().post(self.url(ticket_id), data={
                'file': (io.BytesIO(b'x' * (3 * 1024 * 1024)), 'b.log'),
                })
        self.assertEqual(response.status_code, 413)
        self.assertIn(b'The file is too large.', response.data)
        self.assertSecure(response)
        self.assertEqual(self.messages(ticket_id), [])

    def test_reply_refused_rolled_back(self):
        "A reply the models refuse half-way leaves the ticket as it was"
        ticket_id = self.create_ticket(email=CUSTOMER)
        self.set_kind(ticket_id, 'solved')
        url = self.url(ticket_id)
        Ticket = Pool(DB_NAME).get('helpdesk.ticket')

        # After the reopening, the message and the file
        with patch.object(Ticket, '_history',
                side_effect=UserError("Refused")):
            response = self.client().post(url, data={
                    'message': "Not solved.",
                    'file': (io.BytesIO(b'data'), 'a.txt'),
                    })

        self.assertEqual(response.status_code, 400)
        self.assertSecure(response)
        self.assertIn(b'class="error"', response.data)
        self.assertIn(b'Refused', response.data)
        # Not reopened, no message, no file
        self.assertEqual(self.kind(ticket_id), 'solved')
        self.assertEqual(self.messages(ticket_id), [])
        self.assertEqual(self.attachments(ticket_id), [])

    def test_reply_altered(self):
        "A reply through an altered link writes nothing"
        ticket_id = self.create_ticket(email=CUSTOMER)
        url = self.url(ticket_id)
        response = self.client().post(
            url[:-4] + 'ffff', data={'message': "Hello"})
        self.assertEqual(response.status_code, 404)
        self.assertEqual(self.messages(ticket_id), [])

    # Rating ---------------------------------------------------------------

    def test_rating_not_solved(self):
        "A ticket that is not solved cannot be rated"
        ticket_id = self.create_ticket()
        response = self.client().post(
            self.url(ticket_id) + '/rate', data={'rating': '5'})
        self.assertEqual(response.status_code, 409)
        with self.transaction():
            self.assertIsNone(
                Pool().get('helpdesk.ticket')(ticket_id).rating)

    def test_rating_invalid(self):
        "A rating must be 1 to 5"
        ticket_id = self.create_ticket()
        self.set_kind(ticket_id, 'solved')
        for rating in ['7', '0', 'x', '']:
            with self.subTest(rating=rating):
                response = self.client().post(
                    self.url(ticket_id) + '/rate', data={'rating': rating})
                self.assertEqual(response.status_code, 400)
                self.assertIn(b'from 1 to 5', response.data)
        with self.transaction():
            self.assertIsNone(
                Pool().get('helpdesk.ticket')(ticket_id).rating)

    def test_rating(self):
        "A solved ticket is rated, and the rating may change while solved"
        ticket_id = self.create_ticket()
        self.set_kind(ticket_id, 'solved')
        url = self.url(ticket_id)
        self.assertIn(b'name="rating"', self.client().get(url).data)

        response = self.client().post(url + '/rate', data={
                'rating': '5', 'comment': "Fast <and> kind"})

        self.assertEqual(response.status_code, 303)
        self.assertEqual(
            unquote(urlsplit(response.headers['Location']).path), url)
        with self.transaction():
            ticket = Pool().get('helpdesk.ticket')(ticket_id)
            self.assertEqual(ticket.rating, '5')
            self.assertEqual(ticket.rating_comment, "Fast <and> kind")
        page = self.client().get(
            response.headers['Location']).get_data(as_text=True)
        self.assertIn('Thank you for your rating.', page)
        self.assertIn('You rated this request 5 out of 5.', page)
        self.assertIn('Fast &lt;and&gt; kind', page)

        response = self.client().post(url + '/rate', data={'rating': '4'})
        self.assertEqual(response.status_code, 303)
        with self.transaction():
            ticket = Pool().get('helpdesk.ticket')(ticket_id)
            self.assertEqual(ticket.rating, '4')
            self.assertIsNone(ticket.rating_comment)

    # Files ----------------------------------------------------------------

    def test_download(self):
        "A file of the ticket is downloaded, not the file of another one"
        ticket_id = self.create_ticket()
        other_id = self.create_ticket()
        with self.transaction():
            Attachment = Pool().get('ir.attachment')
            mine, theirs, internal = Attachment.create([{
                        'resource': f'helpdesk.ticket,{ticket_id}',
                        'name': 'invoice "été".pdf',
                        'type': 'data',
                        'data': b'mine',
                        'helpdesk_public': True,
                        }, {
                        'resource': f'helpdesk.ticket,{other_id}',
                        'name': 'theirs.pdf',
                        'type': 'data',
                        'data': b'theirs',
                        'helpdesk_public': True,
                        }, {
                        'resource': f'helpdesk.ticket,{ticket_id}',
                        'name': 'internal-notes.txt',
                        'type': 'data',
                        'data': b'agents only',
                        }])
            mine_id, theirs_id = mine.id, theirs.id
            internal_id = internal.id
        url = self.url(ticket_id)

        page = self.client().get(url).get_data(as_text=True)
        self.assertIn(f'href="{url}/file/{mine_id}"', unquote(page))
        self.assertNotIn('theirs.pdf', page)

        response = self.client().get(f'{url}/file/{mine_id}')
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.data, b'mine')
        self.assertEqual(response.mimetype, 'application/octet-stream')
        self.assertTrue(response.headers['Content-Disposition'].startswith(
                'attachment;'))
        self.assertIn("filename*=UTF-8''invoice",
            response.headers['Content-Disposition'])
        self.assertSecure(response)

        response = self.client().get(f'{url}/file/{theirs_id}')
        self.assertEqual(response.status_code, 404)
        self.assertNotIn(b'theirs', response.data)
        # A file of the agents is not the customer's to see
        self.assertNotIn('internal-notes.txt', page)
        response = self.client().get(f'{url}/file/{internal_id}')
        self.assertEqual(response.status_code, 404)
        # And the signature of the link is checked for files too
        response = self.client().get(
            f'{url[:-4]}ffff/file/{mine_id}')
        self.assertEqual(response.status_code, 404)


class HelpdeskWebhookRouteTestCase(RouteTestCase):
    "Test the errors of the email webhook"
    module = 'crm_helpdesk'

    identifier = uuid.uuid4().hex
    identifier_no_team = uuid.uuid4().hex

    @classmethod
    def setUpDatabase(cls):
        pool = Pool()
        Inbox = pool.get('inbound.email.inbox')
        company = create_company()
        with set_company(company):
            team = create_team("Support", company, [])
        Inbox.create([{
                    'name': "Support",
                    'identifier': cls.identifier,
                    'rules': [('create', [{
                                    'action': (
                                        'helpdesk.ticket|from_inbound_email'),
                                    'helpdesk_team': team.id,
                                    }])],
                    }, {
                    'name': "No team",
                    'identifier': cls.identifier_no_team,
                    'rules': [('create', [{
                                    'action': (
                                        'helpdesk.ticket|from_inbound_email'),
                                    }])],
                    }])

    @contextmanager
    def transaction(self):
        with Transaction().start(DB_NAME, 1,
                _lock_tables=[CONFIGURATION]) as transaction:
            yield transaction

    def post(self, data, identifier=None):
        return self.client().post(
            f'/{self.db_name}/inbound_email/inbox/'
            f'{identifier or self.identifier}', data=data,
            content_type='application/octet-stream')

    def email(self, sender='pam@example.com', subject="Paper jam",
            body="The printer is jammed."):
        msg = EmailMessage()
        if sender:
            msg['From'] = sender
        msg['To'] = 'support@example.com'
        msg['Subject'] = subject
        msg['Message-ID'] = f'<{uuid.uuid4().hex}@example.com>'
        msg.set_content(body)
        return msg.as_bytes()

    def count(self, model, domain=None):
        with self.transaction():
            return Pool().get(model).search_count(domain or [])

    def assertRefused(self, response, status, reasons):
        self.assertEqual(response.status_code, status)
        self.assertEqual(response.mimetype, 'application/json')
        data = json.loads(response.data)
        self.assertIn(data['error'], reasons)
        self.assertTrue(data['message'])
        return data

    def test_valid(self):
        "A valid email makes a ticket"
        response = self.post(self.email(subject="Valid email"))
        self.assertEqual(response.status_code, 204)
        self.assertEqual(self.count(
                'helpdesk.ticket', [('subject', '=', "Valid email")]), 1)

    def test_no_sender(self):
        "An email without sender is refused in JSON and nothing is stored"
        emails = self.count('inbound.email')
        with self.assertLogs('crm_helpdesk.routes', 'WARNING'):
            response = self.post(b'this is not an email\r\n\r\nat all')
        self.assertRefused(response, 400, {'no_sender', 'malformed'})
        self.assertEqual(self.count('inbound.email'), emails)

        response = self.post(self.email(sender=None))
        self.assertRefused(response, 400, {'no_sender', 'malformed'})
        self.assertEqual(self.count('inbound.email'), emails)

    def test_too_large(self):
        "An email larger than the configuration allows is refused"
        emails = self.count('inbound.email')
        tickets = self.count('helpdesk.ticket')
        with self.transaction():
            Configuration = Pool().get('helpdesk.configuration')
            config = Configuration(1)
            old, config.max_size = config.max_size, 1
            config.save()
        try:
            # Above the configuration, below trytond's request limit
            data = self.email(body='x' * (1536 * 1024))
            response = self.post(data)
            data = self.assertRefused(response, 413, {'too_large'})
            # Above trytond's request limit: refused before the helpdesk
            # reads it, in JSON too
            with self.assertLogs('crm_helpdesk.routes', 'WARNING'):
                response = self.post(
                    self.email(body='x' * (3 * 1024 * 1024)))
            self.assertRefused(response, 413, {'too_large'})
        finally:
            with self.transaction():
                config = Pool().get('helpdesk.configuration')(1)
                config.max_size = old
                config.save()
        self.assertEqual(self.count('inbound.email'), emails)
        self.assertEqual(self.count('helpdesk.ticket'), tickets)

    def test_rolled_back(self):
        "A rule without team refuses the email: nothing half-made is kept"
        emails = self.count('inbound.email')
        sender = 'new.customer@example.com'
        with self.assertLogs('crm_helpdesk.routes', 'WARNING'):
            response = self.post(
                self.email(sender=sender), self.identifier_no_team)
        self.assertRefused(response, 400, {'no_team'})
        self.assertEqual(self.count('inbound.email'), emails)
        # The party of the sender was made before the error, and is gone
        self.assertEqual(self.count('party.contact_mechanism', [
                    ('value', '=', sender)]), 0)


del RouteTestCase
