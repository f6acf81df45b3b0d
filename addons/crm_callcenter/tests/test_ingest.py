"""CTI events under load: few queue tasks, one applier at a time, the
callbacks of a batch"""
import datetime as dt
from contextlib import contextmanager
from unittest import mock, skipUnless

from sql import Select

import trytond.config as config
from trytond import backend
from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase

from .. import cti
from ..cti import validate
from .test_callcenter import CallCenterSetup, event


@contextmanager
def worker():
    """As with trytond-worker: tasks wait in ir_queue, not run at the
    commit; the tasks the process knows of are the block's"""
    old = config.get('queue', 'worker')
    config.set('queue', 'worker', 'True')
    try:
        with mock.patch.dict(cti._scheduled, clear=True):
            yield
    finally:
        config.set('queue', 'worker', old)


def waiting():
    "The tasks of the call center's queue not taken yet"
    Queue = Pool().get('ir.queue')
    return Queue.search([
            ('name', '=', cti.QUEUE_NAME),
            ('dequeued_at', '=', None),
            ], order=[('id', 'ASC')])


def take(task):
    """What trytond-worker does with a task once its moment came: dequeue,
    then run it (the test's transaction sees all, it need not wait)"""
    now = dt.datetime.now()
    task.expected_at = min(task.expected_at, now)
    cti._scheduled.clear()
    task.dequeued_at = now
    task.save()
    with mock.patch.object(cti, '_wait_until'):
        task.run()


def ingest(cc, *events):
    Event = Pool().get('callcenter.event')
    return Event.ingest(cc.company.id, [validate(e) for e in events])


def pending():
    Event = Pool().get('callcenter.event')
    return Event.search_count([('pending', '=', True)])


class IngestTestCase(CrmDatabaseTestCase):
    "Test the CTI events under load"
    modules = ['crm_callcenter']

    @with_transaction()
    def test_one_waiting_task_for_many_requests(self):
        "Requests while a task waits queue no other; it takes them all"
        pool = Pool()
        Call = pool.get('callcenter.call')
        cc = CallCenterSetup()
        # A task that waits long: the test does not depend on its speed
        with set_company(cc.company), worker(), \
                mock.patch.object(cti, 'APPLY_DELAY', dt.timedelta(hours=1)):
            for i in range(20):
                ingest(cc, event('ringing', call_id=f'c{i}', at=i))
            task, = waiting()
            # trytond-worker takes it at once; it waits for its moment
            self.assertIsNone(task.scheduled_at)
            self.assertGreater(task.expected_at, task.enqueued_at)
            self.assertLess(abs(task.data['kwargs']['at']
                    - task.expected_at), dt.timedelta(seconds=1))
            # Its moment came: the next request queues another
            cti._scheduled.clear()
            task.expected_at = dt.datetime.now()
            task.save()
            ingest(cc, event('ringing', call_id='c20', at=20))
            first, second = waiting()
            take(first)
            self.assertEqual(pending(), 0)
            self.assertEqual(Call.search_count([]), 21)
            take(second)
            self.assertEqual(Call.search_count([]), 21)
        # Without a worker each request's task runs at its commit
        with set_company(cc.company):
            tasks = len(Transaction().tasks)
            ingest(cc, event('ringing', call_id='c21', at=21))
            ingest(cc, event('ringing', call_id='c22', at=22))
            self.assertEqual(len(Transaction().tasks), tasks + 2)

    @with_transaction()
    def test_task_queued_by_the_process_is_known(self):
        """A task that the process queued holds back the other requests'
        tasks even when their snapshot does not show it, unless rolled
        back"""
        cc = CallCenterSetup()
        database = Transaction().database.name
        later = dt.datetime.now() + dt.timedelta(hours=1)
        with set_company(cc.company), worker():
            cti._Queued(database, later)
            ingest(cc, event('ringing', call_id='c1', at=0))
            self.assertEqual(waiting(), [])
            cti._Queued(database, later).tpc_abort(Transaction())
            ingest(cc, event('ringing', call_id='c2', at=0))
            self.assertEqual(len(waiting()), 1)

    @skipUnless(backend.name == 'postgresql',
        "SQLite has one writer at a time: no lock")
    @with_transaction()
    def test_second_applier_comes_again(self):
        """While a task applies, another applies nothing and is queued
        again; the events are applied once"""
        pool = Pool()
        Event = pool.get('callcenter.event')
        Call = pool.get('callcenter.call')
        Activity = pool.get('crm.activity')
        cc = CallCenterSetup()
        with set_company(cc.company), worker(), \
                mock.patch.object(cti, 'APPLY_DELAY', dt.timedelta(hours=1)):
            ingest(cc, event('ringing', at=0, extension='1001'),
                event('missed', at=30, reason='abandoned'))
            events = Event.search([], limit=1)
            first, = waiting()
            database = Transaction().database
            other = database.get_connection()
            try:
                other.cursor().execute(
                    *Select([database.lock_id(cti.APPLY_LOCK)]))
                # Taken by the worker while another task applies
                take(first)
                self.assertEqual(Call.search_count([]), 0)
                self.assertEqual(pending(), 2)
                again, = waiting()
                self.assertGreater(again.expected_at, again.enqueued_at)
                # One task waiting is enough
                Event.apply_pending(events)
                self.assertEqual(waiting(), [again])
            finally:
                other.rollback()
                database.put_connection(other)

            take(again)
            Event.apply_pending(events)
            call = cc.call()
            self.assertEqual(call.state, 'abandoned')
            # One history entry and one callback
            self.assertEqual(sorted(a.state for a in Activity.search([])),
                ['done', 'planned'])
            self.assertEqual([s.status for s in sorted(
                        cc.agent(cc.a1001).status_log, key=lambda s: s.id)],
                ['offline', 'available'])

    @with_transaction()
    def test_task_applies_full_batches_then_queues_the_rest(self):
        "A task goes on while batches are full; a backlog takes more tasks"
        pool = Pool()
        Call = pool.get('callcenter.call')
        cc = CallCenterSetup()
        with set_company(cc.company), worker(), \
                mock.patch.object(cti, 'BATCH', 2), \
                mock.patch.object(cti, 'TASK_BATCHES', 2):
            ingest(cc, *[event('ringing', call_id=f'b{i}', at=i)
                    for i in range(7)])
            take(*waiting())
            self.assertEqual(pending(), 3)
            task, = waiting()
            self.assertLessEqual(task.expected_at, task.enqueued_at)
            take(task)
            self.assertEqual(pending(), 0)
            self.assertEqual(Call.search_count([]), 7)
            self.assertEqual(waiting(), [])

    @with_transaction()
    def test_callbacks_of_missed_calls_in_one_batch(self):
        "Each missed call of a batch gets its callback, if anyone can"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        Activity = pool.get('crm.activity')
        cc = CallCenterSetup()
        sales = {'to': '6000', 'queue': '6000'}
        stranger = {'from': '+4930555000'}
        with set_company(cc.company):
            # Nobody can call back the Sales queue's callers
            Agent.pause([cc.a2001], "Lunch")
            cc.post(
                event('ringing', call_id='m1', at=0, extension='1001'),
                event('missed', call_id='m1', at=20, reason='abandoned'),
                event('ringing', call_id='m2', at=1, **sales),
                event('missed', call_id='m2', at=21, reason='no_answer',
                    **sales),
                event('ringing', call_id='m3', at=2, extension='1002'),
                event('missed', call_id='m3', at=22, reason='voicemail'),
                event('ringing', call_id='m4', at=3, **stranger),
                event('missed', call_id='m4', at=23, reason='abandoned',
                    **stranger))
            calls = {i: cc.call(i) for i in ['m1', 'm2', 'm3', 'm4']}
            self.assertEqual([calls[i].state for i in sorted(calls)],
                ['abandoned', 'missed', 'voicemail', 'abandoned'])
            self.assertIsNone(calls['m2'].callback)
            for i in ['m1', 'm3', 'm4']:
                callback = calls[i].callback
                self.assertEqual((callback.state, callback.party,
                        callback.description), ('planned', calls[i].party,
                        calls[i].customer_number))
                self.assertIn(callback.user, {cc.ann, cc.ben})
            self.assertEqual(calls['m4'].callback.party, None)
            self.assertEqual(
                Activity.search_count([('state', '=', 'planned')]), 3)


del CrmDatabaseTestCase
