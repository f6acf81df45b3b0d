#!/usr/bin/env python3
"""Analyses, dashboards and scheduled reports of crm_reports on 100,000
leads with their stage history, 200,000 tickets (crm_helpdesk) and
1,000,000 calls (crm_callcenter).
Targets: each analysis for one year and one company under 500 ms, each
dashboard's queries together under 1 s, a monthly PDF report under 5 s."""
import datetime as dt
import logging
import os
import random
import sys
import time
import traceback
from collections import defaultdict
from decimal import Decimal

import benchlib
import callcenter
import helpdesk
import marketing
from benchlib import log, transaction
from helpdesk import weighted

MODULES = ('crm_reports', 'crm_helpdesk', 'crm_callcenter')
REPORT_TARGET_MS = 500
DASHBOARD_TARGET_MS = 1000
PDF_TARGET_S = 5
RUNS, WARMUP = 5, 1
PDF_RUNS = 3
# The client's default page size (tryton and sao: 1,000 records) when the
# action has no limit of its own
CLIENT_LIMIT = 1000
# Analyses slower than this share of the target: their queries' time in
# PostgreSQL and the plan of the slowest on stderr
EXPLAIN_SHARE = 0.5

# Salespeople besides the 4 of setup_sales, spread over its two teams
EXTRA_SALESPEOPLE = 16
DAYS = 730
LEAD_SHARE = 0.15
CONVERTED_SHARE = 0.3
WIN_RATE = 0.30
# Open opportunities whose decision date has passed (stale, often neglected)
STALE_SHARE = 0.07
# crm_core's default stages: the open ones in their order
PATH = ['stage_new', 'stage_qualified', 'stage_proposition',
    'stage_negotiation']
OPEN_WEIGHTS = [40, 30, 20, 10]
SKIP_STAGE = 0.15
QUOTED_SHARE = 0.85
LOST_REASONS = [
    ('lost_reason_price', 30), ('lost_reason_competitor', 25),
    ('lost_reason_no_budget', 20), ('lost_reason_no_answer', 15),
    ('lost_reason_not_fit', 10)]
LEAD_LOST_REASONS = [('lost_reason_no_answer', 60),
    ('lost_reason_not_fit', 40)]
COMPETITORS = 25
PRIORITIES = [('0', 20), ('1', 55), ('2', 20), ('3', 5)]
CAMPAIGNS = ["Spring Fair", "Summer Webinar", "Autumn Mailing",
    "Winter Sale", "Partner Days"]
MEDIUMS = ["Email", "Web", "Event", "Phone", "Social"]
SOURCES = ["Newsletter", "Google", "LinkedIn", "Trade Show", "Referral",
    "Website"]
WITH_SOURCE = 0.5
ACTIVITY_TYPES = [('call', 40), ('email', 30), ('meeting', 15),
    ('task', 15)]
PLANNED_SHARE = 0.65
FORMER_AFTER = dt.timedelta(days=365)
# Agent statuses: the wrap-up after each answered call
WRAP_UP = dt.timedelta(seconds=30)


def has_model(name):
    "Whether the pool of the transaction has the model"
    from trytond.pool import Pool
    try:
        Pool().get(name)
    except KeyError:
        return False
    return True


# Population ---------------------------------------------------------------

def add_salespeople(name, sales, count):
    """More CRM users in the two teams of setup_sales (ORM); sales gets
    them in users and members"""
    from trytond.pool import Pool
    with transaction(name, sales['admin'],
            {'company': sales['company']}) as tx:
        pool = Pool()
        User = pool.get('res.user')
        Team = pool.get('crm.team')
        users = User.create([{
                    'login': f'bench_sales{i:02d}',
                    'name': f"Salesperson {i:02d}",
                    'company': sales['company'],
                    'companies': [('add', [sales['company']])],
                    'groups': [('add', [
                                benchlib.ref('crm_core', 'group_crm_user')])],
                    } for i in range(1, count + 1)])
        for i, user in enumerate(users):
            team = sales['teams'][i % len(sales['teams'])]
            Team.write([Team(team)], {'members': [('add', [user.id])]})
            sales['users'][user.login] = user.id
            sales['members'][team].append(user.id)
        tx.commit()


def create_manager(name, sales):
    """A CRM manager who also has every other role of the CRM modules
    (helpdesk manager, call-center supervisor...): every analysis and
    dashboard is open to them"""
    from trytond.pool import Pool
    with transaction(name, sales['admin'],
            {'company': sales['company']}) as tx:
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        groups = ModelData.search([
                ('model', '=', 'res.group'),
                ('module', 'like', 'crm_%'),
                ])
        user, = User.create([{
                    'login': 'bench_manager', 'name': "Sales Manager",
                    'company': sales['company'],
                    'companies': [('add', [sales['company']])],
                    'groups': [('add', [g.db_id for g in groups])],
                    }])
        log("manager with the groups "
            + ', '.join(sorted(f'{g.module}.{g.fs_id}' for g in groups)))
        tx.commit()
        return user.id


def create_parameters(name, sales):
    """Lost reasons, stages, competitors' parties and UTM parameters that
    the leads refer to"""
    from trytond.pool import Pool
    ref = benchlib.ref
    with transaction(name, sales['admin'],
            {'company': sales['company']}) as tx:
        pool = Pool()
        Stage = pool.get('crm.stage')
        stages = {}
        for fs_id in PATH + ['stage_won', 'stage_lost']:
            stage = Stage(ref('crm_core', fs_id))
            stages[fs_id] = (stage.id, stage.kind, stage.probability)
        utm = {}
        for model, names in [('marketing.campaign', CAMPAIGNS),
                ('marketing.medium', MEDIUMS),
                ('marketing.source', SOURCES)]:
            Model = pool.get(model)
            utm[model] = [r.id for r in Model.create(
                    [{'name': n} for n in names])]
        reasons = {fs_id: ref('crm_core', fs_id)
            for fs_id, _ in LOST_REASONS}
        tx.commit()
    return {'stages': stages, 'utm': utm, 'reasons': reasons}


class LeadFactory:
    """Leads and opportunities created over the last DAYS days, each with
    its stage history (one row per change, as crm.lead.history records
    them), its activities and the columns the ORM fills"""

    def __init__(self, sales, params, party_ids, competitors, now, seed=31):
        self.sales, self.params = sales, params
        self.party_ids, self.competitors = party_ids, competitors
        self.now = now
        self.rnd = random.Random(seed)
        self.stages = params['stages']
        # party: [dates of won deals], for the lifecycle
        self.won = defaultdict(list)

    def moment(self, start, end):
        "A moment between start and end, whole seconds"
        span = max((end - start).total_seconds(), 0)
        return (start + dt.timedelta(seconds=self.rnd.uniform(0, span))
            ).replace(microsecond=0)

    def path(self, last):
        """The open stages a lead went through up to index last, skipping
        some of those in between"""
        return [s for i, s in enumerate(PATH[:last + 1])
            if i in {0, last} or self.rnd.random() >= SKIP_STAGE]

    def lead(self, lead_id, i):
        "(row, history rows, activity rows) of one lead"
        rnd, now = self.rnd, self.now
        created = now - dt.timedelta(seconds=rnd.uniform(0, DAYS * 86400))
        created = created.replace(microsecond=0)
        team = rnd.choice(self.sales['teams'])
        owner = rnd.choice(self.sales['members'][team])
        kind = 'lead' if rnd.random() < LEAD_SHARE else 'opportunity'
        cycle = dt.timedelta(days=max(3, rnd.expovariate(1 / 50)))
        decision = created + cycle
        if kind == 'lead':
            # Enquiries that nobody qualified: disqualified after a while
            closed = (now - created > dt.timedelta(days=60)
                and rnd.random() < 0.85)
            stages = ['stage_new'] + (['stage_lost'] if closed else [])
            won = False
        else:
            closed = decision < now and rnd.random() > STALE_SHARE
            won = closed and rnd.random() < WIN_RATE
            if not closed:
                stages = self.path(weighted(rnd, list(zip(
                                range(len(PATH)), OPEN_WEIGHTS))))
            elif won:
                stages = self.path(len(PATH) - 1) + ['stage_won']
            else:
                stages = self.path(weighted(rnd, list(zip(
                                range(len(PATH)), OPEN_WEIGHTS))))
                stages.append('stage_lost')
        # When each stage was entered: the first at creation, the last at
        # the decision (closed) or some time before now (open)
        end = decision if closed else created + (now - created) * rnd.uniform(
            0.2, 0.95)
        end = min(end, now).replace(microsecond=0)
        dates = [created] + sorted(
            self.moment(created, end) for _ in stages[1:-1])
        if len(stages) > 1:
            dates.append(end)
        revenue = Decimal(round(min(max(
                        rnd.lognormvariate(9.3, 1.0), 300), 500_000), -1))
        final = stages[-1]
        # The kind of a stage is the state of its leads
        stage_id, state, probability = self.stages[final]
        history, previous = [], (None, None)
        for stage, date in zip(stages, dates):
            sid, skind, sprobability = self.stages[stage]
            history.append([lead_id, date, owner, previous[0], previous[1],
                    sid, skind, kind, revenue, sprobability, owner, date])
            previous = (sid, skind)
        party = rnd.choice(self.party_ids)
        if kind == 'lead' and rnd.random() < 0.5:
            party = None
        quotation = None
        if kind == 'opportunity' and 'stage_proposition' in stages \
                and rnd.random() < QUOTED_SHARE:
            entered = dates[stages.index('stage_proposition')]
            quotation = min(entered + dt.timedelta(
                    seconds=rnd.uniform(0, 2 * 86400)), end).replace(
                microsecond=0)
        conversion = None
        if kind == 'opportunity':
            conversion = created
            if rnd.random() < CONVERTED_SHARE and len(dates) > 1:
                conversion = self.moment(created, dates[1])
        lost_reason = competitor = None
        if state == 'lost':
            reasons = LEAD_LOST_REASONS if kind == 'lead' else LOST_REASONS
            reason = weighted(rnd, reasons)
            lost_reason = self.params['reasons'][reason]
            if reason == 'lost_reason_competitor':
                competitor = rnd.choice(self.competitors)
        if closed:
            expected_close = end.date()
        else:
            expected_close = (decision + dt.timedelta(
                    days=rnd.gauss(0, 10))).date()
        campaign = medium = source = None
        if rnd.random() < WITH_SOURCE:
            utm = self.params['utm']
            source = rnd.choice(utm['marketing.source'])
            medium = rnd.choice(utm['marketing.medium'])
            if rnd.random() < 0.4:
                campaign = rnd.choice(utm['marketing.campaign'])
        if won and party:
            self.won[party].append(end)
        label = "Enquiry" if kind == 'lead' else "Deal"
        row = [lead_id, f"{label} {i:06d}", kind, self.sales['company'],
            party, None if party else f"Contact {i}",
            None if party else f"Prospect {i % 5000} GmbH",
            stage_id, state, probability, revenue, expected_close, owner,
            team, weighted(rnd, PRIORITIES), conversion,
            end if closed else None, quotation, lost_reason, competitor,
            campaign, medium, source, owner, created, owner, end]
        return row, history, self.activities(
            lead_id, party, owner, created, end, closed, kind)

    def activities(self, lead_id, party, owner, created, end, closed, kind):
        "The done (or cancelled) activities of the lead, a planned one"
        rnd = self.rnd
        rows = []
        count = rnd.choice([0, 1, 1, 2, 2, 3, 4] if kind == 'opportunity'
            else [0, 0, 1])
        for n in range(count):
            start = self.moment(created, end)
            duration = dt.timedelta(minutes=rnd.choice([15, 30, 30, 60]))
            done = rnd.random() < 0.9
            type_ = weighted(rnd, ACTIVITY_TYPES)
            rows.append([type_, f"{type_.title()} {lead_id}.{n}",
                    self.sales['company'], party, f'crm.lead,{lead_id}',
                    start, start + duration, owner,
                    'done' if done else 'cancelled',
                    start + duration if done else None, True, owner, start])
        if not closed and rnd.random() < PLANNED_SHARE:
            # Some are overdue
            start = self.now + dt.timedelta(
                minutes=rnd.randint(-7 * 24 * 60, 21 * 24 * 60))
            start = start.replace(second=0, microsecond=0)
            rows.append([weighted(rnd, ACTIVITY_TYPES), f"Follow-up {lead_id}",
                    self.sales['company'], party, f'crm.lead,{lead_id}',
                    start, start + dt.timedelta(minutes=30), owner,
                    'planned', None, start < self.now, owner,
                    min(start, self.now)])
        return rows


LEAD_COLUMNS = [
    'id', 'name', 'type', 'company', 'party', 'contact_name', 'company_name',
    'stage', 'state', 'probability', 'expected_revenue', 'expected_close',
    'owner', 'team', 'priority', 'date_conversion', 'date_closed',
    'quotation_date', 'lost_reason', 'competitor', 'marketing_campaign',
    'marketing_medium', 'marketing_source', 'create_uid', 'create_date',
    'write_uid', 'write_date']
HISTORY_COLUMNS = [
    'lead', 'date', 'user', 'from_stage', 'from_state', 'to_stage',
    'to_state', 'type', 'expected_revenue', 'probability', 'create_uid',
    'create_date']
ACTIVITY_COLUMNS = [
    'type', 'subject', 'company', 'party', 'origin', 'start', 'end', 'user',
    'state', 'date_done', 'reminded', 'create_uid', 'create_date']
LIFECYCLE_COLUMNS = [
    'party', 'date', 'user', 'from_status', 'to_status', 'create_uid',
    'create_date']


def insert_leads(name, sales, params, party_ids, count, now):
    """The leads (COPY), their stage history and activities; then the
    parties' lifecycle from their won deals. Return the counts."""
    rnd = random.Random(29)
    competitors = rnd.sample(party_ids, COMPETITORS)
    customers = [p for p in party_ids if p not in set(competitors)]
    factory = LeadFactory(sales, params, customers, competitors, now)
    start = time.monotonic()
    with transaction(name) as tx:
        cursor = tx.connection.cursor()
        ids = helpdesk.next_ids(cursor, 'crm_lead', count)
        leads, history, activities = [], [], []
        for i, lead_id in enumerate(ids):
            row, lead_history, lead_activities = factory.lead(lead_id, i)
            leads.append(row)
            history += lead_history
            activities += lead_activities
        log(f"computed {count} leads in {time.monotonic() - start:.0f} s")
        callcenter.copy_rows(cursor, 'crm_lead', LEAD_COLUMNS, leads)
        callcenter.copy_rows(cursor, 'crm_lead_history', HISTORY_COLUMNS,
            history)
        callcenter.copy_rows(cursor, 'crm_activity', ACTIVITY_COLUMNS,
            activities)
        lifecycle = insert_lifecycle(cursor, factory.won, party_ids, now)
        tx.commit()
    states = defaultdict(int)
    for row in leads:
        # type and state
        states[row[2], row[8]] += 1
    by_state = ', '.join(f'{t} {s}: {n}' for (t, s), n in sorted(
            states.items()))
    log(f"{count} leads ({by_state}), {len(history)} stage changes, "
        f"{len(activities)} activities, {lifecycle} lifecycle changes in "
        f"{time.monotonic() - start:.0f} s")
    return {'leads': count, 'history': len(history),
        'activities': len(activities), 'lifecycle': lifecycle}


def insert_lifecycle(cursor, won, party_ids, now):
    """Each party is a prospect from its creation two years ago, a customer
    from its first won deal, former a year without won deal after that
    (crm_core's default former_after_days), a customer again at its next
    won deal: crm_party_lifecycle rows and the party's status"""
    born = (now - dt.timedelta(days=DAYS + 30)).replace(microsecond=0)
    rows, by_status = [], defaultdict(list)

    def change(party, date, before, after):
        rows.append([party, date, None, before, after, 0, date])

    for party in party_ids:
        change(party, born, None, 'prospect')
        status, last = 'prospect', None
        for date in sorted(won.get(party, [])):
            if status == 'customer' and date - last > FORMER_AFTER:
                change(party, last + FORMER_AFTER, 'customer', 'former')
                status = 'former'
            if status != 'customer':
                change(party, date, status, 'customer')
                status = 'customer'
            last = date
        if status == 'customer' and now - last > FORMER_AFTER:
            change(party, last + FORMER_AFTER, 'customer', 'former')
            status = 'former'
        by_status[status].append(party)
    callcenter.copy_rows(cursor, 'crm_party_lifecycle', LIFECYCLE_COLUMNS,
        rows)
    for status, parties in by_status.items():
        cursor.execute('UPDATE party_party SET lifecycle_status = %s, '
            'create_date = %s WHERE id = ANY(%s)', (status, born, parties))
    log("parties by lifecycle status: " + ', '.join(
            f'{s} {len(p)}' for s, p in sorted(by_status.items())))
    return len(rows)


def insert_agent_statuses(name, cc, now):
    """The agents' status log as crm_callcenter keeps it, from the calls
    (SQL): ringing until answered or missed, on call, a wrap-up, available
    until their next call; each working day they are offline from 18:00
    to 8:00 and paused for lunch. Return the number of rows."""
    agents = [a for q in cc['queues'] for a, _, _ in q['agents']]
    start = time.monotonic()
    with transaction(name) as tx:
        cursor = tx.connection.cursor()
        cursor.execute(
            'INSERT INTO callcenter_agent_status '
            '(agent, status, start, "end", create_uid, create_date) '
            'SELECT c.agent, s.status, s.start, s.stop, 0, s.start '
            'FROM callcenter_call c CROSS JOIN LATERAL (VALUES '
            "('ringing', c.created, COALESCE(c.answered, c.ended)), "
            "('on_call', c.answered, c.ended), "
            "('wrap_up', c.ended, c.ended + %(wrap_up)s)) "
            'AS s(status, start, stop) '
            'WHERE c.agent IS NOT NULL AND c.ended IS NOT NULL '
            "AND (s.status = 'ringing' OR c.answered IS NOT NULL)",
            {'wrap_up': WRAP_UP})
        calls = cursor.rowcount
        cursor.execute(
            'INSERT INTO callcenter_agent_status '
            '(agent, status, start, "end", create_uid, create_date) '
            "SELECT agent, 'available', free, next, 0, free FROM ("
            'SELECT c.agent, CASE WHEN c.answered IS NOT NULL '
            'THEN c.ended + %(wrap_up)s ELSE c.ended END AS free, '
            'LEAD(c.created) OVER (PARTITION BY c.agent '
            'ORDER BY c.created) AS next '
            'FROM callcenter_call c '
            'WHERE c.agent IS NOT NULL AND c.ended IS NOT NULL) AS t '
            'WHERE next > free',
            {'wrap_up': WRAP_UP})
        available = cursor.rowcount
        days = [(now - dt.timedelta(days=d)).date()
            for d in range(1, callcenter.DAYS)]
        rows = []
        for agent in agents:
            for day in days:
                evening = dt.datetime.combine(day, dt.time(18))
                lunch = dt.datetime.combine(day, dt.time(12))
                rows.append([agent, 'offline', None, evening,
                        evening + dt.timedelta(hours=14), 0, evening])
                rows.append([agent, 'paused', "Lunch", lunch,
                        lunch + dt.timedelta(minutes=45), 0, lunch])
        callcenter.copy_rows(cursor, 'callcenter_agent_status', ['agent',
                'status', 'reason', 'start', 'end', 'create_uid',
                'create_date'], rows)
        tx.commit()
    total = calls + available + len(rows)
    log(f"{total} agent statuses ({calls} of calls, {available} available "
        f"between calls, {len(rows)} offline and paused) in "
        f"{time.monotonic() - start:.0f} s")
    return total


def create_targets(name, sales, now):
    """Sales targets (crm.target, when crm_reports has them): each
    salesperson per month and each team per quarter, over the two years
    and the next six months (ORM)"""
    from trytond.pool import Pool
    with transaction(name, sales['admin'],
            {'company': sales['company']}) as tx:
        pool = Pool()
        if not has_model('crm.target'):
            log("no crm.target: no targets")
            return 0
        Target = pool.get('crm.target')
        rnd = random.Random(37)
        first = (now - dt.timedelta(days=DAYS)).date().replace(day=1)
        months = []
        month = first
        while month <= (now + dt.timedelta(days=183)).date():
            months.append(month)
            month = (month + dt.timedelta(days=32)).replace(day=1)
        users = [u for m in sales['members'].values() for u in m]
        vlist = [{
                'company': sales['company'], 'user': user,
                'period_type': 'month', 'period_start': month,
                'amount': Decimal(rnd.randrange(40, 120) * 1000),
                } for user in users for month in months]
        vlist += [{
                'company': sales['company'], 'team': team,
                'period_type': 'quarter', 'period_start': month,
                'amount': Decimal(rnd.randrange(400, 900) * 1000),
                } for team in sales['teams'] for month in months
            if month.month in {1, 4, 7, 10}]
        try:
            Target.create(vlist)
        except Exception:
            log("targets not created (crm.target changed?):\n"
                + traceback.format_exc(limit=3))
            return 0
        tx.commit()
    log(f"{len(vlist)} sales targets")
    return len(vlist)


def run_crons(name):
    """The scheduled tasks of crm_reports once, as trytond-cron would have
    run them on this data (the win probability's learning...)"""
    from trytond.pool import Pool
    from trytond.transaction import TransactionError
    with transaction(name, readonly=True):
        pool = Pool()
        Cron = pool.get('ir.cron')
        ModelData = pool.get('ir.model.data')
        crons = [(c.id, c.method) for c in Cron.browse([d.db_id
                    for d in ModelData.search([
                            ('model', '=', 'ir.cron'),
                            ('module', '=', 'crm_reports'),
                            ])])]
    for cron_id, method in crons:
        start = time.monotonic()
        try:
            # As trytond-cron: again with the tables it locks locked first
            extras = {}
            while True:
                try:
                    with transaction(name, 0, {'_skip_warnings': True},
                            **extras):
                        Cron = Pool().get('ir.cron')
                        Cron.run_once([Cron(cron_id)])
                    break
                except TransactionError as e:
                    e.fix(extras)
        except Exception:
            log(f"cron {method} failed:\n" + traceback.format_exc(limit=5))
            continue
        log(f"cron {method} in {time.monotonic() - start:.1f} s")


def backdate_stages(name, now):
    """The stages as set up when the company began with the CRM, as the
    leads' dates say: for an hour or two after a stage is written the
    Stage Funnel counts every lead from its history (a stage's sequence
    decides what went on)"""
    from trytond.pool import Pool
    with transaction(name) as tx:
        stage = Pool().get('crm.stage').__table__()
        cursor = tx.connection.cursor()
        cursor.execute(*stage.update([stage.create_date, stage.write_date],
                [now - dt.timedelta(days=DAYS), None]))
        tx.commit()


def populate(name, options, now):
    started = time.monotonic()
    sales = benchlib.setup_sales(name)
    add_salespeople(name, sales, EXTRA_SALESPEOPLE)
    mk = marketing.setup(name, sales)
    params = create_parameters(name, sales)
    hd = helpdesk.setup(name, sales)
    cc = callcenter.setup(name, sales)
    manager = create_manager(name, sales)
    log(f"users, teams, queues in {time.monotonic() - started:.0f} s")
    party_ids, _ = marketing.insert_parties(
        name, mk, options.parties, now)
    counts = insert_leads(name, sales, params, party_ids, options.leads, now)
    backdate_stages(name, now)
    counts['targets'] = create_targets(name, sales, now)

    start = time.monotonic()
    tickets = {
        'due': options.tickets // 100,
        'open': round(options.tickets * helpdesk.OPEN_SHARE)
        - options.tickets // 100,
        }
    tickets['closed'] = options.tickets - sum(tickets.values())
    helpdesk.insert_tickets(name, hd, party_ids, tickets, now)
    log(f"{options.tickets} tickets {tickets} in "
        f"{time.monotonic() - start:.0f} s")
    counts['tickets'] = options.tickets

    callcenter.insert_calls(name, cc, party_ids, options.calls, now)
    counts['calls'] = options.calls
    counts['statuses'] = insert_agent_statuses(name, cc, now)

    start = time.monotonic()
    benchlib.vacuum(name)
    log(f"VACUUM ANALYZE in {time.monotonic() - start:.0f} s")
    run_crons(name)
    log(f"population done in {time.monotonic() - started:.0f} s: "
        + ', '.join(f'{k} {v}' for k, v in counts.items()))
    return {'sales': sales, 'manager': manager, 'company': sales['company'],
        'currency': sales['currency'], 'counts': counts}


# Measures -----------------------------------------------------------------

def user_context(name, user):
    """The context the client sends for the user (their preferences), with
    the access checks of an RPC call"""
    from trytond.pool import Pool
    with transaction(name, user, readonly=True):
        context = Pool().get('res.user').get_preferences(context_only=True)
    context['_check_access'] = True
    return context


def last_twelve_months(today):
    "(from, to): the 12 months that end today"
    try:
        start = today.replace(year=today.year - 1)
    except ValueError:  # 29 February
        start = today.replace(year=today.year - 1, day=28)
    return start + dt.timedelta(days=1), today


def client_fields(Model, view_id=None, view_type='tree'):
    """The fields the client reads for the view: its fields, and the
    rec_name of the relation ones"""
    view = Model.fields_view_get(view_id=view_id, view_type=view_type)
    names = []
    for field, definition in view['fields'].items():
        names.append(field)
        if definition['type'] in {'many2one', 'one2one', 'reference'}:
            names.append(f'{field}.rec_name')
    return names


def analysis_models():
    """The analyses: models crm.report.* on a table_query, whatever
    crm_reports and its bridges register"""
    from trytond.model import ModelSQL
    from trytond.pool import Pool
    return sorted(name for name, Model in Pool().iterobject()
        if name.startswith('crm.report.') and issubclass(Model, ModelSQL)
        and Model._is_table_query())


def rpc(name, user, context, function):
    "A function that calls function() in its own read-only transaction"
    from trytond.transaction import Transaction

    def call():
        with Transaction().start(name, user, readonly=True,
                context=context):
            return function()
    return call


class QueryLog(logging.Handler):
    "The SQL queries trytond's cursor logs at DEBUG level"

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.queries = []

    def emit(self, record):
        self.queries.append(record.getMessage())


def queries_of(function):
    "The queries function() runs (trytond's LoggingCursor logs them)"
    logger = logging.getLogger('trytond.backend.postgresql.database')
    handler = QueryLog()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        function()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return handler.queries


def explain_queries(name, user, context, queries):
    """EXPLAIN ANALYZE of each SELECT: [(ms in PostgreSQL, plan)], slowest
    first"""
    from trytond.transaction import Transaction
    plans = []
    with Transaction().start(name, user, readonly=True,
            context=context) as tx:
        cursor = tx.connection.cursor()
        for query in queries:
            if not query.lstrip().upper().startswith('SELECT'):
                continue
            cursor.execute('EXPLAIN (ANALYZE, BUFFERS) ' + query)
            plan = [r for r, in cursor]
            ms = float(plan[-1].split(':')[1].split()[0])
            plans.append((ms, '\n'.join(plan)))
    return sorted(plans, key=lambda p: -p[0])


def log_sql(name, user, context, call, what, total_ms):
    """What a slow call does in PostgreSQL: its queries, the time each
    takes there (EXPLAIN ANALYZE), the plan of the slowest"""
    plans = explain_queries(name, user, context, queries_of(call))
    sql_ms = sum(ms for ms, _ in plans)
    log(f"{what}: {len(plans)} SELECT queries, {sql_ms:.0f} ms in "
        f"PostgreSQL (of {total_ms:.0f} ms); the slowest "
        + ', '.join(f'{ms:.0f}' for ms, _ in plans[:5])
        + f" ms. EXPLAIN ANALYZE of the slowest:\n{plans[0][1]}")


def measure_analyses(name, pop):
    """Each analysis's list as the manager opens it in the client for the
    last 12 months of the company: {model: (median ms, rows)}; the failed
    ones None"""
    from trytond.pool import Pool
    user = pop['manager']
    today = dt.date.today()
    from_date, to_date = last_twelve_months(today)
    # What the analyses' context form sends besides the user's context
    context = dict(user_context(name, user),
        company=pop['company'], currency=pop['currency'],
        from_date=from_date, to_date=to_date, period='month', team=None,
        owner=None)
    log(f"analyses from {from_date} to {to_date} by month, company "
        f"{pop['company']}, as the manager (user {user})")
    with transaction(name, user, readonly=True, context=context):
        models = {m: client_fields(Pool().get(m)) for m in analysis_models()}
    log(f"{len(models)} analyses: {', '.join(models)}")
    results, slow = {}, []
    for model, fields in models.items():
        parts = {}

        def function(model=model, fields=fields, parts=parts, limit=None):
            Model = Pool().get(model)
            start = time.perf_counter()
            records = Model.search([], limit=limit)
            searched = time.perf_counter()
            rows = Model.read([r.id for r in records], list(fields))
            parts.update(rows=len(rows), search=searched - start,
                read=time.perf_counter() - searched)
            return rows
        # The client's call: search_read of its page of rows; timed apart
        # too, to tell the search from reading the rows (read runs the
        # table_query again, once per 1,000 ids)
        call = rpc(name, user, context, lambda model=model, fields=fields:
            Pool().get(model).search_read([], limit=CLIENT_LIMIT,
                fields_names=list(fields)))
        try:
            median, durations = benchlib.median_ms(
                call, runs=RUNS, warmup=WARMUP)
            rpc(name, user, context, lambda: function(limit=CLIENT_LIMIT))()
        except Exception:
            log(f"{model} FAILED:\n" + traceback.format_exc(limit=8))
            results[model] = None
            continue
        results[model] = (median, parts['rows'])
        log(f"{model}: {median:.0f} ms for {parts['rows']} rows "
            f"(search {1000 * parts['search']:.0f} ms, read "
            f"{1000 * parts['read']:.0f} ms); runs "
            + ' '.join(f'{d:.0f}' for d in durations))
        if parts['rows'] >= CLIENT_LIMIT:
            # More rows than the client's page: all of them, as a
            # scheduled report or an export reads them
            _, seconds = benchlib.timed(rpc(name, user, context, function))
            log(f"{model}: all its {parts['rows']} rows in "
                f"{1000 * seconds:.0f} ms (search "
                f"{1000 * parts['search']:.0f} ms, read "
                f"{1000 * parts['read']:.0f} ms)")
        if median > REPORT_TARGET_MS * EXPLAIN_SHARE:
            slow.append((model, call, median))
    for model, call, median in slow:
        log_sql(name, user, context, call, model, median)
    return results


def board_actions(name, user, context):
    """The boards of crm_reports as the client opens them for the user:
    [(board, [(action name, model, domain, order, limit, fields,
    context)])]"""
    from lxml import etree
    from trytond.pool import Pool
    from trytond.pyson import PYSONDecoder
    from trytond.transaction import Transaction
    boards = []
    with transaction(name, user, readonly=True, context=context):
        pool = Pool()
        View = pool.get('ir.ui.view')
        ModelData = pool.get('ir.model.data')
        Action = pool.get('ir.action')
        views = View.search([
                ('type', '=', 'board'), ('module', '=', 'crm_reports')],
            order=[('id', 'ASC')])
        for view in views:
            actions = []
            for node in etree.fromstring(view.arch).iter('action'):
                module, fs_id = node.get('name').split('.')
                try:
                    action_id = ModelData.get_id(module, fs_id)
                except KeyError:
                    # The view's file names an action the database has
                    # not: the module changed since its activation
                    log(f"board {view.name}: no action {module}.{fs_id} "
                        "in the database, left out")
                    continue
                action, = Action.get_action_values('ir.action.act_window', [
                        Action.get_action_id(action_id)])
                decoder = PYSONDecoder({**context, '_user': user})
                action_context = dict(context)
                action_context.update(
                    decoder.decode(action['pyson_context'] or '{}'))
                domain = decoder.decode(action['pyson_domain'] or '[]')
                search_value = decoder.decode(
                    action['pyson_search_value'] or '[]')
                tabs = action['domains'] or []
                domain = [d for d in [domain, search_value]
                    + ([decoder.decode(tabs[0][1])] if tabs else []) if d]
                order = decoder.decode(action['pyson_order'] or 'null')
                Model = pool.get(action['res_model'])
                if action['context_model']:
                    # The client sends the values of the context form
                    ContextModel = pool.get(action['context_model'])
                    with Transaction().set_context(action_context):
                        action_context.update(ContextModel.default_get(
                                list(ContextModel._fields),
                                with_rec_name=False))
                view_id, view_type = action['views'][0]
                actions.append((action['name'], action['res_model'],
                        domain, order, action['limit'] or CLIENT_LIMIT,
                        client_fields(Model, view_id, view_type),
                        action_context))
            boards.append((view.name, actions))
    return boards


def load_board(name, user, actions, times):
    """A function that loads the board: each action's records in its own
    transaction, one RPC each; times gets the duration of each"""
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    def call():
        rows = {}
        for action, model, domain, order, limit, fields, context in actions:
            start = time.perf_counter()
            with Transaction().start(name, user, readonly=True,
                    context=context):
                rows[action] = len(Pool().get(model).search_read(
                        domain, limit=limit, order=order,
                        fields_names=list(fields)))
            times.setdefault(action, []).append(
                1000 * (time.perf_counter() - start))
        return rows
    return call


def measure_boards(name, pop):
    """Each board of crm_reports loaded by the manager (every role), and
    by a salesperson where they may open it: {(board, login): median ms}"""
    users = [('manager', pop['manager']),
        ('salesperson', pop['sales']['members'][pop['sales']['teams'][0]][0])]
    results = {}
    for label, user in users:
        context = user_context(name, user)
        for board, actions in board_actions(name, user, context):
            times = {}
            call = load_board(name, user, actions, times)
            try:
                rows = call()
            except Exception as exception:
                if label == 'manager':
                    log(f"board {board} FAILED for the manager:\n"
                        + traceback.format_exc(limit=8))
                    results[board, label] = None
                else:
                    log(f"board {board} not open to the salesperson: "
                        f"{exception.__class__.__name__}")
                continue
            times.clear()
            median, durations = benchlib.median_ms(call, runs=RUNS,
                warmup=0)
            results[board, label] = median
            log(f"board {board} as the {label}: {median:.0f} ms; "
                + ', '.join(f"{a} {rows[a]} rows "
                    f"{sorted(t)[len(t) // 2]:.0f} ms"
                    for a, t in times.items()))
    return results


def subscription_module(Subscription):
    "The Python module of crm_reports that defines the subscriptions"
    for klass in Subscription.__mro__:
        if 'make_report' in vars(klass):
            return sys.modules[klass.__module__]


def create_subscriptions(name, pop):
    """A monthly PDF subscription of the manager (the previous month, by
    month) for each analysis that may be subscribed: {analysis: id}"""
    from trytond.pool import Pool
    sales = pop['sales']
    with transaction(name, sales['admin'],
            {'company': pop['company']}) as tx:
        Subscription = Pool().get('crm.report.subscription')
        analyses = [a for a, _ in Subscription.get_analyses()]
        subscriptions = Subscription.create([{
                    'name': f"Monthly {analysis}",
                    'company': pop['company'],
                    'owner': pop['manager'],
                    'analysis': analysis,
                    'date_range': 'previous_month',
                    'period': 'month',
                    'currency': pop['currency'],
                    'format': 'pdf',
                    'emails': 'office@bench.example',
                    'frequency': 'monthly',
                    'day': 1,
                    'time': dt.time(7),
                    } for analysis in analyses])
        tx.commit()
        return {s.analysis: s.id for s in subscriptions}


def measure_pdf(name, pop):
    """The monthly PDF of each subscription, made as the queue's task
    makes it (Subscription.make_report: the analysis as its owner, the
    columns of its list view and the chart of its graph view; then
    render.render), the email not sent: {analysis: median s}"""
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    with transaction(name, readonly=True):
        if not has_model('crm.report.subscription'):
            log("SKIPPED report_pdf_s: crm_reports has no "
                "crm.report.subscription")
            return None
    subscriptions = create_subscriptions(name, pop)
    results = {}
    for analysis, subscription_id in subscriptions.items():
        parts = {}

        def call(subscription_id=subscription_id, parts=parts):
            with Transaction().start(name, 0, readonly=True,
                    context={'company': pop['company']}):
                Subscription = Pool().get('crm.report.subscription')
                render = subscription_module(Subscription).render
                subscription = Subscription(subscription_id)
                start = time.perf_counter()
                report = subscription.make_report()
                made = time.perf_counter()
                data, _, _ = render.render(report, subscription.format)
                parts.update(rows=len(report.rows), size=len(data),
                    report=made - start,
                    render=time.perf_counter() - made)
        try:
            median, durations = benchlib.median_ms(
                call, runs=PDF_RUNS, warmup=WARMUP)
        except Exception:
            log(f"PDF of {analysis} FAILED:\n"
                + traceback.format_exc(limit=8))
            results[analysis] = None
            continue
        results[analysis] = median / 1000
        log(f"PDF of {analysis}: {median / 1000:.2f} s, {parts['rows']} "
            f"rows, {parts['size'] // 1024} KB (report "
            f"{parts['report']:.2f} s, PDF {parts['render']:.2f} s)")
    return results


def worst(results, target, unit, what):
    """The largest value; the missed targets and the failures on stderr.
    Return (value, failed)."""
    values = {k: v for k, v in results.items() if v is not None}
    failed = [k for k, v in results.items() if v is None]
    for key, value in sorted(values.items(), key=lambda i: -i[1]):
        if value > target:
            log(f"TARGET MISSED: {what} {key}: {value:.2f} {unit} "
                f"(target {target} {unit})")
    for key in failed:
        log(f"FAILED: {what} {key}")
    return (max(values.values()) if values else None), failed


def main():
    if not sys.flags.optimize:
        # Measured as production runs (README: PYTHONOPTIMIZE=1): trytond's
        # debugging asserts cost a third of reading 1,000 rows
        os.execv(sys.executable, [sys.executable, '-O', *sys.argv])
    options = benchlib.parse_args(__doc__.splitlines()[0],
        leads=(100_000, 10_000), tickets=(200_000, 20_000),
        calls=(1_000_000, 100_000), parties=(20_000, 2_000))
    started = time.monotonic()
    now = dt.datetime.now().replace(microsecond=0)
    with benchlib.bench_database(keep=options.keep, modules=MODULES) as name:
        pop = populate(name, options, now)
        with benchlib.profiled(options.profile):
            analyses = measure_analyses(name, pop)
            boards = measure_boards(name, pop)
            pdfs = measure_pdf(name, pop)
    log(f"run time {time.monotonic() - started:.0f} s")
    report_ms, failed = worst(
        {m: v[0] if v else None for m, v in analyses.items()},
        REPORT_TARGET_MS, 'ms', 'analysis')
    dashboard_ms, board_failed = worst(
        {f'{b} ({u})': v for (b, u), v in boards.items()},
        DASHBOARD_TARGET_MS, 'ms', 'dashboard')
    failed += board_failed
    figures = [('report_max_ms', report_ms, 'ms'),
        ('dashboard_max_ms', dashboard_ms, 'ms')]
    if pdfs is not None:
        pdf_s, pdf_failed = worst(pdfs, PDF_TARGET_S, 's', 'monthly PDF')
        failed += pdf_failed
        figures.append(('report_pdf_s', pdf_s, 's'))
    benchlib.print_figures([f for f in figures if f[1] is not None])
    if failed:
        sys.exit(1)


if __name__ == '__main__':
    main()
