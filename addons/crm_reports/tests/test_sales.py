"""The sales analyses against the records they count: each figure is
computed again from the leads in Python."""
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from sql import Column

from trytond.pool import Pool
from trytond.pyson import PYSONDecoder
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from crm_core.sqltools import forget_cached
from crm_core.tests.tools import CrmDatabaseTestCase, CrmSetup, create_party

# The analyses below run on a past year, with dates written in SQL
YEAR = 2024
IN_YEAR = dict(from_date=dt.date(YEAR, 1, 1), to_date=dt.date(YEAR, 12, 31))


def money(value):
    return Decimal(str(value or 0)).quantize(Decimal('0.01'))


def at(month, day, year=YEAR, hour=10):
    return dt.datetime(year, month, day, hour)


def set_columns(Model, records, **values):
    "Write values in SQL: the dates the ORM keeps for itself"
    table = Model.__table__()
    cursor = Transaction().connection.cursor()
    cursor.execute(*table.update(
            [Column(table, n) for n in values], list(values.values()),
            where=table.id.in_([r.id for r in records])))
    forget_cached(Model)


def analysis(model, context, key, values):
    "{key(row): values(row)} of the rows of the analysis in the context"
    Model = Pool().get(model)
    with Transaction().set_context(**context):
        rows = Model.search([])
        result = {key(r): values(r) for r in rows}
    assert len(result) == len(rows), "two rows with the same key"
    return result


def drill_down(model, context, rows):
    "The records the drill-down wizard opens for the rows"
    pool = Pool()
    DrillDown = pool.get('crm.report.drill_down', type='wizard')
    with Transaction().set_context(**context, active_model=model,
            active_id=rows[0].id, active_ids=[r.id for r in rows]):
        session_id, _, _ = DrillDown.create()
        action, _ = DrillDown(session_id).do_open_(None)
        Target = pool.get(action['res_model'])
        return Target.search(PYSONDecoder().decode(action['pyson_domain']))


def check_drill_downs(test, model, context, figure):
    "Each row of the analysis opens as many records as figure(row) says"
    Model = Pool().get(model)
    with Transaction().set_context(**context):
        rows = Model.search([])
        test.assertTrue(rows)
        for row in rows:
            test.assertEqual(
                len(drill_down(model, context, [row])), figure(row),
                msg=f"{model} {row.id}")


def sales_data(crm):
    """Opportunities and leads of both teams over the year (and one the
    year before), with activities; returns {name: lead}"""
    pool = Pool()
    Lead = pool.get('crm.lead')
    LostReason = pool.get('crm.lost_reason')
    Activity = pool.get('crm.activity')
    north, south = crm.north, crm.south
    alice, bob, carol = crm.alice, crm.bob, crm.carol
    with crm.company_context():
        price, timing = LostReason.create([
                {'name': "Price"}, {'name': "Timing"}])
        acme = create_party("Acme", owner=bob.id)
        beta = create_party("Beta", owner=alice.id)
        gamma = create_party("Gamma", owner=carol.id)
        rival = create_party("Rival")
        spec = [
            # name, owner, team, stage, revenue, party, created, converted,
            # closed, quoted, lost reason, competitor
            ('A1', alice, north, 'Won', 1000, acme, at(1, 5), at(1, 10),
                at(2, 15), None, None, None),
            ('A2', alice, north, 'Won', 3000, beta, at(2, 1), at(2, 1),
                at(2, 20), None, None, None),
            ('A3', alice, north, 'Lost', 500, acme, at(3, 1), at(3, 2),
                at(4, 10), None, price, rival),
            ('B1', bob, north, 'Lost', 700, beta, at(1, 20), at(3, 15),
                at(4, 20), None, price, None),
            ('B2', bob, north, 'Proposition', 2000, acme, at(4, 1), at(4, 1),
                None, at(12, 24, hour=23), None, None),
            ('B3', bob, north, 'Negotiation', 4000, beta, at(5, 1), at(5, 2),
                None, at(11, 15), None, None),
            ('C1', carol, south, 'Won', 7000, gamma, at(6, 1), at(6, 1),
                at(7, 1), None, None, None),
            ('C2', carol, south, 'Qualified', 100, gamma, at(7, 1), at(7, 1),
                None, at(8, 1), None, None),
            ('C3', carol, south, 'Lost', 900, gamma, at(7, 5), at(7, 6),
                at(8, 15), None, timing, None),
            ('A4', alice, north, 'Qualified', 800, acme, at(9, 1), at(9, 3),
                None, at(12, 23), None, None),
            ('A5', alice, north, 'Won', 1500, acme, at(11, 1, YEAR - 1),
                at(11, 1, YEAR - 1), at(12, 20, YEAR - 1), None, None, None),
            ('A6', alice, north, 'New', 50, beta, at(10, 1), at(10, 1),
                None, at(1, 5, YEAR + 1), None, None),
            ('AL', alice, north, 'New', 0, None, at(9, 1), None,
                None, None, None, None),
            ('CL', carol, south, 'New', 0, None, at(10, 1), None,
                None, None, None, None),
            ]
        leads = {}
        for (name, owner, team, stage, revenue, party, created, converted,
                closed, quoted, reason, competitor) in spec:
            lead, = Lead.create([{
                        'name': name,
                        'type': 'opportunity' if party else 'lead',
                        'party': party.id if party else None,
                        'company_name': None if party else name,
                        'owner': owner.id, 'team': team.id,
                        'stage': crm.stage(stage).id,
                        'expected_revenue': Decimal(revenue),
                        'lost_reason': reason.id if reason else None,
                        'competitor': competitor.id if competitor else None,
                        }])
            set_columns(Lead, [lead], create_date=created,
                date_conversion=converted, date_closed=closed,
                quotation_date=quoted)
            leads[name] = Lead(lead.id)

        def activity(user, type_, start, state='done', lead=None,
                party=None):
            activity, = Activity.create([{
                        'type': type_, 'subject': f"{type_} {start}",
                        'user': user.id, 'start': start,
                        'origin': str(lead) if lead else None,
                        'party': party.id if party else None,
                        }])
            if state == 'done':
                Activity.do([activity])
            elif state == 'cancelled':
                Activity.cancel([activity])
        # 2024-03-04 is a Monday
        activity(alice, 'call', at(3, 4), lead=leads['A4'])
        activity(alice, 'meeting', at(3, 6), lead=leads['AL'])
        activity(alice, 'task', at(3, 10), party=acme)
        activity(alice, 'email', at(3, 11), party=acme)
        activity(alice, 'call', at(12, 30, YEAR - 1), lead=leads['A6'])
        activity(alice, 'call', at(12, 30), state='planned', party=beta)
        activity(bob, 'task', at(10, 1), lead=leads['B3'])
        activity(bob, 'call', at(12, 30), state='planned', lead=leads['B2'])
        activity(carol, 'call', at(3, 5), lead=leads['C2'])
        activity(carol, 'meeting', at(3, 5), state='cancelled',
            lead=leads['C2'])
    return leads


def funnel_data(crm):
    """Leads whose stage history is known: [(created, owner, team, final
    stage, [(stage, date)])]; the one of the year before is not counted"""
    pool = Pool()
    Lead = pool.get('crm.lead')
    History = pool.get('crm.lead.history')
    LostReason = pool.get('crm.lost_reason')
    north, south = crm.north, crm.south
    alice, bob, carol = crm.alice, crm.bob, crm.carol
    spec = [
        (at(1, 1), alice, north, [
                ('New', at(1, 1)), ('Qualified', at(1, 5)),
                ('Proposition', at(1, 15)), ('Won', at(2, 1))]),
        (at(1, 10), bob, north, [
                ('New', at(1, 10)), ('Qualified', at(1, 20)),
                ('Lost', at(2, 10))]),
        # Back to an earlier stage, open
        (at(3, 1), alice, north, [
                ('New', at(3, 1)), ('Proposition', at(3, 5)),
                ('Qualified', at(3, 10))]),
        (at(4, 1), bob, north, [('Qualified', at(4, 1))]),
        (at(5, 1), carol, south, [('New', at(5, 1)), ('Won', at(5, 20))]),
        (at(12, 1, YEAR - 1), carol, south, [
                ('New', at(12, 1, YEAR - 1)), ('Qualified', at(1, 3))]),
        ]
    with crm.company_context():
        reason, = LostReason.create([{'name': "No Budget"}])
        leads = []
        for i, (created, owner, team, stages) in enumerate(spec):
            stage = crm.stage(stages[-1][0])
            lead, = Lead.create([{
                        'name': f"Funnel {i}", 'company_name': "Funnel",
                        'owner': owner.id, 'team': team.id,
                        'stage': stage.id,
                        'lost_reason': (reason.id if stage.kind == 'lost'
                            else None),
                        }])
            set_columns(Lead, [lead], create_date=created)
            History.delete(History.search([('lead', '=', lead.id)]))
            previous = None
            for name, date in stages:
                stage = crm.stage(name)
                History.create([{
                            'lead': lead.id, 'date': date,
                            'from_stage': previous.id if previous else None,
                            'from_state': (previous.kind
                                if previous else None),
                            'to_stage': stage.id, 'to_state': stage.kind,
                            'type': 'lead',
                            }])
                previous = stage
            leads.append(Lead(lead.id))
    return leads


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


    @with_transaction()
    def test_new_opportunity(self):
        "New opportunities per month of their conversion, owner and team"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        sales_data(crm)
        context = dict(IN_YEAR, company=crm.company.id, period='month')
        expected = defaultdict(lambda: [0, Decimal(0)])
        for lead in Lead.search([('type', '=', 'opportunity')]):
            if lead.date_conversion.year == YEAR:
                row = expected[lead.date_conversion.date().replace(day=1),
                    lead.owner, lead.team]
                row[0] += 1
                row[1] += lead.expected_revenue
        rows = analysis('crm.report.new_opportunity', context,
            lambda r: (r.period, r.owner, r.team),
            lambda r: (r.count, money(r.expected)))
        self.assertEqual(rows,
            {k: (c, money(e)) for k, (c, e) in expected.items()})
        # B1 came in as a lead in January, an opportunity in March
        self.assertEqual(rows[dt.date(YEAR, 3, 1), crm.bob, crm.north],
            (1, money(700)))
        check_drill_downs(self, 'crm.report.new_opportunity', context,
            lambda r: r.count)

    @with_transaction()
    def test_open_quote(self):
        "Open quotes by age at the end date, owner and team"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        sales_data(crm)
        context = dict(IN_YEAR, company=crm.company.id)
        bands = [('0-7', 7), ('8-30', 30), ('31-90', 90), ('90+', None)]
        expected = defaultdict(lambda: [0, Decimal(0)])
        for lead in Lead.search([
                    ('type', '=', 'opportunity'), ('state', '=', 'open'),
                    ('quotation_date', '!=', None)]):
            age = (IN_YEAR['to_date'] - lead.quotation_date.date()).days
            if age < 0:
                continue
            band = next(b for b, top in bands if top is None or age <= top)
            row = expected[band, lead.owner, lead.team]
            row[0] += 1
            row[1] += lead.expected_revenue
        rows = analysis('crm.report.open_quote', context,
            lambda r: (r.age, r.owner, r.team),
            lambda r: (r.count, money(r.expected)))
        self.assertEqual(rows,
            {k: (c, money(e)) for k, (c, e) in expected.items()})
        # 7 days old at the end of the day, 8 days, 46 days, 152 days
        self.assertEqual(set(rows), {
                ('0-7', crm.bob, crm.north), ('8-30', crm.alice, crm.north),
                ('31-90', crm.bob, crm.north),
                ('90+', crm.carol, crm.south)})
        check_drill_downs(self, 'crm.report.open_quote', context,
            lambda r: r.count)

        # As of today: the quote of next year is in, all are old
        rows = analysis('crm.report.open_quote',
            dict(company=crm.company.id, from_date=None, to_date=None),
            lambda r: (r.age, r.owner), lambda r: r.count)
        self.assertEqual(rows, {
                ('90+', crm.alice): 2, ('90+', crm.bob): 2,
                ('90+', crm.carol): 1})

    @with_transaction()
    def test_won_lost(self):
        "Won and lost per period of closing: rate, deal size, sales cycle"
        pool = Pool()
        Lead = pool.get('crm.lead')
        WonLost = pool.get('crm.report.won_lost')
        crm = CrmSetup()
        sales_data(crm)
        for period, first_day in [
                ('month', lambda d: d.replace(day=1)),
                ('quarter', lambda d: d.replace(
                        month=d.month - (d.month - 1) % 3, day=1))]:
            context = dict(IN_YEAR, company=crm.company.id, period=period)
            expected = defaultdict(lambda: [0, 0, Decimal(0), []])
            for lead in Lead.search([
                        ('type', '=', 'opportunity'),
                        ('state', 'in', ['won', 'lost'])]):
                if lead.date_closed.year != YEAR:
                    continue
                row = expected[first_day(lead.date_closed.date()),
                    lead.owner, lead.team]
                if lead.state == 'won':
                    row[0] += 1
                    row[2] += lead.expected_revenue
                    row[3].append((lead.date_closed - lead.create_date
                            ).total_seconds() / 86400)
                else:
                    row[1] += 1
            with Transaction().set_context(**context):
                rows = {(r.period, r.owner, r.team): r
                    for r in WonLost.search([])}
                self.assertEqual(set(rows), set(expected))
                for key, (won, lost, revenue, cycles) in expected.items():
                    row = rows[key]
                    self.assertEqual((row.won, row.lost), (won, lost))
                    self.assertEqual(money(row.won_revenue), money(revenue))
                    self.assertEqual(row.win_rate,
                        round(100 * won / (won + lost), 1))
                    if won:
                        self.assertEqual(money(row.average_deal),
                            money(revenue / won))
                        self.assertAlmostEqual(row.cycle_days,
                            sum(cycles) / len(cycles), places=6)
                    else:
                        self.assertIsNone(row.average_deal)
                        self.assertIsNone(row.cycle_days)
            check_drill_downs(self, 'crm.report.won_lost', context,
                lambda r: r.won + r.lost)
        # A1 (41 days) and A2 (19 days) won in February
        with Transaction().set_context(dict(IN_YEAR,
                    company=crm.company.id, period='month')):
            row, = WonLost.search([('period', '=', dt.date(YEAR, 2, 1))])
            self.assertEqual((row.won, row.lost, row.win_rate), (2, 0, 100))
            self.assertEqual(money(row.average_deal), money(2000))
            self.assertAlmostEqual(row.cycle_days, 30, places=6)

    def check_funnel(self, context):
        """The Stage Funnel's rows in the context equal the figures
        computed from the history of the leads created in the year; return
        them by stage"""
        pool = Pool()
        Lead = pool.get('crm.lead')
        reached = defaultdict(set)
        went_on = defaultdict(set)
        days = defaultdict(lambda: defaultdict(float))
        leads = [l for l in Lead.search([]) if l.create_date.year == YEAR]
        now = dt.datetime.now()
        for lead in leads:
            stays = sorted(lead.history, key=lambda h: (h.date, h.id))
            for i, stay in enumerate(stays):
                reached[stay.to_stage].add(lead)
                if i + 1 < len(stays):
                    end = stays[i + 1].date
                elif stay.to_state == 'open':
                    end = now
                else:
                    continue
                days[stay.to_stage][lead] += (
                    end - stay.date).total_seconds() / 86400
            # From a stay in the stage as an open lead: won, or in an open
            # stage of a higher sequence, then or later
            for i, stay in enumerate(stays):
                if stay.to_state == 'open' and any(
                        s.to_state == 'won'
                        or (s.to_state == 'open' and s.to_stage.sequence
                            > stay.to_stage.sequence)
                        for s in stays[i:]):
                    went_on[stay.to_stage].add(lead)
        rows = analysis('crm.report.stage_funnel', context,
            lambda r: r.stage, lambda r: r)
        with Transaction().set_context(**context):
            self.assertEqual(
                {s: (r.reached, r.went_on) for s, r in rows.items()},
                {s: (len(l), len(went_on[s])) for s, l in reached.items()})
            for stage, row in rows.items():
                if days[stage]:
                    self.assertAlmostEqual(row.average_days,
                        sum(days[stage].values()) / len(days[stage]),
                        places=3)
                else:
                    self.assertIsNone(row.average_days)
                self.assertEqual(row.conversion,
                    round(100 * row.went_on / row.reached, 1))
        return {s.name: (r.reached, r.went_on, r.average_days)
            for s, r in rows.items()}

    def assertFunnelEqual(self, first, second):
        "The same figures, the days up to the time passed between them"
        self.assertEqual({s: r[:2] for s, r in first.items()},
            {s: r[:2] for s, r in second.items()})
        for stage, row in first.items():
            if row[2] is None:
                self.assertIsNone(second[stage][2])
            else:
                self.assertAlmostEqual(row[2], second[stage][2], places=4)

    @with_transaction()
    def test_stage_funnel(self):
        "Leads reaching each stage, going on, and their days in it"
        crm = CrmSetup()
        funnel_data(crm)
        context = dict(IN_YEAR, company=crm.company.id)
        rows = self.check_funnel(context)
        self.assertEqual({s: r[:2] for s, r in rows.items()}, {
                'New': (4, 4), 'Qualified': (4, 1),
                'Proposition': (2, 1), 'Won': (2, 0), 'Lost': (1, 0)})
        self.assertAlmostEqual(rows['New'][2], (4 + 10 + 4 + 19) / 4,
            places=6)
        self.assertIsNone(rows['Won'][2])
        check_drill_downs(self, 'crm.report.stage_funnel', context,
            lambda r: r.reached)

    @with_transaction()
    def test_stage_funnel_summary(self):
        """The Stage Funnel counts the leads summarized by the cron from
        the summary and the others from their history: its figures stay
        those of the history"""
        pool = Pool()
        Lead = pool.get('crm.lead')
        History = pool.get('crm.lead.history')
        Stage = pool.get('crm.stage')
        Refresh = pool.get('crm.report.summary.refresh')
        Summary = pool.get('crm.report.stage_summary')
        crm = CrmSetup()
        leads = funnel_data(crm)
        context = dict(IN_YEAR, company=crm.company.id)
        # The history and the stages were written long before the refresh
        long_ago = dt.datetime.now() - dt.timedelta(days=2)
        history = History.search([])
        set_columns(History, history, create_date=long_ago)
        set_columns(Stage, Stage.search([]), create_date=long_ago,
            write_date=None)
        before = self.check_funnel(context)
        Refresh.refresh()
        self.assertFunnelEqual(self.check_funnel(context), before)
        self.assertEqual(Summary.search([], count=True),
            len({(h.lead, h.to_stage) for h in history}))
        # The summary is what is read: a wrong row shows
        summary, = Summary.search([
                ('lead', '=', leads[3].id),
                ('stage.name', '=', "Qualified"),
                ])
        set_columns(Summary, [summary], went_on=1)
        self.assertEqual(analysis('crm.report.stage_funnel', context,
                lambda r: r.stage.name, lambda r: r.went_on)['Qualified'], 2)
        set_columns(Summary, [summary], went_on=0)

        # A lead moved after the refresh is counted from its history
        with crm.company_context():
            Lead.write([leads[3]], {'stage': crm.stage('Proposition').id})
        moved = self.check_funnel(context)
        self.assertEqual(moved['Qualified'][:2], (4, 2))
        self.assertEqual(moved['Proposition'][:2], (3, 1))
        Refresh.refresh()
        self.assertFunnelEqual(self.check_funnel(context), moved)

        # A stage's sequence changed after the refresh: what went on is
        # counted from the history again
        Stage.write([crm.stage('Qualified')], {'sequence': 1000})
        resequenced = self.check_funnel(context)
        self.assertEqual(resequenced['New'][:2], (4, 4))
        self.assertEqual(resequenced['Qualified'][:2], (4, 1))

    @with_transaction()
    def test_lost_reason(self):
        "Lost opportunities by reason and competitor"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        sales_data(crm)
        context = dict(IN_YEAR, company=crm.company.id)
        expected = defaultdict(lambda: [0, Decimal(0)])
        for lead in Lead.search([
                    ('type', '=', 'opportunity'), ('state', '=', 'lost')]):
            if lead.date_closed.year == YEAR:
                row = expected[lead.lost_reason, lead.competitor]
                row[0] += 1
                row[1] += lead.expected_revenue
        rows = analysis('crm.report.lost_reason', context,
            lambda r: (r.lost_reason, r.competitor),
            lambda r: (r.count, money(r.revenue)))
        self.assertEqual(rows,
            {k: (c, money(e)) for k, (c, e) in expected.items()})
        self.assertEqual(len(rows), 3)
        check_drill_downs(self, 'crm.report.lost_reason', context,
            lambda r: r.count)

    @with_transaction()
    def test_neglected(self):
        "Open leads without planned activity, their oldest last activity"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Activity = pool.get('crm.activity')
        crm = CrmSetup()
        sales_data(crm)
        context = dict(IN_YEAR, company=crm.company.id)
        expected = defaultdict(lambda: [0, Decimal(0), None])
        for lead in Lead.search([('state', '=', 'open')]):
            activities = Activity.search([('origin', '=', str(lead))])
            if any(a.state == 'planned' for a in activities):
                continue
            last = max((a.start for a in activities if a.state == 'done'),
                default=lead.create_date)
            row = expected[lead.owner, lead.team, lead.type]
            row[0] += 1
            row[1] += lead.expected_revenue
            row[2] = min(last, row[2] or last)
        rows = analysis('crm.report.neglected', context,
            lambda r: (r.owner, r.team, r.type),
            lambda r: (r.count, money(r.expected), r.last_activity))
        self.assertEqual(rows,
            {k: (c, money(e), d) for k, (c, e, d) in expected.items()})
        # B2 has a call planned; A4 an activity planned on its party only
        self.assertEqual(rows[crm.bob, crm.north, 'opportunity'][0], 1)
        # A6's last call was the year before
        self.assertEqual(rows[crm.alice, crm.north, 'opportunity'],
            (2, money(850), at(12, 30, YEAR - 1)))
        check_drill_downs(self, 'crm.report.neglected', context,
            lambda r: r.count)

    @with_transaction()
    def test_salesperson_activity(self):
        "Done activities per salesperson and ISO week, by type"
        pool = Pool()
        Activity = pool.get('crm.activity')
        crm = CrmSetup()
        sales_data(crm)
        context = dict(IN_YEAR, company=crm.company.id)
        columns = {'call': 0, 'meeting': 1, 'email': 2, 'task': 3}
        expected = defaultdict(lambda: [0] * 5)
        for activity in Activity.search([('state', '=', 'done')]):
            if activity.start.year != YEAR:
                continue
            day = activity.start.date()
            row = expected[activity.user,
                day - dt.timedelta(days=day.weekday())]
            row[columns[activity.type]] += 1
            row[4] += 1
        rows = analysis('crm.report.salesperson_activity', context,
            lambda r: (r.user, r.week),
            lambda r: [r.calls, r.meetings, r.emails, r.tasks, r.total])
        self.assertEqual(rows, expected)
        # Sunday 10 March is in the week of Monday 4 March
        self.assertEqual(rows[crm.alice, dt.date(YEAR, 3, 4)],
            [1, 1, 0, 1, 3])
        check_drill_downs(self, 'crm.report.salesperson_activity', context,
            lambda r: r.total)
