#!/usr/bin/env python3
"""BPM throughput: instances of the shipped lead qualification process run
end to end on leads (start, the qualification call done through the
activity, conversion or loss), against bare SpiffWorkflow running the same
BPMN file in memory; and the timer cron with many waiting instances.
Targets: at least 0.4 of the bare rate; the cron under 2 s."""
import datetime as dt
import json
import time
import types
from pathlib import Path

import benchlib
from benchlib import check

RATIO_TARGET = 0.4
CRON_TARGET_S = 2.0
BATCH = 50
PROCESSES = (Path(__file__).resolve().parents[1]
    / 'addons' / 'crm_bpm' / 'processes')


def bare_spiff(xml, count):
    """Run count workflows of the file with SpiffWorkflow alone: parse
    once, then per workflow start, complete the user task, run to the end"""
    from lxml import etree
    from SpiffWorkflow.bpmn.script_engine import (
        PythonScriptEngine, TaskDataEnvironment)
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
    from SpiffWorkflow.util.task import TaskState

    from crm_bpm.engine import ISO_LITERAL

    class Environment(TaskDataEnvironment):
        "What any application needs to run the file: services, ISO timers"

        def evaluate(self, expression, context, external_context=None):
            if ISO_LITERAL.match(expression.strip()):
                return expression.strip()
            return super().evaluate(expression, context, external_context)

        def call_service(self, context, operation_name, operation_params,
                **kwargs):
            return json.dumps({})

    parser = SpiffBpmnParser()
    parser.add_bpmn_xml(etree.fromstring(xml.encode()), filename='p.bpmn')
    spec = parser.get_spec('lead_qualification')
    subprocesses = parser.get_subprocess_specs('lead_qualification')
    # What the parameters of the service tasks read of the lead
    record = types.SimpleNamespace(name="Web lead")
    engine = PythonScriptEngine(environment=Environment({'record': record}))
    start = time.monotonic()
    for i in range(count):
        workflow = BpmnWorkflow(spec, subprocesses, script_engine=engine)
        workflow.do_engine_steps()
        task, = [t for t in workflow.get_tasks(state=TaskState.READY)
            if t.task_spec.manual]
        task.data['outcome'] = 'qualified' if i % 2 else 'not qualified'
        task.run()
        workflow.do_engine_steps()
        check(workflow.is_completed())
    return count / (time.monotonic() - start)


def setup(name, sales, count):
    """The process (manual start, so that creating the leads starts
    nothing) and count new leads of the first team"""
    from trytond.pool import Pool
    with benchlib.transaction(
            name, sales['admin'], {'company': sales['company']}) as tx:
        pool = Pool()
        Process = pool.get('bpm.process')
        Version = pool.get('bpm.process.version')
        IrModel = pool.get('ir.model')
        Team = pool.get('crm.team')
        Lead = pool.get('crm.lead')
        team = Team(sales['teams'][0])
        Team.write([team], {'leader': sales['admin']})
        model, = IrModel.search([('name', '=', 'crm.lead')])
        processes = {}
        for key in ['lead_qualification', 'follow_up_call']:
            process, = Process.create([{
                        'name': key, 'model': model.id, 'start': 'manual'}])
            version, = Version.create([{
                        'process': process.id,
                        'xml': (PROCESSES / f'{key}.bpmn').read_text()}])
            Version.activate([version])
            processes[key] = process.id
        leads = []
        for batch in benchlib.batches(list(range(count)), 500):
            leads += [l.id for l in Lead.create([{
                            'name': f"Web lead {i:06d}",
                            'contact_name': f"Visitor {i}",
                            'team': team.id,
                            'owner': sales['members'][team.id][i % 2],
                            } for i in batch])]
        tx.commit()
    return processes, leads


def run_instances(name, sales, process_id, lead_ids):
    """Start the process on the leads and do each qualification call, as
    salespeople do, BATCH leads per transaction"""
    from trytond.pool import Pool
    context = {'company': sales['company']}
    for batch in benchlib.batches(lead_ids, BATCH):
        with benchlib.transaction(name, sales['admin'], context) as tx:
            pool = Pool()
            Process = pool.get('bpm.process')
            Lead = pool.get('crm.lead')
            Process(process_id).start_instances(Lead.browse(batch))
            tx.commit()
        with benchlib.transaction(name, sales['admin'], context) as tx:
            pool = Pool()
            Activity = pool.get('crm.activity')
            calls = Activity.search([
                    ('origin.record', 'in', [f'crm.lead,{i}' for i in batch],
                        'bpm.instance'),
                    ('bpm_element', '=', 'qualify'),
                    ('state', '=', 'planned'),
                    ])
            for i, call in enumerate(calls):
                call.bpm_outcome = 'qualified' if i % 2 else 'not qualified'
            Activity.save(calls)
            Activity.do(calls)
            tx.commit()


def orm_floor(name, sales, process_id, lead_ids):
    """What the instances write, without SpiffWorkflow and in bulk: per
    batch the instances, their log lines and qualification calls, then the
    calls done, half the leads converted (a party each) with a meeting,
    the other half lost, more log lines and the instances completed. No
    engine could run the process on leads faster than this."""
    from trytond.pool import Pool
    context = {'company': sales['company'], '_bpm_sync': True}
    workflow = '{"data": {}}' * 300  # about the size of a stored workflow
    for batch in benchlib.batches(lead_ids, BATCH):
        with benchlib.transaction(name, sales['admin'], context) as tx:
            pool = Pool()
            Process = pool.get('bpm.process')
            Instance = pool.get('bpm.instance')
            Log = pool.get('bpm.instance.log')
            Activity = pool.get('crm.activity')
            Lead = pool.get('crm.lead')
            Stage = pool.get('crm.stage')
            Reason = pool.get('crm.lost_reason')
            process = Process(process_id)
            now = dt.datetime.now()
            leads = Lead.browse(batch)
            instances = Instance.create([{
                        'process': process.id,
                        'version': process.active_version.id,
                        'record': str(l), 'start_date': now,
                        'started_by': sales['admin'],
                        } for l in leads])
            Instance.write(instances, {
                    'workflow': workflow, 'active_elements': 'qualify'})
            Log.create([{'instance': i.id, 'task': str(n), 'element': e,
                        'start': now}
                    for i in instances for n, e in enumerate(
                        ['start', 'qualify'])])
            calls = Activity.create([{
                        'type': 'call', 'subject': "Qualify the lead",
                        'origin': str(i), 'bpm_task': '1',
                        'bpm_element': 'qualify', 'start': now,
                        'user': l.owner.id,
                        } for i, l in zip(instances, leads)])
            instance_ids = [i.id for i in instances]
            call_ids = [c.id for c in calls]
            tx.commit()
        with benchlib.transaction(name, sales['admin'], context) as tx:
            pool = Pool()
            Instance = pool.get('bpm.instance')
            Log = pool.get('bpm.instance.log')
            Activity = pool.get('crm.activity')
            Lead = pool.get('crm.lead')
            Stage = pool.get('crm.stage')
            Reason = pool.get('crm.lost_reason')
            now = dt.datetime.now()
            Activity.do(Activity.browse(call_ids))
            converted, lost = Lead.browse(batch[::2]), Lead.browse(batch[1::2])
            Lead.convert(converted)
            qualified, = Stage.search([('name', '=', 'Qualified')])
            lost_stage, = Stage.search([('name', '=', 'Lost')])
            reason, = Reason.search([], limit=1)
            Lead.write(converted, {'stage': qualified.id},
                lost, {
                    'stage': lost_stage.id, 'lost_reason': reason.id})
            Activity.create([{
                        'type': 'meeting', 'subject': "First meeting",
                        'origin': str(l), 'start': now,
                        'user': l.owner.id} for l in converted])
            Log.create([{'instance': i, 'task': str(n), 'element': e,
                        'start': now}
                    for i in instance_ids for n, e in enumerate(
                        ['qualified', 'convert_lead', 'meeting', 'end'],
                        start=2)])
            Instance.write(Instance.browse(instance_ids), {
                    'workflow': workflow, 'state': 'completed',
                    'active_elements': ''})
            tx.commit()


def check_completed(name, count):
    from trytond.pool import Pool
    with benchlib.transaction(name, readonly=True):
        Instance = Pool().get('bpm.instance')
        completed = Instance.search_count([
                ('process.name', '=', 'lead_qualification'),
                ('state', '=', 'completed')])
        failed = Instance.search([('state', '=', 'failed')], limit=1)
    check(not failed, failed and failed[0].error)
    check(completed == count, (completed, count))


def waiting_timers(name, sales, process_id, lead_ids, waiting):
    """Instances of the follow-up process waiting for their timer: the
    first len(lead_ids) started through the ORM (due in the measure), the
    others copies of them in SQL whose timer is a month away"""
    from sql import Table
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    with benchlib.transaction(
            name, sales['admin'], {'company': sales['company']}) as tx:
        pool = Pool()
        Process = pool.get('bpm.process')
        Lead = pool.get('crm.lead')
        Process(process_id).start_instances(Lead.browse(lead_ids))
        cursor = Transaction().connection.cursor()
        instance = Table('bpm_instance')
        later = dt.datetime.utcnow() + dt.timedelta(days=30)
        copies = waiting - len(lead_ids)
        columns = [instance.process, instance.version, instance.record,
            instance.state, instance.workflow, instance.serializer_version,
            instance.start_date, instance.started_by,
            instance.active_elements, instance.create_uid,
            instance.create_date]
        source = instance.select(*columns, where=(
                instance.process == process_id), limit=1)
        cursor.execute(*source)
        row = list(cursor.fetchone())
        for batch in benchlib.batches(list(range(copies)), 1000):
            cursor.execute(*instance.insert(
                    columns + [instance.next_timer],
                    [row + [later] for _ in batch]))
        tx.commit()
    benchlib.analyze(name)


def run_cron(name, sales):
    "The timer cron a week and a day later: only the due instances move"
    from trytond.pool import Pool
    with benchlib.transaction(
            name, sales['admin'], {'company': sales['company']}) as tx:
        Instance = Pool().get('bpm.instance')
        now = dt.datetime.utcnow() + dt.timedelta(days=8)
        start = time.monotonic()
        advanced = Instance.process_timers(now=now)
        tx.commit()
        elapsed = time.monotonic() - start
    return len(advanced), elapsed


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        instances=(1_000, 100), waiting=(10_000, 1_000), due=(100, 10))
    xml = (PROCESSES / 'lead_qualification.bpmn').read_text()
    with benchlib.bench_database(
            keep=options.keep, modules=('crm_bpm',)) as name:
        sales = benchlib.setup_sales(name)
        processes, leads = setup(
            name, sales, 2 * options.instances + options.due)
        benchlib.analyze(name)
        runs = leads[:options.instances]
        floor_leads = leads[options.instances:2 * options.instances]
        due_leads = leads[2 * options.instances:]

        benchlib.log(f"running {len(runs)} instances of lead qualification")
        with benchlib.profiled(options.profile):
            _, seconds = benchlib.timed(
                run_instances, name, sales,
                processes['lead_qualification'], runs)
        rate = len(runs) / seconds
        check_completed(name, len(runs))
        benchlib.log(f"CRM: {seconds:.1f} s, {rate:.1f} instances/s")

        _, floor_s = benchlib.timed(orm_floor, name, sales,
            processes['lead_qualification'], floor_leads)
        floor = len(floor_leads) / floor_s
        benchlib.log(f"the same writes in bulk, no engine: {floor:.0f} "
            "instances/s")

        bare = bare_spiff(xml, len(runs))
        benchlib.log(f"bare SpiffWorkflow: {bare:.0f} workflows/s")

        benchlib.log(f"{options.waiting} instances waiting for a timer, "
            f"{options.due} of them due")
        waiting_timers(name, sales, processes['follow_up_call'], due_leads,
            options.waiting)
        advanced, cron_s = run_cron(name, sales)
        check(advanced == options.due, advanced)
        benchlib.log(f"timer cron: {advanced} advanced in {cron_s:.2f} s")
        if rate / bare < RATIO_TARGET:
            benchlib.log(f"below the target ratio of {RATIO_TARGET}")
        if cron_s > CRON_TARGET_S:
            benchlib.log(f"cron above the target of {CRON_TARGET_S} s")
    benchlib.print_figures([
            ('bpm_instances_per_s', rate, 'instances/s'),
            ('bpm_bare_spiff_per_s', bare, 'workflows/s'),
            ('bpm_ratio', rate / bare, 'x'),
            ('bpm_timer_cron_s', cron_s, 's'),
            ('bpm_orm_floor_per_s', floor, 'instances/s'),
            ('bpm_orm_floor_ratio', floor / bare, 'x'),
            ])


if __name__ == '__main__':
    main()
