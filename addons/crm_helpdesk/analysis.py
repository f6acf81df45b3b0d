"""Figures of the helpdesk for the managers' graphs: tickets per ISO week
and the open tickets of each team, computed in SQL (table_query) on the
tickets the reader may read"""
import datetime as dt

from sql import Column, Literal, Null, Values, With
from sql.aggregate import Count, Min, Sum
from sql.conditionals import Case, Coalesce, NullIf

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval, If
from trytond.transaction import Transaction

from crm_core.sqltools import hours_between, readable_table, week_start

# Weeks shown when the context gives no start
WEEKS = 12


def monday(date):
    return date - dt.timedelta(days=date.weekday())


def week_id(date):
    "A stable positive id per week: the Monday's day number, in weeks"
    return (monday(date).toordinal() - 1) // 7 + 1


def ticket_filter(ticket):
    """The condition on the tickets of the analysis: those of the context's
    company (one of the user's), team and type (or its sub-types)"""
    pool = Pool()
    User = pool.get('res.user')
    Type = pool.get('helpdesk.type')
    context = Transaction().context
    company = context.get('company')
    if company is None or company not in User.get_companies():
        return Literal(False)
    where = ticket.company == company
    if context.get('team'):
        where &= ticket.team == context['team']
    if context.get('type'):
        types = Type.search([('parent', 'child_of', [context['type']])],
            query=True)
        where &= ticket.type.in_(types)
    return where


def tickets():
    """(table, from, where): the tickets of the analysis (ticket_filter)
    that the reader may read: all the company's for a manager, their own
    and their teams' for an agent (the rules of helpdesk.ticket)"""
    ticket, tickets, where = readable_table('helpdesk.ticket')
    return ticket, tickets, where & ticket_filter(ticket)


class Context(ModelView):
    __name__ = 'helpdesk.ticket.analysis.context'
    __string__ = "Helpdesk Analysis Context"

    from_date = fields.Date(
        "From Date",
        domain=[If(Eval('from_date') & Eval('to_date'),
                ('from_date', '<=', Eval('to_date')), ())],
        help="The analysis starts with the week of this day.")
    to_date = fields.Date(
        "To Date",
        domain=[If(Eval('from_date') & Eval('to_date'),
                ('to_date', '>=', Eval('from_date')), ())],
        help="The analysis ends with the week of this day.")
    team = fields.Many2One(
        'crm.team', "Team",
        help="Only the tickets of this team; empty for all the teams.")
    type = fields.Many2One(
        'helpdesk.type', "Type",
        help="Only the tickets of this type or of its sub-types.")

    @classmethod
    def default_from_date(cls):
        pool = Pool()
        Date = pool.get('ir.date')
        context = Transaction().context
        if context.get('from_date'):
            return context['from_date']
        return monday(Date.today()) - dt.timedelta(weeks=WEEKS - 1)

    @classmethod
    def default_to_date(cls):
        pool = Pool()
        Date = pool.get('ir.date')
        context = Transaction().context
        if context.get('to_date'):
            return context['to_date']
        return Date.today()

    @classmethod
    def default_team(cls):
        return Transaction().context.get('team')

    @classmethod
    def default_type(cls):
        return Transaction().context.get('type')


class Week(ModelSQL, ModelView):
    __name__ = 'helpdesk.ticket.analysis.week'
    __string__ = "Helpdesk Weekly Analysis"

    week = fields.Date("Week", help="The Monday of the ISO week.")
    iso_week = fields.Function(fields.Char("ISO Week"), 'get_iso_week')
    opened = fields.Integer("Opened", help="Tickets opened in the week.")
    solved = fields.Integer("Solved", help="Tickets solved in the week.")
    backlog = fields.Integer(
        "Backlog", help="Tickets still open at the end of the week.")
    sla_met = fields.Integer(
        "SLA Met", help="Tickets closed in the week within their SLA.")
    sla_closed = fields.Integer(
        "Closed under SLA",
        help="Tickets closed in the week that had an SLA to meet "
        "(cancelled tickets do not count).")
    sla_rate = fields.Float(
        "SLA Success Rate", digits=(16, 1),
        help="In %: the tickets closed within their SLA out of those "
        "closed under an SLA.")
    first_response_hours = fields.Float(
        "Average First Response (h)", digits=(16, 1),
        help="Hours from opening to the first answer, on average, for the "
        "tickets opened in the week.")
    resolution_hours = fields.Float(
        "Average Resolution (h)", digits=(16, 1),
        help="Hours from opening to solving, on average, for the tickets "
        "solved in the week.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('week', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _mondays(cls):
        "The Monday of each week of the context's period"
        pool = Pool()
        Context = pool.get('helpdesk.ticket.analysis.context')
        context = Transaction().context
        from_date = context.get('from_date') or Context.default_from_date()
        to_date = context.get('to_date') or Context.default_to_date()
        day, last = monday(from_date), monday(to_date)
        mondays = []
        while day <= last:
            mondays.append(day)
            day += dt.timedelta(weeks=1)
        return mondays

    @classmethod
    def table_query(cls):
        mondays = cls._mondays()
        where = None
        if not mondays:
            # An empty period: one week, no row
            mondays, where = [monday(dt.date.today())], Literal(False)
        start = dt.datetime.combine(mondays[0], dt.time())
        end = dt.datetime.combine(
            mondays[-1] + dt.timedelta(weeks=1), dt.time())

        # Each kind of event grouped by the week it happened in; the weeks
        # before the period count for the backlog.  The week is computed in
        # a sub-query so that GROUP BY sees a column, not an expression with
        # parameters (PostgreSQL would not match them).
        ticket, from_, where_ = tickets()
        sub = from_.select(
            week_start(ticket.opened).as_('week'),
            ticket.first_response,
            hours_between(ticket.opened, ticket.first_response).as_('hours'),
            where=where_ & (ticket.opened < end))
        opened = With(query=sub.select(
                sub.week,
                Count(Literal(1)).as_('count'),
                Count(sub.first_response).as_('responded'),
                Sum(sub.hours).as_('hours'),
                group_by=[sub.week]))

        ticket, from_, where_ = tickets()
        sub = from_.select(
            week_start(ticket.solved).as_('week'),
            hours_between(ticket.opened, ticket.solved).as_('hours'),
            where=where_ & (ticket.solved >= start) & (ticket.solved < end))
        solved = With(query=sub.select(
                sub.week,
                Count(Literal(1)).as_('count'),
                Sum(sub.hours).as_('hours'),
                group_by=[sub.week]))

        ticket, from_, where_ = tickets()
        sub = from_.select(
            week_start(ticket.closed).as_('week'),
            ticket.sla_status,
            where=where_ & (ticket.closed != Null) & (ticket.closed < end))
        closed = With(query=sub.select(
                sub.week,
                Count(Literal(1)).as_('count'),
                Count(Case(
                        (sub.sla_status == 'on_time', Literal(1)))).as_('met'),
                # A cancelled ticket has no status: its SLA does not count
                Count(sub.sla_status).as_('under_sla'),
                group_by=[sub.week]))

        calendar = Values([(week_id(d), d) for d in mondays])
        cal_id = Column(calendar, 'column1')
        cal_week = Column(calendar, 'column2')
        # Inside these sub-queries the CTE's name shadows the outer join
        opened_before = opened.select(
            Sum(opened.count), where=opened.week <= cal_week)
        closed_before = closed.select(
            Sum(closed.count), where=closed.week <= cal_week)
        backlog = Coalesce(opened_before, 0) - Coalesce(closed_before, 0)

        return (calendar
            .join(opened, 'LEFT', condition=opened.week == cal_week)
            .join(solved, 'LEFT', condition=solved.week == cal_week)
            .join(closed, 'LEFT', condition=closed.week == cal_week)
            .select(
                cal_id.as_('id'),
                cls.week.sql_cast(cal_week).as_('week'),
                cls.opened.sql_cast(Coalesce(opened.count, 0)).as_('opened'),
                cls.solved.sql_cast(Coalesce(solved.count, 0)).as_('solved'),
                cls.backlog.sql_cast(backlog).as_('backlog'),
                cls.sla_met.sql_cast(Coalesce(closed.met, 0)).as_('sla_met'),
                cls.sla_closed.sql_cast(
                    Coalesce(closed.under_sla, 0)).as_('sla_closed'),
                cls.sla_rate.sql_cast(
                    closed.met * 100.0 / NullIf(closed.under_sla, 0)
                    ).as_('sla_rate'),
                cls.first_response_hours.sql_cast(
                    opened.hours / NullIf(opened.responded, 0)
                    ).as_('first_response_hours'),
                cls.resolution_hours.sql_cast(
                    solved.hours / NullIf(solved.count, 0)
                    ).as_('resolution_hours'),
                where=where,
                with_=[opened, solved, closed]))

    def get_iso_week(self, name):
        if self.week:
            year, week, _ = self.week.isocalendar()
            return f'{year}-W{week:02d}'

    def get_rec_name(self, name):
        return self.iso_week or ''


class Team(ModelSQL, ModelView):
    __name__ = 'helpdesk.ticket.analysis.team'
    __string__ = "Helpdesk Backlog per Team"

    team = fields.Many2One('crm.team', "Team")
    backlog = fields.Integer("Open", help="Tickets open now.")
    at_risk = fields.Integer(
        "At Risk", help="Open tickets close to their SLA deadline.")
    breached = fields.Integer(
        "Breached", help="Open tickets past their SLA deadline.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('backlog', 'DESC'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        ticket, from_, where = tickets()
        return from_.select(
            Min(ticket.id).as_('id'),
            ticket.team.as_('team'),
            Count(Literal(1)).as_('backlog'),
            Count(Case((ticket.sla_status == 'at_risk', Literal(1)))
                ).as_('at_risk'),
            Count(Case((ticket.sla_status == 'breached', Literal(1)))
                ).as_('breached'),
            # closed is set whenever the stage is solved or cancelled
            where=where & (ticket.closed == Null),
            group_by=[ticket.team])

    def get_rec_name(self, name):
        return self.team.rec_name if self.team else ''
