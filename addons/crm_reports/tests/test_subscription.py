"""Scheduled reports: the schedule, the recipients, who manages them, and
sendings through the queue to a real SMTP server (aiosmtpd), with the
attached document read back and compared with the analysis; failures
retried, then failed and notified."""
import csv
import datetime as dt
import email
import io
import socket
import unittest
from contextlib import ExitStack
from decimal import Decimal
from email.policy import default as default_policy

import pypdf
from openpyxl import load_workbook

from trytond import config
from trytond.model.exceptions import AccessError, ValidationError
from trytond.modules.company.tests import create_company, set_company
from trytond.modules.currency.tests import add_currency_rate, create_currency
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import (
    CrmDatabaseTestCase, CrmSetup, create_party, create_user, smtp_server)

from crm_reports.subscription import (
    MAX_ATTEMPTS, RETRY_DELAYS, check_email, next_run, parse_emails,
    relative_dates)

T = dt.time


def run_tasks():
    "Run what the transaction queued, as trytond's worker does"
    Queue = Pool().get('ir.queue')
    transaction = Transaction()
    while transaction.tasks:
        Queue(transaction.tasks.pop(0)).run()


def previous_month(today=None):
    today = today or dt.datetime.now(dt.timezone.utc).date()
    end = today.replace(day=1) - dt.timedelta(days=1)
    return end.replace(day=1), end


def last_month_days():
    "Two days inside the previous month"
    start, end = previous_month()
    return start + dt.timedelta(days=4), end - dt.timedelta(days=1)


def money(value):
    return '{:,.2f}'.format(Decimal(value))


def pdf_text(data):
    reader = pypdf.PdfReader(io.BytesIO(data))
    return '\n'.join(page.extract_text() for page in reader.pages)


def attachment(message):
    "(filename, bytes) of the only attachment of the email"
    part, = list(message.iter_attachments())
    return part.get_filename(), part.get_payload(decode=True)


class RefusingInbox:
    "An SMTP server that refuses every message"

    def __init__(self):
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):
        self.refused += 1
        return '554 5.7.1 Reports are not welcome here'


def refusing_smtp_server(test):
    "Like crm_core's smtp_server but every message is refused"
    from aiosmtpd.controller import Controller
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    inbox = RefusingInbox()
    controller = Controller(inbox, hostname='127.0.0.1', port=port)
    controller.start()
    test.addCleanup(controller.stop)
    set_config(test, 'email', 'uri', f'smtp://127.0.0.1:{port}')
    return inbox


def down_smtp_server(test):
    "A port of 127.0.0.1 where nothing listens"
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    set_config(test, 'email', 'uri', f'smtp://127.0.0.1:{port}')


def set_config(test, section, option, value):
    previous = config.get(section, option)
    config.set(section, option, value)
    if previous is None:
        test.addCleanup(config.remove_option, section, option)
    else:
        test.addCleanup(config.set, section, option, previous)


class ScheduleTestCase(unittest.TestCase):
    "Schedules of scheduled reports, without the database"

    def test_daily_in_timezones(self):
        "Daily at 07:00 of Berlin is 06:00 UTC in winter, 05:00 in summer"
        at = T(7, 0)
        self.assertEqual(
            next_run(dt.datetime(2026, 1, 15, 5, 0), 'daily', at,
                'Europe/Berlin'),
            dt.datetime(2026, 1, 15, 6, 0))
        # Strictly after: at the run itself, the next day's
        self.assertEqual(
            next_run(dt.datetime(2026, 1, 15, 6, 0), 'daily', at,
                'Europe/Berlin'),
            dt.datetime(2026, 1, 16, 6, 0))
        self.assertEqual(
            next_run(dt.datetime(2026, 7, 15, 6, 0), 'daily', at,
                'Europe/Berlin'),
            dt.datetime(2026, 7, 16, 5, 0))
        # The night of the clock change: 07:00 is 05:00 UTC on Sunday
        self.assertEqual(
            next_run(dt.datetime(2026, 3, 28, 6, 30), 'daily', at,
                'Europe/Berlin'),
            dt.datetime(2026, 3, 29, 5, 0))
        # 02:30 does not exist that night: it runs at 03:30 (01:30 UTC)
        self.assertEqual(
            next_run(dt.datetime(2026, 3, 28, 12, 0), 'daily', T(2, 30),
                'Europe/Berlin'),
            dt.datetime(2026, 3, 29, 1, 30))
        # Without a timezone: UTC
        self.assertEqual(
            next_run(dt.datetime(2026, 1, 15, 23, 59), 'daily', T(0, 0)),
            dt.datetime(2026, 1, 16, 0, 0))
        # Auckland's day starts while it is the day before in UTC
        self.assertEqual(
            next_run(dt.datetime(2026, 1, 15, 18, 0), 'daily', at,
                'Pacific/Auckland'),
            dt.datetime(2026, 1, 15, 18, 0) + dt.timedelta(days=1))
        self.assertEqual(
            next_run(dt.datetime(2026, 1, 15, 17, 0), 'daily', at,
                'Pacific/Auckland'),
            dt.datetime(2026, 1, 15, 18, 0))

    def test_weekly(self):
        "Weekly on a weekday, across the clock change of New York"
        monday = 0
        # Sunday 1 March 2026 → Monday 2 March 08:00 EST = 13:00 UTC
        self.assertEqual(
            next_run(dt.datetime(2026, 3, 1, 12, 0), 'weekly', T(8, 0),
                'America/New_York', weekday=monday),
            dt.datetime(2026, 3, 2, 13, 0))
        # Monday after the run → next Monday, 08:00 EDT = 12:00 UTC
        self.assertEqual(
            next_run(dt.datetime(2026, 3, 2, 13, 0), 'weekly', T(8, 0),
                'America/New_York', weekday=monday),
            dt.datetime(2026, 3, 9, 12, 0))
        # Monday before the run → the same day
        self.assertEqual(
            next_run(dt.datetime(2026, 3, 2, 12, 59), 'weekly', T(8, 0),
                'America/New_York', weekday=monday),
            dt.datetime(2026, 3, 2, 13, 0))
        # Friday in Tokyo is still Thursday in UTC
        self.assertEqual(
            next_run(dt.datetime(2026, 5, 7, 20, 0), 'weekly', T(9, 0),
                'Asia/Tokyo', weekday=4),
            dt.datetime(2026, 5, 8, 0, 0))

    def test_monthly(self):
        "Monthly on a day, the month's last when it is shorter"
        at = T(8, 0)
        self.assertEqual(
            next_run(dt.datetime(2026, 1, 31, 8, 0), 'monthly', at, 'UTC',
                day=31),
            dt.datetime(2026, 2, 28, 8, 0))
        self.assertEqual(
            next_run(dt.datetime(2028, 2, 1), 'monthly', at, 'UTC', day=31),
            dt.datetime(2028, 2, 29, 8, 0))
        self.assertEqual(
            next_run(dt.datetime(2026, 4, 1), 'monthly', at, 'UTC', day=31),
            dt.datetime(2026, 4, 30, 8, 0))
        self.assertEqual(
            next_run(dt.datetime(2026, 12, 2), 'monthly', at, 'UTC', day=1),
            dt.datetime(2027, 1, 1, 8, 0))
        self.assertEqual(
            next_run(dt.datetime(2026, 12, 1, 7, 59), 'monthly', at, 'UTC',
                day=1),
            dt.datetime(2026, 12, 1, 8, 0))
        # 1 March 08:00 in Auckland (NZDT, +13) is 28 February 19:00 UTC;
        # on 31 January 20:00 UTC it is already 1 February 09:00 there
        self.assertEqual(
            next_run(dt.datetime(2026, 1, 31, 20, 0), 'monthly', at,
                'Pacific/Auckland', day=1),
            dt.datetime(2026, 2, 28, 19, 0))

    def test_relative_dates(self):
        "The dates of the relative ranges, across years"
        self.assertEqual(
            relative_dates('previous_month', dt.date(2026, 1, 10)),
            (dt.date(2025, 12, 1), dt.date(2025, 12, 31)))
        self.assertEqual(
            relative_dates('previous_month', dt.date(2024, 3, 31)),
            (dt.date(2024, 2, 1), dt.date(2024, 2, 29)))
        self.assertEqual(
            relative_dates('previous_quarter', dt.date(2026, 2, 15)),
            (dt.date(2025, 10, 1), dt.date(2025, 12, 31)))
        self.assertEqual(
            relative_dates('previous_quarter', dt.date(2026, 9, 30)),
            (dt.date(2026, 4, 1), dt.date(2026, 6, 30)))
        self.assertEqual(
            relative_dates('previous_week', dt.date(2026, 3, 4)),
            (dt.date(2026, 2, 23), dt.date(2026, 3, 1)))
        self.assertEqual(
            relative_dates('month_to_date', dt.date(2026, 3, 4)),
            (dt.date(2026, 3, 1), dt.date(2026, 3, 4)))
        self.assertEqual(
            relative_dates('year_to_date', dt.date(2026, 3, 4)),
            (dt.date(2026, 1, 1), dt.date(2026, 3, 4)))

    def test_emails(self):
        "Addresses of the recipients' text, checked"
        self.assertEqual(
            parse_emails(" a@example.com,b@example.org\nc@example.net ; "),
            ['a@example.com', 'b@example.org', 'c@example.net'])
        self.assertTrue(check_email('office.north@example.com'))
        for wrong in ['north', 'north@', '@example.com', 'a b@example.com',
                'a@@example.com', 'a@example.com>']:
            self.assertFalse(check_email(wrong), wrong)


class SubscriptionTestCase(CrmDatabaseTestCase):
    "Scheduled reports"
    modules = ['crm_reports']

    def setUp(self):
        super().setUp()
        set_config(self, 'email', 'from', 'reports@crm.example.com')

    def setup(self):
        "Users with emails and opportunities closing last month"
        pool = Pool()
        User = pool.get('res.user')
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        for user in [crm.alice, crm.bob, crm.carol, crm.manager]:
            User.write([user], {'email': f'{user.login}@example.com'})
        party = create_party("Acme")
        start, end = last_month_days()
        spec = [
            # owner, team, stage, revenue, close
            (crm.alice, crm.north, 'Qualified', 1000, start),
            (crm.alice, crm.north, 'Proposition', 2500, end),
            (crm.bob, crm.north, 'Negotiation', 4000, start),
            (crm.bob, crm.north, 'Qualified', 300, None),
            (crm.carol, crm.south, 'Proposition', 7000, end),
            (crm.carol, crm.south, 'Qualified', 650, start),
            ]
        with crm.company_context():
            Lead.create([{
                        'name': f"Deal {i}", 'type': 'opportunity',
                        'party': party.id, 'owner': owner.id,
                        'team': team.id, 'stage': crm.stage(stage).id,
                        'expected_revenue': Decimal(revenue),
                        'expected_close': close,
                        } for i, (owner, team, stage, revenue, close)
                    in enumerate(spec)])
        return crm

    def subscribe(self, crm, user, **values):
        "A subscription of the user to the pipeline, made as the user"
        Subscription = Pool().get('crm.report.subscription')
        values.setdefault('name', "Monthly pipeline")
        values.setdefault('analysis', 'crm.report.pipeline')
        values.setdefault('users', [('add', [user.id])])
        with crm.as_user(user):
            subscription, = Subscription.create([{
                        'company': crm.company.id,
                        'currency': crm.company.currency.id,
                        **values}])
        return Subscription(subscription.id)

    def pipeline_as(self, crm, user, **context):
        "The pipeline's rows that the user reads, last month"
        Pipeline = Pool().get('crm.report.pipeline')
        start, end = previous_month()
        with crm.as_user(user), Transaction().set_context(
                company=crm.company.id, currency=crm.company.currency.id,
                from_date=start, to_date=end, period='month', **context):
            return Pipeline.search([])

    def due_now(self, subscriptions):
        "As if their time had come"
        Subscription = Pool().get('crm.report.subscription')
        past = dt.datetime.now() - dt.timedelta(minutes=1)
        Subscription.write(list(subscriptions), {'next_run': past})

    @with_transaction()
    def test_analyses(self):
        "The analyses are the crm.report.* models on SQL with the context"
        Subscription = Pool().get('crm.report.subscription')
        analyses = dict(Subscription.get_analyses())
        self.assertEqual(analyses['crm.report.pipeline'], "Pipeline")
        for name in analyses:
            self.assertTrue(name.startswith('crm.report.'))
        for other in ['crm.report.context', 'crm.report.subscription',
                'crm.report.sending', 'crm.lead']:
            self.assertNotIn(other, analyses)

    @with_transaction()
    def test_recipients_validated(self):
        "Valid addresses, users with an email, at least one recipient"
        pool = Pool()
        User = pool.get('res.user')
        Subscription = pool.get('crm.report.subscription')
        crm = self.setup()
        subscription = self.subscribe(crm, crm.alice,
            emails="board@example.com\nOffice@Example.com")
        self.assertEqual(subscription.recipients(), [
                'alice@example.com', 'board@example.com',
                'Office@Example.com'])
        with crm.as_user(crm.alice):
            with self.assertRaisesRegex(ValidationError, 'not-an-address'):
                Subscription.write([subscription],
                    {'emails': "board@example.com, not-an-address"})
            with self.assertRaisesRegex(ValidationError, 'needs a recipient'):
                Subscription.write([subscription], {
                        'users': [('remove', [crm.alice.id])],
                        'emails': None})
        User.write([crm.bob], {'email': None})
        with crm.as_user(crm.alice):
            with self.assertRaisesRegex(ValidationError, 'Bob'):
                Subscription.write([subscription], {
                        'users': [('add', [crm.bob.id])]})

    @with_transaction()
    def test_next_run_stored(self):
        "The next run is computed on creation and when the schedule changes"
        pool = Pool()
        Subscription = pool.get('crm.report.subscription')
        Day = pool.get('ir.calendar.day')
        crm = self.setup()
        before = dt.datetime.now()
        subscription = self.subscribe(crm, crm.alice, frequency='daily',
            time=T(7, 0), timezone='Europe/Paris')
        self.assertEqual(subscription.next_run,
            next_run(before, 'daily', T(7, 0), 'Europe/Paris'))
        self.assertEqual(subscription.owner, crm.alice)
        friday, = Day.search([('index', '=', 4)])
        with crm.as_user(crm.alice):
            Subscription.write([subscription], {
                    'frequency': 'weekly', 'weekday': friday.id})
        subscription = Subscription(subscription.id)
        self.assertEqual(subscription.next_run,
            next_run(before, 'weekly', T(7, 0), 'Europe/Paris', weekday=4))
        with crm.as_user(crm.alice):
            Subscription.write([subscription], {'active': False})
        self.assertIsNone(Subscription(subscription.id).next_run)

    @with_transaction()
    def test_access(self):
        """Users manage their own subscriptions, managers all of their
        company's; nobody makes another user the owner"""
        pool = Pool()
        Subscription = pool.get('crm.report.subscription')
        crm = self.setup()
        alices = self.subscribe(crm, crm.alice)
        carols = self.subscribe(crm, crm.carol, name="South pipeline")
        with crm.as_user(crm.alice):
            self.assertEqual(Subscription.search([]), [alices])
            with self.assertRaises(AccessError):
                Subscription.write([carols], {'name': "Mine"})
            # Handing it to Bob would mail Bob's figures to Alice
            with self.assertRaisesRegex(AccessError, 'only you'):
                Subscription.write([alices], {'owner': crm.bob.id})
        with crm.as_user(crm.manager):
            self.assertEqual(set(Subscription.search([])), {alices, carols})
            # A manager sees them all but sets up only their own
            with self.assertRaisesRegex(AccessError, 'only you'):
                Subscription.create([{
                            'name': "Bob's", 'company': crm.company.id,
                            'currency': crm.company.currency.id,
                            'analysis': 'crm.report.pipeline',
                            'owner': crm.bob.id,
                            'emails': 'manager@example.com'}])
            Subscription.write([carols], {'emails': 'board@example.com'})
        with crm.as_user(crm.carol):
            Subscription.delete([carols])

    @with_transaction()
    def test_scheduled_pdf_by_email(self):
        """The cron queues the due subscription; its task emails the PDF of
        the pipeline (a real SMTP server) with the figures its owner
        reads"""
        pool = Pool()
        Subscription = pool.get('crm.report.subscription')
        Sending = pool.get('crm.report.sending')
        smtp = smtp_server(self)
        crm = self.setup()
        subscription = self.subscribe(crm, crm.alice,
            name="North pipeline", team=crm.north.id,
            emails='office.north@example.com')
        self.due_now([subscription])
        transaction = Transaction()
        del transaction.tasks[:]
        Subscription.send_due()
        sending, = Sending.search([('subscription', '=', subscription.id)])
        self.assertEqual((sending.state, sending.attempts),
            ('queued', 0))
        self.assertEqual(len(transaction.tasks), 1)
        subscription = Subscription(subscription.id)
        self.assertGreater(subscription.next_run, dt.datetime.now())
        run_tasks()

        sending = Sending(sending.id)
        self.assertEqual((sending.state, sending.attempts, sending.error),
            ('sent', 1, None))
        message, = smtp.messages
        self.assertEqual(sorted(message.rcpt_tos),
            ['alice@example.com', 'office.north@example.com'])
        self.assertEqual(message.mail_from, 'reports@crm.example.com')
        mail = email.message_from_bytes(
            message.original_content, policy=default_policy)
        self.assertIn("North pipeline", mail['Subject'])
        self.assertEqual(mail['Reply-To'], 'alice@example.com')
        self.assertIn("Team: North", mail.get_body().get_content())
        filename, data = attachment(mail)
        self.assertTrue(filename.startswith('North-pipeline-'))
        self.assertTrue(filename.endswith('.pdf'))
        self.assertEqual(sending.size, len(data))
        self.assertEqual(sending.filename, filename)
        self.assertEqual(sending.recipients,
            'alice@example.com, office.north@example.com')

        text = pdf_text(data)
        start, end = previous_month()
        for expected in ["North pipeline", "Pipeline", "Dunder Mifflin",
                "North", "Expected Revenue by Stage", "Total"]:
            self.assertIn(expected, text)
        # The figures of the pipeline as Alice reads it
        rows = self.pipeline_as(crm, crm.alice, team=crm.north.id)
        # Those closing last month and those without a date
        self.assertEqual(len(rows), 4)
        for row in rows:
            self.assertIn(money(row.expected), text)
            self.assertIn(money(row.weighted), text)
            self.assertIn(row.stage.name, text)
        self.assertIn(money(sum(r.expected for r in rows)), text)
        self.assertIn(money(7800), text)
        self.assertNotIn(money(7000), text)

    @with_transaction()
    def test_rules_follow_records(self):
        """Carol of team South subscribes to the pipeline of team North: the
        report is computed as her, she gets no North figure"""
        pool = Pool()
        Sending = pool.get('crm.report.sending')
        Subscription = pool.get('crm.report.subscription')
        smtp = smtp_server(self)
        crm = self.setup()
        north = self.subscribe(crm, crm.carol, name="Their pipeline",
            team=crm.north.id)
        everything = self.subscribe(crm, crm.carol, name="All I can see",
            format='xlsx')
        # Even a manager's Send Now computes the report as its owner
        with crm.as_user(crm.manager):
            Subscription.send_now([north, everything])
        run_tasks()
        self.assertEqual({s.state for s in Sending.search([])}, {'sent'})
        mails = {m['Subject'].split(' of ')[0]: m for m in (
                email.message_from_bytes(
                    m.original_content, policy=default_policy)
                for m in smtp.messages)}

        text = pdf_text(attachment(mails["Their pipeline"])[1])
        self.assertIn("No records match these filters.", text)
        for amount in [1000, 2500, 4000, 300, 7800]:
            self.assertNotIn(money(amount), text)

        _, data = attachment(mails["All I can see"])
        sheet = load_workbook(io.BytesIO(data)).worksheets[0]
        cells = [c.value for row in sheet.iter_rows() for c in row]
        self.assertIn(7000, cells)
        self.assertIn(650, cells)
        self.assertIn(7650, cells)  # the total
        for amount in [1000, 2500, 4000]:
            self.assertNotIn(amount, cells)
        self.assertNotIn("Alice", cells)
        self.assertNotIn("Bob", cells)
        # What the XLSX says is what Carol reads in the analysis
        self.assertEqual(
            sorted((r.owner.rec_name, r.expected) for r in self.pipeline_as(
                    crm, crm.carol)),
            [("Carol", Decimal(650)), ("Carol", Decimal(7000))])

    @with_transaction()
    def test_send_now_csv(self):
        "Send Now mails the CSV of the rows at once, the schedule unchanged"
        pool = Pool()
        Subscription = pool.get('crm.report.subscription')
        Sending = pool.get('crm.report.sending')
        smtp = smtp_server(self)
        crm = self.setup()
        subscription = self.subscribe(crm, crm.bob, format='csv',
            team=crm.north.id, salesperson=crm.bob.id)
        next_run_ = subscription.next_run
        with crm.as_user(crm.bob):
            Subscription.send_now([subscription])
        run_tasks()
        sending, = Sending.search([])
        self.assertTrue(sending.manual)
        self.assertEqual(sending.state, 'sent')
        self.assertEqual(Subscription(subscription.id).next_run, next_run_)
        mail = email.message_from_bytes(
            smtp.messages[0].original_content, policy=default_policy)
        filename, data = attachment(mail)
        self.assertTrue(filename.endswith('.csv'))
        rows = list(csv.DictReader(io.StringIO(data.decode('utf-8-sig'))))
        self.assertEqual(
            [(r['Stage'], r['Salesperson'], r['Team'], r['Opportunities'],
                    r['Expected Revenue']) for r in rows],
            [("Negotiation", "Bob", "North", "1", "4000.00"),
                ("Qualified", "Bob", "North", "1", "300.00")])
        self.assertEqual(rows[1]['Expected Close'], '')

    @with_transaction()
    def test_failures_retried_then_failed(self):
        """A sending the SMTP server cannot take is logged, retried after
        5, 15 and 60 minutes, then failed and its owner notified"""
        pool = Pool()
        Subscription = pool.get('crm.report.subscription')
        Sending = pool.get('crm.report.sending')
        Queue = pool.get('ir.queue')
        transaction = Transaction()
        crm = self.setup()
        subscription = self.subscribe(crm, crm.alice)
        self.due_now([subscription])
        del transaction.tasks[:]

        down_smtp_server(self)
        Subscription.send_due()
        run_tasks()
        sending, = Sending.search([])
        self.assertEqual((sending.state, sending.attempts), ('queued', 1))
        self.assertIn('refused', sending.error.lower())
        wait = sending.next_attempt - dt.datetime.now()
        self.assertAlmostEqual(wait.total_seconds(), RETRY_DELAYS[0] * 60,
            delta=30)
        # The retry is a task for a worker, not before its time
        task, = Queue.search([], order=[('id', 'DESC')], limit=1)
        self.assertEqual((task.data['model'], task.data['method'],
                list(task.data['instances'])),
            ('crm.report.sending', 'send', [sending.id]))
        self.assertAlmostEqual(
            (task.scheduled_at - dt.datetime.now()).total_seconds(),
            RETRY_DELAYS[0] * 60, delta=30)
        # Without a worker the task runs at once: it does not burn an
        # attempt, nor does the cron before the time
        run_tasks()
        Subscription.send_due()
        run_tasks()
        self.assertEqual(Sending(sending.id).attempts, 1)

        smtp = refusing_smtp_server(self)
        notifications = len(transaction.user_notifications)
        for attempt in range(2, MAX_ATTEMPTS + 1):
            # Its time comes: the cron queues it again
            Sending.write([sending], {
                    'next_attempt': dt.datetime.now() - dt.timedelta(
                        seconds=1)})
            Subscription.send_due()
            run_tasks()
            sending = Sending(sending.id)
            self.assertEqual(sending.attempts, attempt)
            self.assertIn('554', sending.error)
            if attempt < MAX_ATTEMPTS:
                self.assertEqual(sending.state, 'queued')
                wait = sending.next_attempt - dt.datetime.now()
                self.assertAlmostEqual(wait.total_seconds(),
                    RETRY_DELAYS[attempt - 1] * 60, delta=30)
        self.assertEqual(smtp.refused, MAX_ATTEMPTS - 1)
        self.assertEqual((sending.state, sending.next_attempt),
            ('failed', None))
        self.assertIn('Reports are not welcome', sending.error)
        note, = transaction.user_notifications[notifications:]
        self.assertEqual(getattr(note.user, 'id', note.user), crm.alice.id)
        self.assertIn("Monthly pipeline", note.label)
        self.assertIn('554', note.description)
        self.assertEqual(note.model, 'crm.report.sending')

        # Failed stays failed: the cron leaves it, the list shows it
        Subscription.send_due()
        run_tasks()
        self.assertEqual(Sending(sending.id).attempts, MAX_ATTEMPTS)
        with crm.as_user(crm.alice):
            self.assertEqual(
                Sending.search([('state', '=', 'failed')]), [sending])
        with crm.as_user(crm.carol):
            self.assertEqual(Sending.search([]), [])

    @with_transaction()
    def test_render_failure_then_sent(self):
        """An owner who may not compute the report is a failure with its
        reason; once fixed, the retry sends it"""
        pool = Pool()
        User = pool.get('res.user')
        Sending = pool.get('crm.report.sending')
        Subscription = pool.get('crm.report.subscription')
        smtp = smtp_server(self)
        crm = self.setup()
        subscription = self.subscribe(crm, crm.alice)
        User.write([crm.alice], {'active': False})
        Subscription.send_now([subscription])
        run_tasks()
        sending, = Sending.search([])
        self.assertEqual((sending.state, sending.attempts), ('queued', 1))
        self.assertIn("no longer active", sending.error)
        self.assertEqual(smtp.messages, [])

        User.write([crm.alice], {'active': True})
        Sending.send([sending], force=True)
        sending = Sending(sending.id)
        self.assertEqual((sending.state, sending.attempts, sending.error),
            ('sent', 2, None))
        self.assertEqual(len(smtp.messages), 1)


class ConsolidatedSubscriptionTestCase(CrmDatabaseTestCase):
    """Scheduled reports of all the owner's companies together: headquarters
    in dollars and an office in euros (2 euros a dollar)"""
    modules = ['crm_reports']
    setup = SubscriptionTestCase.setup

    def setUp(self):
        super().setUp()
        set_config(self, 'email', 'from', 'reports@crm.example.com')

    def headquarters(self):
        """The pipeline of Dunder Mifflin (setup, dollars) and of an office
        (euros); Hannah of headquarters manages both companies, Olga the
        office only"""
        pool = Pool()
        User = pool.get('res.user')
        Lead = pool.get('crm.lead')
        Company = pool.get('company.company')
        crm = self.setup()
        euro = create_currency('eur')
        add_currency_rate(euro, 2)
        office = create_company("Paris Office", currency=euro)
        office = Company(office.id)
        hannah = create_user('hannah', crm.company, group='group_crm_manager')
        User.write([hannah], {
                'companies': [('add', [office.id])],
                'email': 'hannah@example.com',
                })
        olga = create_user('olga', office, group='group_crm_manager')
        User.write([olga], {'email': 'olga@example.com'})
        party = create_party("Zut")
        start, end = last_month_days()
        with set_company(office):
            Lead.create([{
                        'name': f"Affaire {i}", 'type': 'opportunity',
                        'company': office.id, 'party': party.id,
                        'owner': olga.id, 'stage': crm.stage(stage).id,
                        'expected_revenue': Decimal(revenue),
                        'expected_close': close,
                        } for i, (stage, revenue, close) in enumerate([
                            ('Qualified', 4400, start),
                            ('Proposition', 900, None),
                            ])])
        return crm, office, User(hannah.id), User(olga.id)

    def as_member(self, user, company):
        "Act as the user in the company through the client"
        transaction = Transaction()
        stack = ExitStack()
        stack.enter_context(transaction.set_user(user.id))
        stack.enter_context(transaction.set_context(
                _check_access=True, company=company.id))
        return stack

    def consolidated(self, user, company, **values):
        "A subscription without company, made by the user"
        Subscription = Pool().get('crm.report.subscription')
        values.setdefault('name', "Group pipeline")
        values.setdefault('analysis', 'crm.report.pipeline')
        values.setdefault('users', [('add', [user.id])])
        with self.as_member(user, company):
            subscription, = Subscription.create([{
                        'company': None,
                        'currency': company.currency.id,
                        **values}])
        return Subscription(subscription.id)

    def sent_mail(self, smtp, subscription):
        "Send the subscription now; its email (one sent)"
        Subscription = Pool().get('crm.report.subscription')
        Sending = Pool().get('crm.report.sending')
        Subscription.send_now([subscription])
        run_tasks()
        sending, = Sending.search([('subscription', '=', subscription.id)])
        self.assertEqual((sending.state, sending.error), ('sent', None))
        message, = smtp.messages
        return message, email.message_from_bytes(
            message.original_content, policy=default_policy)

    @with_transaction()
    def test_headquarters_pdf_converted(self):
        """Headquarters' report without company counts both companies
        together, the office's euros in dollars at the rate"""
        pool = Pool()
        Pipeline = pool.get('crm.report.pipeline')
        smtp = smtp_server(self)
        crm, office, hannah, olga = self.headquarters()
        # Recipients of both companies: those of the owner's companies
        subscription = self.consolidated(hannah, crm.company,
            users=[('add', [hannah.id, olga.id, crm.alice.id])])
        self.assertIsNone(subscription.company)
        self.assertEqual(
            sorted(c.id for c in subscription.owner_companies),
            sorted([crm.company.id, office.id]))
        message, mail = self.sent_mail(smtp, subscription)
        self.assertEqual(sorted(message.rcpt_tos), [
                'alice@example.com', 'hannah@example.com',
                'olga@example.com'])
        self.assertIn(
            "All companies (Dunder Mifflin, Paris Office)",
            mail.get_body().get_content())
        _, data = attachment(mail)
        text = pdf_text(data)
        self.assertIn("All companies (Dunder Mifflin, Paris Office)", text)

        dollars = 1000 + 2500 + 4000 + 300 + 7000 + 650
        euros = 4400 + 900
        # The office's figures converted: 2 euros a dollar
        for amount in [2200, 450]:
            self.assertIn(money(amount), text)
        for amount in [4400, 900, euros]:
            self.assertNotIn(money(amount), text)
        self.assertIn(money(dollars + euros / 2), text)
        self.assertNotIn(money(dollars), text)
        # What the analysis counts for Hannah in all her companies
        start, end = previous_month()
        with self.as_member(hannah, crm.company), Transaction().set_context(
                company=None, _companies=[crm.company.id, office.id],
                currency=crm.company.currency.id, from_date=start,
                to_date=end, period='month'):
            rows = Pipeline.search([])
            self.assertEqual(
                sum(r.expected for r in rows), dollars + euros / 2)
            self.assertEqual({r.company for r in rows}, {crm.company, office})
        for row in rows:
            self.assertIn(money(row.expected), text)

    @with_transaction()
    def test_office_counts_its_company_only(self):
        """An office's report without company counts the office only: the
        companies are the owner's; another company cannot be set"""
        pool = Pool()
        Subscription = pool.get('crm.report.subscription')
        smtp = smtp_server(self)
        crm, office, hannah, olga = self.headquarters()
        # Another company: the company rule refuses it (and the owner's
        # companies would not validate)
        with self.as_member(olga, office):
            with self.assertRaises(AccessError):
                Subscription.create([{
                            'name': "Theirs", 'company': crm.company.id,
                            'currency': office.currency.id,
                            'analysis': 'crm.report.pipeline',
                            'emails': 'olga@example.com'}])
        # A recipient of a company that is not hers
        with self.assertRaises(ValidationError):
            self.consolidated(olga, office,
                users=[('add', [olga.id, crm.alice.id])])
        subscription = self.consolidated(olga, office, format='csv')
        self.assertEqual(subscription.currency, office.currency)
        _, mail = self.sent_mail(smtp, subscription)
        self.assertIn("All companies (Paris Office)",
            mail.get_body().get_content())
        _, data = attachment(mail)
        rows = list(csv.DictReader(io.StringIO(data.decode('utf-8-sig'))))
        self.assertEqual(
            sorted((r['Stage'], r['Salesperson'], r['Expected Revenue'])
                for r in rows),
            [("Proposition", "Olga", "900.00"),
                ("Qualified", "Olga", "4400.00")])

    @with_transaction()
    def test_consolidated_visible_to(self):
        """A report without company: its owner sees it, and managers who
        see all of its owner's companies; not an office's manager"""
        pool = Pool()
        User = pool.get('res.user')
        Subscription = pool.get('crm.report.subscription')
        crm, office, hannah, olga = self.headquarters()
        group = self.consolidated(hannah, crm.company)
        offices = self.consolidated(olga, office, name="Office pipeline")
        with self.as_member(hannah, crm.company):
            # Her company filter shows the current company only
            self.assertEqual(Subscription.search([]), [group])
        User.write([hannah], {'company_filter': 'all'})
        with self.as_member(hannah, crm.company):
            self.assertEqual(set(Subscription.search([])), {group, offices})
        with self.as_member(olga, office):
            self.assertEqual(Subscription.search([]), [offices])
            with self.assertRaises(AccessError):
                Subscription.read([group.id], ['name'])
        with crm.as_user(crm.manager):
            self.assertEqual(Subscription.search([]), [])
        # A manager of both companies who sees both
        User.write([crm.manager], {
                'companies': [('add', [office.id])],
                'company_filter': 'all'})
        with crm.as_user(crm.manager):
            self.assertEqual(
                set(Subscription.search([])), {group, offices})
        # A salesperson sees only their own
        with crm.as_user(crm.alice):
            self.assertEqual(Subscription.search([]), [])
