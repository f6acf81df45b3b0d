"""The support report against the tickets it counts (crm_helpdesk
activated), on the tickets of crm_helpdesk's analysis tests"""
import datetime as dt
from collections import defaultdict

from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase
from crm_helpdesk.tests.test_analysis import AnalysisSetup

from . import WITH_EXTRAS

CONTEXT = dict(from_date=dt.date(2026, 1, 1), to_date=dt.date(2026, 12, 31),
    period='month')


def expected(tickets):
    rows = defaultdict(lambda: defaultdict(list))
    for ticket in tickets:
        row = rows[ticket.team.id, ticket.opened.date().replace(day=1)]
        row['opened'].append(1)
        row['solved'].append(1 if ticket.solved else 0)
        row['backlog'].append(
            0 if ticket.kind in {'solved', 'cancelled'} else 1)
        closed_sla = bool(ticket.closed and ticket.sla_status)
        row['sla_met'].append(
            1 if closed_sla and ticket.sla_status == 'on_time' else 0)
        row['sla_closed'].append(1 if closed_sla else 0)
        if ticket.first_response:
            row['response'].append(
                (ticket.first_response - ticket.opened).total_seconds() / 3600)
        if ticket.solved:
            row['resolution'].append(
                (ticket.solved - ticket.opened).total_seconds() / 3600)
        if ticket.rating:
            row['rating'].append(int(ticket.rating))

    def average(values):
        return round(sum(values) / len(values), 2) if values else None
    return {key: (sum(r['opened']), sum(r['solved']), sum(r['backlog']),
            sum(r['sla_met']), sum(r['sla_closed']), average(r['response']),
            average(r['resolution']), len(r['rating']), average(r['rating']))
        for key, r in rows.items()}


def rows(**context):
    Report = Pool().get('crm.report.ticket')
    with Transaction().set_context(**CONTEXT, **context):
        return {(r.team.id, r.period): (r.opened, r.solved, r.backlog,
                r.sla_met, r.sla_closed,
                *[round(v, 2) if v is not None else None for v in (
                        r.first_response_hours, r.resolution_hours)],
                r.rated, round(r.satisfaction, 2)
                if r.satisfaction is not None else None)
            for r in Report.search([])}


class HelpdeskReportsTestCase(CrmDatabaseTestCase):
    "Support reports"
    modules = WITH_EXTRAS

    @with_transaction()
    def test_tickets_per_period(self):
        "Opened, solved, backlog, SLA, times and satisfaction per month"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        hd = AnalysisSetup()
        Ticket.write([hd.t1], {'rating': '5'})
        Ticket.write([hd.o1], {'rating': '2'})
        company = dict(company=hd.company.id)
        with Transaction().set_context(**company):
            tickets = Ticket.search([])
            result = rows(**company)
        self.assertEqual(result, expected(tickets))
        march = dt.date(2026, 3, 1)
        self.assertEqual(result[hd.support.id, march][:2], (5, 2))
        self.assertEqual(result[hd.other.id, march][-2:], (1, 2.0))

        # An agent of Other Support counts only the tickets they may read
        with Transaction().set_user(hd.zoe.id), Transaction().set_context(
                _check_access=True, **company):
            readable = Ticket.search([])
            result = rows(**company)
        self.assertEqual(result, expected(readable))
        self.assertNotIn((hd.support.id, march), result)


del CrmDatabaseTestCase
