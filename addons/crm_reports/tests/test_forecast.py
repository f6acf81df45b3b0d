"""Sales targets and the forecast against them: each figure of the
analysis is computed again from the targets and the leads in Python."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError, ValidationError
from trytond.pool import Pool
from trytond.pyson import PYSONDecoder
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.savepoint import savepoint
from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup, create_party

from ..exceptions import TargetValidationError

YEAR = 2025
MONTHS = {'month': 1, 'quarter': 3, 'year': 12}


def money(value):
    return Decimal(str(value or 0)).quantize(Decimal('0.01'))


def start_of(date, period):
    months = MONTHS[period]
    return date.replace(month=(date.month - 1) // months * months + 1, day=1)


def end_of(start, period):
    month = start.month - 1 + MONTHS[period]
    return dt.date(start.year + month // 12, month % 12 + 1, 1)


class ForecastTestCase(CrmDatabaseTestCase):
    "Targets and forecast"
    modules = ['crm_reports']

    def targets(self, crm):
        pool = Pool()
        Target = pool.get('crm.target')
        spec = [
            # user, team, period type, start month, amount
            (crm.alice, None, 'month', 1, 3000),
            (crm.alice, None, 'month', 2, 3000),
            (crm.alice, None, 'month', 3, 4000),
            (crm.alice, None, 'quarter', 4, 9000),
            (crm.bob, None, 'quarter', 1, 8000),
            (crm.carol, None, 'month', 3, 6000),
            (None, crm.north, 'quarter', 1, 20000),
            (None, crm.north, 'quarter', 4, 25000),
            (None, crm.south, 'month', 3, 7000),
            # Another year: out of the context's dates
            (crm.alice, None, 'month', 1, 1111, YEAR + 1),
            ]
        with crm.company_context():
            return Target.create([{
                        'user': user.id if user else None,
                        'team': team.id if team else None,
                        'period_type': kind,
                        'period_start': dt.date(rest[0] if rest else YEAR,
                            month, 1),
                        'amount': Decimal(amount),
                        } for user, team, kind, month, amount, *rest
                    in spec])

    def leads(self, crm):
        pool = Pool()
        Lead = pool.get('crm.lead')
        Reason = pool.get('crm.lost_reason')
        party = create_party("Acme")
        spec = [
            # owner, team, revenue, state, date (closed or expected close)
            (crm.alice, crm.north, 1000, 'won', dt.date(YEAR, 1, 31)),
            (crm.alice, crm.north, 2000, 'won', dt.date(YEAR, 2, 1)),
            (crm.alice, crm.north, 500, 'won', dt.date(YEAR - 1, 3, 15)),
            (crm.alice, crm.north, 450, 'won', dt.date(YEAR - 1, 5, 2)),
            (crm.alice, crm.north, 9000, 'lost', dt.date(YEAR, 1, 10)),
            (crm.alice, crm.north, 4000, 'open', dt.date(YEAR, 3, 20)),
            (crm.alice, crm.north, 1500, 'open', dt.date(YEAR, 5, 1)),
            (crm.alice, crm.south, 600, 'won', dt.date(YEAR, 3, 3)),
            (crm.bob, crm.north, 3000, 'won', dt.date(YEAR, 2, 14)),
            (crm.bob, crm.north, 700, 'won', dt.date(YEAR - 1, 1, 5)),
            (crm.bob, crm.north, 2500, 'open', dt.date(YEAR, 3, 31)),
            (crm.bob, crm.north, 800, 'open', dt.date(YEAR, 4, 1)),
            (crm.carol, crm.south, 5000, 'won', dt.date(YEAR, 3, 1)),
            (crm.carol, crm.south, 800, 'won', dt.date(YEAR - 1, 3, 31)),
            (crm.carol, crm.south, 1200, 'open', dt.date(YEAR, 3, 10)),
            (crm.carol, crm.north, 900, 'won', dt.date(YEAR, 2, 2)),
            ]
        with crm.company_context():
            leads = Lead.create([{
                        'name': f"Deal {i}", 'type': 'opportunity',
                        'party': party.id, 'owner': owner.id,
                        'team': team.id,
                        'stage': crm.stage(
                            ('Qualified', 'Proposition')[i % 2]).id,
                        'expected_revenue': Decimal(revenue),
                        'expected_close': date,
                        } for i, (owner, team, revenue, _, date)
                    in enumerate(spec)])
            # A lead not converted counts in no pipeline
            Lead.create([{
                        'name': "Raw lead", 'type': 'lead',
                        'owner': crm.alice.id, 'team': crm.north.id,
                        'expected_revenue': Decimal(777),
                        'expected_close': dt.date(YEAR, 3, 5),
                        'contact_name': "Someone",
                        }])
            for lead, (_, _, _, state, date) in zip(leads, spec):
                if state == 'won':
                    Lead.won([lead])
                elif state == 'lost':
                    Lead.mark_lost([lead], Reason.search([])[0])
                if state != 'open':
                    # Noon: the close stays in its day whatever the zone
                    Lead.write([lead], {'date_closed': dt.datetime.combine(
                                date, dt.time(12))})
        return Lead.browse(leads)

    def expected(self, targets, leads, period, owner=None, team=None):
        "The rows of the forecast computed from the records"
        rows = defaultdict(lambda: [Decimal(0)] * 4)
        fitting = ['month'] if period == 'month' else ['month', 'quarter']
        for target in targets:
            if (target.period_type not in fitting
                    or target.period_start.year != YEAR):
                continue
            if owner and target.user != owner:
                continue
            if team and not (target.team == team
                    or target.user in team.members):
                continue
            key = (target.user, target.team,
                start_of(target.period_start, period))
            rows[key][0] += target.amount
        result = {}
        for (user, team_, start), row in rows.items():
            end = end_of(start, period)
            last_start = start.replace(year=start.year - 1)
            last_end = end.replace(year=end.year - 1)
            for lead in leads:
                if user and lead.owner != user:
                    continue
                if team_ and lead.team != team_:
                    continue
                if team and lead.team != team:
                    continue
                if lead.state == 'won':
                    closed = lead.date_closed.date()
                    if start <= closed < end:
                        row[1] += lead.expected_revenue
                    if last_start <= closed < last_end:
                        row[3] += lead.expected_revenue
                elif (lead.state == 'open' and lead.type == 'opportunity'
                        and start <= lead.expected_close < end):
                    row[2] += (lead.expected_revenue * lead.probability
                        / 100)
            target, won, weighted, last_year = row
            result[user.id if user else None, team_.id if team_ else None,
                start] = tuple(money(v) for v in (
                    target, won, weighted, won + weighted,
                    target - won - weighted, last_year))
        return result

    def forecast_rows(self, **context):
        Forecast = Pool().get('crm.report.forecast')
        with Transaction().set_context(**context):
            return {(r.user.id if r.user else None,
                    r.team.id if r.team else None, r.period):
                tuple(money(v) for v in (r.target, r.won, r.weighted,
                        r.forecast, r.gap, r.last_year))
                for r in Forecast.search([])}

    def context(self, crm, **values):
        return {'company': crm.company.id, 'from_date': dt.date(YEAR, 1, 1),
            'to_date': dt.date(YEAR, 12, 31), 'period': 'quarter', **values}

    @with_transaction()
    def test_forecast_figures(self):
        "The forecast of each target period equals what the records say"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        targets = self.targets(crm)
        self.leads(crm)
        leads = Lead.search([])
        with crm.company_context():
            for period in ['month', 'quarter', 'year']:
                with self.subTest(period=period):
                    rows = self.forecast_rows(**self.context(
                            crm, period=period))
                    self.assertEqual(rows,
                        self.expected(targets, leads, period))
            rows = self.forecast_rows(**self.context(crm))

        # Known figures: alice's first quarter sums her three months
        self.assertEqual(rows[crm.alice.id, None, dt.date(YEAR, 1, 1)], (
                money(10000), money(3000 + 600),
                money(4000 * crm.stage('Proposition').probability / 100),
                money(3600 + 40 * crm.stage('Proposition').probability),
                money(6400 - 40 * crm.stage('Proposition').probability),
                money(500)))
        # A salesperson counts all their deals, the team its deals whoever
        # owns them
        self.assertEqual(rows[None, crm.north.id, dt.date(YEAR, 1, 1)][1],
            money(1000 + 2000 + 3000 + 900))
        # Months only by month: the quarters' targets are not in them
        with crm.company_context():
            months = self.forecast_rows(**self.context(crm, period='month'))
        self.assertNotIn((crm.bob.id, None, dt.date(YEAR, 1, 1)), months)
        self.assertIn((crm.alice.id, None, dt.date(YEAR, 2, 1)), months)

        # The context's salesperson and team
        with crm.company_context():
            rows = self.forecast_rows(**self.context(crm, owner=crm.bob.id))
        self.assertEqual(rows, self.expected(
                targets, leads, 'quarter', owner=crm.bob))
        with crm.company_context():
            rows = self.forecast_rows(**self.context(
                    crm, team=crm.south.id))
        self.assertEqual(rows, self.expected(
                targets, leads, 'quarter', team=crm.south))
        self.assertEqual(set(rows), {
                (crm.carol.id, None, dt.date(YEAR, 1, 1)),
                (None, crm.south.id, dt.date(YEAR, 1, 1)),
                })

        # Narrower dates keep whole periods: a target of March counts
        # the whole quarter's figures
        with crm.company_context():
            rows = self.forecast_rows(**self.context(crm,
                    from_date=dt.date(YEAR, 3, 1),
                    to_date=dt.date(YEAR, 3, 31)))
        march = [t for t in targets if t.period_start == dt.date(YEAR, 3, 1)]
        self.assertEqual(rows, self.expected(march, leads, 'quarter'))

    @with_transaction()
    def test_forecast_access(self):
        "A salesperson's forecast has only their and their teams' targets"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Target = pool.get('crm.target')
        crm = CrmSetup()
        self.targets(crm)
        self.leads(crm)
        with crm.as_user(crm.carol):
            readable = Target.search([])
            leads = Lead.search([])
            rows = self.forecast_rows(**self.context(crm))
            north = self.forecast_rows(**self.context(
                    crm, team=crm.north.id))
        self.assertEqual(
            {(t.user, t.team) for t in readable},
            {(crm.carol, None), (None, crm.south)})
        self.assertEqual(rows, self.expected(readable, leads, 'quarter'))
        self.assertEqual(north, {})
        # alice reads North's and her own targets, not bob's
        with crm.as_user(crm.alice):
            rows = self.forecast_rows(**self.context(crm))
        self.assertEqual({(u, t) for u, t, _ in rows},
            {(crm.alice.id, None), (None, crm.north.id)})
        # The manager reads them all
        with crm.as_user(crm.manager):
            rows = self.forecast_rows(**self.context(crm))
        self.assertEqual(len({(u, t) for u, t, _ in rows}), 5)

    @with_transaction()
    def test_forecast_drill_down(self):
        "A row opens the won deals and open opportunities it counts"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Forecast = pool.get('crm.report.forecast')
        DrillDown = pool.get('crm.report.drill_down', type='wizard')
        crm = CrmSetup()
        self.targets(crm)
        self.leads(crm)
        context = self.context(crm)
        with crm.company_context(), Transaction().set_context(**context):
            row, = [r for r in Forecast.search([])
                if r.user == crm.bob and r.period == dt.date(YEAR, 1, 1)]
            with Transaction().set_context(active_model=Forecast.__name__,
                    active_id=row.id, active_ids=[row.id]):
                session_id, _, _ = DrillDown.create()
                action, _ = DrillDown(session_id).do_open_(None)
            domain = PYSONDecoder().decode(action['pyson_domain'])
            leads = Lead.search(domain)
        self.assertEqual(
            sorted((l.state, l.expected_revenue) for l in leads),
            [('open', Decimal(2500)), ('won', Decimal(3000))])

    @with_transaction()
    def test_target_validation(self):
        "A target is for a salesperson or a team, from its period's start"
        pool = Pool()
        Target = pool.get('crm.target')
        crm = CrmSetup()
        with crm.company_context():
            def create(**values):
                return Target.create([{
                            'period_type': 'month',
                            'period_start': dt.date(YEAR, 1, 1),
                            'amount': Decimal(100), **values}])
            for values in [
                    {},
                    {'user': crm.alice.id, 'team': crm.north.id},
                    {'user': crm.alice.id,
                        'period_start': dt.date(YEAR, 1, 2)},
                    {'user': crm.alice.id, 'period_type': 'quarter',
                        'period_start': dt.date(YEAR, 2, 1)},
                    ]:
                with self.subTest(values=values), \
                        self.assertRaises(ValidationError), \
                        savepoint('target'):
                    create(**values)
            quarter, = create(user=crm.alice.id, period_type='quarter',
                period_start=dt.date(YEAR, 4, 1))
            self.assertEqual(quarter.period_end, dt.date(YEAR, 6, 30))
            # A month of the quarter overlaps it
            for month in [5, 6]:
                with self.assertRaises(TargetValidationError), \
                        savepoint('target'):
                    create(user=crm.alice.id,
                        period_start=dt.date(YEAR, month, 1))
            # The months around it, another salesperson, the team do not
            create(user=crm.alice.id, period_start=dt.date(YEAR, 3, 1))
            create(user=crm.alice.id, period_start=dt.date(YEAR, 7, 1))
            create(user=crm.bob.id, period_start=dt.date(YEAR, 4, 1))
            create(team=crm.north.id, period_start=dt.date(YEAR, 4, 1))
            self.assertEqual(quarter.rec_name, f"Alice {YEAR} Q2")
            self.assertEqual(Target.search([('rec_name', '=', 'North')]),
                Target.search([('team', '=', crm.north.id)]))
            # The same start: refused by the database (last: SQLite's
            # transaction does not go on after it)
            with self.assertRaises(ValidationError):
                create(user=crm.alice.id, period_start=dt.date(YEAR, 4, 1))

    @with_transaction()
    def test_target_access(self):
        "Managers edit targets; salespeople read theirs and their teams'"
        pool = Pool()
        Target = pool.get('crm.target')
        crm = CrmSetup()
        values = {'user': crm.carol.id, 'period_type': 'month',
            'period_start': dt.date(YEAR, 5, 1), 'amount': Decimal(10)}
        with crm.as_user(crm.carol):
            with self.assertRaises(AccessError):
                Target.create([values])
        with crm.as_user(crm.manager):
            target, = Target.create([values])
            Target.write([target], {'amount': Decimal(20)})
        with crm.as_user(crm.carol):
            self.assertEqual(Target.search([]), [target])
            with self.assertRaises(UserError):
                Target.write([target], {'amount': Decimal(30)})
        with crm.as_user(crm.alice):
            self.assertEqual(Target.search([]), [])
        with crm.as_user(crm.manager):
            Target.delete([target])
