"""Process figures (with crm_bpm), on the instances the reader may read:
how long the instances of each version take from start to end, and where
they wait (user tasks, timers): the bottlenecks."""
import datetime as dt

from sql import Literal, Null
from sql.aggregate import Avg, Count, Max, Sum
from sql.conditionals import Case, Coalesce

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.transaction import Transaction

from crm_core.sqltools import hours_between

from .common import (
    AnalysisMixin, context_companies, date_domain, date_range, grouped,
    period_domain, period_of, rate, readable)


def instance_domain():
    """The context's companies, team and salesperson as a domain on
    bpm.instance. Instances have none of them: their record (a lead, a
    party...) has, when its model has the field. A record without company
    (a party) counts in every company; one without team or salesperson
    only when none is asked."""
    pool = Pool()
    Instance = pool.get('bpm.instance')
    context = Transaction().context
    filters = [('company', 'in', context_companies())]
    filters += [(name, '=', context[name])
        for name in ['team', 'owner'] if context.get(name)]
    records = []
    for model in Instance._get_models():
        Model = pool.get(model)
        if any(n not in Model._fields for n, _, _ in filters[1:]):
            continue
        records.append([('record', 'like', f'{model},%')] + [
                (f'record.{n}', o, v, model)
                for n, o, v in filters if n in Model._fields])
    return [['OR', *records]] if records else [('id', '=', None)]


class ProcessCycle(AnalysisMixin, ModelSQL, ModelView):
    """The instances of each process version started in each period of the
    context's dates: what became of them and how long the completed ones
    took"""
    __name__ = 'crm.report.process_cycle'
    __string__ = "Process Cycle Time"
    _drill_down_action = 'crm_reports.act_drill_down_bpm_instances'

    process = fields.Many2One('bpm.process', "Process")
    version = fields.Many2One('bpm.process.version', "Version")
    period = fields.Date("Period", help="When the instances started.")
    started = fields.Integer("Started")
    completed = fields.Integer("Completed",
        help="Of the started, completed since.")
    cancelled = fields.Integer("Cancelled",
        help="Of the started, cancelled since.")
    failed = fields.Integer("Failed",
        help="Of the started, stopped on an error now.")
    running = fields.Integer("Running",
        help="Of the started, still running or suspended now.")
    completion_rate = fields.Function(fields.Float("Completion Rate",
            digits=(16, 1),
            help="In %: completed out of completed and cancelled."),
        'get_completion_rate')
    average_hours = fields.Float("Average Cycle Time (h)", digits=(16, 1),
        help="Hours from start to end, of the completed.")
    max_hours = fields.Float("Longest Cycle Time (h)", digits=(16, 1),
        help="Hours from start to end, of the slowest completed.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('period', 'ASC'), ('process', 'ASC'),
            ('version', 'ASC'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Instance = pool.get('bpm.instance')
        instance = Instance.__table__()
        instances = readable('bpm.instance', instance_domain())
        completed = instance.state == 'completed'

        def state(*states):
            return Case((instance.state.in_(states), 1), else_=0)
        rows = instance.select(
            instance.id, instance.process, instance.version,
            period_of(instance.start_date).as_('period'),
            state('completed').as_('completed'),
            state('cancelled').as_('cancelled'),
            state('failed').as_('failed'),
            state('running', 'suspended').as_('running'),
            Case((completed,
                    hours_between(instance.start_date, instance.end_date)),
                else_=Null).as_('cycle'),
            where=instance.id.in_(instances)
            & date_range(instance.start_date))
        return grouped(rows, ['process', 'version', 'period'],
            Count().as_('started'),
            Sum(rows.completed).as_('completed'),
            Sum(rows.cancelled).as_('cancelled'),
            Sum(rows.failed).as_('failed'),
            Sum(rows.running).as_('running'),
            cls.average_hours.sql_cast(Avg(rows.cycle)).as_('average_hours'),
            cls.max_hours.sql_cast(Max(rows.cycle)).as_('max_hours'))

    def get_completion_rate(self, name):
        return rate(self.completed, self.completed + self.cancelled)

    def drill_down_domain(self):
        return instance_domain() + date_domain('start_date') + [
            ('version', '=', self.version.id),
            ] + (period_domain('start_date', self.period, timestamp=True)
            if self.period else [])


class ProcessWaiting(AnalysisMixin, ModelSQL, ModelView):
    """The waiting points of each process version: the elements (user
    tasks, timers...) where instances entered in the context's dates
    waited, how often, how long and how many wait there now"""
    __name__ = 'crm.report.process_waiting'
    __string__ = "Process Waiting Points"
    _drill_down_action = 'crm_reports.act_drill_down_bpm_instances'

    process = fields.Many2One('bpm.process', "Process")
    version = fields.Many2One('bpm.process.version', "Version")
    element = fields.Char("Element", help="Its id in the diagram.")
    name = fields.Char("Name")
    element_type = fields.Char("Type")
    entered = fields.Integer("Entered",
        help="How many times instances came to the element.")
    waiting = fields.Integer("Waiting Now",
        help="Of the entered, running instances that wait there now.")
    average_hours = fields.Float("Average Wait (h)", digits=(16, 1),
        help="Hours from arrival to leaving the element (until now, or "
        "the end of the instance, for those still there).")
    max_hours = fields.Float("Longest Wait (h)", digits=(16, 1))

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('process', 'ASC'), ('version', 'ASC'),
            ('average_hours', 'DESC'), ('id', 'ASC')]

    @classmethod
    def _log_domain(cls):
        return date_domain('start') + [('element', '!=', None)]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Instance = pool.get('bpm.instance')
        Log = pool.get('bpm.instance.log')
        instance = Instance.__table__()
        log = Log.__table__()
        # The log follows the access of its instance, but an instance's
        # readability comes from its record (Instance.search): both apply
        instances = readable('bpm.instance', instance_domain())
        logs = readable('bpm.instance.log', cls._log_domain())
        now = Literal(dt.datetime.now())
        rows = log.join(instance, condition=log.instance == instance.id
            ).select(
                log.id, instance.process, instance.version, log.element,
                log.name, log.element_type,
                Case(((log.end == Null) & (instance.state == 'running'), 1),
                    else_=0).as_('waiting'),
                hours_between(
                    log.start, Coalesce(log.end, instance.end_date, now)
                    ).as_('waited'),
                where=log.id.in_(logs) & instance.id.in_(instances))
        # Steps that took no time (gateways, scripts...) are no waiting
        # points
        return grouped(rows, ['process', 'version', 'element'],
            Max(rows.name).as_('name'),
            Max(rows.element_type).as_('element_type'),
            Count().as_('entered'),
            Sum(rows.waiting).as_('waiting'),
            cls.average_hours.sql_cast(Avg(rows.waited)).as_(
                'average_hours'),
            cls.max_hours.sql_cast(Max(rows.waited)).as_('max_hours'),
            having=(Max(rows.waited) > 0) | (Sum(rows.waiting) > 0))

    def drill_down_domain(self):
        return instance_domain() + [
            ('version', '=', self.version.id),
            ('logs', 'where', self._log_domain() + [
                    ('element', '=', self.element)]),
            ]
