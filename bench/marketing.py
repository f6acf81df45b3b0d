#!/usr/bin/env python3
"""Marketing at scale (crm_marketing): a segment with four criteria on
200,000 parties, an email campaign of 10,000 emails sent through the queue
by trytond-worker to a local SMTP server, the funnel of a campaign with
50,000 members.
Targets: segment under 1 s, at least 200 emails/s, funnel under 300 ms."""
import datetime as dt
import email
import email.policy
import http.client
import multiprocessing
import os
import random
import re
import statistics
import time
from collections import Counter
from decimal import Decimal
from urllib.parse import urlsplit

import benchlib
from benchlib import batches, check, log, transaction

SEGMENT_TARGET_S = 1.0
SEND_TARGET = 200
FUNNEL_TARGET_MS = 300
SEGMENT_RUNS, SEGMENT_WARMUP = 5, 1
FUNNEL_RUNS, FUNNEL_WARMUP = 20, 2
# trytond-worker processes (its -n; trytond's default: one per CPU; 3 on
# the 2-core VM sent as many) and record activities per queue task (queue
# batch_size, read by whoever pushes the tasks: the cron; trytond's
# default is 20)
WORKERS = int(os.environ.get('CRM_BENCH_WORKERS', os.cpu_count() or 2))
QUEUE_BATCH = int(os.environ.get('CRM_BENCH_QUEUE_BATCH', 100))
SEND_TIMEOUT = 1800
FROM = 'news@marketing.bench.example'

# code, name, weight of the first address
COUNTRIES = [
    ('DE', "Germany", 35), ('AT', "Austria", 10), ('CH', "Switzerland", 10),
    ('FR', "France", 15), ('NL', "Netherlands", 10), ('BE', "Belgium", 5),
    ('IT', "Italy", 10), ('ES', "Spain", 5)]
SECOND_ADDRESS = 0.10
# name, share of the parties in it
CATEGORIES = [
    ("VIP", 0.08), ("Wholesale", 0.20), ("Retail", 0.35), ("Industry", 0.25),
    ("Public Sector", 0.07), ("Partner", 0.05)]
MAILING = "Spring Mailing"
LIFECYCLE = [('prospect', 55), ('customer', 35), ('former', 10)]
OWNED = 0.85
WITH_EMAIL = 0.97
UNDELIVERABLE = 0.01
# Of all the parties' addresses: opted out, suppressed, opted in
OPTED_OUT, SUPPRESSED, OPTED_IN = 0.01, 0.005, 0.05
# The send campaign's segment: a few more than the emails to send; the
# members beyond them opt out after the campaign started (the send must
# skip them)
MAILING_EXTRA = 0.08
ACTIVITY_TYPES = ['call', 'meeting', 'email', 'task']
# The four criteria of the measured segment
SEGMENT_CRITERIA = {
    'lifecycle_statuses': ['customer'],
    'countries': ['DE', 'AT', 'CH'],
    'categories': ['VIP', 'Wholesale'],
    'team': 0,  # the first team of setup_sales
    }
# Member statuses of the funnel campaign (share), the dates each one has
STATUS_MIX = [
    ('targeted', 0.03), ('sent', 0.55), ('opened', 0.22), ('clicked', 0.09),
    ('responded', 0.04), ('converted', 0.01), ('unsubscribed', 0.03),
    ('bounced', 0.03)]
DATES = {
    'targeted': [], 'sent': ['sent'], 'opened': ['sent', 'opened'],
    'clicked': ['sent', 'opened', 'clicked'],
    'responded': ['sent', 'opened', 'clicked', 'responded'],
    'converted': ['sent', 'opened', 'clicked', 'responded', 'converted'],
    'unsubscribed': ['sent', 'opened'], 'bounced': ['sent'],
    }
OLDER_CAMPAIGNS = 2
FUNNEL_FIELDS = [
    'targeted', 'reached', 'opened', 'clicked', 'responded', 'unsubscribed',
    'bounced', 'lead_count', 'opportunity_count', 'won_count',
    'won_revenue', 'cost', 'cost_per_lead', 'roi']
MEMBER_COLUMNS = [
    'campaign', 'party', 'email', 'reached_by', 'variant', 'sample',
    'status', 'sent', 'opened', 'clicked', 'responded', 'converted',
    'create_uid', 'create_date']

SUBJECT = "${record.party.name}, our spring offer is here"
BODY = """\
<html><head><meta charset="utf-8"/><title>Spring offer</title></head>
<body style="font-family: Arial, sans-serif; color: #222;">
<table width="600" align="center" cellpadding="0" cellspacing="0">
<tr><td style="padding: 24px 0;"><h1>Spring is here</h1></td></tr>
<tr><td>
<p>Hello ${record.party.name},</p>
<p>as a customer of many years you get our new collection first: 15 %
off every order placed before the end of the month, free delivery from
the first item, and our team on the phone to plan your next season.</p>
<p>This season brings new materials, a lighter range for the warehouse
and the tools our customers asked for at the last fair. Everything is in
stock and ships within two working days.</p>
<p style="text-align: center; padding: 16px;">
<a href="https://shop.bench.example/spring?utm_campaign=spring"
style="background: #0a6; color: #fff; padding: 12px 24px;">See the
offer</a></p>
<p>Questions? <a href="https://www.bench.example/contact">Write to us</a>
or call +49 30 901820.</p>
<p>Kind regards,<br/>Your Bench team</p>
</td></tr>
<tr><td style="font-size: 11px; color: #888; padding-top: 24px;">
Bench GmbH, Example Street 1, 10115 Berlin.
You receive this email as a customer of Bench.
<a href="unsubscribe">Unsubscribe</a>
</td></tr>
</table>
</body></html>
"""
TRACKED_LINKS = 2  # in BODY, besides the unsubscribe link


def weighted(rnd, choices):
    return rnd.choices([c for c, _ in choices], [w for _, w in choices])[0]


def party_email(party_id):
    return f'contact{party_id}@customer{party_id % 997}.bench.example'


def next_ids(cursor, table, count):
    cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
        "FROM generate_series(1, %s)", (table, count))
    return [i for i, in cursor]


def copy_rows(cursor, table, columns, rows):
    "COPY the rows into the table: the fastest bulk load of PostgreSQL"
    names = ', '.join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


# Population ---------------------------------------------------------------

def setup(name, sales):
    "Countries, party categories and the company's configuration (ORM)"
    from trytond.pool import Pool
    with transaction(name, sales['admin'],
            {'company': sales['company']}) as tx:
        pool = Pool()
        Country = pool.get('country.country')
        Category = pool.get('party.category')
        countries = Country.create([{'code': c, 'name': n}
                for c, n, _ in COUNTRIES])
        categories = Category.create([{'name': n}
                for n in [c for c, _ in CATEGORIES] + [MAILING]])
        result = dict(sales,
            countries={c.code: c.id for c in countries},
            categories={c.name: c.id for c in categories})
        tx.commit()
    return result


def insert_parties(name, mk, count, now, seed=1):
    """count parties (COPY) with lifecycle, owner, quality score, an email
    (most of them), one address with a country (some two) and categories.
    Return their ids and the ids of those with an email."""
    from trytond.transaction import Transaction

    from crm_core.contact import normalise_name
    rnd = random.Random(seed)
    admin = mk['admin']
    owners = list(mk['users'].values())
    countries = [(mk['countries'][c], w) for c, _, w in COUNTRIES]
    with transaction(name) as tx:
        cursor = tx.connection.cursor()
        ids = next_ids(cursor, 'party_party', count)
        parties, mechanisms, addresses, categories = [], [], [], []
        with_email = []
        for i, party_id in enumerate(ids, 1):
            party_name = f'Marketing Customer {i:06d}'
            owner = rnd.choice(owners) if rnd.random() < OWNED else None
            parties.append([party_id, party_name,
                    normalise_name(party_name), f'M{i:06d}', True,
                    weighted(rnd, LIFECYCLE), owner, rnd.randint(20, 100),
                    admin, now])
            if rnd.random() < WITH_EMAIL:
                address = party_email(party_id)
                mechanisms.append([party_id, 'email', address, address, True,
                        rnd.random() < UNDELIVERABLE, admin, now])
                with_email.append(party_id)
            first = weighted(rnd, countries)
            addresses.append([party_id, first, f'City {party_id % 500}',
                    f'{10000 + party_id % 89999}', True, admin, now])
            if rnd.random() < SECOND_ADDRESS:
                addresses.append([party_id, weighted(rnd, countries),
                        f'City {party_id % 300}', '1000', True, admin, now])
            for category, share in CATEGORIES:
                if rnd.random() < share:
                    categories.append([party_id, mk['categories'][category],
                            admin, now])
        copy_rows(cursor, 'party_party', ['id', 'name', 'name_normalised',
                'code', 'active', 'lifecycle_status', 'owner',
                'quality_score', 'create_uid', 'create_date'], parties)
        copy_rows(cursor, 'party_contact_mechanism', ['party', 'type',
                'value', 'value_compact', 'active', 'undeliverable',
                'create_uid', 'create_date'], mechanisms)
        copy_rows(cursor, 'party_address', ['party', 'country', 'city',
                'postal_code', 'active', 'create_uid', 'create_date'],
            addresses)
        copy_rows(cursor, 'party_party-party_category', ['party', 'category',
                'create_uid', 'create_date'], categories)
        Transaction().commit()
    log(f"{count} parties, {len(mechanisms)} emails, {len(addresses)} "
        f"addresses, {len(categories)} category links")
    return ids, with_email


def insert_consents(name, mk, with_email, now, seed=2):
    """Opted-out, suppressed and opted-in addresses among the parties'
    (COPY): every marketing send asks these tables"""
    rnd = random.Random(seed)
    consents, suppressions = [], []
    for party_id in with_email:
        draw = rnd.random()
        address = party_email(party_id)
        when = now - dt.timedelta(days=rnd.randint(1, 700))
        if draw < OPTED_OUT:
            consents.append([party_id, address, 'opted_out', when,
                    rnd.choice(['unsubscribe', 'mailing_list', 'manual']),
                    "Earlier campaign", mk['admin'], now])
        elif draw < OPTED_OUT + SUPPRESSED:
            suppressions.append([address, 'bounce', when, mk['admin'], now])
        elif draw < OPTED_OUT + SUPPRESSED + OPTED_IN:
            consents.append([party_id, address, 'opted_in', when,
                    'form', "Web form", mk['admin'], now])
    with transaction(name) as tx:
        cursor = tx.connection.cursor()
        copy_rows(cursor, 'marketing_consent', ['party', 'email', 'status',
                'date', 'method', 'source', 'create_uid', 'create_date'],
            consents)
        copy_rows(cursor, 'marketing_suppression', ['email', 'reason',
                'date', 'create_uid', 'create_date'], suppressions)
    log(f"{len(consents)} consents, {len(suppressions)} suppressed "
        "addresses")


def insert_mailing(name, mk, with_email, count, seed=3):
    """The category of the send campaign's segment on count parties with an
    email, none of them blocked"""
    from trytond.transaction import Transaction
    rnd = random.Random(seed)
    with transaction(name) as tx:
        cursor = tx.connection.cursor()
        cursor.execute('SELECT lower(email) FROM marketing_consent '
            "WHERE status = 'opted_out' UNION "
            'SELECT lower(email) FROM marketing_suppression')
        blocked = {e for e, in cursor}
        cursor.execute('SELECT party FROM party_contact_mechanism '
            'WHERE undeliverable')
        undeliverable = {p for p, in cursor}
        candidates = [p for p in with_email
            if party_email(p) not in blocked and p not in undeliverable]
        chosen = rnd.sample(candidates, count)
        copy_rows(cursor, 'party_party-party_category', ['party', 'category',
                'create_uid', 'create_date'],
            ([p, mk['categories'][MAILING], mk['admin'], dt.datetime.now()]
                for p in chosen))
        Transaction().commit()
    return chosen


def insert_activities(name, mk, party_ids, count, now, seed=4):
    "count activities over two years on 60 % of the parties, most done"
    rnd = random.Random(seed)
    active = rnd.sample(party_ids, int(len(party_ids) * 0.6))
    owners = list(mk['users'].values())
    rows = []
    for i in range(count):
        start = now - dt.timedelta(minutes=rnd.randint(
                -30 * 24 * 60, 730 * 24 * 60))
        done = start < now and rnd.random() < 0.9
        rows.append([rnd.choice(ACTIVITY_TYPES), f"Contact {i}",
                mk['company'], rnd.choice(active), start,
                start + dt.timedelta(minutes=30), rnd.choice(owners),
                'done' if done else 'planned', start if done else None,
                True, mk['admin'], now])
    with transaction(name) as tx:
        copy_rows(tx.connection.cursor(), 'crm_activity', ['type',
                'subject', 'company', 'party', 'start', 'end', 'user',
                'state', 'date_done', 'reminded', 'create_uid',
                'create_date'], rows)


def insert_leads(name, mk, party_ids, count):
    "count opportunities of the parties (raw SQL, as benchlib's)"
    from trytond.transaction import Transaction
    with transaction(name, mk['admin']):
        vlist = benchlib.lead_values(count, mk, party_ids, seed=5)
        rows = benchlib.lead_rows(vlist, mk['admin'])
        benchlib.insert_leads(Transaction().connection.cursor(), rows)


def create_campaign(name, mk, values):
    "An email campaign with a variant through the ORM; its id"
    from trytond.pool import Pool
    with transaction(name, mk['admin'], {'company': mk['company']}) as tx:
        Campaign = Pool().get('marketing.campaign')
        campaign, = Campaign.create([dict({
                        'type': 'email',
                        'currency': mk['currency'],
                        'owner': mk['admin'],
                        'variants': [('create', [{
                                        'name': 'a', 'subject': SUBJECT,
                                        'body': BODY}])],
                        }, **values)])
        tx.commit()
        return campaign.id


def insert_members(name, mk, campaign, parties, now, seed):
    """Members of a sent campaign (COPY), statuses drawn from STATUS_MIX
    with their dates; return the count of each status"""
    rnd = random.Random(seed)
    rows, counts = [], Counter()
    sent = now - dt.timedelta(days=20)
    for party_id in parties:
        status = weighted(rnd, STATUS_MIX)
        counts[status] += 1
        dates = dict.fromkeys(['sent', 'opened', 'clicked', 'responded',
                'converted'])
        when = sent
        for step in DATES[status]:
            dates[step] = when
            when += dt.timedelta(minutes=rnd.randint(1, 3 * 24 * 60))
        rows.append([campaign, party_id, party_email(party_id), 'email', 'a',
                False, status, *dates.values(), mk['admin'], sent])
    with transaction(name) as tx:
        copy_rows(tx.connection.cursor(), 'marketing_campaign_member',
            MEMBER_COLUMNS, rows)
    return counts


def insert_campaign_leads(name, mk, campaign, parties, won, seed=6):
    """A lead of the campaign for each responding party (raw SQL), the
    converted ones won; half of them opportunities. Return (leads,
    opportunities, won, won revenue)."""
    from sql import Table
    from trytond.transaction import Transaction
    rnd = random.Random(seed)
    lead = Table('crm_lead')
    with transaction(name, mk['admin']):
        stages = benchlib.stages()
        open_stages = [s for s in stages if s[1] == 'open']
        won_stage = [s for s in stages if s[1] == 'won'][0]
        vlist = benchlib.lead_values(len(parties), mk, parties, seed=seed)
        opportunities, revenue = 0, Decimal(0)
        for values, party_id in zip(vlist, parties):
            values['party'] = party_id
            values.pop('lost_reason', None)
            if party_id in won:
                values['stage'] = won_stage[0]
                values['date_closed'] = dt.datetime.now().replace(
                    microsecond=0) - dt.timedelta(days=rnd.randint(0, 15))
                revenue += values['expected_revenue']
            else:
                values['stage'] = rnd.choice(open_stages)[0]
                values.pop('date_closed', None)
                if rnd.random() < 0.5:
                    values['type'] = 'lead'
            opportunities += values['type'] == 'opportunity'
        rows = benchlib.lead_rows(vlist, mk['admin'])
        columns = [getattr(lead, c) for c in benchlib.LEAD_COLUMNS] + [
            lead.marketing_campaign]
        cursor = Transaction().connection.cursor()
        for batch in batches([r + [campaign] for r in rows]):
            cursor.execute(*lead.insert(columns, batch))
    return len(parties), opportunities, len(won), revenue


def populate(name, options, now):
    "Every row the measures read; return the ids they need"
    sales = benchlib.setup_sales(name)
    mk = setup(name, sales)
    party_ids, with_email = insert_parties(name, mk, options.parties, now)
    insert_consents(name, mk, with_email, now)
    mailing = insert_mailing(name, mk, with_email,
        round(options.emails * (1 + MAILING_EXTRA)))
    insert_activities(name, mk, party_ids, options.activities, now)
    insert_leads(name, mk, party_ids, options.leads)
    log(f"{options.activities} activities, {options.leads} opportunities")

    # The funnel's campaign and older ones, their members in SQL
    rnd = random.Random(8)
    in_mailing = set(mailing)
    pool_ = [p for p in with_email if p not in in_mailing]
    funnel = {}
    for i in range(OLDER_CAMPAIGNS + 1):
        measured = i == OLDER_CAMPAIGNS
        campaign = create_campaign(name, mk, {
                'name': "Winter sale" if measured else f"Campaign {i + 1}",
                'status': 'done',
                'start_date': (now - dt.timedelta(days=20 + 60 * i)).date(),
                'end_date': (now - dt.timedelta(days=60 * i)).date(),
                'budget': Decimal(20000),
                'costs': [('create', [
                            {'description': "Design",
                                'amount': Decimal(2500)},
                            {'description': "Sending",
                                'amount': Decimal(800)},
                            {'description': "Ads", 'amount': Decimal(4200)},
                            ])],
                })
        parties = rnd.sample(pool_, options.members)
        counts = insert_members(name, mk, campaign, parties, now, seed=10 + i)
        if measured:
            responding = members_of(name, campaign, 'responded',
                'converted')
            won = set(members_of(name, campaign, 'converted'))
            leads = insert_campaign_leads(name, mk, campaign, responding,
                won)
            funnel = {'campaign': campaign, 'counts': counts,
                'leads': leads}
    log(f"{OLDER_CAMPAIGNS + 1} sent campaigns of {options.members} members "
        f"each; the measured one: {dict(funnel['counts'])}, "
        f"{funnel['leads'][0]} leads of it")
    benchlib.vacuum(name)
    return mk, mailing, funnel


def members_of(name, campaign, *statuses):
    "The parties of the campaign's members in these statuses"
    with transaction(name, readonly=True) as tx:
        cursor = tx.connection.cursor()
        cursor.execute('SELECT party FROM marketing_campaign_member '
            'WHERE campaign = %s AND status = ANY(%s) ORDER BY id',
            (campaign, list(statuses)))
        return [p for p, in cursor]


# Segment ------------------------------------------------------------------

def create_segments(name, mk):
    """The measured segment (four criteria) and, to compare, the same with
    two more (no done activity for 180 days, no open opportunity)"""
    from trytond.pool import Pool
    criteria = {
        'lifecycle_statuses': SEGMENT_CRITERIA['lifecycle_statuses'],
        'countries': [('add', [mk['countries'][c]
                        for c in SEGMENT_CRITERIA['countries']])],
        'categories': [('add', [mk['categories'][c]
                        for c in SEGMENT_CRITERIA['categories']])],
        'teams': [('add', [mk['teams'][SEGMENT_CRITERIA['team']]])],
        }
    with transaction(name, mk['admin'], {'company': mk['company']}) as tx:
        Segment = Pool().get('crm.segment')
        four, six = Segment.create([
                dict(criteria, name="DACH VIP and wholesale customers",
                    company=mk['company']),
                dict(criteria, name="... inactive, no open deal",
                    company=mk['company'], inactive_days=180,
                    open_opportunities='without'),
                ])
        tx.commit()
        return four.id, six.id


def expected_segment(name, mk):
    "The members of the four criteria, counted in plain SQL"
    with transaction(name, readonly=True) as tx:
        cursor = tx.connection.cursor()
        cursor.execute('SELECT COUNT(*) FROM party_party p '
            'WHERE p.active AND p.lifecycle_status = ANY(%s) '
            'AND EXISTS (SELECT 1 FROM party_address a WHERE a.party = p.id '
            ' AND a.active AND a.country = ANY(%s)) '
            'AND EXISTS (SELECT 1 FROM "party_party-party_category" c '
            ' WHERE c.party = p.id AND c.category = ANY(%s)) '
            'AND p.owner IN (SELECT "user" FROM "crm_team-res_user" '
            ' WHERE team = %s)', (
                SEGMENT_CRITERIA['lifecycle_statuses'],
                [mk['countries'][c] for c in SEGMENT_CRITERIA['countries']],
                [mk['categories'][c]
                    for c in SEGMENT_CRITERIA['categories']],
                mk['teams'][SEGMENT_CRITERIA['team']]))
        return cursor.fetchone()[0]


def timed_in_transaction(name, mk, function, readonly=True, context=None):
    """Seconds function(pool) takes in a transaction of its own (as an RPC
    would run it); the transaction's start and end are not timed. Return
    (result, seconds)."""
    from trytond.pool import Pool
    with transaction(name, mk['admin'],
            dict(context or {}, company=mk['company']),
            readonly=readonly) as tx:
        start = time.perf_counter()
        result = function(Pool())
        seconds = time.perf_counter() - start
        if not readonly:
            tx.commit()
    return result, seconds


def explain_segment(name, mk, segment_id):
    "EXPLAIN ANALYZE of the count that Segment.evaluate runs"
    from sql import Literal
    from sql.aggregate import Count
    from trytond.pool import Pool
    with transaction(name, mk['admin'], {'company': mk['company']},
            readonly=True) as tx:
        segment = Pool().get('crm.segment')(segment_id)
        query = segment.parties_query()
        sql, params = tuple(query.select(Count(Literal('*'))))
        # EXPLAIN needs the values in the text (no parameter types)
        from psycopg import ClientCursor
        cursor = tx.connection.cursor()
        cursor.execute('EXPLAIN ANALYZE '
            + ClientCursor(tx.connection).mogrify(sql, params))
        return '\n'.join(r for r, in cursor)


def measure_segment(name, mk, options):
    """Segment.evaluate (the count of its criteria query) and
    Segment.refresh (its members replaced by that query) of the segment
    with four criteria; each in its own transaction"""
    segment_id, six_id = create_segments(name, mk)
    expected = expected_segment(name, mk)

    def evaluate(segment_id):
        def call(pool):
            return pool.get('crm.segment')(segment_id).evaluate()
        return call

    def refresh(pool):
        Segment = pool.get('crm.segment')
        Segment.refresh([Segment(segment_id)])
        return Segment(segment_id).member_count

    runs = []
    with benchlib.profiled(options.profile and options.profile + '.segment'):
        for i in range(SEGMENT_WARMUP + SEGMENT_RUNS):
            count, seconds = timed_in_transaction(
                name, mk, evaluate(segment_id))
            if i >= SEGMENT_WARMUP:
                runs.append(seconds)
    evaluate_s = statistics.median(runs)
    log(f"segment with four criteria: {count} parties (plain SQL: "
        f"{expected}); evaluate() runs (s): "
        + ' '.join(f'{r:.3f}' for r in runs))
    check(count == expected, (count, expected))
    refreshes = []
    for _ in range(3):
        members, seconds = timed_in_transaction(
            name, mk, refresh, readonly=False)
        refreshes.append(seconds)
    check(members == count, (members, count))
    log("refresh() (members replaced, count written) runs (s): "
        + ' '.join(f'{r:.3f}' for r in refreshes))
    six = []
    for i in range(SEGMENT_WARMUP + SEGMENT_RUNS):
        six_count, seconds = timed_in_transaction(name, mk, evaluate(six_id))
        if i >= SEGMENT_WARMUP:
            six.append(seconds)
    log(f"the same + no done activity for 180 days + no open "
        f"opportunity: {six_count} parties, evaluate() median "
        f"{statistics.median(six):.3f} s")
    log("EXPLAIN ANALYZE of evaluate() (four criteria):\n"
        + explain_segment(name, mk, segment_id))
    return evaluate_s, statistics.median(refreshes)


# Funnel -------------------------------------------------------------------

def measure_funnel(name, mk, funnel, options):
    "Campaign.get_funnel of every funnel field, median of FUNNEL_RUNS"
    campaign_id = funnel['campaign']

    def call(pool):
        Campaign = pool.get('marketing.campaign')
        return Campaign.get_funnel([Campaign(campaign_id)], FUNNEL_FIELDS)

    durations = []
    with benchlib.profiled(options.profile and options.profile + '.funnel'):
        for i in range(FUNNEL_WARMUP + FUNNEL_RUNS):
            result, seconds = timed_in_transaction(name, mk, call)
            if i >= FUNNEL_WARMUP:
                durations.append(seconds * 1000)
    values = {n: v[campaign_id] for n, v in result.items()}
    log(f"funnel of {funnel['counts'].total()} members: {values}")
    log("runs (ms): " + ' '.join(f'{d:.1f}' for d in durations))
    counts = funnel['counts']
    leads, opportunities, won, revenue = funnel['leads']
    expected = {
        'targeted': counts.total(),
        'reached': counts.total() - counts['targeted'],
        'opened': sum(counts[s] for s in counts if 'opened' in DATES[s]),
        'clicked': sum(counts[s] for s in counts if 'clicked' in DATES[s]),
        'responded': counts['responded'] + counts['converted'],
        'unsubscribed': counts['unsubscribed'],
        'bounced': counts['bounced'],
        'lead_count': leads, 'opportunity_count': opportunities,
        'won_count': won, 'won_revenue': revenue,
        'cost': Decimal(7500),
        }
    wrong = {k: (values[k], v) for k, v in expected.items()
        if values[k] != v}
    check(not wrong, wrong)

    # What the client's form reads: the fields through read(), with the
    # access rights and rules of an RPC call
    def read(pool):
        return pool.get('marketing.campaign').read(
            [campaign_id], FUNNEL_FIELDS)
    _, seconds = timed_in_transaction(name, mk, read,
        context={'_check_access': True})
    log(f"Campaign.read of the funnel fields: {seconds * 1000:.1f} ms")
    return statistics.median(durations)


# Sending ------------------------------------------------------------------

def smtp_sink(port, count, connection):
    """A local SMTP server (aiosmtpd) in a process of its own: counts what
    arrives, keeps the recipients and the last messages; answers the
    bench's 'recipients' and 'samples' until 'stop'"""
    from collections import deque

    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.recipients = []
            self.samples = deque(maxlen=20)

        async def handle_DATA(self, server, session, envelope):
            self.recipients.extend(envelope.rcpt_tos)
            self.samples.append(envelope.original_content)
            with count.get_lock():
                count.value += 1
            return '250 OK'

    handler = Handler()
    controller = Controller(handler, hostname='127.0.0.1', port=port)
    controller.start()
    connection.send('ready')
    while True:
        command = connection.recv()
        if command == 'recipients':
            connection.send(list(handler.recipients))
        elif command == 'samples':
            connection.send(list(handler.samples))
        else:
            break
    controller.stop()


class SMTPSink:
    "The SMTP server process, seen from the bench"

    def __init__(self):
        context = multiprocessing.get_context('spawn')
        self.port = benchlib.free_port()
        self._count = context.Value('i', 0)
        self._connection, child = context.Pipe()
        self.process = context.Process(target=smtp_sink,
            args=(self.port, self._count, child), daemon=True)

    @property
    def uri(self):
        return f'smtp://127.0.0.1:{self.port}'

    @property
    def count(self):
        return self._count.value

    def ask(self, command):
        self._connection.send(command)
        if not self._connection.poll(60):
            raise RuntimeError(f"the SMTP server did not answer {command}")
        return self._connection.recv()

    def __enter__(self):
        self.process.start()
        if not self._connection.poll(30):
            raise RuntimeError("the SMTP server did not start")
        self._connection.recv()
        log(f"SMTP server (aiosmtpd) pid {self.process.pid} on port "
            f"{self.port}")
        return self

    def __exit__(self, *exc):
        if self.process.is_alive():
            self._connection.send('stop')
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


def run_campaign(name, mk, values, segment_values):
    """A segment and an email campaign on it, started (Campaign.run adds
    the members in SQL and starts the scenario that makes a record
    activity per member); return (campaign id, members, seconds of run)"""
    from trytond.pool import Pool
    with transaction(name, mk['admin'], {'company': mk['company']}) as tx:
        Segment = Pool().get('crm.segment')
        segment, = Segment.create([dict(segment_values,
                    company=mk['company'])])
        tx.commit()
    campaign_id = create_campaign(name, mk, dict(values, segment=segment.id))

    def run(pool):
        Campaign = pool.get('marketing.campaign')
        Campaign.run([Campaign(campaign_id)])
        return Campaign(campaign_id).targeted
    members, seconds = timed_in_transaction(name, mk, run, readonly=False)
    return campaign_id, members, seconds


def opt_out_members(name, mk, campaign_id, keep):
    """The members beyond keep opt out (by hand) after the campaign
    started: the send must skip them. Return their addresses."""
    from trytond.pool import Pool
    with transaction(name, mk['admin'], {'company': mk['company']}) as tx:
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Consent = pool.get('marketing.consent')
        members = Member.search([('campaign', '=', campaign_id)],
            order=[('id', 'ASC')])
        leaving = members[keep:]
        Consent.record([m.email for m in leaving], 'opted_out', 'manual',
            source="Bench", parties={m.email: m.party for m in leaving})
        tx.commit()
        return {m.email for m in leaving}


def push_due(name, mk):
    "What the cron process does: the due record activities to the queue"
    from trytond.pool import Pool
    with transaction(name) as tx:
        Pool().get('marketing.automation.record.activity').process()
        tx.commit()


def queue_counts(name):
    with transaction(name, readonly=True) as tx:
        cursor = tx.connection.cursor()
        cursor.execute('SELECT COUNT(*), COUNT(finished_at), '
            'COUNT(dequeued_at) FROM ir_queue')
        return cursor.fetchone()


def wait_for(smtp, total, timeout=SEND_TIMEOUT, worker=None):
    "Until the SMTP server has received total messages; when (monotonic)"
    deadline = time.monotonic() + timeout
    while smtp.count < total:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{smtp.count} of {total} messages after {timeout} s")
        if worker is not None and worker.poll() is not None:
            raise RuntimeError("trytond-worker exited: "
                + benchlib.server_log(worker))
        time.sleep(0.01)
    return time.monotonic()


def uptime():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def worker_summary(lines):
    "Tasks done and their durations from trytond-worker's log"
    durations = [int(m.group(1)) for l in lines
        for m in [re.search(r'<Task \d+@\S+> in (\d+) ms', l)] if m]
    failed = sum('failed after' in l for l in lines)
    if durations:
        durations.sort()
        log(f"trytond-worker: {len(durations)} tasks, median "
            f"{durations[len(durations) // 2]} ms, max {durations[-1]} ms; "
            f"{failed} failed")
    else:
        log(f"trytond-worker: no task logged; {failed} failed")
    return failed


def check_sent(name, campaign_id, recipients, expected, leaving):
    """What the send left: members marked sent (and the opted out not),
    an ir.email per email, tracked links, record activities done"""
    with transaction(name, readonly=True) as tx:
        cursor = tx.connection.cursor()
        cursor.execute('SELECT status, COUNT(*), COUNT(sent) '
            'FROM marketing_campaign_member WHERE campaign = %s '
            'GROUP BY status', (campaign_id,))
        statuses = {s: (n, sent) for s, n, sent in cursor}
        cursor.execute('SELECT lower(email) FROM marketing_campaign_member '
            'WHERE campaign = %s AND sent IS NOT NULL', (campaign_id,))
        marked = {e for e, in cursor}
        cursor.execute('SELECT scenario FROM marketing_campaign '
            'WHERE id = %s', (campaign_id,))
        scenario, = cursor.fetchone()
        cursor.execute('SELECT ra.state, COUNT(*) '
            'FROM marketing_automation_record_activity ra '
            'JOIN marketing_automation_record r ON r.id = ra.record '
            'WHERE r.scenario = %s GROUP BY ra.state', (scenario,))
        activities = dict(cursor.fetchall())
        cursor.execute('SELECT COUNT(*) FROM ir_email e '
            'JOIN marketing_automation_record r '
            'ON r.id = e.marketing_automation_record '
            'WHERE r.scenario = %s', (scenario,))
        emails, = cursor.fetchone()
        cursor.execute('SELECT COUNT(*) FROM web_shortened_url u '
            'JOIN marketing_automation_record_activity ra '
            "ON u.record = 'marketing.automation.record.activity,' || ra.id "
            'JOIN marketing_automation_record r ON r.id = ra.record '
            'WHERE r.scenario = %s', (scenario,))
        links, = cursor.fetchone()
    log(f"members by status (count, with sent date): {statuses}; record "
        f"activities {activities}; {emails} ir.email; {links} tracked links")
    received = Counter(r.lower() for r in recipients)
    check(len(recipients) == expected, (len(recipients), expected))
    check(max(received.values()) == 1, received.most_common(3))
    check(not set(received) & {a.lower() for a in leaving})
    check(marked == set(received), (len(marked), len(received)))
    check(statuses['sent'] == (expected, expected), statuses)
    check(activities == {'done': expected + len(leaving)}, activities)
    check(emails == expected, emails)
    # A shortened URL per tracked link and one for the opening image
    check(links == expected * (TRACKED_LINKS + 1), links)


def links_of(message):
    "The tracked links and the unsubscribe link of a message we sent"
    msg = email.message_from_bytes(message, policy=email.policy.default)
    html = msg.get_body(('html',)).get_content()
    hrefs = re.findall(r'href="([^"]+)"', html)
    images = re.findall(r'<img src="([^"]+)"', html)
    return msg, hrefs, images


def get(port, url):
    "GET the path of url on the local server: (status, location)"
    parts = urlsplit(url.replace('&amp;', '&'))
    path = parts.path + ('?' + parts.query if parts.query else '')
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        connection.request('GET', path)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader('Location')
    finally:
        connection.close()


def check_links(name, mk, campaign_id, samples, env):
    """The links of sent messages work through a trytond server: a click
    redirects and marks the member clicked (through the queue), the
    unsubscribe link opts the address out"""
    servers = benchlib.start_servers(name, 1, env=env)
    port = servers[0][1]
    try:
        clicked, unsubscribed = [], []
        for i, message in enumerate(samples[:4]):
            msg, hrefs, images = links_of(message)
            address = msg['To'].addresses[0].addr_spec.lower()
            tracked = [h for h in hrefs if '/s/' in h]
            unsubscribe = [h for h in hrefs if '/unsubscribe?' in h]
            check(len(tracked) == TRACKED_LINKS, hrefs)
            check(len(unsubscribe) == 1 and len(images) == 1, (hrefs, images))
            check(msg['Subject'].endswith("our spring offer is here"))
            status, location = get(port, images[0])
            check(status == 301 and urlsplit(location).path.endswith(
                '/m/empty.gif'), (status, location))
            if i < 3:
                status, location = get(port, tracked[0])
                check(status == 301 and location.startswith(
                    'https://shop.bench.example/spring'), (status, location))
                clicked.append(address)
            else:
                status, _ = get(port, unsubscribe[0])
                check(status == 200, status)
                unsubscribed.append(address)
        deadline = time.monotonic() + 60
        while True:
            with transaction(name, readonly=True) as tx:
                cursor = tx.connection.cursor()
                cursor.execute('SELECT lower(email), status '
                    'FROM marketing_campaign_member WHERE campaign = %s '
                    'AND lower(email) = ANY(%s)',
                    (campaign_id, clicked + unsubscribed))
                statuses = dict(cursor.fetchall())
                cursor.execute('SELECT lower(email) FROM marketing_consent '
                    "WHERE status = 'opted_out' AND lower(email) = ANY(%s)",
                    (unsubscribed,))
                opted_out = {e for e, in cursor}
            if (all(statuses.get(a) == 'clicked' for a in clicked)
                    and all(statuses.get(a) == 'unsubscribed'
                        for a in unsubscribed)
                    and opted_out == set(unsubscribed)):
                break
            if time.monotonic() > deadline:
                raise AssertionError((statuses, opted_out))
            time.sleep(0.2)
        log(f"links: {len(clicked)} clicks redirected and marked clicked "
            f"(through the queue), {len(unsubscribed)} unsubscribe opted "
            "out, opening images redirected")
    finally:
        benchlib.stop_servers(servers)


def measure_send(name, mk, options, smtp):
    """A warm-up campaign, then the measured one: from the cron's push of
    the due record activities until the SMTP server has every email"""
    import trytond.config as config
    config.set('queue', 'batch_size', str(QUEUE_BATCH))
    env = {
        'TRYTOND_EMAIL__URI': smtp.uri,
        'TRYTOND_EMAIL__FROM': FROM,
        'TRYTOND_QUEUE__WORKER': 'True',
        'TRYTOND_QUEUE__BATCH_SIZE': str(QUEUE_BATCH),
        'TRYTOND_LOGGING_LEVEL': '30',
        }
    # Warm-up: a static list of parties reached before, outside the mailing
    with transaction(name, readonly=True) as tx:
        cursor = tx.connection.cursor()
        cursor.execute('SELECT DISTINCT party FROM marketing_campaign_member '
            "WHERE status = 'sent' ORDER BY party LIMIT %s",
            (options.warmup,))
        warm_parties = [p for p, in cursor]
    _, warm_members, _ = run_campaign(name, mk,
        {'name': "Warm-up"}, {'name': "Warm-up list", 'kind': 'static',
            'members': [('create', [{'party': p} for p in warm_parties])]})
    (worker, _), = benchlib.start_worker_processes(
        name, WORKERS, env={**env, 'TRYTOND_LOGGING_LEVEL': '20'})
    try:
        push_due(name, mk)
        wait_for(smtp, warm_members, timeout=300, worker=worker)
        log(f"warm-up: {warm_members} emails received")

        campaign_id, members, run_s = run_campaign(name, mk,
            {'name': "Spring offer"}, {'name': "Spring mailing",
                'categories': [('add', [mk['categories'][MAILING]])]})
        log(f"Campaign.run: {members} members and their record activities "
            f"in {run_s:.1f} s (not in the rate)")
        check(members > options.emails, (members, options.emails))
        leaving = opt_out_members(name, mk, campaign_id, options.emails)
        log(f"{len(leaving)} members opted out after the start")
        total = warm_members + options.emails
        log(f"load before the send: {uptime()}")
        cpu = {'trytond-worker': worker.pid,
            'smtp server': smtp.process.pid}
        before = benchlib.cpu_snapshot(name, cpu, 'bench (cron)')
        started = time.monotonic()
        with benchlib.profiled(options.profile
                and options.profile + '.cron'):
            push_due(name, mk)
        pushed = time.monotonic()
        tasks = queue_counts(name)
        log(f"cron pushed the due activities in {pushed - started:.2f} s "
            f"(queue: {tasks[0]} tasks in all, batch {QUEUE_BATCH}); "
            f"{WORKERS} worker processes")
        done = wait_for(smtp, total, worker=worker)
        seconds = done - started
        after = benchlib.cpu_snapshot(name, cpu, 'bench (cron)')
        log(f"load after the send: {uptime()}")
        rate = options.emails / seconds
        log(f"{options.emails} emails received in {seconds:.1f} s: "
            f"{rate:.1f} emails/s")
        benchlib.log_cpu(before, after, options.emails, seconds,
            unit='email')
        # Mail leaves after the commit of its task: the queue is done
        deadline = time.monotonic() + 30
        while True:
            count, finished, _ = queue_counts(name)
            if count == finished or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        log(f"queue: {count} tasks, {finished} finished")
        time.sleep(1)
        recipients = smtp.ask('recipients')
        check(len(recipients) == total,
            f"{len(recipients) - total} unexpected messages: "
            f"{Counter(recipients[total:]).most_common(5)}")
        check_sent(name, campaign_id, recipients[warm_members:],
            options.emails, leaving)
        check_links(name, mk, campaign_id, smtp.ask('samples'), env)
    finally:
        lines = benchlib.stop_servers([(worker, None)])[0]
        worker_summary(lines)
    return rate


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        parties=(200_000, 20_000), emails=(10_000, 2_000),
        members=(50_000, 5_000), leads=(100_000, 10_000),
        activities=(150_000, 15_000), warmup=(100, 40))
    started = time.monotonic()
    log(f"load at the start: {uptime()}")
    smtp = SMTPSink()
    # The bench process plays the cron: it pushes the queue's tasks (their
    # size is its batch_size); set before trytond reads its configuration
    os.environ['TRYTOND_QUEUE__WORKER'] = 'True'
    os.environ['TRYTOND_QUEUE__BATCH_SIZE'] = str(QUEUE_BATCH)
    os.environ['TRYTOND_EMAIL__FROM'] = FROM
    os.environ['TRYTOND_EMAIL__URI'] = smtp.uri
    with smtp, benchlib.bench_database(
            keep=options.keep, modules=('crm_marketing',)) as name:
        now = dt.datetime.now().replace(microsecond=0)
        mk, _, funnel = populate(name, options, now)
        log(f"population done after {time.monotonic() - started:.0f} s")
        segment_s, _ = measure_segment(name, mk, options)
        funnel_ms = measure_funnel(name, mk, funnel, options)
        rate = measure_send(name, mk, options, smtp)
    log(f"load at the end: {uptime()}; run time "
        f"{time.monotonic() - started:.0f} s")
    if segment_s > SEGMENT_TARGET_S:
        log(f"segment above the target of {SEGMENT_TARGET_S} s")
    if rate < SEND_TARGET:
        log(f"send below the target of {SEND_TARGET} emails/s")
    if funnel_ms > FUNNEL_TARGET_MS:
        log(f"funnel above the target of {FUNNEL_TARGET_MS} ms")
    benchlib.print_figures([
            ('segment_eval_s', segment_s, 's'),
            ('campaign_send_per_s', rate, 'emails/s'),
            ('campaign_funnel_ms', funnel_ms, 'ms'),
            ])


if __name__ == '__main__':
    main()
