"""Call-center figures (with crm_callcenter), on the calls and agent
statuses the reader may read: the inbound calls of each queue by hour of
the day, and each agent's occupancy per period."""
import datetime as dt

from sql import Literal, Null
from sql.aggregate import Avg, Count, Min, Sum
from sql.conditionals import Case, Coalesce

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.transaction import Transaction

from crm_core.sqltools import hour_of, seconds_between

from .common import (
    AnalysisMixin, context_companies, date_domain, date_range,
    period_domain, period_of, rate, readable)

BUSY = ['ringing', 'on_call', 'wrap_up']


def call_domain():
    "The context's companies, team (of the queue) and agent (user)"
    context = Transaction().context
    domain = [('company', 'in', context_companies())]
    if context.get('team'):
        domain.append(('queue.team', '=', context['team']))
    if context.get('owner'):
        domain.append(('user', '=', context['owner']))
    return domain


class CallHour(AnalysisMixin, ModelSQL, ModelView):
    """The inbound calls of each queue by hour of the day, in the context's
    dates"""
    __name__ = 'crm.report.call_hour'
    __string__ = "Calls per Hour and Queue"
    _drill_down_action = 'crm_reports.act_drill_down_calls'

    company = fields.Many2One('company.company', "Company")
    queue = fields.Many2One('callcenter.queue', "Queue")
    hour = fields.Integer("Hour", help="The hour of the day the call came.")
    offered = fields.Integer("Offered", help="Inbound calls to the queue.")
    answered = fields.Integer("Answered")
    abandoned = fields.Integer("Abandoned",
        help="Callers who hung up before an agent answered.")
    in_time = fields.Integer("Answered in Time",
        help="Answered within the queue's service level time.")
    abandon_rate = fields.Function(fields.Float(
            "Abandon Rate", digits=(16, 1),
            help="In %: abandoned out of offered."), 'get_rates')
    service_level = fields.Function(fields.Float(
            "Service Level", digits=(16, 1),
            help="In %: answered in time out of offered."), 'get_rates')
    average_handle = fields.Float("Average Handle Time (s)", digits=(16, 0),
        help="Talk seconds of the answered calls, on average.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('queue', 'ASC'), ('hour', 'ASC'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Call = pool.get('callcenter.call')
        Queue = pool.get('callcenter.queue')
        call = Call.__table__()
        queue = Queue.__table__()
        calls = readable('callcenter.call', call_domain() + [
                ('direction', '=', 'inbound'),
                ('queue', '!=', None),
                # Calls still ringing are counted once they end
                ('state', '!=', 'ringing'),
                ])
        answered = call.answered != Null
        rows = call.join(queue, condition=call.queue == queue.id).select(
            call.id, call.company, call.queue,
            hour_of(call.created).as_('hour'),
            Case((answered, 1), else_=0).as_('answered'),
            Case((call.state == 'abandoned', 1), else_=0).as_('abandoned'),
            Case((answered
                    & (Coalesce(call.wait_seconds, 0)
                        <= queue.service_level_seconds), 1),
                else_=0).as_('in_time'),
            Case((answered, call.talk_seconds), else_=Null).as_('talk'),
            where=call.id.in_(calls) & date_range(call.created))
        return rows.select(
            Min(rows.id).as_('id'), rows.company, rows.queue, rows.hour,
            Count().as_('offered'),
            Sum(rows.answered).as_('answered'),
            Sum(rows.abandoned).as_('abandoned'),
            Sum(rows.in_time).as_('in_time'),
            cls.average_handle.sql_cast(Avg(rows.talk)).as_(
                'average_handle'),
            group_by=[rows.company, rows.queue, rows.hour])

    @classmethod
    def get_rates(cls, rows, names):
        return {
            'abandon_rate': {r.id: rate(r.abandoned, r.offered) for r in rows},
            'service_level': {r.id: rate(r.in_time, r.offered) for r in rows},
            }

    def drill_down_domain(self):
        domain = call_domain() + [
            ('direction', '=', 'inbound'),
            ('state', '!=', 'ringing'),
            ('queue', '=', self.queue.id),
            ('company', '=', self.company.id),
            ]
        domain += date_domain('created')
        # The hour is checked on the listed calls by the user: no domain
        # operator gives the hour of a datetime
        return domain


class AgentOccupancy(AnalysisMixin, ModelSQL, ModelView):
    """Each agent's time per status in the periods of the context's dates
    (statuses started in them) and the occupancy: busy out of busy and
    available"""
    __name__ = 'crm.report.agent_occupancy'
    __string__ = "Agent Occupancy"
    _drill_down_action = 'crm_reports.act_drill_down_agent_statuses'

    company = fields.Many2One('company.company', "Company")
    agent = fields.Many2One('callcenter.agent', "Agent")
    period = fields.Date("Period")
    busy_hours = fields.Float("Busy (h)", digits=(16, 2),
        help="Ringing, on call and in wrap-up.")
    available_hours = fields.Float("Available (h)", digits=(16, 2))
    paused_hours = fields.Float("Paused (h)", digits=(16, 2))
    occupancy = fields.Function(fields.Float("Occupancy", digits=(16, 1),
            help="In %: busy out of busy and available."), 'get_occupancy')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('period', 'ASC'), ('agent', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _domain(cls):
        context = Transaction().context
        domain = [('agent.company', 'in', context_companies())]
        if context.get('team'):
            domain.append(('agent.queues.team', '=', context['team']))
        if context.get('owner'):
            domain.append(('agent.user', '=', context['owner']))
        return domain

    @classmethod
    def table_query(cls):
        pool = Pool()
        Status = pool.get('callcenter.agent.status')
        Agent = pool.get('callcenter.agent')
        status = Status.__table__()
        agent = Agent.__table__()
        statuses = readable('callcenter.agent.status', cls._domain())
        now = dt.datetime.now()
        hours = seconds_between(
            status.start, Coalesce(status.end, Literal(now))) / 3600

        def of(names):
            return Case((status.status.in_(names), hours), else_=0)
        rows = status.join(agent, condition=status.agent == agent.id).select(
            status.id, agent.company, status.agent,
            period_of(status.start).as_('period'),
            of(BUSY).as_('busy'), of(['available']).as_('available'),
            of(['paused']).as_('paused'),
            where=status.id.in_(statuses) & date_range(status.start))
        return rows.select(
            Min(rows.id).as_('id'), rows.company, rows.agent, rows.period,
            cls.busy_hours.sql_cast(Sum(rows.busy)).as_('busy_hours'),
            cls.available_hours.sql_cast(Sum(rows.available)).as_(
                'available_hours'),
            cls.paused_hours.sql_cast(Sum(rows.paused)).as_('paused_hours'),
            group_by=[rows.company, rows.agent, rows.period])

    def get_occupancy(self, name):
        busy, available = self.busy_hours or 0, self.available_hours or 0
        return rate(busy, busy + available)

    def drill_down_domain(self):
        return self._domain() + [('agent', '=', self.agent.id)] + (
            period_domain('start', self.period, timestamp=True) if self.period else [])
