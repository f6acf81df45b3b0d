"""Call-center figures (with crm_callcenter), on the calls and agent
statuses the reader may read: the inbound calls of each queue by hour of
the day, and each agent's occupancy per period."""
import datetime as dt

from sql import Literal, Null, Union
from sql.aggregate import Count, Min, Sum
from sql.conditionals import Case, Coalesce, NullIf

from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction

from crm_core.sqltools import (
    date_of, hour_of, readable_table, seconds_between)

from .common import (
    AnalysisMixin, context_companies, date_domain, date_range, period_domain,
    period_of, rate)
from .summary import DaySummary, last_written_index, union_id

BUSY = ['ringing', 'on_call', 'wrap_up']
# The calls counted per hour and queue: calls still ringing are counted
# once they end
CALLS_COUNTED = [
    ('direction', '=', 'inbound'),
    ('queue', '!=', None),
    ('state', '!=', 'ringing'),
    ]


def call_measures(call, queue):
    """{name: expression}: the figures of a call (a callcenter.call table)
    joined to its queue (a callcenter.queue table), added up per hour and
    queue: 1 or 0 for answered, abandoned (hung up before an agent
    answered), answered in time (waited no longer than the queue's service
    level) and talked (answered with a talk time), and its talk seconds"""
    answered = call.answered != Null
    talk = Case((answered, call.talk_seconds), else_=Null)
    return {
        'answered': Case((answered, 1), else_=0),
        'abandoned': Case((call.state == 'abandoned', 1), else_=0),
        'in_time': Case((answered
                & (Coalesce(call.wait_seconds, 0)
                    <= queue.service_level_seconds), 1), else_=0),
        'talk_seconds': Coalesce(talk, 0),
        'talked': Case((talk != Null, 1), else_=0),
        }


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
        Queue = pool.get('callcenter.queue')
        Summary = pool.get('crm.report.call_summary')
        queue = Queue.__table__()
        live_from = Summary.live_from(call_domain())
        call, calls, where = readable_table(
            'callcenter.call', call_domain() + CALLS_COUNTED)
        where &= date_range(call.created)
        if live_from:
            where &= call.created >= dt.datetime.combine(live_from, dt.time())
        parts = [calls.join(queue, condition=call.queue == queue.id).select(
                union_id(call, False).as_('id'), call.company, call.queue,
                hour_of(call.created).as_('hour'),
                Literal(1).as_('offered'),
                *(measure.as_(name) for name, measure
                    in call_measures(call, queue).items()),
                where=where)]
        if live_from:
            summary, summaries, where = readable_table(
                'callcenter.call', call_domain(), on=Summary.__name__)
            parts.append(summaries.select(
                    union_id(summary, True).as_('id'), summary.company,
                    summary.queue, summary.hour, summary.offered,
                    summary.answered, summary.abandoned, summary.in_time,
                    summary.talk_seconds, summary.talked,
                    where=where & (summary.day < live_from)
                    & date_range(summary.day, timestamp=False)))
        rows = Union(*parts, all_=True) if len(parts) > 1 else parts[0]
        return rows.select(
            Min(rows.id).as_('id'), rows.company, rows.queue, rows.hour,
            Sum(rows.offered).as_('offered'),
            Sum(rows.answered).as_('answered'),
            Sum(rows.abandoned).as_('abandoned'),
            Sum(rows.in_time).as_('in_time'),
            (cls.average_handle.sql_cast(Sum(rows.talk_seconds))
                / NullIf(Sum(rows.talked), 0)).as_('average_handle'),
            group_by=[rows.company, rows.queue, rows.hour])

    @classmethod
    def get_rates(cls, rows, names):
        return {
            'abandon_rate': {r.id: rate(r.abandoned, r.offered) for r in rows},
            'service_level': {r.id: rate(r.in_time, r.offered) for r in rows},
            }

    def drill_down_domain(self):
        domain = call_domain() + CALLS_COUNTED + [
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
        Agent = pool.get('callcenter.agent')
        Summary = pool.get('crm.report.agent_status_summary')
        agent = Agent.__table__()
        domain = cls._domain()
        live_from = Summary.live_from(domain)
        status, statuses, where = readable_table(
            'callcenter.agent.status', domain)
        where &= date_range(status.start)
        seconds = seconds_between(
            status.start, Coalesce(status.end, Literal(dt.datetime.now())))

        def live(where):
            return statuses.select(
                union_id(status, False).as_('id'), status.agent,
                period_of(status.start).as_('period'), status.status,
                seconds.as_('seconds'), where=where)
        if not live_from:
            parts = [live(where)]
        else:
            start = dt.datetime.combine(live_from, dt.time())
            # Apart, each on its index: the statuses not ended at the
            # refresh (not summarized) are counted from the records too
            parts = [live(where & (status.start >= start)),
                live(where & (status.start < start) & (status.end == Null))]
            summary, summaries, where = readable_table(
                'callcenter.agent.status', domain, on=Summary.__name__)
            parts.append(summaries.select(
                    union_id(summary, True).as_('id'), summary.agent,
                    period_of(summary.day).as_('period'), summary.status,
                    summary.seconds,
                    where=where & (summary.day < live_from)
                    & date_range(summary.day, timestamp=False)))
        rows = Union(*parts, all_=True) if len(parts) > 1 else parts[0]

        def hours(names):
            return cls.busy_hours.sql_cast(Sum(Case(
                        (rows.status.in_(names), rows.seconds), else_=0))
                / 3600)
        return rows.join(agent, condition=rows.agent == agent.id).select(
            Min(rows.id).as_('id'), agent.company, rows.agent, rows.period,
            hours(BUSY).as_('busy_hours'),
            hours(['available']).as_('available_hours'),
            hours(['paused']).as_('paused_hours'),
            group_by=[agent.company, rows.agent, rows.period])

    def get_occupancy(self, name):
        busy, available = self.busy_hours or 0, self.available_hours or 0
        return rate(busy, busy + available)

    def drill_down_domain(self):
        domain = self._domain() + [('agent', '=', self.agent.id)]
        if self.period:
            domain += period_domain('start', self.period, timestamp=True)
        return domain


class CallSummary(DaySummary):
    """The totals of the inbound calls of a queue per agent, day and hour:
    the days before the horizon of Calls per Hour and Queue"""
    __name__ = 'crm.report.call_summary'
    __string__ = "Call Summary"
    _source = 'callcenter.call'
    _source_time = 'created'

    company = fields.Many2One('company.company', "Company", required=True)
    queue = fields.Many2One('callcenter.queue', "Queue", required=True)
    user = fields.Many2One('res.user', "Agent")
    hour = fields.Integer("Hour", required=True)
    offered = fields.Integer("Offered")
    answered = fields.Integer("Answered")
    abandoned = fields.Integer("Abandoned")
    in_time = fields.Integer("Answered in Time")
    talk_seconds = fields.Integer("Talk Seconds")
    talked = fields.Integer("Talked", help="Answered calls with a talk time.")

    @classmethod
    def _summarize(cls, call, where):
        Queue = Pool().get('callcenter.queue')
        queue = Queue.__table__()
        measures = call_measures(call, queue)
        columns = [call.company, call.queue, call.user,
            date_of(call.created), hour_of(call.created)]
        Call = Pool().get('callcenter.call')
        _, counted = Call.search_domain(
            CALLS_COUNTED, active_test=False, tables={None: (call, None)})
        return ['company', 'queue', 'user', 'day', 'hour', 'offered',
            *measures], (
            call.join(queue, condition=call.queue == queue.id).select(
                *columns, Count(), *(Sum(m) for m in measures.values()),
                where=where & counted, group_by=columns))


class AgentStatusSummary(DaySummary):
    """The seconds of each agent in each status per day (of the status's
    start), for the ended statuses: the days before the horizon of Agent
    Occupancy"""
    __name__ = 'crm.report.agent_status_summary'
    __string__ = "Agent Status Summary"
    _source = 'callcenter.agent.status'
    _source_time = 'start'

    agent = fields.Many2One('callcenter.agent', "Agent", required=True)
    status = fields.Char("Status", required=True)
    seconds = fields.Float("Seconds")

    @classmethod
    def _summarize(cls, status, where):
        columns = [status.agent, date_of(status.start), status.status]
        return ['agent', 'day', 'status', 'seconds'], status.select(
            *columns, Sum(seconds_between(status.start, status.end)),
            where=where & (status.end != Null), group_by=columns)


class Call(metaclass=PoolMeta):
    __name__ = 'callcenter.call'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # The calls written since the summary's refresh are counted live
        cls._sql_indexes.add(last_written_index(t))


class AgentStatus(metaclass=PoolMeta):
    __name__ = 'callcenter.agent.status'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                # The statuses written since the summary's refresh and
                # those after its horizon are counted from the records
                last_written_index(t),
                Index(t, (t.start, Index.Range())),
                })
