"Where instances wait and how long each step takes, per version and element"
import datetime as dt
import math

from sql import Literal, Null
from sql.aggregate import Avg, Count, Max, Min, Sum
from sql.conditionals import Case
from sql.functions import Extract

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool


class ElementStatistics(ModelSQL, ModelView):
    __name__ = 'bpm.element.statistics'
    __string__ = "BPM Element Statistics"

    process = fields.Many2One('bpm.process', "Process", readonly=True)
    version = fields.Many2One(
        'bpm.process.version', "Version", required=True, readonly=True)
    element = fields.Char("Element", readonly=True)
    name = fields.Char("Name", readonly=True)
    element_type = fields.Char("Type", readonly=True)
    waiting = fields.Integer(
        "Waiting", readonly=True,
        help="Instances running that wait at this element now.")
    passed = fields.Integer("Passed", readonly=True)
    average_hours = fields.Float(
        "Average Hours", digits=(16, 2), readonly=True,
        help="Average time from arrival to completion.")
    p90_hours = fields.Function(
        fields.Float("90th Percentile Hours", digits=(16, 2)), 'get_p90')
    overdue = fields.Function(
        fields.Integer("Overdue Tasks",
            help="Planned tasks of this element past their date."),
        'get_overdue')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('version')
        cls._order = [
            ('process', 'ASC'), ('version', 'DESC'), ('waiting', 'DESC'),
            ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Log = pool.get('bpm.instance.log')
        Instance = pool.get('bpm.instance')
        log = Log.__table__()
        instance = Instance.__table__()
        duration = Extract('EPOCH', log.end) - Extract('EPOCH', log.start)
        done = log.end != Null
        return log.join(instance, condition=log.instance == instance.id
            ).select(
                Min(log.id).as_('id'),
                Literal(0).as_('create_uid'),
                Max(log.create_date).as_('create_date'),
                instance.process.as_('process'),
                instance.version.as_('version'),
                log.element.as_('element'),
                Max(log.name).as_('name'),
                Max(log.element_type).as_('element_type'),
                Sum(Case(((log.end == Null)
                            & (instance.state == 'running'), 1),
                        else_=0)).as_('waiting'),
                Sum(Case((done, 1), else_=0)).as_('passed'),
                (Avg(Case((done, duration), else_=Null)) / 3600
                    ).as_('average_hours'),
                where=log.element != Null,
                group_by=[instance.process, instance.version, log.element])

    @classmethod
    def _logs(cls, records):
        "{id: durations in hours} of the passed steps of each row"
        pool = Pool()
        Log = pool.get('bpm.instance.log')
        result = {r.id: [] for r in records}
        keys = {(r.version.id, r.element): r.id for r in records}
        for log in Log.search([
                    ('instance.version', 'in', list({k[0] for k in keys})),
                    ('element', 'in', list({k[1] for k in keys})),
                    ('end', '!=', None),
                    ]):
            key = (log.instance.version.id, log.element)
            if key in keys:
                result[keys[key]].append(
                    (log.end - log.start).total_seconds() / 3600)
        return result

    @classmethod
    def get_p90(cls, records, name):
        result = {}
        for record_id, hours in cls._logs(records).items():
            if not hours:
                result[record_id] = None
                continue
            hours.sort()
            # Nearest rank: the duration 90 % of the steps stay within
            rank = max(math.ceil(0.9 * len(hours)), 1)
            result[record_id] = hours[rank - 1]
        return result

    @classmethod
    def get_overdue(cls, records, name):
        pool = Pool()
        Activity = pool.get('crm.activity')
        Instance = pool.get('bpm.instance')
        counts = {}
        for activity in Activity.search([
                    ('bpm_element', 'in', list({r.element for r in records})),
                    ('bpm_kind', '=', 'task'),
                    ('state', '=', 'planned'),
                    ('start', '<', dt.datetime.now()),
                    ]):
            origin = activity.origin
            if isinstance(origin, Instance):
                key = (origin.version.id, activity.bpm_element)
                counts[key] = counts.get(key, 0) + 1
        return {r.id: counts.get((r.version.id, r.element), 0)
            for r in records}


class VersionStatistics(ModelSQL, ModelView):
    __name__ = 'bpm.version.statistics'
    __string__ = "BPM Version Statistics"

    process = fields.Many2One('bpm.process', "Process", readonly=True)
    version = fields.Many2One(
        'bpm.process.version', "Version", required=True, readonly=True)
    instances = fields.Integer("Instances", readonly=True)
    running = fields.Integer("Running", readonly=True)
    completed = fields.Integer("Completed", readonly=True)
    failed = fields.Integer("Failed", readonly=True)
    completion_rate = fields.Function(
        fields.Float("Completion Rate", digits=(16, 2),
            help="Completed among the instances that ended, in %."),
        'get_completion_rate')
    average_cycle_hours = fields.Float(
        "Average Cycle Hours", digits=(16, 2), readonly=True,
        help="From start to end, of the completed instances.")
    branches = fields.Function(
        fields.Text("Decisions",
            help="The share of each branch of the decisions."),
        'get_branches')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('version')
        cls._order = [('process', 'ASC'), ('version', 'DESC'), ('id', 'DESC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Instance = pool.get('bpm.instance')
        instance = Instance.__table__()
        completed = instance.state == 'completed'
        cycle = (Extract('EPOCH', instance.end_date)
            - Extract('EPOCH', instance.start_date))

        def count(condition):
            return Sum(Case((condition, 1), else_=0))
        return instance.select(
            instance.version.as_('id'),
            Literal(0).as_('create_uid'),
            Max(instance.create_date).as_('create_date'),
            Max(instance.process).as_('process'),
            instance.version.as_('version'),
            Count(instance.id).as_('instances'),
            count(instance.state == 'running').as_('running'),
            count(completed).as_('completed'),
            count(instance.state == 'failed').as_('failed'),
            (Avg(Case((completed, cycle), else_=Null)) / 3600
                ).as_('average_cycle_hours'),
            group_by=[instance.version])

    @classmethod
    def get_completion_rate(cls, records, name):
        pool = Pool()
        Instance = pool.get('bpm.instance')
        result = {}
        for record in records:
            ended = Instance.search_count([
                    ('version', '=', record.version.id),
                    ('state', 'in', ['completed', 'cancelled']),
                    ])
            result[record.id] = (
                100 * record.completed / ended if ended else None)
        return result

    @classmethod
    def get_branches(cls, records, name):
        "Per decision, the share of the instances that took each branch"
        pool = Pool()
        Log = pool.get('bpm.instance.log')
        result = {}
        for record in records:
            lines = []
            for element, info in sorted(record.version.element_info.items()):
                branches = info.get('branches')
                if not branches:
                    continue
                passed = {}
                for label, target in branches:
                    passed[label] = len({l.instance.id for l in Log.search([
                                    ('instance.version', '=',
                                        record.version.id),
                                    ('element', '=', target),
                                    ])})
                total = sum(passed.values())
                shares = ', '.join(
                    f'{label} {100 * n / total:.0f} %' if total
                    else f'{label} -' for label, n in passed.items())
                lines.append(f'{info.get("name") or element}: {shares}')
            result[record.id] = '\n'.join(lines) or None
        return result
