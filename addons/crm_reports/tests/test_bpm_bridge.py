"""The process reports against the instances and steps they count
(crm_bpm activated): instances of crm_bpm's lead qualification run by the
engine, then moved back in time to known waits"""
import datetime as dt
from collections import defaultdict

from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_bpm.tests.test_process import PROCESSES, bpmn, chain, service
from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup

from crm_reports.tests.test_dashboard import load_board

from . import WITH_EXTRAS

TODAY = dt.date.today()
CONTEXT = dict(from_date=TODAY - dt.timedelta(days=365), to_date=TODAY,
    period='month')


def hours(start, end):
    return (end - start).total_seconds() / 3600


def average(values):
    return sum(values) / len(values) if values else None


def expected_cycles(instances):
    "{(version, month): (started, completed, cancelled, failed, running, avg, max)}"
    rows = defaultdict(list)
    for instance in instances:
        rows[instance.version.id, instance.start_date.date().replace(day=1)
            ].append(instance)
    result = {}
    for key, group in rows.items():
        states = [i.state for i in group]
        cycles = [hours(i.start_date, i.end_date)
            for i in group if i.state == 'completed']
        result[key] = (len(group), states.count('completed'),
            states.count('cancelled'), states.count('failed'),
            states.count('running') + states.count('suspended'),
            average(cycles), max(cycles, default=None))
    return result


def expected_waits(instances):
    "{(version, element): (entered, waiting, avg, max)} of the waits"
    now = dt.datetime.now()
    rows = defaultdict(list)
    for instance in instances:
        for log in instance.logs:
            waited = hours(log.start, log.end or instance.end_date or now)
            rows[instance.version.id, log.element].append((
                    log.end is None and instance.state == 'running', waited))
    return {key: (len(steps), sum(w for w, _ in steps),
            average([h for _, h in steps]), max(h for _, h in steps))
        for key, steps in rows.items()
        if any(w for w, _ in steps) or max(h for _, h in steps) > 0}


def figures(Model, key, names, **context):
    "{key(row): figures} of the rows of Model, hours rounded"
    Report = Pool().get(Model)
    with Transaction().set_context({**CONTEXT, **context}):
        return {key(r): rounded(getattr(r, n) for n in names)
            for r in Report.search([])}


def rounded(values):
    # The waits still going on grow while the test runs: to the minute
    return tuple(round(v, 1) if isinstance(v, float) else v for v in values)


def expected(recompute, instances):
    """The figures recompute (expected_cycles or expected_waits) finds in
    the instances, rounded as figures() rounds the report's"""
    return {k: rounded(v) for k, v in recompute(instances).items()}


def cycles(**context):
    return figures('crm.report.process_cycle', lambda r: (
            r.version.id, r.period), ['started', 'completed', 'cancelled',
            'failed', 'running', 'average_hours', 'max_hours'], **context)


def waits(**context):
    return figures('crm.report.process_waiting', lambda r: (
            r.version.id, r.element), ['entered', 'waiting', 'average_hours',
            'max_hours'], **context)


class BpmReportsTestCase(CrmDatabaseTestCase):
    "Process reports"
    modules = WITH_EXTRAS

    def version(self, xml):
        pool = Pool()
        Process = pool.get('bpm.process')
        Version = pool.get('bpm.process.version')
        IrModel = pool.get('ir.model')
        lead, = IrModel.search([('name', '=', 'crm.lead')])
        process, = Process.create([{'name': "Test", 'model': lead.id}])
        version, = Version.create([{'process': process.id, 'xml': xml}])
        Version.activate([version])
        return version

    def lead(self, crm, name, team=None, owner=None):
        Lead = Pool().get('crm.lead')
        with crm.company_context():
            lead, = Lead.create([{'name': name,
                        'team': (team or crm.north).id,
                        'owner': owner.id if owner else None,
                        'contact_name': "Jane Doe"}])
        return lead

    def shift(self, instances, days=0, hours=0):
        "Move the instances and their logs, as they are, back in time"
        pool = Pool()
        Instance = pool.get('bpm.instance')
        Log = pool.get('bpm.instance.log')
        delta = dt.timedelta(days=days, hours=hours)

        def moved(value):
            return value - delta if value else None
        for instance in Instance.browse([i.id for i in instances]):
            Instance.write([instance], {
                    'start_date': moved(instance.start_date),
                    'end_date': moved(instance.end_date)})
            for log in instance.logs:
                Log.write([log], {
                        'start': moved(log.start), 'end': moved(log.end)})

    def setup(self):
        """On v1 of lead qualification: a and b done after 10 and 30 hours
        (100 days ago), c waiting since 40 days, d (South) cancelled after
        6 hours; on v2: e waiting since 10 days; f failed"""
        pool = Pool()
        Activity = pool.get('crm.activity')
        Instance = pool.get('bpm.instance')
        Version = pool.get('bpm.process.version')
        crm = CrmSetup()
        v1 = self.version((PROCESSES / 'lead_qualification.bpmn').read_text())
        a, b, c, d = Instance.start(v1, [
                self.lead(crm, "A"), self.lead(crm, "B"), self.lead(crm, "C"),
                self.lead(crm, "D", team=crm.south, owner=crm.carol)])
        # What happened until now took that long
        self.shift([a], hours=10)
        self.shift([b], hours=30)
        self.shift([d], hours=6)
        for instance, outcome in [(a, 'qualified'), (b, 'not qualified')]:
            call, = Activity.search([('origin', '=', str(instance)),
                    ('bpm_kind', '=', 'task')])
            call.bpm_outcome = outcome
            call.save()
            Activity.do([call])
        Instance.cancel([d])
        v2, = Version.copy([v1])
        Version.activate([v2])
        e, = Instance.start(v2, [self.lead(crm, "E")])
        failing = self.version(bpmn('<bpmn:startEvent id="s"/>'
                + service('set_it', 'crm/set_field', field='nothing',
                    value="'x'")
                + '<bpmn:endEvent id="e"/>' + chain('s', 'set_it', 'e')))
        with crm.company_context():
            f, = Instance.start(failing, [self.lead(crm, "F")])
        a, b, c, d, e, f = Instance.browse([a, b, c, d, e, f])
        self.assertEqual([i.state for i in [a, b, c, d, e, f]], [
                'completed', 'completed', 'running', 'cancelled', 'running',
                'failed'])
        self.shift([a, b], days=100)
        self.shift([c, d], days=40)
        self.shift([e, f], days=10)
        return crm, v1, v2, Instance.browse([a, b, c, d, e, f])

    @with_transaction()
    def test_process_cycle(self):
        """Started, completed, cancelled, failed, running and cycle time per
        version and month; only the instances the reader may read; the
        drill-down lists the instances counted"""
        pool = Pool()
        Instance = pool.get('bpm.instance')
        Report = pool.get('crm.report.process_cycle')
        crm, v1, v2, (a, b, c, d, e, f) = self.setup()
        company = dict(company=crm.company.id)
        with Transaction().set_context(**company):
            result = cycles(**company)
            self.assertEqual(result,
                expected(expected_cycles, Instance.search([])))
        month = a.start_date.date().replace(day=1)
        self.assertEqual(result[v1.id, month], (2, 2, 0, 0, 0, 20.0, 30.0))
        with Transaction().set_context(**CONTEXT, **company):
            row, = Report.search([('version', '=', v1.id),
                    ('period', '=', month)])
            self.assertEqual(row.completion_rate, 100)
            self.assertEqual(Instance.search(row.drill_down_domain()),
                Instance.search([('id', 'in', [a.id, b.id])]))
            rows = Report.search([('version', '=', v1.id)])
            self.assertEqual(sum(r.started for r in rows), 4)
            self.assertEqual(sorted(Instance.search(['OR', *[
                                r.drill_down_domain() for r in rows]])),
                sorted([a, b, c, d]))

        # The South team's instance is counted for South only, and the
        # instances started before the dates are not counted
        south = cycles(team=crm.south.id, **company)
        self.assertEqual(list(south.values()),
            [(1, 0, 1, 0, 0, None, None)])
        recent = cycles(from_date=TODAY - dt.timedelta(days=50), **company)
        self.assertEqual(sum(r[0] for r in recent.values()), 4)

        # carol (South) counts the instances of the leads she may read
        with crm.as_user(crm.carol):
            self.assertEqual(Instance.search([]), [d])
            self.assertEqual(cycles(**company),
                expected(expected_cycles, [d]))
        with crm.as_user(crm.alice):
            readable = Instance.search([])
            self.assertNotIn(d, readable)
            self.assertEqual(cycles(**company),
                expected(expected_cycles, readable))

    @with_transaction()
    def test_process_waiting(self):
        """Where the instances wait: entered, waiting now, average and
        longest wait per version and element, of the instances the reader
        may read; the drill-down lists the instances that went there"""
        pool = Pool()
        Instance = pool.get('bpm.instance')
        Report = pool.get('crm.report.process_waiting')
        crm, v1, v2, (a, b, c, d, e, f) = self.setup()
        company = dict(company=crm.company.id)
        with Transaction().set_context(**company):
            result = waits(**company)
            self.assertEqual(result,
                expected(expected_waits, Instance.search([])))
        # The user task and its escalation timer; no instant step
        self.assertEqual({k[1] for k in result}, {'qualify', 'overdue'})
        self.assertEqual(result[v1.id, 'qualify'],
            (4, 1, (10 + 30 + 40 * 24 + 6) / 4, 40 * 24.0))
        self.assertEqual(result[v2.id, 'qualify'], (1, 1, 240.0, 240.0))
        with Transaction().set_context(**CONTEXT, **company):
            row, = Report.search([('version', '=', v1.id),
                    ('element', '=', 'qualify')])
            self.assertEqual(row.name, "Qualify the lead")
            self.assertEqual(sorted(Instance.search(row.drill_down_domain())),
                sorted([a, b, c, d]))

        # Steps entered in the dates only
        recent = waits(from_date=TODAY - dt.timedelta(days=50), **company)
        self.assertEqual(recent[v1.id, 'qualify'][:2], (2, 1))

        with crm.as_user(crm.carol):
            self.assertEqual(waits(**company), expected(expected_waits, [d]))
        with crm.as_user(crm.alice):
            self.assertEqual(waits(**company)[v1.id, 'qualify'][:2], (3, 1))

    @with_transaction()
    def test_reporting_menu_subscription_and_board(self):
        """Both analyses can be scheduled (their PDF has rows) and the
        process manager's board loads"""
        pool = Pool()
        Subscription = pool.get('crm.report.subscription')
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        crm, *_ = self.setup()
        analyses = dict(Subscription.get_analyses())
        self.assertEqual(analyses['crm.report.process_cycle'],
            "Process Cycle Time")
        self.assertEqual(analyses['crm.report.process_waiting'],
            "Process Waiting Points")
        User.write([crm.manager], {'groups': [('add', [
                            ModelData.get_id('crm_bpm', 'group_bpm_manager')])]})
        subscription, = Subscription.create([{
                    'name': "Bottlenecks", 'company': crm.company.id,
                    'currency': crm.company.currency.id,
                    'owner': crm.manager.id,
                    'analysis': 'crm.report.process_waiting',
                    'date_range': 'year_to_date',
                    'emails': 'boss@example.com'}])
        report = subscription.make_report()
        self.assertIn("Average Wait (h)", [c.string for c in report.columns])
        self.assertTrue(report.rows)
        with crm.as_user(crm.manager):
            board = load_board('dashboard_process')
        self.assertEqual(set(board), {
                "Where Processes Wait", "Process Cycle Time per Month"})
        self.assertTrue(all(board.values()))


del CrmDatabaseTestCase
