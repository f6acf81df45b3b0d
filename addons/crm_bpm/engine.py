"""SpiffWorkflow behind one small interface, without Tryton.

The module stores a parsed process definition once per version (`Definition.
spec`) and each instance's state without it (`Engine.dump`). Scripts and
conditions run in a restricted environment; service tasks call the
`service` function given to the engine; timers compare with the engine's
clock, so that a cron (or a test) decides what "now" is.
"""
import ast
import builtins
import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
from decimal import Decimal

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.script_engine import (
    PythonScriptEngine, TaskDataEnvironment)
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

BPMN = 'http://www.omg.org/spec/BPMN/20100524/MODEL'
# Elements the CRM cannot run: nothing in it sends messages or signals to a
# process, and decisions (DMN) are not deployed with it
UNSUPPORTED = {
    'messageEventDefinition': "message events",
    'signalEventDefinition': "signal events",
    'conditionalEventDefinition': "conditional events",
    'businessRuleTask': "business rule tasks",
    'sendTask': "send tasks",
    'receiveTask': "receive tasks",
    'transaction': "transactions",
    }
# Timer expressions drawn in other modelers are ISO 8601 literals, not
# Python: "PT1M" rather than "'PT1M'"
ISO_LITERAL = re.compile(
    r'^(R\d*/)?(P[0-9YMWDTHS.,]+|\d{4}-\d\d-\d\d[0-9T:.+\-Z]*)'
    r'(/P[0-9YMWDTHS.,]+)?$')
SAFE_BUILTINS = {name: getattr(builtins, name) for name in [
        'abs', 'all', 'any', 'bool', 'dict', 'divmod', 'enumerate',
        'filter', 'float', 'int', 'isinstance', 'len', 'list', 'map', 'max',
        'min', 'range', 'reversed', 'round', 'set', 'sorted', 'str', 'sum',
        'tuple', 'zip', 'ValueError', 'KeyError']}
# Refused by name, so that the message is clear before anything runs
DENIED_NAMES = {
    'open', 'exec', 'eval', 'compile', 'getattr', 'setattr', 'delattr',
    'globals', 'locals', 'vars', 'dir', 'type', 'object', 'breakpoint',
    'input', 'help', 'memoryview', 'super', 'classmethod', 'staticmethod',
    'property', 'exit', 'quit'}
def _print(*args, **kwargs):
    "print() of scripts drawn elsewhere goes to the server log"
    logger.debug('script: %s', ' '.join(str(a) for a in args))


SAFE_BUILTINS['print'] = _print
SAFE_GLOBALS = {
    'date': dt.date, 'datetime': dt.datetime, 'timedelta': dt.timedelta,
    'Decimal': Decimal,
    }

logger = logging.getLogger(__name__)
_now = contextvars.ContextVar('crm_bpm_now', default=None)


class BpmnError(Exception):
    "A definition or a run refused; element is the id of the element at fault"

    def __init__(self, message, element=None, name=None):
        super().__init__(message)
        self.message = message
        self.element = element
        self.name = name


class ScriptRefused(BpmnError):
    pass


class _Clock(dt.datetime):
    "SpiffWorkflow's timers ask this for the time: the engine's clock"

    @classmethod
    def now(cls, tz=None):
        current = _now.get()
        if current is None:
            return dt.datetime.now(tz)
        if tz is not None:
            return current.astimezone(tz)
        return current


spiff_timer.datetime = _Clock


def _utc(value):
    "A naive UTC datetime of an aware one (naive ones are UTC already)"
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return dt.datetime(
        value.year, value.month, value.day, value.hour, value.minute,
        value.second, value.microsecond)


@contextlib.contextmanager
def clock(now):
    "Timers compare with now (an aware datetime, or naive UTC)"
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    token = _now.set(now)
    try:
        yield
    finally:
        _now.reset(token)


def check_script(source, element=None):
    "Refuse what a script or condition may not do; return its AST"
    try:
        tree = ast.parse(source)
    except SyntaxError as exception:
        raise ScriptRefused(
            f"invalid Python on line {exception.lineno}: {exception.msg}",
            element=element)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            raise ScriptRefused("import is not allowed", element=element)
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            raise ScriptRefused(
                "global and nonlocal are not allowed", element=element)
        if isinstance(node, ast.Name) and (
                node.id.startswith('__') or node.id in DENIED_NAMES):
            raise ScriptRefused(
                f"the name {node.id} is not allowed", element=element)
        if isinstance(node, ast.Attribute) and node.attr.startswith('_'):
            raise ScriptRefused(
                f"the attribute {node.attr} is not allowed", element=element)
    return tree


class RecordView:
    """Read-only view of a record for scripts: its field values, nothing
    else (no methods, no private attributes)"""
    __slots__ = ('_values',)

    def __init__(self, values):
        object.__setattr__(self, '_values', values)

    def __getattr__(self, name):
        try:
            value = self._values[name]
        except KeyError:
            raise AttributeError(name)
        return value() if callable(value) else value

    def __setattr__(self, name, value):
        raise AttributeError("the record is read-only in scripts")

    def __repr__(self):
        return '<record>'


class _Environment(TaskDataEnvironment):
    "Scripts without builtins but safe ones, service tasks to self.service"

    def __init__(self, service=None, record=None):
        globals_ = {'__builtins__': SAFE_BUILTINS, **SAFE_GLOBALS}
        if record is not None:
            globals_['record'] = record
        super().__init__(globals_)
        self.service = service
        self._checked = set()

    def _check(self, source):
        if source not in self._checked:
            check_script(source)
            self._checked.add(source)

    def evaluate(self, expression, context, external_context=None):
        stripped = expression.strip()
        if ISO_LITERAL.match(stripped):
            return stripped
        self._check(expression)
        return super().evaluate(expression, context, external_context)

    def execute(self, script, context, external_context=None):
        self._check(script)
        return super().execute(script, context, external_context)

    def call_service(self, context, operation_name, operation_params,
            **kwargs):
        if self.service is None:
            raise BpmnError(f"no service for {operation_name}")
        params = {k: v['value'] for k, v in operation_params.items()}
        return json.dumps(self.service(operation_name, params, context))


class _ScriptEngine(PythonScriptEngine):
    def call_service(self, task, **kwargs):
        # SpiffWorkflow 3.2.0 reports any service error as a NameError
        # (it names an undefined variable): keep the real one
        try:
            return self.environment.call_service(task.data, **kwargs)
        except BpmnError as exception:
            exception.element = exception.element or task.task_spec.bpmn_id
            exception.name = exception.name or task.task_spec.bpmn_name
            raise
        except Exception as exception:
            raise ServiceFailed(
                str(exception) or exception.__class__.__name__,
                element=task.task_spec.bpmn_id,
                name=task.task_spec.bpmn_name) from exception


class ServiceFailed(BpmnError):
    pass


def _serializer():
    registry = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
    registry.register(
        Decimal, lambda v: {'value': str(v)},
        lambda v: Decimal(v['value']))
    registry.register(
        dt.date, lambda v: {'value': v.isoformat()},
        lambda v: dt.date.fromisoformat(v['value']))
    return BpmnWorkflowSerializer(registry)


SERIALIZER = _serializer()
SERIALIZER_VERSION = SERIALIZER.VERSION


class Definition:
    """A parsed BPMN file: the process to run and what the CRM needs to
    know of its elements"""

    def __init__(self, process_id, name, spec, elements):
        self.process_id = process_id
        self.name = name
        self.spec = spec            # JSON text, stored once per version
        self.elements = elements    # {bpmn id: {type, name, lane, ...}}


def _root(xml):
    if isinstance(xml, str):
        xml = xml.encode('utf-8')
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        return etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exception:
        raise BpmnError(f"the XML is not well-formed: {exception}")


def _check_supported(root):
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        qname = etree.QName(node)
        if qname.namespace == BPMN and qname.localname in UNSUPPORTED:
            element = node
            if qname.localname.endswith('EventDefinition'):
                element = node.getparent()
            raise BpmnError(
                f"{UNSUPPORTED[qname.localname]} are not supported",
                element=element.get('id'), name=element.get('name'))


def _main_process(parser, root):
    "The executable process that no other process of the file calls"
    ids = parser.get_process_ids()
    called = {n.get('calledElement') for n in root.iter(
            f'{{{BPMN}}}callActivity')}
    executable = {n.get('id') for n in root.iter(f'{{{BPMN}}}process')
        if n.get('isExecutable', 'true') != 'false'}
    candidates = [i for i in ids if i not in called and i in executable]
    if not candidates:
        raise BpmnError("the file has no executable process")
    return candidates[0]


def parse(xml, operations=None, process_id=None):
    """Parse and check a BPMN 2.0 file, return its Definition.

    operations: {name: set of required parameters} of the service tasks
    the CRM offers (None: not checked)."""
    root = _root(xml)
    _check_supported(root)
    parser = SpiffBpmnParser(validator=BpmnValidator())
    try:
        parser.add_bpmn_xml(root, filename='process.bpmn')
        process_id = process_id or _main_process(parser, root)
        spec = parser.get_spec(process_id)
        subprocesses = parser.get_subprocess_specs(process_id)
    except ValidationException as exception:
        raise BpmnError(
            str(exception).splitlines()[0], element=exception.id or None,
            name=exception.name or None)
    except SpiffWorkflowException as exception:
        raise BpmnError(str(exception).splitlines()[0])
    except KeyError as exception:
        raise BpmnError(f"no process {exception} in the file")
    elements = {}
    for task_spec in [*spec.task_specs.values(), *(
                t for s in subprocesses.values()
                for t in s.task_specs.values())]:
        bpmn_id = getattr(task_spec, 'bpmn_id', None)
        if not bpmn_id:
            continue
        info = elements.setdefault(bpmn_id, {
                'type': task_spec.__class__.__name__,
                'name': task_spec.bpmn_name,
                'lane': task_spec.lane,
                'manual': task_spec.manual,
                })
        extensions = getattr(task_spec, 'extensions', None) or {}
        if extensions.get('properties'):
            info['properties'] = dict(extensions['properties'])
        for attr in ('script', 'prescript', 'postscript'):
            if getattr(task_spec, attr, None):
                check_script(task_spec.script if attr == 'script'
                    else getattr(task_spec, attr), element=bpmn_id)
        if info['type'] == 'ServiceTask':
            operator = extensions.get('serviceTaskOperator')
            if not operator:
                raise BpmnError(
                    "a service task needs a CRM operation",
                    element=bpmn_id, name=task_spec.bpmn_name)
            name = operator['name']
            if operations is not None:
                if name not in operations:
                    raise BpmnError(
                        f"unknown operation {name}", element=bpmn_id,
                        name=task_spec.bpmn_name)
                missing = set(operations[name]) - set(operator['parameters'])
                if missing:
                    raise BpmnError(
                        f"operation {name} needs "
                        + ", ".join(sorted(missing)), element=bpmn_id,
                        name=task_spec.bpmn_name)
            for param in operator['parameters'].values():
                _check_expression(param['value'], bpmn_id)
            info['operation'] = name
    for node in root.iter(f'{{{BPMN}}}boundaryEvent'):
        if node.get('id') in elements:
            elements[node.get('id')]['attached_to'] = node.get('attachedToRef')
            elements[node.get('id')]['interrupting'] = (
                node.get('cancelActivity', 'true') != 'false')
    # The branches of the decisions, for the statistics of their shares
    flows = {n.get('id'): n for n in root.iter(f'{{{BPMN}}}sequenceFlow')}
    for tag in ['exclusiveGateway', 'inclusiveGateway']:
        for node in root.iter(f'{{{BPMN}}}{tag}'):
            if node.get('id') not in elements:
                continue
            branches = []
            for outgoing in node.iter(f'{{{BPMN}}}outgoing'):
                flow = flows.get((outgoing.text or '').strip())
                if flow is not None:
                    target = flow.get('targetRef')
                    branches.append([
                            flow.get('name') or elements.get(
                                target, {}).get('name') or target, target])
            if not branches:
                # Drawn without <outgoing>: the flows that leave it
                branches = [[f.get('name') or f.get('targetRef'),
                        f.get('targetRef')] for f in flows.values()
                    if f.get('sourceRef') == node.get('id')]
            elements[node.get('id')]['branches'] = branches
    for flow in root.iter(f'{{{BPMN}}}conditionExpression'):
        _check_expression(flow.text or '', flow.getparent().get('id'))
    name = spec.description or spec.name
    # A workflow not started yet, as the serializer writes it: the engine
    # takes the definition from it, and puts it back into each state
    spec_json = SERIALIZER.serialize_json(BpmnWorkflow(spec, subprocesses))
    return Definition(process_id, name, spec_json, elements)


def _check_expression(source, element):
    source = source.strip()
    if source and not ISO_LITERAL.match(source):
        check_script(source, element=element)


class Engine:
    "Runs the instances of one parsed definition"

    def __init__(self, spec, service=None, record=None):
        fresh = json.loads(spec)
        workflow = SERIALIZER.deserialize_json(spec)
        self._spec = workflow.spec
        self._subprocess_specs = workflow.subprocess_specs
        self._specs = {
            'spec': fresh['spec'],
            'subprocess_specs': fresh['subprocess_specs'],
            }
        self.bind(service, record)

    def bind(self, service=None, record=None):
        "Run the next workflows with this service function and record"
        self.environment = _Environment(service=service, record=record)

    def _script_engine(self):
        return _ScriptEngine(environment=self.environment)

    def new(self, data=None):
        workflow = BpmnWorkflow(
            self._spec, self._subprocess_specs,
            script_engine=self._script_engine())
        if data:
            start = workflow.get_tasks(state=TaskState.READY)
            for task in start:
                task.data.update(data)
        return workflow

    def load(self, state):
        dct = json.loads(state)
        dct['spec'] = self._specs['spec']
        dct['subprocess_specs'] = self._specs['subprocess_specs']
        workflow = SERIALIZER.deserialize_json(json.dumps(dct))
        workflow.script_engine = self._script_engine()
        return workflow

    @staticmethod
    def dump(workflow):
        "The state of the workflow as JSON, without the definition"
        dct = json.loads(SERIALIZER.serialize_json(workflow))
        del dct['spec'], dct['subprocess_specs']
        return json.dumps(dct)

    @staticmethod
    def run(workflow, now=None):
        """Run what the engine can (scripts, gateways, services, due
        timers) until only user tasks and timers wait"""
        with clock(now):
            workflow.refresh_timers()
            workflow.do_engine_steps()

    @staticmethod
    def user_tasks(workflow):
        "The tasks waiting for a person (user and manual tasks)"
        return [t for t in workflow.get_tasks(state=TaskState.READY)
            if t.task_spec.manual]

    @staticmethod
    def complete(workflow, task_id, data=None, now=None):
        task = workflow.get_task_from_id(task_id)
        if task.state != TaskState.READY or not task.task_spec.manual:
            raise BpmnError(
                "the task is not waiting", element=task.task_spec.bpmn_id,
                name=task.task_spec.bpmn_name)
        if data:
            task.data.update(data)
        with clock(now):
            task.run()
        Engine.run(workflow, now=now)
        return task

    @staticmethod
    def next_timer(workflow):
        "The UTC (naive) date of the first timer waiting, or None"
        dates = []
        for event in workflow.waiting_events():
            value = event.value
            if isinstance(value, str):
                try:
                    value = spiff_timer.TimerEventDefinition.get_datetime(
                        value)
                except ValueError:
                    continue
            if isinstance(value, dt.datetime):
                dates.append(_utc(value))
        return min(dates) if dates else None

    @staticmethod
    def timers(workflow):
        "[(element id, name, UTC date)] of the timers waiting"
        result = []
        for task in workflow.get_tasks(state=TaskState.WAITING):
            event_value = task._get_internal_data('event_value')
            if isinstance(event_value, dict):
                event_value = event_value.get('next')
            if not isinstance(event_value, str):
                continue
            try:
                date = spiff_timer.TimerEventDefinition.get_datetime(
                    event_value)
            except ValueError:
                continue
            result.append(
                (task.task_spec.bpmn_id, task.task_spec.bpmn_name, _utc(date)))
        return result

    @staticmethod
    def active_elements(workflow):
        "The ids of the elements waiting or ready"
        return sorted({
                t.task_spec.bpmn_id for t in workflow.get_tasks(
                    state=TaskState.READY | TaskState.WAITING
                    | TaskState.STARTED)
                if getattr(t.task_spec, 'bpmn_id', None)})

    @staticmethod
    def variables(workflow):
        "The process data: of the task that ran last, merged with workflow's"
        data = dict(workflow.data)
        tasks = workflow.get_tasks(state=TaskState.READY | TaskState.WAITING)
        source = tasks[0] if tasks else workflow.last_task
        if source is not None:
            data.update(source.data)
        return data

    @staticmethod
    def set_variables(workflow, values):
        "Change the data of the tasks waiting (what runs next sees it)"
        for task in workflow.get_tasks(
                state=TaskState.READY | TaskState.WAITING):
            task.data.update(values)

    def migrate(self, workflow, target):
        """Move a running workflow onto the definition of target (another
        Engine); BpmnError naming the element that prevents it"""
        top, subprocesses = diff_workflow(
            SERIALIZER.registry, workflow, target._spec,
            target._subprocess_specs)
        diffs = [(workflow, top, target._spec)]
        for sub_id, diff in subprocesses.items():
            sub = workflow.subprocesses[sub_id]
            if diff is None:
                raise BpmnError(
                    f"its subprocess {sub.spec.name} is not in the new "
                    "version", element=sub.spec.name)
            diffs.append(
                (sub, diff, target._subprocess_specs[sub.spec.name]))
        for _, diff, _ in diffs:
            for task in diff.removed:
                if task.state & ACTIVE:
                    raise BpmnError(
                        "it waits at an element the new version does not "
                        "have", element=task.task_spec.bpmn_id,
                        name=task.task_spec.bpmn_name)
        for sub, diff, spec in diffs:
            migrate_workflow(diff, sub, spec)
        workflow.subprocess_specs = target._subprocess_specs

    @staticmethod
    def tasks(workflow):
        "The tasks of the file's elements (not SpiffWorkflow's own)"
        return [t for t in workflow.get_tasks()
            if getattr(t.task_spec, 'bpmn_id', None)]


def state_name(task):
    "READY, WAITING, COMPLETED, CANCELLED..."
    return TaskState.get_name(task.state)


ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED
