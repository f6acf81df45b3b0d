"""The sales analyses against the records they count: each figure is
computed again from the leads in Python."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from trytond.pool import Pool
from trytond.pyson import PYSONDecoder
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup, create_party


def money(value):
    return Decimal(str(value or 0)).quantize(Decimal('0.01'))


class SalesReportsTestCase(CrmDatabaseTestCase):
    "Sales analyses"
    modules = ['crm_reports']

    def leads(self, crm):
        "Known opportunities of both teams, open and closed"
        pool = Pool()
        Lead = pool.get('crm.lead')
        party = create_party("Acme")
        year = dt.date.today().year
        spec = [
            # owner, team, stage, revenue, close month
            (crm.alice, crm.north, 'Qualified', 1000, 3),
            (crm.alice, crm.north, 'Qualified', 500, 3),
            (crm.alice, crm.north, 'Proposition', 2000, 4),
            (crm.bob, crm.north, 'Negotiation', 4000, 4),
            (crm.bob, crm.north, 'Proposition', 300, None),
            (crm.carol, crm.south, 'Proposition', 7000, 5),
            (crm.carol, crm.south, 'Qualified', 100, 11),
            ]
        with crm.company_context():
            leads = Lead.create([{
                        'name': f"Deal {i}", 'type': 'opportunity',
                        'party': party.id, 'owner': owner.id,
                        'team': team.id, 'stage': crm.stage(stage).id,
                        'expected_revenue': Decimal(revenue),
                        'expected_close': (dt.date(year, month, 10)
                            if month else None),
                        } for i, (owner, team, stage, revenue, month)
                    in enumerate(spec)])
            # Closed ones are not in the pipeline
            won = Lead.create([{
                        'name': "Won deal", 'type': 'opportunity',
                        'party': party.id, 'owner': crm.alice.id,
                        'team': crm.north.id,
                        'expected_revenue': Decimal(9999),
                        'expected_close': dt.date(year, 3, 1),
                        }])
            Lead.won(won)
        return leads

    def expected_pipeline(self, leads):
        rows = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
        for lead in leads:
            period = (lead.expected_close.replace(day=1)
                if lead.expected_close else None)
            row = rows[lead.stage.id, lead.owner.id, lead.team.id, period]
            row[0] += 1
            row[1] += lead.expected_revenue
            row[2] += lead.expected_revenue * lead.probability / 100
        return {k: (c, money(e), money(w)) for k, (c, e, w) in rows.items()}

    def pipeline_rows(self, **context):
        Pipeline = Pool().get('crm.report.pipeline')
        with Transaction().set_context(**context):
            return {(r.stage.id, r.owner.id, r.team.id, r.period):
                (r.count, money(r.expected), money(r.weighted))
                for r in Pipeline.search([])}

    @with_transaction()
    def test_pipeline(self):
        "The pipeline counts the open opportunities by stage, owner, month"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        self.leads(crm)
        year = dt.date.today().year
        context = dict(company=crm.company.id, from_date=dt.date(year, 1, 1),
            to_date=dt.date(year, 12, 31), period='month')
        opportunities = Lead.search([
                ('state', '=', 'open'), ('type', '=', 'opportunity')])
        with Transaction().set_context(company=crm.company.id):
            self.assertEqual(self.pipeline_rows(**context),
                self.expected_pipeline(opportunities))

        # A salesperson counts only what they may read: their team's
        with crm.as_user(crm.carol):
            readable = Lead.search([
                    ('state', '=', 'open'), ('type', '=', 'opportunity')])
            rows = self.pipeline_rows(**context)
        self.assertEqual({l.owner for l in readable}, {crm.carol})
        self.assertEqual(rows, self.expected_pipeline(readable))

        # A team and a narrower date range (no date stays in)
        with crm.as_user(crm.manager):
            rows = self.pipeline_rows(**dict(context, team=crm.north.id,
                    from_date=dt.date(year, 4, 1),
                    to_date=dt.date(year, 4, 30)))
        north_april = [l for l in opportunities if l.team == crm.north
            and (not l.expected_close or l.expected_close.month == 4)]
        self.assertEqual(rows, self.expected_pipeline(north_april))

        # By quarter
        with Transaction().set_context(company=crm.company.id):
            rows = self.pipeline_rows(**dict(context, period='quarter'))
        self.assertEqual(sum(c for c, _, _ in rows.values()), 7)
        self.assertIn(
            (crm.stage('Proposition').id, crm.alice.id, crm.north.id,
                dt.date(year, 4, 1)), rows)

    @with_transaction()
    def test_pipeline_drill_down(self):
        "A row of the pipeline opens the opportunities it counts"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Pipeline = pool.get('crm.report.pipeline')
        DrillDown = pool.get('crm.report.drill_down', type='wizard')
        crm = CrmSetup()
        self.leads(crm)
        year = dt.date.today().year
        context = dict(company=crm.company.id, from_date=dt.date(year, 1, 1),
            to_date=dt.date(year, 12, 31), period='month')
        with Transaction().set_context(**context):
            row, = [r for r in Pipeline.search([])
                if r.stage == crm.stage('Qualified')
                and r.owner == crm.alice]
            with Transaction().set_context(active_model=Pipeline.__name__,
                    active_id=row.id, active_ids=[row.id]):
                session_id, _, _ = DrillDown.create()
                drill = DrillDown(session_id)
                action, _ = drill.do_open_(None)
        self.assertEqual(action['res_model'], 'crm.lead')
        domain = PYSONDecoder().decode(action['pyson_domain'])
        with Transaction().set_context(**context):
            names = {l.name for l in Lead.search(domain)}
        self.assertEqual(names, {"Deal 0", "Deal 1"})

