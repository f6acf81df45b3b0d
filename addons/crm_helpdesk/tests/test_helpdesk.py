"Tickets: numbering, assignment, SLA on business hours, answers by email"
import datetime as dt
import email
import json
from email.policy import default as default_policy
from unittest.mock import patch

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import (
    CrmDatabaseTestCase, create_party, create_team, create_user,
    deliver_mail, smtp_server)
from trytond.modules.company.tests import create_company, set_company

# Monday 2026-03-02 in Europe/Berlin (UTC+1 in winter)
MONDAY = dt.datetime(2026, 3, 2)


def utc(day, hour, minute=0):
    "Naive UTC of a Berlin winter time: day offset from MONDAY"
    return MONDAY + dt.timedelta(days=day, hours=hour - 1, minutes=minute)


class HelpdeskSetup:
    """A company, a support team on Berlin office hours (Mon-Fri 9-17),
    another team, their agents, a manager and a customer"""

    def __init__(self):
        pool = Pool()
        Calendar = pool.get('crm.working_calendar')
        ModelData = pool.get('ir.model.data')
        User = pool.get('res.user')
        self.company = create_company()
        helpdesk_user = ModelData.get_id('crm_helpdesk', 'group_helpdesk_user')
        helpdesk_manager = ModelData.get_id(
            'crm_helpdesk', 'group_helpdesk_manager')
        self.manager = create_user('hd_manager', self.company)
        self.ann = create_user('ann', self.company)
        self.ben = create_user('ben', self.company)
        self.zoe = create_user('zoe', self.company)
        User.write([self.ann, self.ben, self.zoe], {
                'groups': [('add', [helpdesk_user])]})
        User.write([self.manager], {'groups': [('add', [helpdesk_manager])]})
        with set_company(self.company):
            self.calendar, = Calendar.create([{
                        'name': "Berlin office",
                        'company': self.company.id,
                        'timezone': 'Europe/Berlin',
                        'hours': [('create', [{
                                        'weekday': str(d),
                                        'start': dt.time(9),
                                        'end': dt.time(17),
                                        } for d in range(5)])],
                        }])
        self.support = create_team(
            "Support", self.company, [self.ann, self.ben],
            leader=self.manager, calendar=self.calendar.id,
            helpdesk_assignment='least_open')
        self.other = create_team(
            "Other Support", self.company, [self.zoe],
            helpdesk_assignment='round_robin')
        self.customer = create_party(
            "Customer Ltd", emails=['help@customer.example.com'])

    def ticket(self, **values):
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        values.setdefault('company', self.company.id)
        values.setdefault('subject', "The printer does not print")
        values.setdefault('team', self.support.id)
        values.setdefault('party', self.customer.id)
        ticket, = Ticket.create([values])
        return Ticket(ticket.id)

    def sla(self, **values):
        pool = Pool()
        SLA = pool.get('helpdesk.sla')
        values.setdefault('name', "Standard")
        values.setdefault('team', self.support.id)
        values.setdefault('first_response_time', dt.timedelta(hours=2))
        values.setdefault('resolution_time', dt.timedelta(hours=16))
        sla, = SLA.create([values])
        return sla

    def as_user(self, user):
        return Transaction().set_user(user.id), Transaction().set_context(
            _check_access=True, company=self.company.id)


def stage(kind):
    pool = Pool()
    Stage = pool.get('helpdesk.stage')
    stage, = Stage.search([('kind', '=', kind), ('team', '=', None)],
        limit=1)
    return stage


class HelpdeskTestCase(CrmDatabaseTestCase):
    "Test helpdesk tickets"
    modules = ['crm_helpdesk']

    def chat(self, ticket, audience=None):
        pool = Pool()
        Message = pool.get('ir.chat.message')
        domain = [('channel.resource', '=', str(ticket))]
        if audience:
            domain.append(('audience', '=', audience))
        return Message.search(domain, order=[('id', 'ASC')])

    # Tickets ---------------------------------------------------------------

    @with_transaction()
    def test_number_stage_and_dates(self):
        "A new ticket gets a number, the New stage and its opening date"
        hd = HelpdeskSetup()
        with set_company(hd.company):
            first = hd.ticket()
            second = hd.ticket(subject="Another one")
        self.assertRegex(first.number, r'^TCK\d{5}$')
        self.assertNotEqual(first.number, second.number)
        self.assertEqual(first.kind, 'new')
        self.assertTrue(first.opened)
        self.assertTrue(first.token)
        self.assertNotEqual(first.token, second.token)
        self.assertEqual(first.rec_name,
            f'{first.number}: The printer does not print')

    @with_transaction()
    def test_assignment_fewest_open_tickets(self):
        "The member with the fewest open tickets gets the new one"
        hd = HelpdeskSetup()
        with set_company(hd.company):
            hd.ticket(user=hd.ann.id)
            hd.ticket(user=hd.ann.id)
            third = hd.ticket()
            fourth = hd.ticket()
            fifth = hd.ticket()
        self.assertEqual(third.user, hd.ben)
        self.assertEqual(fourth.user, hd.ben)
        # Ann 2, Ben 2: the lowest id first
        self.assertEqual(fifth.user, min([hd.ann, hd.ben], key=lambda u: u.id))

    @with_transaction()
    def test_assignment_round_robin_and_manual(self):
        "Round robin hands out in turn; manual leaves the ticket alone"
        pool = Pool()
        Team = pool.get('crm.team')
        hd = HelpdeskSetup()
        Team.write([hd.other], {'members': [('add', [hd.ann.id])]})
        with set_company(hd.company):
            tickets = [hd.ticket(team=hd.other.id) for _ in range(4)]
            users = [t.user for t in tickets]
            self.assertEqual(users[0], users[2])
            self.assertEqual(users[1], users[3])
            self.assertNotEqual(users[0], users[1])
            Team.write([hd.other], {'helpdesk_assignment': 'manual'})
            self.assertIsNone(hd.ticket(team=hd.other.id).user)

    # SLA -------------------------------------------------------------------

    @with_transaction()
    def test_sla_deadlines_in_business_hours(self):
        "Deadlines count office hours only: Friday 16:00 + 2 h is Monday"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        hd = HelpdeskSetup()
        hd.sla()
        with set_company(hd.company), patch(
                'crm_helpdesk.ticket._now', return_value=utc(4, 16)):
            ticket = hd.ticket(opened=utc(4, 16))  # Friday 16:00
        self.assertEqual(ticket.sla.name, "Standard")
        self.assertEqual(ticket.response_deadline, utc(7, 10))  # Mon 10:00
        # 16 h: Friday 1 h, Monday 8 h, Tuesday 7 h -> Tuesday 16:00
        self.assertEqual(ticket.resolution_deadline, utc(8, 16))
        self.assertEqual(ticket.sla_status, 'on_time')
        # At risk from 80 % of 2 h = 96 min: Monday 9:36
        self.assertEqual(ticket.sla_check, utc(7, 9, 36))
        self.assertEqual(Ticket.search([('sla_status', '=', 'on_time')]),
            [ticket])

    @with_transaction()
    def test_sla_policy_by_type_priority_category(self):
        "The first policy that fits the type (or a parent), priority, customer"
        pool = Pool()
        Type = pool.get('helpdesk.type')
        Category = pool.get('party.category')
        Party = pool.get('party.party')
        Ticket = pool.get('helpdesk.ticket')
        hd = HelpdeskSetup()
        hardware, = Type.create([{'name': "Hardware"}])
        printer, = Type.create([{'name': "Printer", 'parent': hardware.id}])
        vip, = Category.create([{'name': "VIP"}])
        hd.sla(name="VIP", category=vip.id, sequence=1,
            first_response_time=dt.timedelta(minutes=30))
        hd.sla(name="Urgent hardware", type=hardware.id, priority='3',
            sequence=2, first_response_time=dt.timedelta(hours=1))
        hd.sla(name="Standard", sequence=3)
        with set_company(hd.company):
            ticket = hd.ticket(type=printer.id)
            self.assertEqual(ticket.sla.name, "Standard")
            Ticket.write([ticket], {'priority': '3'})
            self.assertEqual(ticket.sla.name, "Urgent hardware")
            Party.write([hd.customer], {'categories': [('add', [vip.id])]})
            Ticket.write([ticket], {'priority': '2'})
            self.assertEqual(ticket.sla.name, "VIP")
            other = hd.ticket(team=hd.other.id)
            self.assertIsNone(other.sla)
            self.assertIsNone(other.sla_status)

    @with_transaction()
    def test_sla_paused_while_waiting_on_customer(self):
        "Time waiting on the customer does not count towards resolution"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        hd = HelpdeskSetup()
        hd.sla()
        now = patch('crm_helpdesk.ticket._now')
        with set_company(hd.company), now as clock:
            clock.return_value = utc(0, 9)
            ticket = hd.ticket(opened=utc(0, 9))  # Monday 9:00
            self.assertEqual(ticket.resolution_deadline, utc(1, 17))
            clock.return_value = utc(0, 11)
            Ticket.write([ticket], {'stage': stage('waiting').id})
            self.assertEqual(ticket.sla_status, 'paused')
            self.assertIsNone(ticket.resolution_deadline)
            self.assertIsNone(ticket.sla_check)
            # Back on Tuesday 11:00: 8 working hours waited
            clock.return_value = utc(1, 11)
            Ticket.write([ticket], {'stage': stage('in_progress').id})
            self.assertEqual(ticket.sla_paused, dt.timedelta(hours=8))
            self.assertEqual(ticket.resolution_deadline, utc(2, 17))
            self.assertIsNone(ticket.paused_since)
            clock.return_value = utc(1, 12)
            Ticket.solve([ticket])
            self.assertEqual(ticket.solved, utc(1, 12))
            self.assertEqual(ticket.closed, utc(1, 12))
            self.assertEqual(ticket.sla_status, 'breached')  # no response

    @with_transaction()
    def test_cron_escalates_once_per_level(self):
        """At risk: the assignee and the leader are told; breached: priority
        raised and reassigned to the leader; running it again does nothing"""
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        hd = HelpdeskSetup()
        hd.sla(raise_priority=True, reassign='leader')
        with set_company(hd.company), patch(
                'crm_helpdesk.ticket._now', return_value=utc(0, 9)):
            ticket = hd.ticket(opened=utc(0, 9), user=hd.ann.id)
            untouched = hd.ticket(opened=utc(0, 10), subject="Later")

        def notified(user):
            return len([n for n in Transaction().user_notifications
                    if n.user == user])

        with set_company(hd.company):
            self.assertEqual(Ticket.check_sla(now=utc(0, 10)), [])
            due = Ticket.check_sla(now=utc(0, 10, 40))  # 100 min: at risk
            self.assertEqual(due, [ticket])
            self.assertEqual(ticket.sla_status, 'at_risk')
            self.assertEqual(ticket.sla_escalated, 'at_risk')
            self.assertEqual(ticket.priority, '1')
            self.assertEqual(notified(hd.ann), 1)
            self.assertEqual(notified(hd.manager), 1)
            notes = self.chat(ticket, 'internal')
            self.assertEqual(len(notes), 1)

            Ticket.check_sla(now=utc(0, 10, 50))
            self.assertEqual(notified(hd.ann), 1)

            Ticket.check_sla(now=utc(0, 11, 1))  # 2 h passed: breached
            self.assertEqual(ticket.sla_status, 'breached')
            self.assertEqual(ticket.sla_escalated, 'breached')
            self.assertEqual(ticket.priority, '2')
            self.assertEqual(ticket.user, hd.manager)
            self.assertEqual(notified(hd.ann), 2)
            self.assertEqual(len(self.chat(ticket, 'internal')), 2)
            self.assertIn(hd.manager.rec_name,
                self.chat(ticket, 'internal')[-1].content)

            # Twice: nothing twice
            Ticket.check_sla(now=utc(0, 11, 5))
            Ticket.check_sla(now=utc(0, 11, 10))
            self.assertEqual(ticket.priority, '2')
            self.assertEqual(notified(hd.ann), 2)
            self.assertEqual(len(self.chat(ticket, 'internal')), 2)
            self.assertEqual(untouched.sla_status, 'on_time')  # due 11:36

    @with_transaction()
    def test_escalation_notifies_once_per_user(self):
        "The leader gets one notification for all tickets of a cron run"
        hd = HelpdeskSetup()
        hd.sla()
        with set_company(hd.company), patch(
                'crm_helpdesk.ticket._now', return_value=utc(0, 9)):
            tickets = [hd.ticket(opened=utc(0, 9), user=hd.ann.id)
                for _ in range(3)]
        notifications = Transaction().user_notifications
        before = len(notifications)
        with set_company(hd.company):
            tickets[0].__class__.check_sla(now=utc(0, 10, 40))
        new = notifications[before:]
        leader, = [n for n in new if n.user == hd.manager]
        self.assertIn('3 tickets', leader.label)
        self.assertEqual(sorted(json.loads(leader.records)),
            sorted(t.id for t in tickets))
        self.assertEqual(len([n for n in new if n.user == hd.ann]), 1)

    @with_transaction()
    def test_sla_policy_refuses_nonsense(self):
        "Targets must be positive, the at-risk threshold a percentage"
        hd = HelpdeskSetup()
        with self.assertRaises(UserError):
            hd.sla(first_response_time=dt.timedelta())
        with self.assertRaises(UserError):
            hd.sla(at_risk=150)

    # Answers and emails ----------------------------------------------------

    def configure(self, **values):
        pool = Pool()
        Configuration = pool.get('helpdesk.configuration')
        Template = pool.get('helpdesk.template')
        created, solved = Template.create([{
                    'name': "Received",
                    'body': "Hello ${contact}, we received your request "
                    "${number}: ${subject}.",
                    }, {
                    'name': "Solved",
                    'body': "Your request ${number} is solved. Rate our "
                    "answer: ${status_url}",
                    }])
        config_ = Configuration(1)
        config_.support_address = 'support@example.com'
        config_.support_name = "Example Support"
        config_.template_created = created
        config_.template_solved = solved
        for name, value in values.items():
            setattr(config_, name, value)
        config_.save()

    def received(self, smtp):
        "The messages the SMTP server got, parsed"
        return [email.message_from_bytes(
                    e.original_content, policy=default_policy)
            for e in smtp.messages]

    @with_transaction()
    def test_answer_emails_customer_and_counts_as_first_response(self):
        """Creating a ticket sends the acknowledgement; an answer is mailed
        with the ticket reference, a reply-to token and the status link;
        an internal note is not"""
        pool = Pool()
        Activity = pool.get('crm.activity')
        smtp = smtp_server(self)
        hd = HelpdeskSetup()
        self.configure()
        with set_company(hd.company):
            ticket = hd.ticket(email='help@customer.example.com')
            with Transaction().set_user(hd.ann.id):
                ticket.post_answer("Please restart the printer.")
                ticket.post_answer("Customer is grumpy", audience='internal')
        deliver_mail()
        messages = self.received(smtp)
        self.assertEqual(len(messages), 2)
        ack, answer = messages
        self.assertIn("we received your request", ack.get_content())
        self.assertEqual(ack['Auto-Submitted'], 'auto-replied')
        self.assertEqual(answer['To'], 'help@customer.example.com')
        self.assertEqual(answer['Subject'],
            f'[{ticket.number}] The printer does not print')
        self.assertRegex(answer['Reply-To'],
            r'^support\+\d+\.[0-9a-f]{12}@example\.com$')
        self.assertEqual(answer['In-Reply-To'], ack['Message-ID'])
        body = answer.get_content()
        self.assertIn("Please restart the printer.", body)
        self.assertIn('/helpdesk/status/', body)
        self.assertNotIn("grumpy", body + ack.get_content())
        self.assertTrue(ticket.first_response)
        public = self.chat(ticket, 'public')
        self.assertEqual(public[-1].reference,
            answer['Message-ID'].strip('<>'))
        # The party's history: one email activity per public message
        history = Activity.search([
                ('origin', '=', str(ticket)), ('type', '=', 'email')])
        self.assertEqual(len(history), 2)
        self.assertEqual({a.state for a in history}, {'done'})
        self.assertEqual({a.party for a in history}, {hd.customer})

    @with_transaction()
    def test_solved_asks_for_rating(self):
        "Solving sends the solved notice with the signed status link"
        smtp = smtp_server(self)
        hd = HelpdeskSetup()
        self.configure(template_created=None)
        with set_company(hd.company):
            ticket = hd.ticket(email='help@customer.example.com')
            ticket.__class__.solve([ticket])
        deliver_mail()
        notice, = self.received(smtp)
        self.assertIn(f"Your request {ticket.number} is solved",
            notice.get_content())
        self.assertIn(f'/helpdesk/status/{ticket.id}/', notice.get_content())

    @with_transaction()
    def test_status_links_cannot_be_altered(self):
        "A link works for its ticket until it expires, and not altered"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        hd = HelpdeskSetup()
        with set_company(hd.company):
            ticket = hd.ticket()
            other = hd.ticket()
        url = ticket.status_url()
        ticket_id, expires, signature = url.rsplit('/', 3)[1:]
        ticket_id, expires = int(ticket_id), int(expires)
        self.assertEqual(Ticket.from_link(ticket_id, expires, signature),
            ticket)
        self.assertIsNone(Ticket.from_link(other.id, expires, signature))
        self.assertIsNone(Ticket.from_link(ticket_id, expires + 1, signature))
        altered = ('0' if signature[0] != '0' else '1') + signature[1:]
        self.assertIsNone(Ticket.from_link(ticket_id, expires, altered))
        self.assertIsNone(Ticket.from_link(ticket_id, expires, signature,
                now=dt.datetime.utcfromtimestamp(expires + 1)))
        self.assertEqual(ticket.reply_token().split('.')[0], str(ticket.id))
        self.assertEqual(Ticket.from_reply_token(ticket.reply_token()),
            ticket)
        self.assertIsNone(Ticket.from_reply_token(
                f'{other.id}.' + ticket.reply_token().split('.')[1]))

    # Canned responses ------------------------------------------------------

    @with_transaction()
    def test_canned_response_placeholders(self):
        "A canned response fills in the ticket; unknown placeholders refused"
        pool = Pool()
        Template = pool.get('helpdesk.template')
        hd = HelpdeskSetup()
        template, = Template.create([{
                    'name': "Restart",
                    'body': "Dear ${contact}, about ${number} (${agent}): "
                    "restart it. It costs $$0.",
                    }])
        with set_company(hd.company):
            ticket = hd.ticket(user=hd.ben.id)
        self.assertEqual(ticket.render(template),
            f"Dear Customer Ltd, about {ticket.number} (Ben): restart it. "
            "It costs $0.")
        with self.assertRaises(UserError) as context:
            Template.create([{'name': "Bad", 'body': "Hi ${customer_name}"}])
        self.assertIn('customer_name', context.exception.message)

    @with_transaction()
    def test_reply_wizard_with_template_then_solved(self):
        "The agent answers with a canned response and marks it solved"
        pool = Pool()
        Template = pool.get('helpdesk.template')
        Reply = pool.get('helpdesk.ticket.reply', type='wizard')
        hd = HelpdeskSetup()
        template, = Template.create([{
                    'name': "Fixed", 'body': "Fixed for ${contact}."}])
        with set_company(hd.company):
            ticket = hd.ticket()
            with Transaction().set_context(
                    active_model='helpdesk.ticket', active_id=ticket.id,
                    active_ids=[ticket.id]):
                session_id, _, _ = Reply.create()
                reply = Reply(session_id)
                reply.start.ticket = ticket
                reply.start.template = template
                reply.start.content = None
                reply.start.on_change_template()
                self.assertEqual(reply.start.content,
                    "Fixed for Customer Ltd.")
                reply.start.audience = 'public'
                reply.start.then = 'solved'
                reply.transition_send()
        self.assertEqual(ticket.kind, 'solved')
        self.assertEqual(self.chat(ticket, 'public')[-1].content,
            "Fixed for Customer Ltd.")
        self.assertTrue(ticket.first_response)

    # Merge -----------------------------------------------------------------

    @with_transaction()
    def test_merge_duplicates(self):
        "The duplicate's messages move over; it is cancelled with a link"
        pool = Pool()
        Attachment = pool.get('ir.attachment')
        Ticket = pool.get('helpdesk.ticket')
        hd = HelpdeskSetup()
        with set_company(hd.company):
            kept = hd.ticket()
            duplicate = hd.ticket(subject="Printer still broken")
            duplicate.post_answer("Note on the duplicate", audience='internal')
            Attachment.create([{'resource': str(duplicate), 'name': 'a.txt',
                        'type': 'data', 'data': b'log'}])
            duplicate.merge_into(kept)
        self.assertEqual(duplicate.merged_into, kept)
        self.assertEqual(duplicate.kind, 'cancelled')
        self.assertEqual(kept.merged, (duplicate,))
        contents = [m.content for m in self.chat(kept)]
        self.assertIn("Note on the duplicate", contents)
        self.assertTrue(any(duplicate.number in c for c in contents))
        self.assertEqual(Attachment.search_count(
                [('resource', '=', str(kept))]), 1)
        with self.assertRaises(UserError):
            kept.merge_into(kept)
        with self.assertRaises(UserError):
            Ticket.delete([kept])

    # Access ----------------------------------------------------------------

    @with_transaction()
    def test_agent_sees_only_team_tickets(self):
        "An agent cannot read nor write another team's ticket"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        SLA = pool.get('helpdesk.sla')
        hd = HelpdeskSetup()
        with set_company(hd.company):
            ours = hd.ticket()
            theirs = hd.ticket(team=hd.other.id, subject="Not yours")
        user_ctx, access_ctx = hd.as_user(hd.ann)
        with user_ctx, access_ctx:
            self.assertEqual(Ticket.search([]), [ours])
            with self.assertRaises(AccessError):
                Ticket.read([theirs.id], ['subject'])
            with self.assertRaises(AccessError):
                Ticket.write([Ticket(theirs.id)], {'priority': '3'})
            Ticket.write([Ticket(ours.id)], {'priority': '3'})
            with self.assertRaises(AccessError):
                hd.sla()
            with self.assertRaises(AccessError):
                SLA.create([{'name': "Mine", 'team': hd.support.id,
                            'first_response_time': dt.timedelta(hours=1),
                            'resolution_time': dt.timedelta(hours=2)}])
        user_ctx, access_ctx = hd.as_user(hd.manager)
        with user_ctx, access_ctx:
            self.assertEqual(len(Ticket.search([])), 2)

    @with_transaction()
    def test_party_history_shows_tickets(self):
        "The party lists its tickets"
        hd = HelpdeskSetup()
        with set_company(hd.company):
            ticket = hd.ticket()
        self.assertEqual(hd.customer.tickets, (ticket,))


del CrmDatabaseTestCase
