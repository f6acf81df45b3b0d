import datetime as dt
from urllib.parse import quote, urlencode

from sql.aggregate import Max

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, Unique, Workflow, fields)
from trytond.pool import Pool
from trytond.rpc import RPC
from trytond import pyson
from trytond.pyson import PYSON, Eval, PYSONEncoder
from trytond.transaction import Transaction

from . import engine
from .exceptions import ProcessError, VersionError


# What a start condition may use
PYSON_NAMES = {name: getattr(pyson, name) for name in [
        'Eval', 'Not', 'Bool', 'And', 'Or', 'Equal', 'Greater', 'Less', 'If',
        'Get', 'In', 'Date', 'DateTime', 'Len', 'Id']}
PYSON_NAMES.update({'True': True, 'False': False, 'None': None})


class Process(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'bpm.process'
    __string__ = "BPM Process"

    name = fields.Char("Name", required=True, translate=True)
    model = fields.Many2One(
        'ir.model', "Runs On", required=True, ondelete='CASCADE',
        help="The kind of record an instance of the process is about.")
    model_name = fields.Function(
        fields.Char("Model Name"), 'on_change_with_model_name')
    start = fields.Selection([
            ('manual', "Manually, from the record"),
            ('create', "When a record is created"),
            ('write', "When a record comes to meet the condition"),
            ], "Start", required=True, sort=False)
    condition = fields.Char(
        "Condition",
        states={
            'invisible': Eval('start') == 'manual',
            'required': Eval('start') == 'write',
            },
        help="A PYSON expression on the record, named \"self\", e.g. "
        "Eval('self', {}).get('state') == 'won'.")
    trigger = fields.Many2One(
        'ir.trigger', "Trigger", readonly=True, ondelete='SET NULL')
    start_group = fields.Many2One(
        'res.group', "Started By", ondelete='RESTRICT',
        help="The group allowed to start it by hand (empty: every user who "
        "can read the record).")
    manager_group = fields.Many2One(
        'res.group', "Managed By", ondelete='RESTRICT',
        help="Besides the process managers, the group allowed to change "
        "its running instances.")
    versions = fields.One2Many(
        'bpm.process.version', 'process', "Versions")
    active_version = fields.Function(
        fields.Many2One('bpm.process.version', "Active Version"),
        'get_active_version')
    description = fields.Text("Description")

    @classmethod
    def default_start(cls):
        return 'manual'

    @fields.depends('model')
    def on_change_with_model_name(self, name=None):
        return self.model.name if self.model else None

    @classmethod
    def get_active_version(cls, processes, name):
        pool = Pool()
        Version = pool.get('bpm.process.version')
        result = {p.id: None for p in processes}
        for version in Version.search([
                    ('process', 'in', [p.id for p in processes]),
                    ('state', '=', 'active'),
                    ]):
            result[version.process.id] = version.id
        return result

    @classmethod
    def validate_fields(cls, processes, field_names):
        super().validate_fields(processes, field_names)
        if field_names is None or field_names & {'condition', 'start'}:
            for process in processes:
                if process.start != 'manual' and process.condition:
                    process.encoded_condition()

    def encoded_condition(self):
        """The condition, written as in Python (Eval('self', {}).get(...)
        == ...), encoded as ir.trigger stores PYSON"""
        if not self.condition:
            return 'true'
        try:
            engine.check_script(self.condition)
            value = eval(
                compile(self.condition, '<condition>', 'eval'),
                {'__builtins__': {}}, PYSON_NAMES)
            if not isinstance(value, (PYSON, bool)):
                raise ValueError
            return PYSONEncoder().encode(value)
        except Exception:
            raise ProcessError(gettext(
                    'crm_bpm.msg_process_condition_invalid',
                    process=self.rec_name))

    @classmethod
    def on_modification(cls, mode, processes, field_names=None):
        super().on_modification(mode, processes, field_names=field_names)
        if mode in {'create', 'write'}:
            cls.update_triggers(processes)

    @classmethod
    def check_modification(
            cls, mode, processes, values=None, external=False):
        pool = Pool()
        Trigger = pool.get('ir.trigger')
        super().check_modification(
            mode, processes, values=values, external=external)
        if mode == 'delete':
            triggers = [p.trigger for p in processes if p.trigger]
            if triggers:
                Trigger.delete(triggers)

    @classmethod
    def update_triggers(cls, processes):
        "One ir.trigger per process that starts by itself"
        pool = Pool()
        Trigger = pool.get('ir.trigger')
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        to_delete = []
        for process in processes:
            trigger = process.trigger
            if process.start == 'manual' or not process.active:
                if trigger:
                    to_delete.append(trigger)
                    trigger = None
            else:
                if not trigger:
                    trigger = Trigger(
                        action='bpm.process|start_from_trigger',
                        limit_number=0)
                trigger.name = process.name
                trigger.model = process.model
                trigger.on_create_ = process.start == 'create'
                trigger.on_write_ = process.start == 'write'
                trigger.condition = process.encoded_condition()
                trigger.save()
            # In SQL: a write would come back here
            cursor.execute(*table.update(
                    [table.trigger], [trigger.id if trigger else None],
                    where=table.id == process.id))
        if to_delete:
            Trigger.delete(to_delete)

    @classmethod
    def start_from_trigger(cls, records, trigger):
        "Action of the process's trigger: start an instance per record"
        processes = cls.search([('trigger', '=', trigger.id)])
        for process in processes:
            process.start_instances(records)

    def start_instances(self, records, data=None):
        pool = Pool()
        Instance = pool.get('bpm.instance')
        version = self.active_version
        if not version:
            raise ProcessError(gettext(
                    'crm_bpm.msg_process_no_active_version',
                    process=self.rec_name))
        return Instance.start(version, records, data=data)

    def can_start(self, user_id=None):
        pool = Pool()
        User = pool.get('res.user')
        if not self.start_group:
            return True
        user = User(user_id if user_id is not None else Transaction().user)
        return self.start_group in user.groups


class Version(Workflow, ModelSQL, ModelView):
    __name__ = 'bpm.process.version'
    __string__ = "BPM Process Version"

    _draft = {'readonly': Eval('state') != 'draft'}

    process = fields.Many2One(
        'bpm.process', "Process", required=True, ondelete='CASCADE',
        states=_draft)
    number = fields.Integer("Number", readonly=True)
    state = fields.Selection([
            ('draft', "Draft"),
            ('active', "Active"),
            ('retired', "Retired"),
            ], "State", required=True, readonly=True, sort=False)
    xml = fields.Text(
        "BPMN", required=True, states=_draft,
        help="The BPMN 2.0 file of the process (drawn in the modeler).")
    bpmn_process = fields.Char(
        "BPMN Process", readonly=True,
        help="The id, in the file, of the process that runs.")
    spec = fields.Text("Definition", readonly=True)
    serializer_version = fields.Char("Serializer Version", readonly=True)
    elements = fields.Text("Elements", readonly=True)
    note = fields.Text("Note", help="What changed in this version.")
    instances = fields.One2Many('bpm.instance', 'version', "Instances")
    date_activated = fields.DateTime("Activated On", readonly=True)

    del _draft

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('process_number_unique', Unique(t, t.process, t.number),
                'crm_bpm.msg_version_number_unique'),
            ]
        cls._sql_indexes.add(
            Index(t, (t.process, Index.Range()), (t.state, Index.Equality())))
        cls._order = [('process', 'ASC'), ('number', 'DESC'), ('id', 'DESC')]
        cls._transitions |= {
            ('draft', 'active'),
            ('active', 'retired'),
            ('retired', 'active'),
            }
        cls._buttons.update({
                'activate': {
                    'invisible': Eval('state') == 'active',
                    'icon': 'tryton-ok',
                    },
                'retire': {
                    'invisible': Eval('state') != 'active',
                    'icon': 'tryton-archive',
                    },
                'new_version': {
                    'invisible': Eval('state') == 'draft',
                    'icon': 'tryton-copy',
                    },
                'open_modeler': {
                    'icon': 'tryton-launch',
                    'readonly': ~Eval('id', -1) | (Eval('id', -1) < 0),
                    'depends': ['id'],
                    },
                'open_heatmap': {
                    'icon': 'tryton-graph',
                    'readonly': ~Eval('id', -1) | (Eval('id', -1) < 0),
                    'depends': ['id'],
                    },
                })

    @classmethod
    def __post_setup__(cls):
        super().__post_setup__()
        cls.__rpc__['save_xml'] = RPC(readonly=False, instantiate=0)

    @classmethod
    def save_xml(cls, versions, xml):
        """Save xml (from the modeler) on the version when it is a draft,
        else on a new draft copy; return the id of the version saved"""
        version, = versions
        if version.state != 'draft':
            version, = cls.copy([version])
        version.xml = xml
        version.save()
        return version.id

    @classmethod
    def default_state(cls):
        return 'draft'

    @classmethod
    def default_xml(cls):
        return EMPTY_BPMN

    def get_rec_name(self, name):
        return f'{self.process.rec_name} v{self.number}'

    @classmethod
    def search_rec_name(cls, name, clause):
        return [('process.rec_name', *clause[1:])]

    @classmethod
    def operations(cls):
        "{name: required parameters} of the service task operations"
        pool = Pool()
        Instance = pool.get('bpm.instance')
        return {n: set(p) for n, (_, p) in Instance.operations().items()}

    @classmethod
    def parse(cls, xml):
        "The engine definition of xml, or a VersionError naming the element"
        try:
            return engine.parse(xml, cls.operations())
        except engine.BpmnError as exception:
            if exception.element:
                raise VersionError(gettext(
                        'crm_bpm.msg_version_invalid_element',
                        element=exception.element,
                        name=exception.name or exception.element,
                        error=exception.message))
            raise VersionError(gettext(
                    'crm_bpm.msg_version_invalid', error=exception.message))

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if values.get('xml'):
            definition = cls.parse(values['xml'])
            values['bpmn_process'] = definition.process_id
            values['spec'] = definition.spec
            values['serializer_version'] = engine.SERIALIZER_VERSION
            values['elements'] = engine.json.dumps(definition.elements)
        if mode == 'create' and values.get('process') and not values.get(
                'number'):
            table = cls.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*table.select(
                    Max(table.number),
                    where=table.process == values['process']))
            last, = cursor.fetchone()
            values['number'] = (last or 0) + 1
        return values

    @classmethod
    def check_modification(
            cls, mode, versions, values=None, external=False):
        super().check_modification(
            mode, versions, values=values, external=external)
        if mode == 'write' and values.keys() & {'xml', 'process'}:
            for version in versions:
                if version.state != 'draft':
                    raise VersionError(gettext(
                            'crm_bpm.msg_version_not_draft',
                            version=version.rec_name))
        if mode == 'delete':
            for version in versions:
                if version.instances:
                    raise VersionError(gettext(
                            'crm_bpm.msg_version_delete_instances',
                            version=version.rec_name))

    @classmethod
    def copy(cls, versions, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('number')
        default.setdefault('state', 'draft')
        default.setdefault('instances')
        default.setdefault('date_activated')
        return super().copy(versions, default=default)

    @property
    def element_info(self):
        return engine.json.loads(self.elements or '{}')

    @classmethod
    @ModelView.button
    @Workflow.transition('active')
    def activate(cls, versions):
        "Make it the version new instances use; running ones keep theirs"
        processes = {v.process for v in versions}
        if len(processes) < len(versions):
            raise VersionError(gettext('crm_bpm.msg_version_activate_one'))
        others = cls.search([
                ('process', 'in', [p.id for p in processes]),
                ('state', '=', 'active'),
                ('id', 'not in', [v.id for v in versions]),
                ])
        if others:
            cls.retire(others)
        cls.write(versions, {'date_activated': dt.datetime.now()})

    @classmethod
    @ModelView.button
    @Workflow.transition('retired')
    def retire(cls, versions):
        pass

    @classmethod
    @ModelView.button
    def new_version(cls, versions):
        "A draft copy to change"
        return cls.copy(versions)

    @classmethod
    @ModelView.button
    def open_modeler(cls, versions):
        "The modeler page of the version, in a new tab"
        if versions:
            return page_action('modeler', version=versions[0].id)

    @classmethod
    @ModelView.button
    def open_heatmap(cls, versions):
        "The heatmap page of the version, in a new tab"
        if versions:
            return page_action('heatmap', version=versions[0].id)


def page_action(page, **query):
    "An action opening a custom page of the database in the browser"
    database = quote(Transaction().database.name, safe='')
    return {
        'type': 'ir.action.url',
        'name': page,
        'url': f'/{database}/bpm/{page}?{urlencode(query)}',
        }


# What a new version holds: a start event, to draw from
EMPTY_BPMN = '''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" \
xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" \
xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" \
id="definitions" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="process" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram">
    <bpmndi:BPMNPlane id="plane" bpmnElement="process">
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="180" y="160" width="36" height="36"/>
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
'''
