"""The call-center reports against the calls and agent statuses they
count (crm_callcenter activated)"""
import datetime as dt
from collections import defaultdict

from sql import Column, Null

from trytond.modules.company.tests import set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_callcenter.tests.test_callcenter import T0, CallCenterSetup, event
from crm_core.tests.tools import CrmDatabaseTestCase
from crm_reports.callcenter import call_domain

from . import WITH_EXTRAS

CONTEXT = dict(from_date=dt.date(2026, 12, 1), to_date=dt.date(2026, 12, 31),
    period='month')


class CallCenterReportsTestCase(CrmDatabaseTestCase):
    "Call-center reports"
    modules = WITH_EXTRAS

    def calls(self, cc):
        with set_company(cc.company):
            cc.post(
                # 9 h: answered in 10 s (service level 20 s), 60 s of talk
                event('ringing', call_id='a', at=0, extension='1001'),
                event('answered', call_id='a', at=10, extension='1001'),
                event('ended', call_id='a', at=70),
                # answered in 30 s, 20 s of talk
                event('ringing', call_id='b', at=0, extension='1002'),
                event('answered', call_id='b', at=30, extension='1002'),
                event('ended', call_id='b', at=50),
                # abandoned, and one still ringing (not counted yet)
                event('ringing', call_id='c', at=0),
                event('missed', call_id='c', at=15, reason='abandoned'),
                event('ringing', call_id='d', at=100),
                # 10 h: answered at once
                event('ringing', call_id='e', at=3600, extension='1001'),
                event('answered', call_id='e', at=3602, extension='1001'),
                event('ended', call_id='e', at=3700),
                # the sales queue
                event('ringing', call_id='s', at=0, to='6000', queue='6000',
                    extension='2001'),
                event('answered', call_id='s', at=5, to='6000',
                    queue='6000', extension='2001'),
                event('ended', call_id='s', at=65, to='6000',
                    queue='6000'))

    def expected(self, calls):
        "The figures of call_hour computed from the calls"
        rows = defaultdict(lambda: [0, 0, 0, 0, []])
        for call in calls:
            if call.direction != 'inbound' or call.state == 'ringing':
                continue
            row = rows[call.queue.id, call.created.hour]
            row[0] += 1
            if call.answered:
                row[1] += 1
                row[4].append(call.talk_seconds)
                if call.wait_seconds <= call.queue.service_level_seconds:
                    row[3] += 1
            if call.state == 'abandoned':
                row[2] += 1
        return {k: (o, a, ab, t, round(sum(h) / len(h)) if h else None)
            for k, (o, a, ab, t, h) in rows.items()}

    def rows(self, **context):
        CallHour = Pool().get('crm.report.call_hour')
        with Transaction().set_context(**CONTEXT, **context):
            return {(r.queue.id, r.hour): (r.offered, r.answered, r.abandoned,
                    r.in_time, round(r.average_handle)
                    if r.average_handle is not None else None)
                for r in CallHour.search([])}

    @with_transaction()
    def test_calls_per_hour_and_queue(self):
        "Offered, answered, abandoned, in time and handle time per hour"
        pool = Pool()
        Call = pool.get('callcenter.call')
        CallHour = pool.get('crm.report.call_hour')
        cc = CallCenterSetup()
        self.calls(cc)
        company = dict(company=cc.company.id)
        with Transaction().set_context(**company):
            rows = self.rows(**company)
            self.assertEqual(rows, self.expected(Call.search([])))
        self.assertEqual(rows[cc.hotline.id, 9], (3, 2, 1, 1, 40))
        with Transaction().set_context(**CONTEXT, **company):
            hotline, = [r for r in CallHour.search([])
                if r.queue == cc.hotline and r.hour == 9]
            self.assertEqual(
                (hotline.abandon_rate, hotline.service_level), (33.3, 33.3))

        # An agent counts only the calls they may read: theirs and their
        # queues'; the supervisor all
        with Transaction().set_user(cc.zoe.id), Transaction().set_context(
                _check_access=True, **company):
            self.assertEqual(
                self.rows(**company), self.expected(Call.search([])))
            self.assertEqual(set(self.rows(**company)), {(cc.sales.id, 9)})
        with Transaction().set_user(cc.sue.id), Transaction().set_context(
                _check_access=True, **company):
            self.assertEqual(len(self.rows(**company)), 3)
            # The team of a queue
            self.assertEqual(set(self.rows(team=cc.team.id, **company)),
                {(cc.hotline.id, 9), (cc.hotline.id, 10)})

    @with_transaction()
    def test_agent_occupancy(self):
        "Busy, available and paused hours of each agent, and occupancy"
        pool = Pool()
        Status = pool.get('callcenter.agent.status')
        Occupancy = pool.get('crm.report.agent_occupancy')
        cc = CallCenterSetup()
        self.calls(cc)
        now = dt.datetime.now()
        today = dt.date.today()
        context = dict(company=cc.company.id, period='month',
            from_date=min(today, CONTEXT['from_date']),
            to_date=max(today, CONTEXT['to_date']))
        expected = defaultdict(lambda: defaultdict(float))
        with Transaction().set_context(**context):
            for status in Status.search([]):
                hours = ((status.end or now) - status.start
                    ).total_seconds() / 3600
                kind = {'ringing': 'busy', 'on_call': 'busy',
                    'wrap_up': 'busy'}.get(status.status, status.status)
                expected[status.agent.id, status.start.date().replace(
                        day=1)][kind] += hours
            rows = Occupancy.search([])
        self.assertEqual(len(rows), len(expected))
        for row in rows:
            figures = expected[row.agent.id, row.period]
            for kind in ['busy', 'available', 'paused']:
                self.assertAlmostEqual(getattr(row, f'{kind}_hours') or 0,
                    figures[kind], delta=0.01)
        ann, = [r for r in rows if r.agent == cc.a1001
            and r.period == dt.date(2026, 12, 1)]
        self.assertGreater(ann.busy_hours, 0)
        self.assertIsNotNone(ann.occupancy)


    def occupancy(self, **context):
        Occupancy = Pool().get('crm.report.agent_occupancy')
        with Transaction().set_context(**CONTEXT, **context):
            return {(r.agent.id, r.period): (round(r.busy_hours or 0, 2),
                    round(r.available_hours or 0, 2),
                    round(r.paused_hours or 0, 2))
                for r in Occupancy.search([])}

    @with_transaction()
    def test_summaries(self):
        "Figures kept ahead for the days before today equal the records'"
        pool = Pool()
        Call = pool.get('callcenter.call')
        Status = pool.get('callcenter.agent.status')
        Refresh = pool.get('crm.report.summary.refresh')
        CallSummary = pool.get('crm.report.call_summary')
        StatusSummary = pool.get('crm.report.agent_status_summary')
        cc = CallCenterSetup()
        self.calls(cc)
        company = dict(company=cc.company.id)
        hour = dt.timedelta(hours=1)
        Status.create([{'agent': cc.a1001.id, 'status': status,
                    'start': T0 - start * hour, 'end': T0 - end * hour}
                for status, start, end in [
                    ('available', 3, 2), ('paused', 2, 1.5),
                    ('available', 1.5, 0)]])
        # Recorded when they happened, not by this transaction
        cursor = Transaction().connection.cursor()
        for Model, time in [(Call, 'created'), (Status, 'start')]:
            table = Model.__table__()
            cursor.execute(*table.update(
                    [table.create_date, table.write_date],
                    [Column(table, time), Null]))
        with Transaction().set_context(**company):
            calls, statuses = self.rows(**company), self.occupancy(**company)
            self.assertEqual(calls, self.expected(Call.search([])))

            Refresh.refresh()
            day = CallSummary.search([])[0].day
            self.assertEqual(day, T0.date())
            self.assertTrue(StatusSummary.search([]))
            self.assertEqual(CallSummary.live_from([]), dt.date.today())
            self.assertEqual(self.rows(**company), calls)
            self.assertEqual(self.occupancy(**company), statuses)
            # The agent's rules and the team apply to the summaries too
            with Transaction().set_user(cc.zoe.id), \
                    Transaction().set_context(_check_access=True):
                self.assertEqual(
                    CallSummary.live_from(call_domain()), dt.date.today())
                self.assertEqual(set(self.rows(**company)),
                    {(cc.sales.id, 9)})
            self.assertEqual(set(self.rows(team=cc.team.id, **company)),
                {(cc.hotline.id, 9), (cc.hotline.id, 10)})

            # A call of that day written since: counted from the records
            # until the next refresh
            call, = Call.search([('talk_seconds', '=', 20)])
            Call.write([call], {'talk_seconds': 120})
            self.assertEqual(CallSummary.live_from([]), T0.date())
            calls = self.rows(**company)
            self.assertEqual(calls, self.expected(Call.search([])))
            self.assertEqual(calls[cc.hotline.id, 9][4], 90)
            Refresh.refresh()
            self.assertEqual(self.rows(**company), calls)
            self.assertEqual(self.occupancy(**company), statuses)


del CrmDatabaseTestCase
