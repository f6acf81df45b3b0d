"Analysis: tickets per week, SLA success rate, times and backlog per team"
import datetime as dt
from contextlib import ExitStack
from unittest.mock import patch

from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase
from trytond.modules.company.tests import create_company, set_company

from .test_helpdesk import MONDAY, HelpdeskSetup, stage, utc

WEEK1 = MONDAY.date()                       # 2026-03-02, ISO 2026-W10
WEEK2 = WEEK1 + dt.timedelta(weeks=1)
WEEK3 = WEEK1 + dt.timedelta(weeks=2)
# "Now" for the SLA: Wednesday of the second week, 10:45 in Berlin
NOW = utc(9, 10, 45)


class AnalysisSetup(HelpdeskSetup):
    """Tickets over two weeks (and an older one) in both teams; the
    Support team has an SLA of 2 h to answer, 16 h to solve (office hours)

    week 1: T1 answered in 1 h, solved after 24 h, on time
            T2 answered in 4 h (late), solved in week 2 after 168 h
            T5 cancelled the next day, never answered
            O1 (Other Support, no SLA) answered in 2 h, solved after 24 h
    week 2: T3 answered in 30 min, open; T6 not answered, at risk
            O2 open, not answered
    before: T0 opened the week before, never answered, breached"""

    def __init__(self):
        super().__init__()
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        Type = pool.get('helpdesk.type')
        self.hardware, = Type.create([{'name': "Hardware"}])
        self.printer, = Type.create([{
                    'name': "Printer", 'parent': self.hardware.id}])
        self.sla()
        with set_company(self.company), patch(
                'crm_helpdesk.ticket._now', return_value=NOW):
            self.t0 = self.dated(utc(-7, 10))
            self.t1 = self.dated(utc(0, 10), utc(0, 11), utc(1, 10))
            self.t2 = self.dated(utc(0, 12), utc(0, 16), utc(7, 12))
            self.t5 = self.ticket(opened=utc(1, 9))
            Ticket.write([self.t5], {'stage': stage('cancelled').id})
            Ticket.write([self.t5], {'closed': utc(2, 9)})
            self.o1 = self.dated(utc(3, 10), utc(3, 12), utc(4, 10),
                team=self.other.id)
            self.t3 = self.dated(utc(9, 10), utc(9, 10, 30),
                type=self.printer.id)
            self.t6 = self.dated(utc(9, 9))
            self.o2 = self.dated(utc(8, 10), team=self.other.id)

    def dated(self, opened, first_response=None, solved=None, **values):
        "A ticket opened, answered and solved at those times"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        ticket = self.ticket(opened=opened, **values)
        if solved:
            Ticket.solve([ticket])
        # The dates are read-only in the client, not for the code
        Ticket.write([ticket], {
                'opened': opened,
                'first_response': first_response,
                'solved': solved,
                'closed': solved,
                })
        return Ticket(ticket.id)


class AnalysisTestCase(CrmDatabaseTestCase):
    "Test the helpdesk analysis"
    modules = ['crm_helpdesk']

    def weeks(self, hd, **context):
        pool = Pool()
        Week = pool.get('helpdesk.ticket.analysis.week')
        context.setdefault('from_date', WEEK1)
        context.setdefault('to_date', WEEK3 + dt.timedelta(days=4))
        with Transaction().set_context(context, company=hd.company.id):
            return {w.week: w for w in Week.search([])}

    def assertWeek(self, week, **expected):
        for name, value in expected.items():
            with self.subTest(week=week.iso_week, field=name):
                if isinstance(value, float):
                    self.assertAlmostEqual(getattr(week, name), value, 3)
                else:
                    self.assertEqual(getattr(week, name), value)

    @with_transaction()
    def test_sla_statuses_of_the_data(self):
        "The tickets of the set-up have the SLA statuses the figures expect"
        hd = AnalysisSetup()
        self.assertEqual(
            [t.sla_status for t in [hd.t0, hd.t1, hd.t2, hd.t3, hd.t6]],
            ['breached', 'on_time', 'breached', 'on_time', 'at_risk'])
        self.assertIsNone(hd.t5.sla_status)
        self.assertIsNone(hd.o1.sla_status)

    @with_transaction()
    def test_weeks_all_teams(self):
        "Opened, solved, backlog, SLA rate and average hours of each week"
        hd = AnalysisSetup()
        weeks = self.weeks(hd)
        self.assertEqual(list(weeks), [WEEK1, WEEK2, WEEK3])
        week1, week2, week3 = weeks.values()
        self.assertEqual(week1.iso_week, '2026-W10')
        self.assertEqual(week1.rec_name, '2026-W10')
        # Backlog: T0, T2 at the end of week 1; then T0, T3, T6, O2
        self.assertWeek(week1, opened=4, solved=2, backlog=2,
            sla_met=1, sla_closed=1, sla_rate=100.0,
            first_response_hours=7 / 3, resolution_hours=24.0)
        self.assertWeek(week2, opened=3, solved=1, backlog=4,
            sla_met=0, sla_closed=1, sla_rate=0.0,
            first_response_hours=0.5, resolution_hours=168.0)
        # A quiet week: nothing happens, the backlog stays
        self.assertWeek(week3, opened=0, solved=0, backlog=4,
            sla_met=0, sla_closed=0, sla_rate=None,
            first_response_hours=None, resolution_hours=None)

    @with_transaction()
    def test_weeks_of_a_team_and_type(self):
        "The context's team, or type with its sub-types, filters the weeks"
        hd = AnalysisSetup()
        week1, week2, _ = self.weeks(hd, team=hd.support.id).values()
        self.assertWeek(week1, opened=3, solved=1, backlog=2,
            sla_rate=100.0, first_response_hours=2.5, resolution_hours=24.0)
        self.assertWeek(week2, opened=2, solved=1, backlog=3,
            sla_rate=0.0, first_response_hours=0.5, resolution_hours=168.0)

        week1, week2, _ = self.weeks(hd, type=hd.hardware.id).values()
        self.assertWeek(week1, opened=0, backlog=0)
        self.assertWeek(week2, opened=1, backlog=1, first_response_hours=0.5)

    @with_transaction()
    def test_weeks_period(self):
        "Whole ISO weeks of the period; twelve up to this one by default"
        pool = Pool()
        Date = pool.get('ir.date')
        hd = AnalysisSetup()
        # A Wednesday to a Tuesday: both weeks, whole
        weeks = self.weeks(hd, from_date=WEEK1 + dt.timedelta(days=2),
            to_date=WEEK2 + dt.timedelta(days=1))
        self.assertEqual(list(weeks), [WEEK1, WEEK2])
        self.assertEqual(weeks[WEEK1].opened, 4)

        weeks = self.weeks(hd, from_date=None, to_date=None)
        today = Date.today()
        self.assertEqual(len(weeks), 12)
        self.assertEqual(
            max(weeks), today - dt.timedelta(days=today.weekday()))

    @with_transaction()
    def test_backlog_per_team(self):
        "The open tickets of each team now, at risk and breached"
        pool = Pool()
        Team = pool.get('helpdesk.ticket.analysis.team')
        hd = AnalysisSetup()
        with Transaction().set_context(company=hd.company.id):
            rows = Team.search([])
            self.assertEqual(
                [(r.team, r.backlog, r.at_risk, r.breached) for r in rows],
                [(hd.support, 3, 1, 1), (hd.other, 1, 0, 0)])
            self.assertEqual(rows[0].rec_name, "Support")

            with Transaction().set_context(type=hd.hardware.id):
                rows = Team.search([])
            self.assertEqual(
                [(r.team, r.backlog) for r in rows], [(hd.support, 1)])

    @with_transaction()
    def test_other_company_is_not_counted(self):
        "Only the tickets of the context's company count"
        pool = Pool()
        Week = pool.get('helpdesk.ticket.analysis.week')
        hd = AnalysisSetup()
        other = create_company("Other Company", currency=hd.company.currency)
        with set_company(other), patch(
                'crm_helpdesk.ticket._now', return_value=NOW):
            hd.ticket(company=other.id, team=None, opened=utc(0, 10))
            with Transaction().set_context(from_date=WEEK1, to_date=WEEK1):
                week, = Week.search([])
            self.assertEqual((week.opened, week.backlog), (1, 1))
        with set_company(hd.company):
            week, = self.weeks(hd, to_date=WEEK1).values()
            self.assertEqual(week.opened, 4)

    @with_transaction()
    def test_access_managers_only(self):
        "Managers read the figures, agents do not"
        pool = Pool()
        Week = pool.get('helpdesk.ticket.analysis.week')
        Team = pool.get('helpdesk.ticket.analysis.team')
        hd = AnalysisSetup()
        context = {'from_date': WEEK1, 'to_date': WEEK2}
        user_ctx, access_ctx = hd.as_user(hd.manager)
        with user_ctx, access_ctx, Transaction().set_context(context):
            self.assertEqual(
                [w.opened for w in Week.search([])], [4, 3])
            self.assertEqual(len(Team.search([])), 2)
        user_ctx, access_ctx = hd.as_user(hd.ann)
        with user_ctx, access_ctx, Transaction().set_context(context):
            for Model in [Week, Team]:
                with self.assertRaises(AccessError):
                    Model.search([])

    @with_transaction()
    def test_figures_of_the_readable_tickets(self):
        """The figures count the tickets the reader may read: a manager all
        of them, an agent (given the analyses) their own and their team's"""
        pool = Pool()
        Access = pool.get('ir.model.access')
        Group = pool.get('res.group')
        User = pool.get('res.user')
        Week = pool.get('helpdesk.ticket.analysis.week')
        Team = pool.get('helpdesk.ticket.analysis.team')
        hd = AnalysisSetup()
        analysts, = Group.create([{'name': "Helpdesk Analysts"}])
        Access.create([{'model': m.__name__, 'group': analysts.id,
                    'perm_read': True} for m in [Week, Team]])
        User.write([hd.ann, hd.zoe], {'groups': [('add', [analysts.id])]})

        def figures(user=None, **context):
            context.update(from_date=WEEK1, to_date=WEEK2)
            with ExitStack() as stack:
                if user:
                    for manager in hd.as_user(user):
                        stack.enter_context(manager)
                stack.enter_context(Transaction().set_context(
                        context, company=hd.company.id))
                return ([(w.week, w.opened, w.solved, w.backlog, w.sla_met,
                            w.sla_closed, w.first_response_hours,
                            w.resolution_hours) for w in Week.search([])],
                    [(r.team.id, r.backlog, r.at_risk, r.breached)
                        for r in Team.search([])])

        everything = figures()
        weeks, teams = figures(hd.manager)
        self.assertEqual((weeks, teams), everything)
        self.assertEqual([w[1] for w in weeks], [4, 3])
        self.assertEqual(len(teams), 2)
        # ann and zoe read their team's tickets: the figures of their team
        for agent, team in [(hd.ann, hd.support), (hd.zoe, hd.other)]:
            with self.subTest(agent=agent.login):
                self.assertEqual(figures(agent), figures(team=team.id))
                self.assertNotEqual(figures(agent), everything)
        weeks, teams = figures(hd.zoe)
        self.assertEqual([w[1] for w in weeks], [1, 1])
        self.assertEqual(teams, [(hd.other.id, 1, 0, 0)])


del CrmDatabaseTestCase
