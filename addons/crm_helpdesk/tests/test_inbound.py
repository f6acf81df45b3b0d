"Email to ticket: real messages through inbound_email's inbox and rule"
import email
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import make_msgid
from pathlib import Path
from unittest.mock import patch

from trytond.exceptions import UserError
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import (
    CrmDatabaseTestCase, create_party, deliver_mail, shared_samples,
    smtp_server)
from trytond.modules.company.tests import set_company

from . import test_helpdesk
from .test_helpdesk import HelpdeskSetup

DATA = Path(__file__).parent / 'data'
SAMPLES = shared_samples('email-samples')
ACTION = 'helpdesk.ticket|from_inbound_email'


def message(subject="My printer is broken", sender='Jane Doe <jane@example.org>',
        body="It prints nothing since this morning.", **headers):
    msg = EmailMessage()
    msg['From'] = sender
    msg['To'] = 'support@example.com'
    msg['Subject'] = subject
    msg['Message-ID'] = make_msgid(domain='example.org')
    for name, value in headers.items():
        msg[name.replace('_', '-')] = value
    msg.set_content(body)
    return msg


class InboundTestCase(CrmDatabaseTestCase):
    "Test email to ticket"
    modules = ['crm_helpdesk']

    def setup(self):
        pool = Pool()
        Inbox = pool.get('inbound.email.inbox')
        Configuration = pool.get('helpdesk.configuration')
        hd = HelpdeskSetup()
        self.inbox, = Inbox.create([{
                    'name': "Support",
                    'rules': [('create', [{
                                    'action': ACTION,
                                    'helpdesk_team': hd.support.id,
                                    }])],
                    }])
        config_ = Configuration(1)
        config_.support_address = 'support@example.com'
        config_.save()
        return hd

    def receive(self, raw, data_type='raw'):
        "What the webhook does with a posted message"
        pool = Pool()
        Email = pool.get('inbound.email')
        Ticket = pool.get('helpdesk.ticket')
        if isinstance(raw, EmailMessage):
            raw = raw.as_bytes()
        emails = Email.from_webhook(self.inbox, raw, data_type)
        for email_ in emails:
            self.inbox.process(email_)
        Email.save(emails)
        # What the queue task does after the webhook's commit
        Ticket.process_inbound_emails()
        email_, = Email.browse(emails)
        return email_.result

    def post(self, raw):
        "The webhook's part: the email checked, stored and left pending"
        pool = Pool()
        Email = pool.get('inbound.email')
        if isinstance(raw, EmailMessage):
            raw = raw.as_bytes()
        email_, = Email.from_webhook(self.inbox, raw, 'raw')
        self.inbox.process(email_)
        email_.save()
        return email_

    def received(self, smtp):
        deliver_mail()
        return test_helpdesk.HelpdeskTestCase.received(self, smtp)

    def conversation(self, ticket):
        pool = Pool()
        Message = pool.get('ir.chat.message')
        return Message.search([('channel.resource', '=', str(ticket))],
            order=[('id', 'ASC')])

    @with_transaction()
    def test_new_email_creates_ticket_and_prospect(self):
        "An unknown sender gets a prospect party and a ticket of the team"
        pool = Pool()
        Activity = pool.get('crm.activity')
        hd = self.setup()
        with set_company(hd.company):
            ticket = self.receive(message())
        self.assertEqual(ticket.__name__, 'helpdesk.ticket')
        self.assertEqual(ticket.subject, "My printer is broken")
        self.assertEqual(ticket.channel, 'email')
        self.assertEqual(ticket.team, hd.support)
        self.assertEqual(ticket.email, 'jane@example.org')
        self.assertEqual(ticket.party.name, "Jane Doe")
        self.assertEqual(ticket.party.lifecycle_status, 'prospect')
        self.assertIn("prints nothing", ticket.description)
        self.assertTrue(ticket.user)  # least open member
        first, = self.conversation(ticket)
        self.assertEqual(first.email, 'jane@example.org')
        self.assertEqual(first.audience, 'public')
        activity, = Activity.search([('origin', '=', str(ticket))])
        self.assertEqual((activity.type, activity.party),
            ('email', ticket.party))

    @with_transaction()
    def test_known_sender_matched_case_insensitively(self):
        "The sender's party is found by its email, whatever the case"
        hd = self.setup()
        with set_company(hd.company):
            ticket = self.receive(message(
                    sender="HELP@Customer.Example.com"))
        self.assertEqual(ticket.party, hd.customer)

    @with_transaction()
    def test_replies_thread_on_the_ticket(self):
        """A reply goes to its ticket by the ids of our emails, by the
        reply-to token when the client drops them, by the reference in the
        subject from the same customer only"""
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        smtp = smtp_server(self)
        hd = self.setup()
        with set_company(hd.company):
            ticket = self.receive(message())
            with Transaction().set_user(hd.ann.id):
                ticket.post_answer("Is it plugged in?")
            deliver_mail()
            sent = email.message_from_bytes(
                smtp.messages[-1].original_content, policy=default_policy)

            reply = self.receive(message(
                    subject="Re: " + sent['Subject'],
                    body="Yes it is.\n\nOn Monday, support wrote:\n> "
                    "Is it plugged in?",
                    In_Reply_To=sent['Message-ID']))
            self.assertEqual(reply, ticket)
            self.assertEqual(self.conversation(ticket)[-1].content,
                "Yes it is.")

            # Headers dropped, subject rewritten: the reply-to token
            token_reply = message(subject="answer", body="Still broken.")
            del token_reply['To']
            token_reply['To'] = sent['Reply-To']
            self.assertEqual(self.receive(token_reply), ticket)

            # Only the reference in the subject, from the customer
            self.assertEqual(self.receive(message(
                        subject=f"About [{ticket.number}]", body="Hello?")),
                ticket)
            # The same subject from a stranger opens a new ticket
            other = self.receive(message(
                    subject=f"About [{ticket.number}]",
                    sender='mallory@evil.example', body="Let me in"))
            self.assertNotEqual(other, ticket)
            self.assertNotIn("Let me in",
                [m.content for m in self.conversation(ticket)])
            # A forged token is no token
            forged = message(subject="hi", body="forged")
            del forged['To']
            forged['To'] = f'support+{ticket.id}.000000000000@example.com'
            self.assertNotEqual(self.receive(forged), ticket)
            self.assertEqual(Ticket.search_count(
                    [('party', '=', ticket.party.id)]), 2)

    @with_transaction()
    def test_reply_reopens_solved_ticket(self):
        "A customer's answer to a solved ticket puts it back in progress"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        hd = self.setup()
        with set_company(hd.company):
            ticket = self.receive(message())
            Ticket.solve([ticket])
            self.receive(message(subject=f"Re: [{ticket.number}] broken",
                    body="Not solved at all"))
        self.assertEqual(ticket.kind, 'in_progress')
        self.assertIsNone(ticket.solved)

    @with_transaction()
    def test_automatic_mail_and_loops_never_make_tickets(self):
        "Auto-replies, bounces, bulk mail, our own address, a flood: ignored"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        Configuration = pool.get('helpdesk.configuration')
        hd = self.setup()
        with set_company(hd.company):
            for name in ['auto-replied.eml', 'bounce-dsn.eml',
                    'precedence-bulk.eml', 'out-of-office.eml']:
                self.assertIsNone(self.receive((DATA / name).read_bytes()),
                    name)
            self.assertIsNone(self.receive(message(
                        sender='support@example.com')))
            config_ = Configuration(1)
            config_.loop_limit = 3
            config_.save()
            results = [self.receive(message(
                        sender='robot@example.net', subject=f"Alert {i}"))
                for i in range(5)]
        self.assertEqual([bool(r) for r in results],
            [True, True, True, False, False])
        self.assertEqual(Ticket.search_count([]), 3)

    @with_transaction()
    def test_real_messages_keep_text_and_attachments(self):
        """Multipart with attachments, non-UTF-8 charsets, HTML only: the
        ticket gets readable text and every file"""
        pool = Pool()
        Attachment = pool.get('ir.attachment')
        hd = self.setup()
        with set_company(hd.company):
            ticket = self.receive(
                (DATA / 'alternative-attachment.eml').read_bytes())
            names = {a.name for a in Attachment.search(
                    [('resource', '=', str(ticket))])}
            self.assertGreaterEqual(len(names), 2)
            self.assertTrue(any(n.endswith('.pdf') for n in names))
            hungarian = self.receive(
                (DATA / 'hungarian-iso-8859-2.eml').read_bytes())
            self.assertRegex(hungarian.description, '[őű]')
            html = self.receive((DATA / 'html-only-entities.eml').read_bytes())
            self.assertIn('Bonjour', html.description)
            self.assertNotRegex(html.description, r'<(p|br|div|script)\b')
            if SAMPLES.is_dir():
                sample = self.receive(
                    (SAMPLES / 'cpython-msg_04.eml').read_bytes())
                self.assertEqual(Attachment.search_count(
                        [('resource', '=', str(sample))]), 2)
                gmail = self.receive(
                    (SAMPLES / 'talon-gmail.eml').read_bytes())
                self.assertEqual(self.conversation(gmail)[0].content,
                    'Hello')

    @with_transaction()
    def test_malformed_mail_refused_and_nothing_made(self):
        "No sender, garbage, too large: a clear error, no ticket"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        Party = pool.get('party.party')
        Configuration = pool.get('helpdesk.configuration')
        hd = self.setup()
        parties = Party.search_count([])
        with set_company(hd.company):
            with self.assertRaises(UserError) as context:
                self.receive(b'Subject: nobody\n\nno from header here\n')
            self.assertIn('sender', context.exception.message)
            with self.assertRaises(UserError):
                self.receive(b'\x00\x01\x02')
            config_ = Configuration(1)
            config_.max_size = 1
            config_.save()
            with self.assertRaises(UserError) as context:
                self.receive(message(body='x' * (2 * 1024 * 1024)))
            self.assertIn('too large', context.exception.message)
        self.assertEqual(Ticket.search_count([]), 0)
        self.assertEqual(Party.search_count([]), parties)

    @with_transaction()
    def test_reply_to_merged_ticket_goes_to_the_kept_one(self):
        "Replies to a duplicate land on the ticket it was merged into"
        hd = self.setup()
        with set_company(hd.company):
            kept = self.receive(message())
            duplicate = self.receive(message(subject="Printer again"))
            duplicate.merge_into(kept)
            answer = self.receive(message(
                    subject=f"Re: [{duplicate.number}] Printer again",
                    body="Any news?"))
        self.assertEqual(answer, kept)

    @with_transaction()
    def test_postmark_payload(self):
        "Providers that post fields instead of the message work too"
        import json
        hd = self.setup()
        create_party("Postmark Customer", emails=['pm@example.org'])
        payload = {
            'From': 'pm@example.org', 'To': 'support@example.com',
            'Subject': "From Postmark", 'TextBody': "Body text",
            'MessageID': 'abc-123@postmark',
            'Headers': [], 'Attachments': [],
            }
        with set_company(hd.company):
            ticket = self.receive(json.dumps(payload).encode(), 'postmark')
        self.assertEqual(ticket.subject, "From Postmark")
        self.assertEqual(ticket.party.name, "Postmark Customer")

    @with_transaction()
    def test_pending_emails_become_tickets_together(self):
        """The webhook leaves emails pending; one task makes them tickets:
        a new sender writing twice gets one party, a reply lands on its
        ticket, each acknowledgement answers its customer's message"""
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        Email = pool.get('inbound.email')
        Mechanism = pool.get('party.contact_mechanism')
        smtp = smtp_server(self)
        hd = self.setup()
        test_helpdesk.HelpdeskTestCase.configure(self)
        with set_company(hd.company):
            ticket = self.receive(message())
            ack, = self.received(smtp)
            smtp.messages.clear()
            first = message(sender="Ned New <ned@new.example>",
                subject="Scanner jammed")
            second = message(sender="ned@NEW.example", subject="And the fax")
            reply = message(subject="Re: " + ack['Subject'],
                body="It works again, thanks.",
                In_Reply_To=ack['Message-ID'])
            emails = [self.post(m) for m in [first, second, reply]]
            self.assertEqual([e.helpdesk_state for e in emails],
                ['pending'] * 3)
            self.assertEqual([e.result for e in emails], [None] * 3)
            self.assertEqual(Ticket.search_count([]), 1)

            Ticket.process_inbound_emails()

            emails = Email.browse(emails)
            self.assertEqual([e.helpdesk_state for e in emails],
                ['done'] * 3)
            scanner, fax, replied = [e.result for e in emails]
            self.assertEqual(replied, ticket)
            self.assertEqual(self.conversation(ticket)[-1].content,
                "It works again, thanks.")
            self.assertEqual((scanner.subject, fax.subject),
                ("Scanner jammed", "And the fax"))
            self.assertEqual(scanner.party, fax.party)
            self.assertEqual(scanner.party.name, "Ned New")
            self.assertEqual(Mechanism.search_count(
                    [('value', 'ilike', 'ned@new.example')]), 1)
            acks = {m['In-Reply-To']: m for m in self.received(smtp)}
            self.assertEqual(set(acks), {first['Message-ID'],
                    second['Message-ID']})
            self.assertIn(scanner.number,
                acks[first['Message-ID']]['Subject'])
            self.assertIn(fax.number, acks[second['Message-ID']]['Subject'])

    @with_transaction()
    def test_failing_email_set_failed_and_others_made(self):
        """An email that fails is set failed with its error and leaves
        nothing behind: no ticket, no party, no mail; the others of its
        batch become tickets"""
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        Email = pool.get('inbound.email')
        Party = pool.get('party.party')
        smtp = smtp_server(self)
        hd = self.setup()
        test_helpdesk.HelpdeskTestCase.configure(self)
        add = Ticket.add_customer_messages.__func__

        def refuse_boom(cls, entries):
            if any('boom' in e[2] for e in entries):
                raise UserError("Refused")
            return add(cls, entries)

        with set_company(hd.company):
            parties = Party.search_count([])
            emails = [self.post(message(sender=f'{name}@example.net',
                            subject=name, body=f"{name} happened"))
                for name in ['one', 'boom', 'three']]
            with patch.object(Ticket, 'add_customer_messages',
                    classmethod(refuse_boom)), \
                    self.assertLogs('crm_helpdesk.inbound_email', 'ERROR'):
                Ticket.process_inbound_emails()
            one, boom, three = Email.browse(emails)
            self.assertEqual(
                [e.helpdesk_state for e in (one, boom, three)],
                ['done', 'failed', 'done'])
            self.assertEqual(boom.helpdesk_error, "Refused")
            self.assertIsNone(boom.result)
            self.assertEqual(sorted(t.subject for t in Ticket.search([])),
                ['one', 'three'])
            self.assertEqual(Party.search_count([]), parties + 2)
            self.assertEqual(sorted(m['To'] for m in self.received(smtp)),
                ['one@example.net', 'three@example.net'])
            # Nothing pending is left for the cron
            self.assertEqual(Email.search_count(
                    [('helpdesk_state', '=', 'pending')]), 0)
            # Once the cause is gone, Process makes its ticket
            Email.process([boom])
            boom = Email(boom.id)
            self.assertEqual(boom.helpdesk_state, 'done')
            self.assertIsNone(boom.helpdesk_error)
            self.assertEqual(boom.result.subject, 'boom')


del CrmDatabaseTestCase
