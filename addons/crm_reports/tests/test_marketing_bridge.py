"""The campaign results against the members, leads and costs they count
(crm_marketing activated)"""
import datetime as dt
from decimal import Decimal

from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup, create_party

from . import WITH_EXTRAS


def money(value):
    return Decimal(str(value or 0)).quantize(Decimal('0.01'))


class MarketingReportsTestCase(CrmDatabaseTestCase):
    "Marketing reports"
    modules = WITH_EXTRAS

    def campaign(self, crm):
        "A campaign with members, costs and leads of both teams"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Campaign = pool.get('marketing.campaign')
        Member = pool.get('marketing.campaign.member')
        now = dt.datetime.now()
        today = dt.date.today()
        with crm.company_context():
            spring, = Campaign.create([{'name': "Spring",
                        'currency': crm.company.currency.id,
                        'costs': [('create', [
                                    {'description': "Mailing",
                                        'amount': Decimal(100),
                                        'date': today},
                                    {'description': "Old ads",
                                        'amount': Decimal(50),
                                        'date': dt.date(2020, 1, 1)},
                                    ])]}])
            parties = [create_party(f"Member {i}") for i in range(4)]
            Member.create([{'campaign': spring.id, 'party': p.id,
                        'sent': now if i < 3 else None,
                        'opened': now if i < 2 else None,
                        'clicked': now if i < 1 else None}
                    for i, p in enumerate(parties)])
            leads = Lead.create([{'name': name, 'party': parties[0].id,
                        'type': type_, 'team': team.id, 'owner': owner.id,
                        'marketing_campaign': spring.id,
                        'expected_revenue': Decimal(amount)}
                    for name, type_, team, owner, amount in [
                        ("North 1", 'opportunity', crm.north, crm.alice, 500),
                        ("North 2", 'lead', crm.north, crm.bob, 200),
                        ("South 1", 'opportunity', crm.south, crm.carol, 900),
                        ]])
            Lead.won([leads[0], leads[2]])
        return spring

    @with_transaction()
    def test_campaign_results(self):
        "Funnel, leads, won revenue, costs in the dates, cost per lead, ROI"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Report = pool.get('crm.report.campaign')
        crm = CrmSetup()
        spring = self.campaign(crm)
        context = dict(company=crm.company.id,
            from_date=dt.date.today().replace(month=1, day=1),
            to_date=dt.date.today())

        def figures(**extra):
            with Transaction().set_context(**context, **extra):
                row, = Report.search([('campaign', '=', spring.id)])
                return (row.members, row.reached, row.opened, row.clicked,
                    row.leads, row.opportunities, row.won,
                    money(row.won_revenue), money(row.cost),
                    money(row.cost_per_lead), row.roi)

        def expected(leads):
            won = [l for l in leads if l.state == 'won']
            revenue = sum(l.expected_revenue for l in won)
            return (4, 3, 2, 1, len(leads),
                len([l for l in leads if l.type == 'opportunity']),
                len(won), money(revenue), money(100),
                money(Decimal(100) / len(leads)),
                float(revenue - 100) / 100)

        with Transaction().set_context(company=crm.company.id):
            self.assertEqual(figures(), expected(Lead.search([])))
        self.assertEqual(figures()[-1], 13.0)
        # carol counts the leads she may read: her team's
        with crm.as_user(crm.carol):
            readable = Lead.search([])
            self.assertEqual({l.name for l in readable}, {"South 1"})
            self.assertEqual(figures(), expected(readable))
            # and none of North's
            self.assertEqual(figures(team=crm.north.id)[4:8],
                (0, 0, 0, money(0)))


del CrmDatabaseTestCase
