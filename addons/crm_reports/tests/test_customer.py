"""The customer analyses against the records they count, and the proof
that a salesperson gets nothing of another team through any sales or
customer analysis."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup, create_party

from .test_sales import (
    IN_YEAR, YEAR, analysis, at, check_drill_downs, drill_down,
    funnel_data, money, sales_data)


def lifecycle_data(crm):
    "Parties whose lifecycle history is known: {name: party}"
    pool = Pool()
    Lifecycle = pool.get('crm.party.lifecycle')
    alice, bob, carol = crm.alice, crm.bob, crm.carol
    spec = [
        ('P1', alice, [
                (None, 'prospect', at(5, 1, YEAR - 1)),
                ('prospect', 'customer', at(6, 1, YEAR - 1)),
                ('customer', 'former', at(5, 10))]),
        ('P2', bob, [
                (None, 'prospect', at(2, 1)),
                ('prospect', 'customer', at(2, 15))]),
        ('P3', carol, [(None, 'customer', at(1, 1, YEAR - 1))]),
        # In and out in one quarter, back later
        ('P4', None, [
                (None, 'prospect', at(1, 1)),
                ('prospect', 'customer', at(3, 1)),
                ('customer', 'former', at(3, 20)),
                ('former', 'customer', at(9, 1))]),
        ('P5', alice, [
                (None, 'customer', at(1, 1, YEAR - 2)),
                ('customer', 'former', at(12, 31, hour=23))]),
        # Two changes in the same second: in the order they were made
        ('P6', carol, [
                (None, 'prospect', at(4, 1)),
                ('prospect', 'customer', at(4, 1))]),
        ]
    parties = {}
    for name, owner, changes in spec:
        party = create_party(name, owner=owner.id if owner else None)
        Lifecycle.delete(Lifecycle.search([('party', '=', party.id)]))
        for before, after, date in changes:
            Lifecycle.create([{
                        'party': party.id, 'date': date,
                        'from_status': before, 'to_status': after,
                        }])
        parties[name] = party
    return parties


def segment_data(crm):
    "Customers with known owners, addresses and categories"
    pool = Pool()
    Party = pool.get('party.party')
    Country = pool.get('country.country')
    Category = pool.get('party.category')
    fr, de, be = Country.create([
            {'name': "France", 'code': 'FR'},
            {'name': "Germany", 'code': 'DE'},
            {'name': "Belgium", 'code': 'BE'}])
    a, b = Category.create([{'name': "A"}, {'name': "B"}])
    spec = [
        # name, owner, status, [(country, sequence)], categories
        ('S1', crm.alice, 'customer', [(fr, 10), (de, 20)], [a, b]),
        ('S2', crm.alice, 'customer', [(de, None)], [a]),
        # An address without sequence comes first
        ('S3', crm.bob, 'customer', [(be, 5), (fr, None)], []),
        ('S4', None, 'customer', [], []),
        ('S5', crm.alice, 'prospect', [(fr, None)], [a]),
        ('S6', crm.carol, 'customer', [(be, None)], [b]),
        ]
    Party.create([{
                'name': name,
                'owner': owner.id if owner else None,
                'lifecycle_status': status,
                'addresses': [('create', [
                            {'country': c.id, 'sequence': s}
                            for c, s in addresses])],
                'categories': [('add', [c.id for c in categories])],
                } for name, owner, status, addresses, categories in spec])
    return fr, de, be, a, b


def expected_lifecycle(bounds, owners=None):
    """{period: (new, former, at start)} for bounds [(period, start, end)]
    from the lifecycle history (of the parties of those owners)"""
    pool = Pool()
    Lifecycle = pool.get('crm.party.lifecycle')
    changes = defaultdict(list)
    for change in Lifecycle.search([]):
        if owners is None or change.party.owner in owners:
            changes[change.party].append(change)
    result = {}
    for period, start, end in bounds:
        new, former, at_start = set(), set(), 0
        for party, rows in changes.items():
            rows.sort(key=lambda c: (c.date, c.id))
            before = [c for c in rows if c.date < start]
            if before and before[-1].to_status == 'customer':
                at_start += 1
            for change in rows:
                if not start <= change.date < end:
                    continue
                if (change.to_status == 'customer'
                        and change.from_status != 'customer'):
                    new.add(party)
                if (change.from_status == 'customer'
                        and change.to_status == 'former'):
                    former.add(party)
        result[period] = (new, former, at_start)
    return result


class CustomerReportsTestCase(CrmDatabaseTestCase):
    "Customer analyses"
    modules = ['crm_reports']

    def lifecycle_rows(self, context):
        return analysis('crm.report.customer_lifecycle', context,
            lambda r: r.period,
            lambda r: (r.new, r.former, r.at_start, r.retention))

    @with_transaction()
    def test_customer_lifecycle(self):
        "New customers, customers turned former and retention per period"
        pool = Pool()
        Party = pool.get('party.party')
        Lifecycle = pool.get('crm.report.customer_lifecycle')
        crm = CrmSetup()
        parties = lifecycle_data(crm)
        # An archived party keeps its history
        Party.write([parties['P5']], {'active': False})
        context = dict(IN_YEAR, period='quarter')
        quarters = [(dt.date(YEAR, m, 1),
                dt.datetime(YEAR, m, 1),
                dt.datetime(YEAR + (m == 10), (m + 2) % 12 + 1, 1))
            for m in [1, 4, 7, 10]]
        expected = expected_lifecycle(quarters)
        rows = self.lifecycle_rows(context)

        def retention(at_start, former):
            if at_start:
                return round(100 * (at_start - len(former)) / at_start, 1)
        self.assertEqual(rows, {
                p: (len(n), len(f), s, retention(s, f))
                for p, (n, f, s) in expected.items()})
        p = parties
        self.assertEqual(expected[dt.date(YEAR, 1, 1)],
            ({p['P2'], p['P4']}, {p['P4']}, 3))
        self.assertEqual(rows[dt.date(YEAR, 4, 1)], (1, 1, 4, 75))

        # The drill-down opens the parties that came or left
        with Transaction().set_context(**context):
            for row in Lifecycle.search([]):
                new, former, _ = expected[row.period]
                self.assertEqual(
                    set(drill_down(Lifecycle.__name__, context, [row])),
                    new | former)

        # Months cut to the dates
        context = dict(period='month', from_date=dt.date(YEAR, 3, 10),
            to_date=dt.date(YEAR, 5, 15))
        months = [
            (dt.date(YEAR, 3, 1), at(3, 10, hour=0), at(4, 1, hour=0)),
            (dt.date(YEAR, 4, 1), at(4, 1, hour=0), at(5, 1, hour=0)),
            (dt.date(YEAR, 5, 1), at(5, 1, hour=0), at(5, 16, hour=0)),
            ]
        expected = expected_lifecycle(months)
        self.assertEqual(
            {p: r[:3] for p, r in self.lifecycle_rows(context).items()},
            {p: (len(n), len(f), s) for p, (n, f, s) in expected.items()})

    @with_transaction()
    def test_customer_revenue(self):
        "Won revenue per customer in the dates, and its lifetime value"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        sales_data(crm)
        context = dict(IN_YEAR, company=crm.company.id)
        expected = {}
        lifetime = defaultdict(Decimal)
        for lead in Lead.search([
                    ('type', '=', 'opportunity'), ('state', '=', 'won')]):
            lifetime[lead.party] += lead.expected_revenue
            if lead.date_closed.year != YEAR:
                continue
            deals, revenue, first, last = expected.get(
                lead.party, (0, Decimal(0), lead.date_closed,
                    lead.date_closed))
            expected[lead.party] = (deals + 1,
                revenue + lead.expected_revenue,
                min(first, lead.date_closed), max(last, lead.date_closed))
        rows = analysis('crm.report.customer_revenue', context,
            lambda r: (r.party, r.owner),
            lambda r: (r.deals, money(r.revenue), r.first_won, r.last_won,
                money(r.lifetime_value)))
        self.assertEqual(rows, {
                (p, p.owner): (d, money(r), f, l, money(lifetime[p]))
                for p, (d, r, f, l) in expected.items()})
        # Acme's deal of the year before counts in its lifetime value only
        acme, = [p for p, _ in rows if p.name == "Acme"]
        self.assertEqual(rows[acme, crm.bob],
            (1, money(1000), at(2, 15), at(2, 15), money(2500)))
        check_drill_downs(self, 'crm.report.customer_revenue', context,
            lambda r: r.deals)

    @with_transaction()
    def test_customer_segment(self):
        "Customers by owner, country of the first address and category"
        pool = Pool()
        Party = pool.get('party.party')
        crm = CrmSetup()
        fr, de, be, a, b = segment_data(crm)
        expected = defaultdict(int)
        for party in Party.search([('lifecycle_status', '=', 'customer')]):
            country = party.addresses[0].country if party.addresses else None
            for category in party.categories or [None]:
                expected[party.owner, country, category] += 1
        rows = analysis('crm.report.customer_segment', {},
            lambda r: (r.owner, r.country, r.category), lambda r: r.count)
        self.assertEqual(rows, expected)
        self.assertEqual(rows, {
                (crm.alice, fr, a): 1, (crm.alice, fr, b): 1,
                (crm.alice, de, a): 1, (crm.bob, fr, None): 1,
                (None, None, None): 1, (crm.carol, be, b): 1})
        check_drill_downs(self, 'crm.report.customer_segment', {},
            lambda r: r.count)

    @with_transaction()
    def test_other_team_figures(self):
        "A salesperson gets nothing of another team through any analysis"
        pool = Pool()
        crm = CrmSetup()
        sales_data(crm)
        funnel_data(crm)
        parties = lifecycle_data(crm)
        segment_data(crm)
        figures = {
            'crm.report.pipeline': ['count', 'expected', 'weighted'],
            'crm.report.new_opportunity': ['count', 'expected'],
            'crm.report.open_quote': ['count', 'expected'],
            'crm.report.won_lost': ['won', 'lost', 'won_revenue'],
            'crm.report.stage_funnel': ['reached', 'went_on'],
            'crm.report.lost_reason': ['count', 'revenue'],
            'crm.report.neglected': ['count', 'expected'],
            'crm.report.salesperson_activity': ['total'],
            'crm.report.customer_lifecycle': ['new', 'former', 'at_start'],
            'crm.report.customer_revenue': [
                'deals', 'revenue', 'lifetime_value'],
            'crm.report.customer_segment': ['count'],
            }
        context = dict(IN_YEAR, company=crm.company.id, period='quarter')

        def rows(model, user, **extra):
            Model = pool.get(model)
            with crm.as_user(user), \
                    Transaction().set_context(**context, **extra):
                return [{n: getattr(r, n) for n in figures[model]
                        + [n for n in ['owner', 'user', 'team', 'party']
                            if n in Model._fields]}
                    for r in Model.search([])]
        for model, names in figures.items():
            # The manager sees North's figures: the test would prove nothing
            self.assertTrue(any(r[n] for r in rows(
                        model, crm.manager, team=crm.north.id)
                    for n in names), msg=model)
            self.assertFalse(any(r[n] for r in rows(
                        model, crm.carol, team=crm.north.id)
                    for n in names), msg=model)
            # Without a team, carol's figures are South's
            for row in rows(model, crm.carol):
                if not any(row[n] for n in names):
                    continue
                self.assertNotEqual(row.get('team'), crm.north, msg=model)
                if model != 'crm.report.customer_revenue':
                    self.assertNotIn(row.get('owner'), {crm.alice, crm.bob},
                        msg=model)
                self.assertNotIn(row.get('user'), {crm.alice, crm.bob},
                    msg=model)
                if 'party' in row:
                    self.assertEqual(row['party'].owner, crm.carol)

        # Carol's lifecycle: the parties of hers and of nobody
        quarters = [(dt.date(YEAR, m, 1), dt.datetime(YEAR, m, 1),
                dt.datetime(YEAR + (m == 10), (m + 2) % 12 + 1, 1))
            for m in [1, 4, 7, 10]]
        expected = expected_lifecycle(quarters, owners={crm.carol, None})
        with crm.as_user(crm.carol):
            self.assertEqual(
                {p: r[:3] for p, r in self.lifecycle_rows(context).items()},
                {p: (len(n), len(f), s)
                    for p, (n, f, s) in expected.items()})
        self.assertIn(parties['P4'], expected[dt.date(YEAR, 1, 1)][0])
