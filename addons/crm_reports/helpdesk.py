"""Support figures (with crm_helpdesk), on the tickets the reader may read:
the tickets opened in each period by team, and what became of them."""
from sql import Null
from sql.aggregate import Avg, Count, Min, Sum
from sql.conditionals import Case

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.transaction import Transaction

from crm_core.sqltools import hours_between, readable_table

from .common import (
    AnalysisMixin, context_companies, date_range, period_domain, period_of,
    period_table, rate)


class Ticket(AnalysisMixin, ModelSQL, ModelView):
    """The tickets opened in each period of the context's dates, by team:
    how many were solved, met their SLA, how fast they were answered and
    solved, and how the customers rated them"""
    __name__ = 'crm.report.ticket'
    __string__ = "Tickets per Period"
    _drill_down_action = 'crm_reports.act_drill_down_tickets'

    company = fields.Many2One('company.company', "Company")
    team = fields.Many2One('crm.team', "Team")
    period = fields.Date("Period", help="When the tickets were opened.")
    opened = fields.Integer("Opened")
    solved = fields.Integer("Solved", help="Of the opened, solved since.")
    backlog = fields.Integer("Still Open",
        help="Of the opened, neither solved nor cancelled now.")
    sla_met = fields.Integer("SLA Met",
        help="Of the opened and closed, closed within their SLA.")
    sla_closed = fields.Integer("Closed under SLA")
    sla_rate = fields.Function(fields.Float("SLA Compliance",
            digits=(16, 1), help="In %: SLA met out of closed under SLA."),
        'get_sla_rate')
    first_response_hours = fields.Float("Average First Response (h)",
        digits=(16, 1))
    resolution_hours = fields.Float("Average Resolution (h)",
        digits=(16, 1), help="Hours from opening to solving, of the solved.")
    rated = fields.Integer("Rated")
    satisfaction = fields.Float("Satisfaction", digits=(16, 2),
        help="The customers' average rating, from 1 to 5.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('period', 'ASC'), ('team', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _domain(cls):
        context = Transaction().context
        domain = [('company', 'in', context_companies())]
        if context.get('team'):
            domain.append(('team', '=', context['team']))
        if context.get('owner'):
            domain.append(('user', '=', context['owner']))
        return domain

    @classmethod
    def table_query(cls):
        pool = Pool()
        Stage = pool.get('helpdesk.stage')
        stage = Stage.__table__()
        ticket, tickets, where = readable_table(
            'helpdesk.ticket', cls._domain())
        closed_sla = (ticket.closed != Null) & (ticket.sla_status != Null)
        period = period_of(ticket.opened)
        periods = period_table(ticket.opened)
        if periods:
            table, condition, period = periods
            tickets = tickets.join(table, condition=condition)
        rows = tickets.join(stage, 'LEFT',
            condition=ticket.stage == stage.id).select(
            ticket.id, ticket.company, ticket.team,
            period.as_('period'),
            Case((ticket.solved != Null, 1), else_=0).as_('solved'),
            Case((stage.kind.in_(['solved', 'cancelled']), 0),
                else_=1).as_('open'),
            Case((closed_sla & (ticket.sla_status == 'on_time'), 1),
                else_=0).as_('met'),
            Case((closed_sla, 1), else_=0).as_('under_sla'),
            hours_between(ticket.opened, ticket.first_response).as_(
                'response'),
            hours_between(ticket.opened, ticket.solved).as_('resolution'),
            ticket.rating.cast('INTEGER').as_('rating'),
            where=where & date_range(ticket.opened))
        return rows.select(
            Min(rows.id).as_('id'), rows.company, rows.team, rows.period,
            Count().as_('opened'),
            Sum(rows.solved).as_('solved'),
            Sum(rows.open).as_('backlog'),
            Sum(rows.met).as_('sla_met'),
            Sum(rows.under_sla).as_('sla_closed'),
            cls.first_response_hours.sql_cast(Avg(rows.response)).as_(
                'first_response_hours'),
            cls.resolution_hours.sql_cast(Avg(rows.resolution)).as_(
                'resolution_hours'),
            Count(rows.rating).as_('rated'),
            cls.satisfaction.sql_cast(Avg(rows.rating)).as_('satisfaction'),
            group_by=[rows.company, rows.team, rows.period])

    def get_sla_rate(self, name):
        return rate(self.sla_met, self.sla_closed)

    def drill_down_domain(self):
        domain = self._domain() + [
            ('company', '=', self.company.id),
            ('team', '=', self.team.id if self.team else None),
            ]
        if self.period:
            domain += period_domain('opened', self.period, timestamp=True)
        return domain
