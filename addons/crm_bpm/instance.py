import contextvars
import datetime as dt
import json
import re
from collections import defaultdict
from decimal import Decimal

from sql import Cast, Null
from sql.operators import Concat
from sql.aggregate import Count

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Workflow, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access
from trytond.wizard import Button, StateAction, StateView, Wizard

from crm_core.savepoint import savepoint

from . import engine
from .exceptions import InstanceError
from .process import page_action

ACTIVITY_TYPES = {'call', 'meeting', 'email', 'task'}
DURATION = re.compile(
    r'^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$')
# Parsed definitions, one per version (their spec never changes once used)
_engines = {}
# The _Writes of the batch being advanced (its activities count as load)
_batch_writes = contextvars.ContextVar('crm_bpm_batch_writes', default=None)


def parse_duration(value):
    "A timedelta of an ISO 8601 duration like P7D or PT4H, or None"
    match = DURATION.match((value or '').strip())
    if not match or not any(match.groups()):
        return None
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(
        weeks=weeks, days=days, hours=hours, minutes=minutes,
        seconds=seconds)


def _plain(value):
    "A record's field value as scripts see it"
    if isinstance(value, ModelSQL):
        return value.id
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Instance(Workflow, ModelSQL, ModelView):
    __name__ = 'bpm.instance'
    __string__ = "BPM Instance"

    process = fields.Many2One(
        'bpm.process', "Process", required=True, readonly=True,
        ondelete='CASCADE')
    version = fields.Many2One(
        'bpm.process.version', "Version", required=True, readonly=True,
        ondelete='RESTRICT',
        domain=[('process', '=', Eval('process', -1))])
    record = fields.Reference(
        "Record", selection='get_models', required=True, readonly=True)
    party = fields.Function(
        fields.Many2One('party.party', "Party"), 'get_party')
    state = fields.Selection([
            ('running', "Running"),
            ('suspended', "Suspended"),
            ('completed', "Completed"),
            ('cancelled', "Cancelled"),
            ('failed', "Failed"),
            ], "State", required=True, readonly=True, sort=False)
    workflow = fields.Text("Workflow", readonly=True)
    serializer_version = fields.Char("Serializer Version", readonly=True)
    variables = fields.Function(
        fields.Text("Variables",
            help="The data of the process, as JSON. Process managers may "
            "change it."),
        'get_variables', setter='set_variables')
    start_date = fields.DateTime("Started On", readonly=True)
    end_date = fields.DateTime("Ended On", readonly=True)
    started_by = fields.Many2One('res.user', "Started By", readonly=True)
    next_timer = fields.DateTime(
        "Next Timer", readonly=True, help="When a timer is due next (UTC).")
    active_elements = fields.Char("Active Elements", readonly=True)
    completed_elements = fields.Function(
        fields.Char("Completed Elements"), 'get_completed_elements')
    error = fields.Text(
        "Error", readonly=True, states={'invisible': ~Eval('error')})
    error_element = fields.Char(
        "Failed Element", readonly=True,
        states={'invisible': ~Eval('error_element')})
    activities = fields.One2Many(
        'crm.activity', 'origin', "Tasks", readonly=True)
    logs = fields.One2Many(
        'bpm.instance.log', 'instance', "Log", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.next_timer, Index.Range()),
                    where=t.state == 'running'),
                Index(t, (t.record, Index.Equality())),
                Index(t, (t.version, Index.Range()), (t.state, Index.Equality())),
                })
        cls._order = [('start_date', 'DESC'), ('id', 'DESC')]
        cls._transitions |= {
            ('running', 'suspended'),
            ('suspended', 'running'),
            ('running', 'completed'),
            ('running', 'failed'),
            ('failed', 'running'),
            ('running', 'cancelled'),
            ('suspended', 'cancelled'),
            ('failed', 'cancelled'),
            }
        cls._buttons.update({
                'suspend': {
                    'invisible': Eval('state') != 'running',
                    'icon': 'tryton-cancel',
                    },
                'resume': {
                    'invisible': Eval('state') != 'suspended',
                    'icon': 'tryton-forward',
                    },
                'cancel': {
                    'invisible': ~Eval('state').in_(
                        ['running', 'suspended', 'failed']),
                    'icon': 'tryton-cancel',
                    },
                'retry': {
                    'invisible': Eval('state') != 'failed',
                    'icon': 'tryton-refresh',
                    },
                'open_card': {
                    'icon': 'tryton-launch',
                    },
                'migrate': {
                    'invisible': ~Eval('state').in_(['running', 'suspended']),
                    'icon': 'tryton-forward',
                    },
                })

    @classmethod
    def default_state(cls):
        return 'running'

    @classmethod
    def _get_models(cls):
        "The models processes run on; other modules add theirs"
        return ['crm.lead', 'party.party']

    @classmethod
    def get_models(cls):
        pool = Pool()
        IrModel = pool.get('ir.model')
        get_name = IrModel.get_name
        return [(None, '')] + [(m, get_name(m)) for m in cls._get_models()]

    @classmethod
    def search(cls, domain, offset=0, limit=None, order=None, count=False,
            query=False):
        # Users see the instances of the records they may read: the rules
        # of each record's model apply (managers see them all)
        if Transaction().check_access and not cls._is_manager():
            domain = ['AND', domain, cls._readable_records_domain()]
        return super().search(
            domain, offset=offset, limit=limit, order=order, count=count,
            query=query)

    @classmethod
    def _is_manager(cls):
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        user_id = Transaction().user
        if user_id == 0:
            return True
        manager = ModelData.get_id('crm_bpm', 'group_bpm_manager')
        return manager in {g.id for g in User(user_id).groups}

    @classmethod
    def _readable_records_domain(cls):
        pool = Pool()
        domain = ['OR']
        for model in cls._get_models():
            Model = pool.get(model)
            # The ids the user may read, as 'model,id' like the column
            ids = Model.search([], order=[], query=True)
            domain.append(('record', 'in', ids.select(
                        Concat(model + ',', Cast(ids.id, 'VARCHAR')))))
        return domain

    def get_rec_name(self, name):
        record = self.record.rec_name if self.record else ''
        return f'{self.process.rec_name}: {record}'

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('process.rec_name', *clause[1:])]

    @classmethod
    def get_completed_elements(cls, instances, name):
        "The ids of the elements passed, from the log, space separated"
        pool = Pool()
        Log = pool.get('bpm.instance.log')
        result = {i.id: set() for i in instances}
        for log in Log.search([
                    ('instance', 'in', [i.id for i in instances]),
                    ('end', '!=', None),
                    ['OR', ('outcome', '=', None),
                        ('outcome', 'not in', ['cancelled', 'error'])],
                    ]):
            result[log.instance.id].add(log.element)
        return {i: ' '.join(sorted(e)) for i, e in result.items()}

    def get_party(self, name):
        pool = Pool()
        Activity = pool.get('crm.activity')
        party = Activity.party_of(self.record) if self.record else None
        return party.id if party else None

    # The engine -----------------------------------------------------------

    def engine(self, version=None):
        "The engine of the version, bound to this instance's record"
        version = version or self.version
        key = (Transaction().database.name, version.id)
        spec = version.spec
        cached = _engines.get(key)
        if cached is None or cached[0] != spec:
            if len(_engines) > 256:
                _engines.clear()
            cached = _engines[key] = (spec, engine.Engine(spec))
        runner = cached[1]
        runner.bind(service=self._call_operation, record=self._record_view())
        return runner

    def _record_view(self):
        record = self.record
        if record is None:
            return None
        values = {}
        for name, field in record._fields.items():
            if field._type in {'one2many', 'many2many', 'binary'}:
                continue
            values[name] = (
                lambda name=name: _plain(getattr(self.record, name)))
        return engine.RecordView(values)

    def get_variables(self, name):
        if not self.workflow:
            return None
        workflow = self.engine().load(self.workflow)
        return json.dumps(
            engine.Engine.variables(workflow), indent=1, sort_keys=True,
            default=str)

    @classmethod
    def set_variables(cls, instances, name, value):
        try:
            values = json.loads(value or '{}')
            if not isinstance(values, dict):
                raise ValueError
        except ValueError:
            raise InstanceError(gettext('crm_bpm.msg_instance_variables_json'))
        to_save = []
        for instance in instances:
            runner = instance.engine()
            workflow = runner.load(instance.workflow)
            engine.Engine.set_variables(workflow, values)
            instance.workflow = runner.dump(workflow)
            to_save.append(instance)
        cls.save(to_save)

    # Starting and advancing -----------------------------------------------

    @classmethod
    def start(cls, version, records, data=None):
        "Start an instance of version on each record, return them"
        now = dt.datetime.now()
        instances = cls.create([{
                    'process': version.process.id,
                    'version': version.id,
                    'record': str(r),
                    'start_date': now,
                    'started_by': Transaction().user,
                    } for r in records])
        cls._advance_all(instances, data=data or {})
        cls.save(instances)
        return instances

    @classmethod
    def _advance_all(cls, instances, data=None, now=None):
        """Advance the instances, then write what their calendars and logs
        need in a few queries for them all"""
        writes = _Writes(cls.browse(instances))
        token = _batch_writes.set(writes)
        try:
            for instance in instances:
                instance._advance(data=data, now=now, writes=writes)
        finally:
            _batch_writes.reset(token)
        writes.flush()

    def _advance(self, data=None, now=None, writes=None):
        """Run the instance as far as it goes, in a savepoint: a failure
        undoes what this advance wrote and marks the instance failed.
        writes: the _Writes of a batch (else written at once)"""
        runner = self.engine()
        if not self.workflow:
            # Kept even when the first run fails: a retry starts from it
            self.workflow = runner.dump(runner.new(data))
        alone = writes is None
        if alone:
            writes = _Writes([self])
        try:
            with savepoint(f'bpm_advance_{self.id}'):
                workflow = runner.load(self.workflow)
                completed = self._complete_done_tasks(
                    runner, workflow, now, writes)
                runner.run(workflow, now=now)
                self._sync(runner, workflow, writes, completed)
                if alone:
                    writes.flush()
        except engine.BpmnError as exception:
            self._fail(exception.message, exception.element, exception.name)
            return
        except Exception as exception:
            error = getattr(exception, 'message', None) or str(exception)
            element = getattr(exception, 'task', None)
            self._fail(
                error or exception.__class__.__name__,
                getattr(getattr(element, 'task_spec', None), 'bpmn_id', None),
                None)
            return
        self.workflow = runner.dump(workflow)
        self.serializer_version = engine.SERIALIZER_VERSION
        self.next_timer = runner.next_timer(workflow)
        self.active_elements = ' '.join(runner.active_elements(workflow))
        self.error = self.error_element = None
        if workflow.is_completed():
            self.state = 'completed'
            self.end_date = dt.datetime.now()
            self.next_timer = None
        elif self.state == 'failed':
            self.state = 'running'

    def _fail(self, message, element, name):
        self.state = 'failed'
        self.error = message
        self.error_element = element
        self.next_timer = None

    def _complete_done_tasks(self, runner, workflow, now, writes):
        "Complete the user tasks whose activity is done"
        ready = {str(t.id): t for t in runner.user_tasks(workflow)}
        if not ready:
            return set()
        activities = [a for t, a in writes.activities(self).items()
            if t in ready and a.state == 'done']
        for activity in activities:
            task = ready[activity.bpm_task]
            data = {'outcome': activity.bpm_outcome or None}
            if activity.outcome:
                data['outcome_note'] = activity.outcome
            runner.complete(workflow, task.id, data, now=now)
        return {a.bpm_task for a in activities}

    def _sync(self, runner, workflow, writes, completed=()):
        """Make the calendar and the log say what the workflow says: an
        activity per waiting user task and timer, a log line per step
        (completed: the tasks the current user has just done)"""
        now = dt.datetime.now()
        elements = self.version.element_info
        tasks = runner.tasks(workflow)
        activities = writes.activities(self)
        logs = writes.logs(self)
        timers = {e: date for e, _, date in runner.timers(workflow)}
        to_create, to_cancel, to_close = [], [], []
        log_create, log_save = [], []
        for task in tasks:
            task_id = str(task.id)
            bpmn_id = task.task_spec.bpmn_id
            info = elements.get(bpmn_id, {})
            state = engine.state_name(task)
            log = logs.get(task_id)
            if state in {'READY', 'WAITING', 'STARTED'}:
                if log is None:
                    log_create.append(self._log_values(task, info, now))
                activity = activities.get(task_id)
                if activity is None:
                    if task.task_spec.manual and state == 'READY':
                        to_create.append(self._task_activity(
                                task, info, elements, timers))
                    elif bpmn_id in timers:
                        to_create.append(self._timer_activity(
                                task, info, elements, timers[bpmn_id],
                                [*activities.values(), *to_create]))
            elif state in {'COMPLETED', 'CANCELLED', 'ERROR'}:
                outcome = None
                if state != 'COMPLETED':
                    outcome = state.lower()
                elif task.task_spec.manual:
                    outcome = task.data.get('outcome')
                if log is None:
                    values = self._log_values(task, info, now)
                    values.update(end=now, outcome=outcome)
                    log_create.append(values)
                elif log.end is None:
                    log.end = now
                    log.outcome = outcome
                    if task_id in completed:
                        log.user = Transaction().user
                    log_save.append(log)
                activity = activities.get(task_id)
                if activity and activity.state == 'planned':
                    if activity.bpm_kind == 'timer' and state == 'COMPLETED':
                        to_close.append(activity)
                    else:
                        to_cancel.append(activity)
        # Tasks gone from the workflow (moved to a new version)
        current = {str(t.id) for t in tasks}
        for task_id, activity in activities.items():
            if task_id not in current and activity.state == 'planned':
                to_cancel.append(activity)
        for task_id, log in logs.items():
            if task_id not in current and log.end is None:
                log.end = now
                log.outcome = 'migrated'
                log_save.append(log)
        writes.add(to_create, to_cancel, to_close, log_create, log_save)

    def _log_values(self, task, info, now):
        return {
            'instance': self.id,
            'task': str(task.id),
            'element': task.task_spec.bpmn_id,
            'name': task.task_spec.bpmn_name or info.get('name'),
            'element_type': task.task_spec.__class__.__name__,
            'start': now,
            }

    def _task_activity(self, task, info, elements, timers):
        "The values of the activity of a user task"
        properties = info.get('properties', {})
        kind = properties.get('activity_type', 'task')
        if kind not in ACTIVITY_TYPES:
            kind = 'task'
        start = None
        due = parse_duration(properties.get('due'))
        if due is not None:
            start = dt.datetime.now() + due
        else:
            # Due when its boundary timer fires, if it has one
            for element, date in timers.items():
                if elements.get(element, {}).get('attached_to') == (
                        task.task_spec.bpmn_id):
                    start = _local(date)
                    break
        outcomes = [o.strip() for o in (
                properties.get('outcomes') or '').split(',') if o.strip()]
        return {
            'type': kind,
            'subject': task.task_spec.bpmn_name or task.task_spec.bpmn_id,
            'description': properties.get('instructions'),
            'company': self._company_id(),
            'origin': str(self),
            'party': self.get_party('party'),
            'user': self.assignee(task.task_spec.lane).id,
            'start': start or dt.datetime.now().replace(microsecond=0),
            'bpm_task': str(task.id),
            'bpm_element': task.task_spec.bpmn_id,
            'bpm_kind': 'task',
            'bpm_outcomes': ','.join(outcomes) or None,
            }

    def _timer_activity(self, task, info, elements, date, planned=()):
        """A planned entry in the calendar for a timer that waits: for who
        does the task it is attached to (planned: the instance's activities,
        records or values), else for its lane"""
        attached_to = info.get('attached_to')
        attached = elements.get(attached_to or '', {})
        lane = attached.get('lane') or task.task_spec.lane
        user = None
        for activity in planned:
            element, kind, user_id = (
                (activity['bpm_element'], activity['bpm_kind'],
                    activity['user'])
                if isinstance(activity, dict)
                else (activity.bpm_element, activity.bpm_kind,
                    activity.user.id))
            if attached_to and element == attached_to and kind == 'task':
                user = user_id
        name = task.task_spec.bpmn_name or info.get('name') or gettext(
            'crm_bpm.msg_timer_subject', element=task.task_spec.bpmn_id)
        return {
            'type': 'task',
            'subject': name,
            'company': self._company_id(),
            'origin': str(self),
            'party': self.get_party('party'),
            'user': user or self.assignee(lane).id,
            'start': _local(date),
            'bpm_task': str(task.id),
            'bpm_element': task.task_spec.bpmn_id,
            'bpm_kind': 'timer',
            }

    def _company_id(self):
        company = getattr(self.record, 'company', None)
        if company:
            return company.id
        return Transaction().context.get('company')

    def assignee(self, lane):
        """The user of a lane: a field of the record (a user, a team, a
        group: its least busy member), else the group of that name, else
        the record's owner or who started the instance"""
        pool = Pool()
        Group = pool.get('res.group')
        User = pool.get('res.user')
        if lane:
            value = self.record
            for part in lane.strip().split('.'):
                if value is None or part not in value._fields:
                    value = None
                    break
                value = getattr(value, part)
            if isinstance(value, ModelSQL):
                user = self._user_of(value)
                if user:
                    return user
            with without_check_access():
                groups = Group.search([('name', '=', lane.strip())], limit=1)
            if groups:
                user = self._least_busy(groups[0].users)
                if user:
                    return user
        owner = getattr(self.record, 'owner', None)
        if owner:
            return owner
        return self.started_by or User(Transaction().user)

    def _user_of(self, value):
        if value.__name__ == 'res.user':
            return value
        if value.__name__ == 'crm.team':
            return self._least_busy(value.members) or value.leader
        if value.__name__ == 'res.group':
            return self._least_busy(value.users)
        return getattr(value, 'owner', None)

    @staticmethod
    def _least_busy(users):
        "The user with the fewest planned activities"
        pool = Pool()
        Activity = pool.get('crm.activity')
        users = [u for u in users if u.active]
        if not users:
            return None
        activity = Activity.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*activity.select(
                activity.user, Count(activity.id),
                where=activity.user.in_([u.id for u in users])
                & (activity.state == 'planned'),
                group_by=[activity.user]))
        load = dict(cursor)
        # The activities of the batch being advanced, not written yet
        writes = _batch_writes.get()
        if writes is not None:
            for values in writes.create:
                load[values['user']] = load.get(values['user'], 0) + 1
        return min(users, key=lambda u: (load.get(u.id, 0), u.id))

    # Service operations -----------------------------------------------------

    @classmethod
    def operations(cls):
        """{name: (method, required parameters)} of the operations service
        tasks call (spiffworkflow:serviceTaskOperator id); modules add"""
        return {
            'crm/create_activity': ('_op_create_activity', ['subject']),
            'crm/send_email': ('_op_send_email', ['template']),
            'crm/set_field': ('_op_set_field', ['field', 'value']),
            'crm/set_stage': ('_op_set_stage', ['stage']),
            'crm/notify': ('_op_notify', ['message']),
            }

    def _call_operation(self, name, params, data):
        method, _ = self.operations()[name]
        with without_check_access():
            result = getattr(self, method)(params, data)
        return result if result is not None else {}

    def _op_create_activity(self, params, data):
        "A planned activity on the record: type, subject, assignee, start"
        pool = Pool()
        Activity = pool.get('crm.activity')
        kind = params.get('type') or 'call'
        if kind not in ACTIVITY_TYPES:
            raise engine.ServiceFailed(gettext(
                    'crm_bpm.msg_operation_activity_type', type=kind))
        start = params.get('start')
        if isinstance(start, str) and parse_duration(start) is not None:
            start = dt.datetime.now() + parse_duration(start)
        elif isinstance(start, str) and start:
            start = dt.datetime.fromisoformat(start)
        elif isinstance(start, dt.date) and not isinstance(
                start, dt.datetime):
            start = dt.datetime.combine(start, dt.time(9))
        activity, = Activity.create([{
                    'type': kind,
                    'subject': str(params['subject']),
                    'description': params.get('description'),
                    'company': self._company_id(),
                    'origin': str(self.record),
                    'party': self.get_party('party'),
                    'user': self.assignee(params.get('assignee')).id,
                    'start': (start or dt.datetime.now()).replace(
                        microsecond=0),
                    }])
        return {'activity': activity.id}

    def _op_send_email(self, params, data):
        "An email from an ir.email.template (by name), sent after commit"
        pool = Pool()
        Template = pool.get('ir.email.template')
        templates = Template.search([
                ('name', '=', params['template']),
                ('model.name', '=', self.record.__name__),
                ], limit=1)
        if not templates:
            raise engine.ServiceFailed(gettext(
                    'crm_bpm.msg_operation_no_template',
                    template=params['template'],
                    model=self.record.__name__))
        template, = templates
        values = template.get(self.record)
        if not values.get('to'):
            raise engine.ServiceFailed(gettext(
                    'crm_bpm.msg_operation_no_recipient',
                    template=template.rec_name))
        # The template gives lists of addresses, ir.email.send strings
        to, cc, bcc = (', '.join(values.get(k) or [])
            for k in ['to', 'cc', 'bcc'])
        self.__class__.__queue__.send_email(
            self, template.id, to, cc, bcc, values.get('subject'),
            values.get('body'))
        return {'to': to}

    def send_email(self, template_id, to, cc, bcc, subject, body):
        pool = Pool()
        Email = pool.get('ir.email')
        Email.send(
            to=to or '', cc=cc or '', bcc=bcc or '', subject=subject or '',
            body=body or '', record=[self.record.__name__, self.record.id])

    def _op_set_field(self, params, data):
        "Write a field of the record"
        record = self.record
        name = params['field']
        if name not in record._fields or name in {
                'id', 'create_uid', 'create_date', 'write_uid',
                'write_date'}:
            raise engine.ServiceFailed(gettext(
                    'crm_bpm.msg_operation_unknown_field',
                    field=name, model=record.__name__))
        value = params['value']
        field = record._fields[name]
        if field._type == 'many2one' and isinstance(value, str):
            Target = field.get_target()
            found = Target.search([('rec_name', '=', value)], limit=1)
            if not found:
                raise engine.ServiceFailed(gettext(
                        'crm_bpm.msg_operation_no_target',
                        value=value, field=name))
            value = found[0].id
        elif field._type == 'numeric' and value is not None:
            value = Decimal(str(value))
        record.__class__.write([record], {name: value})
        return {}

    def _op_set_stage(self, params, data):
        "Move a lead to a stage (by name), with a lost reason when lost"
        pool = Pool()
        Stage = pool.get('crm.stage')
        Reason = pool.get('crm.lost_reason')
        lead = self.record
        if lead.__name__ != 'crm.lead':
            raise engine.ServiceFailed(gettext(
                    'crm_bpm.msg_operation_not_lead', model=lead.__name__))
        stages = [s for s in Stage.for_team(lead.team)
            if s.name == params['stage']]
        if not stages:
            raise engine.ServiceFailed(gettext(
                    'crm_bpm.msg_operation_no_stage', stage=params['stage']))
        values = {'stage': stages[0].id}
        if params.get('lost_reason'):
            reasons = Reason.search(
                [('name', '=', params['lost_reason'])], limit=1)
            if not reasons:
                raise engine.ServiceFailed(gettext(
                        'crm_bpm.msg_operation_no_lost_reason',
                        reason=params['lost_reason']))
            values['lost_reason'] = reasons[0].id
        if params.get('convert') and lead.type == 'lead':
            lead.__class__.convert([lead])
        lead.__class__.write([lead], values)
        return {'stage': stages[0].name}

    def _op_notify(self, params, data):
        "A notification in the client of a user (a lane-like assignee)"
        user = self.assignee(params.get('user'))
        self.__class__.notify_user(
            [self], 'tryton-notification', str(params['message']),
            user=user.id)
        return {'user': user.id}

    # Buttons ----------------------------------------------------------------

    @classmethod
    def check_manager(cls, instances):
        "Only process managers (or the process's manager group) change them"
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        transaction = Transaction()
        if transaction.user == 0 or not transaction.check_access:
            return
        groups = set(User(transaction.user).groups)
        manager = ModelData.get_id('crm_bpm', 'group_bpm_manager')
        if manager in {g.id for g in groups}:
            return
        for instance in instances:
            if instance.process.manager_group not in groups:
                raise InstanceError(gettext(
                        'crm_bpm.msg_instance_not_manager',
                        process=instance.process.rec_name))

    @classmethod
    def check_modification(
            cls, mode, instances, values=None, external=False):
        super().check_modification(
            mode, instances, values=values, external=external)
        if external and mode in {'write', 'delete'}:
            cls.check_manager(instances)

    @classmethod
    @ModelView.button
    @Workflow.transition('suspended')
    def suspend(cls, instances):
        cls.check_manager(instances)
        pass

    @classmethod
    @ModelView.button
    @Workflow.transition('running')
    def resume(cls, instances):
        cls.check_manager(instances)
        cls.advance(instances)

    @classmethod
    @ModelView.button
    @Workflow.transition('cancelled')
    def cancel(cls, instances):
        cls.check_manager(instances)
        pool = Pool()
        Activity = pool.get('crm.activity')
        with without_check_access(), Transaction().set_context(
                _bpm_sync=True):
            activities = Activity.search([
                    ('origin', 'in', [str(i) for i in instances]),
                    ('state', '=', 'planned'),
                    ])
            Activity.cancel(activities)
        cls.write(instances, {
                'end_date': dt.datetime.now(), 'next_timer': None})

    @classmethod
    @ModelView.button
    def retry(cls, instances):
        cls.check_manager(instances)
        cls.advance([i for i in instances if i.state == 'failed'])

    @classmethod
    @ModelView.button
    def migrate(cls, instances):
        """Move the instances onto the active version of their process;
        refused, saying why, when one waits at an element it lacks"""
        cls.check_manager(instances)
        for instance in instances:
            target = instance.process.active_version
            if (not target or target == instance.version
                    or instance.state not in {'running', 'suspended'}):
                continue
            workflow = instance.engine().load(instance.workflow)
            new = instance.engine(target)
            try:
                instance.engine().migrate(workflow, new)
            except engine.BpmnError as exception:
                raise InstanceError(gettext(
                        'crm_bpm.msg_instance_migrate_refused',
                        instance=instance.rec_name, version=target.rec_name,
                        element=exception.name or exception.element,
                        error=exception.message))
            instance.version = target
            instance.workflow = new.dump(workflow)
            instance._rename_tasks(target)
            if instance.state == 'running':
                instance._advance()
            else:
                writes = _Writes([instance])
                instance._sync(new, workflow, writes)
                writes.flush()
        cls.save(instances)

    def _rename_tasks(self, version):
        "The planned tasks take the names of the version's elements"
        pool = Pool()
        Activity = pool.get('crm.activity')
        elements = version.element_info
        to_save = []
        with without_check_access():
            for activity in Activity.search([
                        ('origin', '=', str(self)),
                        ('bpm_kind', '!=', None),
                        ('state', '=', 'planned'),
                        ]):
                name = elements.get(activity.bpm_element, {}).get('name')
                if name and name != activity.subject:
                    activity.subject = name
                    to_save.append(activity)
            Activity.save(to_save)

    @classmethod
    @ModelView.button
    def open_card(cls, instances):
        "The diagram of the instance, in a new tab"
        if instances:
            return page_action('card', instance=instances[0].id)

    @classmethod
    def advance(cls, instances, now=None):
        "Run the instances as far as they go (done tasks, due timers)"
        cls._advance_all(
            [i for i in instances if i.state in {'running', 'failed'}],
            now=now)
        cls.save(instances)

    @classmethod
    def process_timers(cls, now=None):
        "Cron: advance the running instances whose timer is due"
        now = now or dt.datetime.utcnow()
        instances = cls.search([
                ('state', '=', 'running'),
                ('next_timer', '!=', None),
                ('next_timer', '<=', now),
                ], order=[('next_timer', 'ASC')])
        cls.advance(instances, now=now)
        return instances

    @classmethod
    def copy(cls, instances, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('activities')
        default.setdefault('logs')
        return super().copy(instances, default=default)


class _Writes:
    """The activities and log lines of a batch of instances: read at once,
    written at once after their advance"""

    def __init__(self, instances):
        pool = Pool()
        Activity = pool.get('crm.activity')
        Log = pool.get('bpm.instance.log')
        self._activities = defaultdict(dict)
        self._logs = defaultdict(dict)
        self.create, self.cancel, self.close = [], [], []
        self.log_create, self.log_save = [], []
        if not instances:
            return
        with without_check_access():
            for activity in Activity.search([
                        ('origin', 'in', [str(i) for i in instances]),
                        ('bpm_task', '!=', None),
                        ]):
                self._activities[str(activity.origin)][
                    activity.bpm_task] = activity
            for log in Log.search([
                        ('instance', 'in', [i.id for i in instances])]):
                self._logs[log.instance.id][log.task] = log

    def activities(self, instance):
        "{task id: activity} of the instance"
        return self._activities[str(instance)]

    def logs(self, instance):
        "{task id: log} of the instance"
        return self._logs[instance.id]

    def add(self, create, cancel, close, log_create, log_save):
        self.create += create
        self.cancel += cancel
        self.close += close
        self.log_create += log_create
        self.log_save += log_save

    def flush(self):
        pool = Pool()
        Activity = pool.get('crm.activity')
        Log = pool.get('bpm.instance.log')
        with without_check_access(), Transaction().set_context(
                _bpm_sync=True):
            if self.create:
                for activity in Activity.create(self.create):
                    self._activities[str(activity.origin)][
                        activity.bpm_task] = activity
            if self.cancel:
                Activity.cancel(self.cancel)
            if self.close:
                Activity.do(self.close)
            if self.log_create:
                for log in Log.create(self.log_create):
                    self._logs[log.instance.id][log.task] = log
            if self.log_save:
                Log.save(self.log_save)
        self.create, self.cancel, self.close = [], [], []
        self.log_create, self.log_save = [], []


def _local(date):
    "The local naive datetime the calendar shows for a UTC one"
    return (date.replace(tzinfo=dt.timezone.utc).astimezone()
        .replace(tzinfo=None))


class InstanceLog(ModelSQL, ModelView):
    __name__ = 'bpm.instance.log'
    __string__ = "BPM Instance Log"

    instance = fields.Many2One(
        'bpm.instance', "Instance", required=True, ondelete='CASCADE')
    task = fields.Char("Task", readonly=True)
    element = fields.Char("Element", readonly=True)
    name = fields.Char("Name", readonly=True)
    element_type = fields.Char("Type", readonly=True)
    user = fields.Many2One('res.user', "User", readonly=True)
    start = fields.DateTime("Start", readonly=True)
    end = fields.DateTime("End", readonly=True)
    outcome = fields.Char("Outcome", readonly=True)
    duration = fields.Function(
        fields.TimeDelta("Duration"), 'get_duration')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('instance')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.instance, Index.Range()), (t.task, Index.Equality())),
                Index(t, (t.element, Index.Equality()),
                    where=t.end == Null),
                })
        cls._order = [('start', 'ASC'), ('id', 'ASC')]

    def get_duration(self, name):
        if self.start and self.end:
            return self.end - self.start



class StartStart(ModelView):
    __name__ = 'bpm.instance.start.start'
    __string__ = "Start Process"

    model = fields.Char("Model", readonly=True)
    process = fields.Many2One(
        'bpm.process', "Process", required=True,
        domain=[
            ('model.name', '=', Eval('model', '')),
            ('versions.state', '=', 'active'),
            ])


class Start(Wizard):
    "Start a process on the selected records"
    __name__ = 'bpm.instance.start'

    start = StateView(
        'bpm.instance.start.start', 'crm_bpm.instance_start_start_view_form',
        [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Start", 'start_process', 'tryton-ok', default=True),
            ])
    start_process = StateAction('crm_bpm.act_instance_form')

    def default_start(self, fields):
        return {'model': self.model.__name__ if self.model else None}

    def do_start_process(self, action):
        process = self.start.process
        if process.model.name != self.model.__name__:
            raise InstanceError(gettext(
                    'crm_bpm.msg_process_wrong_model',
                    process=process.rec_name, model=process.model.rec_name,
                    record=self.records[0].rec_name if self.records else ''))
        if not process.can_start():
            raise InstanceError(gettext(
                    'crm_bpm.msg_process_start_not_allowed',
                    process=process.rec_name))
        # The user may read the records (the wizard was opened on them);
        # instances are written by the process, not by the user
        records = self.model.browse(self.records)
        with without_check_access():
            instances = process.start_instances(records)
        action['res_id'] = [i.id for i in instances]
        return action, {}
