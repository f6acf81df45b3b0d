#!/usr/bin/env python3
"""Call center at scale (crm_callcenter) on 1,000,000 calls: CTI events
posted one per request to POST /<db>/callcenter/events over loopback
(trytond in gunicorn, one trytond-worker making the calls), the routing
decision of POST /<db>/callcenter/route, and the wallboard's queries.
Targets: at least 500 events/s with none lost, routing under 20 ms,
wallboard under 100 ms. Then, where SIPp and Kamailio are installed, the
calls per second that real SIP calls sustain through the whole chain."""
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from urllib.parse import quote

import benchlib
import sipp
from benchlib import check, log, transaction

EVENTS_TARGET = 500
ROUTING_TARGET_MS = 20
WALLBOARD_TARGET_MS = 100
# How trytond serves: 'gunicorn' (3 processes of 3 threads, as README.md
# recommends for production) or 'trytond' (its own threaded server, 2
# processes)
SERVER = os.environ.get('CRM_BENCH_SERVER', 'gunicorn')
GUNICORN_WORKERS, GUNICORN_THREADS = 3, 3
TRYTOND_SERVERS = 2
# PBX connections (each keep-alive), spread over the servers
CLIENTS = int(os.environ.get('CRM_BENCH_CLIENTS', 12))
# Calls in progress per connection: their events interleave
CALLS_PER_CLIENT = 10
# Events per request of the batched run (a connector that buffers)
BATCH_SIZE = int(os.environ.get('CRM_BENCH_BATCH', 20))
EVENTS_WARMUP_S = 5
ROUTES = 200
RUNS, WARMUP = 20, 2
DAYS = 30
AGENT_GROUP = ('crm_callcenter', 'group_callcenter_agent')
SUPERVISOR_GROUP = ('crm_callcenter', 'group_callcenter_supervisor')
QUEUES = [
    # name, number, strategy, agents, share of the calls
    ("Hotline", '5000', 'longest_idle', 10, 0.40),
    ("Sales", '5001', 'round_robin', 10, 0.30),
    ("Support DE", '5002', 'skills', 10, 0.20),
    ("Billing", '5003', 'sticky', 10, 0.10),
    ]
# Share of the historical calls per final state
HISTORY_STATES = [('ended', 0.82), ('abandoned', 0.10), ('missed', 0.05),
    ('voicemail', 0.03)]
# Share of the posted calls per outcome
OUTCOMES = [('answered', 0.80), ('abandoned', 0.12), ('no_answer', 0.05),
    ('voicemail', 0.03)]
KNOWN_CALLERS = 0.75
OUTBOUND = 0.08
# The columns of callcenter_call the raw rows fill, as the ORM does from
# the events
CALL_COLUMNS = [
    'call_id', 'company', 'direction', 'from_number', 'to_number', 'party',
    'agent', 'user', 'queue', 'state', 'created', 'answered', 'ended',
    'wait_seconds', 'talk_seconds', 'wrapped_up', 'create_uid',
    'create_date', 'write_uid', 'write_date']
# Filled by the ORM for new calls, left empty by the raw rows on purpose:
# the history entry (crm.activity) and the callback of each call are not
# populated (neither is read by what is measured)
LEFT_EMPTY = {'activity', 'callback'}


def party_phone(party_id):
    "The E.164 phone of a raw party (a Berlin number)"
    return f'+4930{20_000_000 + party_id:08d}'


def unknown_phone(rnd):
    "A caller nobody knows: a German mobile number"
    return f'+49151{rnd.randrange(10 ** 8):08d}'


def weighted(rnd, choices):
    return rnd.choices([c for c, _ in choices], [w for _, w in choices])[0]


# Population --------------------------------------------------------------

def setup(name, sales):
    """Agents (users with the agent group and an extension), four queues of
    ten agents with a strategy each, a supervisor, the telephony's user
    and its key (ORM). Return a dict of what the rest needs."""
    from trytond.pool import Pool
    ref = benchlib.ref
    company = sales['company']
    with transaction(name, sales['admin'], {'company': company}) as tx:
        pool = Pool()
        User = pool.get('res.user')
        Agent = pool.get('callcenter.agent')
        Queue = pool.get('callcenter.queue')
        Skill = pool.get('callcenter.skill')
        Application = pool.get('res.user.application')
        count = sum(q[3] for q in QUEUES)
        users = User.create([{
                    'login': f'cc_agent{i:02d}', 'name': f"Agent {i:02d}",
                    'company': company, 'companies': [('add', [company])],
                    'groups': [('add', [ref(*AGENT_GROUP),
                                ref('crm_core', 'group_crm_user')])],
                    } for i in range(1, count + 1)])
        supervisor, pbx = User.create([{
                    'login': 'cc_supervisor', 'name': "Supervisor",
                    'company': company, 'companies': [('add', [company])],
                    'groups': [('add', [ref(*SUPERVISOR_GROUP)])],
                    }, {
                    'login': 'cc_pbx', 'name': "Telephony",
                    'company': company, 'companies': [('add', [company])],
                    }])
        german, = Skill.create([{'name': "German"}])
        agents = Agent.create([{
                    'user': u.id, 'company': company,
                    'extension': str(1000 + i),
                    } for i, u in enumerate(users, 1)])
        queues, members, start = [], {}, 0
        for i, (queue_name, number, strategy, size, _) in enumerate(QUEUES):
            mine = agents[start:start + size]
            start += size
            values = {
                'name': queue_name, 'number': number, 'company': company,
                'strategy': strategy,
                'members': [('add', [a.id for a in mine])],
                'team': sales['teams'][i % len(sales['teams'])],
                }
            if strategy == 'skills':
                values['skills'] = [('add', [german.id])]
                for j, agent in enumerate(mine):
                    Agent.write([agent], {'skills': [('create', [{
                                        'skill': german.id,
                                        'level': 1 + j % 5}])]})
            queue, = Queue.create([values])
            queues.append(queue)
            members[queue.id] = mine
        # The hotline overflows to sales after a minute
        Queue.write([queues[0]], {'overflow': 'queue',
                'overflow_queue': queues[1].id, 'overflow_seconds': 60})
        Agent.go_available(agents)
        application, = Application.create([{
                    'user': pbx.id, 'application': 'crm_callcenter'}])
        result = {
            'company': company, 'admin': sales['admin'],
            'supervisor': supervisor.id, 'pbx': pbx.id,
            'application': application.id, 'key': application.key,
            'queues': [{
                    'id': q.id, 'number': q.number, 'strategy': q.strategy,
                    'share': share,
                    'agents': [(a.id, a.user.id, a.extension)
                        for a in members[q.id]],
                    } for q, (*_, share) in zip(queues, QUEUES)],
            }
        tx.commit()
    return result


def insert_phones(name, party_ids, admin):
    """One phone per party (raw SQL): the number formatted as the party
    module shows it, value_compact in E.164 as crm_core looks it up"""
    import phonenumbers
    from sql import Table
    from trytond.transaction import Transaction
    from crm_core.contact import e164
    mechanism = Table('party_contact_mechanism')
    now = dt.datetime.now()
    check(all(e164(party_phone(p)) == party_phone(p)
        for p in party_ids[:10] + party_ids[-10:]))
    rows = []
    for party_id in party_ids:
        phone = party_phone(party_id)
        shown = phonenumbers.format_number(phonenumbers.parse(phone),
            phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        rows.append([party_id, 'phone', shown, phone, True, admin, now])
    with transaction(name):
        cursor = Transaction().connection.cursor()
        for batch in benchlib.batches(rows, 1000):
            cursor.execute(*mechanism.insert(
                    [mechanism.party, mechanism.type, mechanism.value,
                        mechanism.value_compact, mechanism.active,
                        mechanism.create_uid, mechanism.create_date],
                    batch))


def owners(name, cc, party_ids):
    """A tenth of the parties is owned by an agent of the sticky queue
    (raw SQL): its calls go to their owner first"""
    from trytond.transaction import Transaction
    sticky = [q for q in cc['queues'] if q['strategy'] == 'sticky'][0]
    users = [u for _, u, _ in sticky['agents']]
    rnd = random.Random(11)
    owned = party_ids[::10]
    with transaction(name):
        cursor = Transaction().connection.cursor()
        cursor.execute('UPDATE party_party SET owner = o.owner '
            'FROM unnest(%s::int[], %s::int[]) AS o(party, owner) '
            'WHERE party_party.id = o.party',
            (owned, [rnd.choice(users) for _ in owned]))


def day_profile():
    "Weights of the 24 hours of a day: calls come in business hours"
    weights = []
    for hour in range(24):
        if 8 <= hour < 18:
            weights.append(10 if hour not in {12, 13} else 7)
        elif hour in {7, 18, 19}:
            weights.append(3)
        else:
            weights.append(0.3)
    return weights


class CallFactory:
    """Historical calls over the last DAYS days: today holds a full day's
    volume (the busiest moment of the wallboard, whatever the hour of the
    run), the other days follow the day profile"""

    def __init__(self, cc, party_ids, now, seed=17):
        self.cc, self.party_ids, self.now = cc, party_ids, now
        self.rnd = random.Random(seed)
        self.midnight = dt.datetime.combine(now.date(), dt.time())
        self.hours = day_profile()
        self.queues = cc['queues']
        self.shares = [q['share'] for q in self.queues]
        self.agents = [a for q in self.queues for a in q['agents']]

    def created(self, today):
        rnd = self.rnd
        if today:
            # Until 15 minutes ago; the live calls come after
            span = max((self.now - self.midnight).total_seconds() - 900, 60)
            return self.midnight + dt.timedelta(
                seconds=rnd.uniform(0, span))
        day = self.midnight - dt.timedelta(days=rnd.randint(1, DAYS - 1))
        hour = rnd.choices(range(24), self.hours)[0]
        return day + dt.timedelta(hours=hour, seconds=rnd.uniform(0, 3600))

    def caller(self):
        rnd = self.rnd
        if rnd.random() < KNOWN_CALLERS:
            party = rnd.choice(self.party_ids)
            return party_phone(party), party
        return unknown_phone(rnd), None

    def row(self, i, today):
        "A call over, as the ORM stores it after its events"
        rnd = self.rnd
        created = self.created(today).replace(microsecond=0)
        number, party = self.caller()
        if rnd.random() < OUTBOUND:
            agent, user, extension = rnd.choice(self.agents)
            direction, queue = 'outbound', None
            from_number, to_number = extension, number
            state = 'ended' if rnd.random() < 0.7 else 'missed'
        else:
            queue = rnd.choices(self.queues, self.shares)[0]
            agent, user, extension = rnd.choice(queue['agents'])
            direction = 'inbound'
            from_number, to_number = number, queue['number']
            state = weighted(rnd, HISTORY_STATES)
        answered = ended = talk = None
        if state == 'ended':
            wait = min(int(rnd.expovariate(1 / 14)), 300)
            talk = 20 + int(rnd.expovariate(1 / 220))
            answered = created + dt.timedelta(seconds=wait)
            ended = answered + dt.timedelta(seconds=talk)
        else:
            wait = 5 + int(rnd.expovariate(1 / 35))
            ended = created + dt.timedelta(seconds=wait)
            if state == 'abandoned':
                # The caller hung up while waiting in the queue
                agent = user = None
        return self.values(i, created, direction, from_number, to_number,
            party, agent, user, queue, state, answered, ended, wait, talk,
            ended)

    def live(self, i, state):
        """A call of the last minutes still ringing (waiting in its queue)
        or answered (in progress)"""
        rnd = self.rnd
        number, party = self.caller()
        queue = rnd.choices(self.queues, self.shares)[0]
        if state == 'ringing':
            created = self.now - dt.timedelta(seconds=rnd.uniform(1, 90))
            agent = user = answered = wait = None
        else:
            created = self.now - dt.timedelta(seconds=rnd.uniform(60, 600))
            agent, user, _ = queue['agents'][i % len(queue['agents'])]
            wait = rnd.randint(3, 40)
            answered = created + dt.timedelta(seconds=wait)
        created = created.replace(microsecond=0)
        return self.values(i, created, 'inbound', number, queue['number'],
            party, agent, user, queue, state, answered, None, wait, None,
            answered or created)

    def values(self, i, created, direction, from_number, to_number, party,
            agent, user, queue, state, answered, ended, wait, talk, written):
        # An Asterisk-like unique id: epoch and sequence
        call_id = f'{created.timestamp():.0f}.{i}'
        pbx = self.cc['pbx']
        # The agents sent the wrap-up form of the calls over
        wrapped_up = bool(agent and state == 'ended')
        return [call_id, self.cc['company'], direction, from_number,
            to_number, party, agent, user, queue['id'] if queue else None,
            state, created, answered, ended, wait, talk, wrapped_up, pbx,
            created, pbx, written]


def copy_rows(cursor, table, columns, rows):
    "COPY the rows into the table: the fastest bulk load of PostgreSQL"
    names = ', '.join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def insert_calls(name, cc, party_ids, count, now):
    """The historical calls (COPY) and the live ones; their events (SQL,
    from the calls: ringing, answered, ended or missed with its reason,
    all applied); the agents of the live answered calls on call. Return
    the counts of live calls."""
    from trytond.transaction import Transaction
    factory = CallFactory(cc, party_ids, now)
    today = count // DAYS
    live = {'ringing': 0, 'answered': 0}
    for queue in cc['queues']:
        live['ringing'] += max(1, round(12 * queue['share']))
    on_call = [a for q in cc['queues'] for a in q['agents'][:4]]
    live['answered'] = len(on_call)

    def rows():
        for i in range(count - today):
            yield factory.row(i, False)
        for i in range(count - today, count):
            yield factory.row(i, True)
        i = count
        for state, number in live.items():
            for _ in range(number):
                yield factory.live(i, state)
                i += 1
    start = time.monotonic()
    with transaction(name) as tx:
        cursor = Transaction().connection.cursor()
        copy_rows(cursor, 'callcenter_call', CALL_COLUMNS, rows())
        log(f"copied {count} calls ({today} of today) and "
            f"{sum(live.values())} live ones {live} in "
            f"{time.monotonic() - start:.0f} s")
        start = time.monotonic()
        # The events the telephony sent for these calls, all applied
        common = ('c.company, %(application)s, false, c.create_uid, '
            'c.direction, c.from_number, c.to_number, a.extension, '
            'q.number, c.call_id')
        cursor.execute(
            'INSERT INTO callcenter_event (company, application, pending, '
            'create_uid, direction, from_number, to_number, extension, '
            'queue_number, call_id, event_id, type, timestamp, reason, '
            'create_date) '
            f'SELECT {common}, c.call_id || \':ringing\', \'ringing\', '
            'c.created, NULL, c.created '
            'FROM callcenter_call c '
            'LEFT JOIN callcenter_agent a ON a.id = c.agent '
            'LEFT JOIN callcenter_queue q ON q.id = c.queue '
            'UNION ALL '
            f'SELECT {common}, c.call_id || \':answered\', \'answered\', '
            'c.answered, NULL, c.answered '
            'FROM callcenter_call c '
            'LEFT JOIN callcenter_agent a ON a.id = c.agent '
            'LEFT JOIN callcenter_queue q ON q.id = c.queue '
            'WHERE c.answered IS NOT NULL '
            'UNION ALL '
            f'SELECT {common}, c.call_id || \':\' || e.type, e.type, '
            'c.ended, e.reason, c.ended '
            'FROM callcenter_call c '
            'LEFT JOIN callcenter_agent a ON a.id = c.agent '
            'LEFT JOIN callcenter_queue q ON q.id = c.queue '
            'CROSS JOIN LATERAL (SELECT '
            "CASE WHEN c.answered IS NOT NULL THEN 'ended' "
            "ELSE 'missed' END AS type, "
            "CASE c.state WHEN 'abandoned' THEN 'abandoned' "
            "WHEN 'voicemail' THEN 'voicemail' "
            "WHEN 'missed' THEN 'no_answer' END AS reason) e "
            'WHERE c.ended IS NOT NULL',
            {'application': cc['application']})
        events = cursor.rowcount
        # The agents of the answered live calls are on call
        cursor.execute('UPDATE callcenter_agent SET status = \'on_call\', '
            'current_call = c.id, status_since = c.answered '
            'FROM callcenter_call c '
            "WHERE c.state = 'answered' AND c.agent = callcenter_agent.id")
        tx.commit()
    log(f"inserted {events} events of these calls in "
        f"{time.monotonic() - start:.0f} s")
    return live


def populate(name, options, now):
    sales = benchlib.setup_sales(name)
    cc = setup(name, sales)
    party_ids = benchlib.insert_parties(name, options.parties, cc['admin'])
    insert_phones(name, party_ids, cc['admin'])
    owners(name, cc, party_ids)
    cc['parties'] = party_ids
    cc['live'] = insert_calls(name, cc, party_ids, options.calls, now)
    start = time.monotonic()
    benchlib.vacuum(name)
    log(f"VACUUM ANALYZE in {time.monotonic() - start:.0f} s")
    return cc


def check_columns(name, call_ids):
    """The columns the ORM filled on calls it made from events: the raw
    rows must fill them too (a column added later shows up here)"""
    from trytond.transaction import Transaction
    with transaction(name, readonly=True):
        cursor = Transaction().connection.cursor()
        cursor.execute("SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'callcenter_call'")
        columns = [c for c, in cursor]
        counts = ', '.join(f'COUNT("{c}")' for c in columns)
        cursor.execute(f'SELECT {counts} FROM callcenter_call '
            'WHERE call_id = ANY(%s)', (call_ids,))
        filled = {c for c, n in zip(columns, cursor.fetchone()) if n}
    missing = filled - set(CALL_COLUMNS) - LEFT_EMPTY - {'id'}
    if missing:
        log(f"WARNING: the ORM fills {sorted(missing)} that the raw rows "
            "leave empty")
    return filled


# Wallboard ---------------------------------------------------------------

def wallboard(name, cc):
    """A function that computes the wallboard of all queues in its own
    read-only transaction, as the supervisor's client would"""
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    context = {
        'company': cc['company'], 'companies': [cc['company']],
        'language': 'en', '_check_access': True,
        }
    ids = [q['id'] for q in cc['queues']]
    result = {}

    def call():
        with Transaction().start(name, cc['supervisor'], readonly=True,
                context=context):
            Queue = Pool().get('callcenter.queue')
            result['figures'] = Queue.wallboard(
                Queue.browse(ids), dt.datetime.now())
    return call, result


def explain_wallboard(name, cc):
    "EXPLAIN ANALYZE of the wallboard's queries on callcenter_call"
    from trytond.transaction import Transaction
    ids = [q['id'] for q in cc['queues']]
    today = dt.datetime.combine(dt.date.today(), dt.time())
    queries = [
        ('SELECT queue, COUNT(*), MIN(created) FROM callcenter_call '
            "WHERE queue = ANY(%s) AND state = 'ringing' GROUP BY queue",
            (ids,)),
        ('SELECT queue, SUM(CASE WHEN answered IS NOT NULL THEN 1 ELSE 0 '
            "END), SUM(CASE WHEN state = 'abandoned' THEN 1 ELSE 0 END), "
            'AVG(talk_seconds) FROM callcenter_call '
            'WHERE queue = ANY(%s) AND created >= %s GROUP BY queue',
            (ids, today)),
        ]
    plans = []
    with transaction(name, readonly=True):
        cursor = Transaction().connection.cursor()
        for query, params in queries:
            cursor.execute('EXPLAIN (ANALYZE, BUFFERS) ' + query, params)
            plans.append('\n'.join(r for r, in cursor))
    return '\n\n'.join(plans)


# HTTP --------------------------------------------------------------------

def signed(key, payload):
    "The body and headers of a signed JSON post"
    body = json.dumps(payload).encode()
    return body, {
        'Authorization': f'Bearer {key}',
        'Content-Type': 'application/json',
        'X-CRM-Signature': 'sha256=' + hmac.new(
            key.encode(), body, hashlib.sha256).hexdigest(),
        }


class Connection:
    "A keep-alive connection that posts signed JSON"

    def __init__(self, port, key):
        self.port, self.key = port, key
        self.connection = None

    def post(self, path, payload):
        "(status, parsed answer or raw bytes); raises on network errors"
        body, headers = signed(self.key, payload)
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                '127.0.0.1', self.port, timeout=60)
        try:
            self.connection.request('POST', path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
            if response.getheader('Connection', '').lower() == 'close':
                self.close()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data[:300]

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


# Routing -----------------------------------------------------------------

def routing(name, cc, port, count):
    """count routing decisions through HTTP, one at a time, for calls to
    the queues (in their shares) from known and unknown numbers; the
    agents the decision rang are made available again between the calls
    (not timed). Return the durations (ms) and decisions."""
    from trytond.pool import Pool
    rnd = random.Random(23)
    path = f'/{quote(name)}/callcenter/route'
    connection = Connection(port, cc['key'])
    shares = [q['share'] for q in cc['queues']]
    by_extension = {e: a for q in cc['queues'] for a, _, e in q['agents']}
    durations, decisions = [], Counter()
    per_queue = {q['number']: [] for q in cc['queues']}
    try:
        for i in range(count + WARMUP):
            queue = rnd.choices(cc['queues'], shares)[0]
            number = (party_phone(rnd.choice(cc['parties']))
                if rnd.random() < KNOWN_CALLERS else unknown_phone(rnd))
            payload = {'call_id': f'route-{uuid.uuid4().hex}',
                'from': number, 'to': queue['number']}
            started = time.perf_counter()
            status, answer = connection.post(path, payload)
            duration = (time.perf_counter() - started) * 1000
            check(status == 200, (status, answer))
            if i >= WARMUP:
                durations.append(duration)
                per_queue[queue['number']].append(duration)
                decisions[answer['action']] += 1
            rung = [by_extension[e] for e in answer.get('targets', [])]
            if rung:
                with transaction(name, cc['admin'],
                        {'company': cc['company']}):
                    Agent = Pool().get('callcenter.agent')
                    Agent.set_status(Agent.browse(rung), 'available')
    finally:
        connection.close()
    for number, values in per_queue.items():
        if values:
            log(f"routing to {number}: median "
                f"{statistics.median(values):.1f} ms over {len(values)}")
    return durations, decisions


# CTI events --------------------------------------------------------------

class Pbx(threading.Thread):
    """A telephony connector: posts the events of its calls in progress
    (CALLS_PER_CLIENT at a time, interleaved) on one keep-alive
    connection until the deadline, batch events per request"""

    def __init__(self, number, port, path, cc, tag, start, stop, batch=1):
        super().__init__(daemon=True)
        self.port, self.path, self.cc = port, path, cc
        self.tag = f'{tag}-{number}'
        self.start_at, self.stop_at, self.batch = start, stop, batch
        self.random = random.Random(f'{tag}.{number}')
        self.calls = []  # every call started: its plan and what was acked
        self.active = []
        self.acked, self.stored, self.duplicates = 0, 0, 0
        self.requests, self.errors, self.samples = 0, Counter(), {}
        self.latencies = []
        self.shares = [q['share'] for q in cc['queues']]

    def new_call(self):
        rnd = self.random
        queue = rnd.choices(self.cc['queues'], self.shares)[0]
        number = (party_phone(rnd.choice(self.cc['parties']))
            if rnd.random() < KNOWN_CALLERS else unknown_phone(rnd))
        outcome = weighted(rnd, OUTCOMES)
        _, _, extension = rnd.choice(queue['agents'])
        call = {
            'call_id': f'{self.tag}.{len(self.calls)}',
            'from': number, 'to': queue['number'], 'queue': queue['number'],
            'extension': extension, 'outcome': outcome, 'sent': 0,
            'broken': False,
            }
        if outcome == 'answered':
            call['plan'] = [('ringing', None), ('answered', None),
                ('ended', None)]
        else:
            call['plan'] = [('ringing', None), ('missed', outcome)]
        call['acked'] = []
        self.calls.append(call)
        self.active.append(call)
        return call

    def next_event(self):
        "The next event of a call in progress (or of a new call)"
        if len(self.active) < CALLS_PER_CLIENT:
            call = self.new_call()
        else:
            call = self.random.choice(self.active)
        type_, reason = call['plan'][call['sent']]
        call['sent'] += 1
        if call['sent'] == len(call['plan']):
            self.active.remove(call)
        event = {
            'id': f'{call["call_id"]}:{type_}',
            'type': type_, 'call_id': call['call_id'],
            'from': call['from'], 'to': call['to'],
            'direction': 'inbound', 'extension': call['extension'],
            'queue': call['queue'], 'timestamp': time.time(),
            }
        if reason:
            event['reason'] = reason
        return call, event

    def run(self):
        connection = Connection(self.port, self.cc['key'])
        while time.monotonic() < self.start_at:
            time.sleep(0.001)
        while time.monotonic() < self.stop_at:
            sent = [self.next_event() for _ in range(self.batch)]
            payload = sent[0][1] if self.batch == 1 else [
                e for _, e in sent]
            status = None
            # A PBX sends an event again when it got no answer
            for attempt in range(3):
                started = time.monotonic()
                self.requests += 1
                try:
                    status, answer = connection.post(self.path, payload)
                except (OSError, http.client.HTTPException) as exception:
                    status = type(exception).__name__
                    self.errors[status] += 1
                    continue
                if status in {200, 202}:
                    self.latencies.append(time.monotonic() - started)
                    break
                self.errors[status] += 1
                self.samples.setdefault(status, answer)
                if status < 500:
                    break
            if status in {200, 202}:
                self.acked += len(sent)
                self.stored += answer['stored']
                self.duplicates += answer['duplicates']
                for call, event in sent:
                    call['acked'].append(event['type'])
            else:
                # Given up: the telephony would lose these
                for call, _ in sent:
                    call['broken'] = True
                    if call in self.active:
                        self.active.remove(call)
        connection.close()


def expected_state(call):
    "What the call is after the events the server acknowledged"
    acked = call['acked']
    if 'ended' in acked:
        return 'ended'
    if 'missed' in acked:
        return {'abandoned': 'abandoned', 'voicemail': 'voicemail'}.get(
            call['outcome'], 'missed')
    if 'answered' in acked:
        return 'answered'
    return 'ringing' if acked else None


def post_events(servers, path, cc, tag, seconds, batch=1):
    start = time.monotonic() + 0.5
    stop = start + seconds
    clients = [
        Pbx(i, servers[i % len(servers)][1], path, cc, tag, start, stop,
            batch)
        for i in range(CLIENTS)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    return clients


def event_counts(name, prefix=None):
    from trytond.transaction import Transaction
    with transaction(name, readonly=True):
        cursor = Transaction().connection.cursor()
        cursor.execute('SELECT COUNT(*) FROM callcenter_event WHERE pending')
        pending, = cursor.fetchone()
        if prefix is None:
            return pending
        cursor.execute('SELECT event_id FROM callcenter_event '
            'WHERE call_id LIKE %s', (prefix + '%',))
        stored = {i for i, in cursor}
        cursor.execute('SELECT call_id, state, party, agent, queue '
            'FROM callcenter_call WHERE call_id LIKE %s', (prefix + '%',))
        calls = {r[0]: r[1:] for r in cursor}
        cursor.execute('SELECT COUNT(*), COUNT(finished_at), '
            'COUNT(*) FILTER (WHERE dequeued_at IS NULL) FROM ir_queue')
        tasks = cursor.fetchone()
    return pending, stored, calls, tasks


def drained(name, timeout=1800):
    """Wait until the worker has made calls of every pending event; return
    when that was (time.monotonic)"""
    start = time.monotonic()
    said = start
    while pending := event_counts(name):
        now = time.monotonic()
        if now > start + timeout:
            raise RuntimeError(f"{pending} pending events left after "
                f"{timeout} s")
        if now > said + 10:
            log(f"{pending} events pending")
            said = now
        time.sleep(0.1)
    return time.monotonic()


def cpu_snapshot(name, servers):
    "benchlib.cpu_snapshot of the servers and trytond-worker"
    return benchlib.cpu_snapshot(name, {
            (f'{SERVER} {i + 1}' if port else 'trytond-worker'): process.pid
            for i, (process, port) in enumerate(servers)}, 'bench clients')


def ingest(name, cc, servers, seconds, tag, batch=1):
    """Post for seconds, wait until no event is pending; check that every
    acknowledged event is stored and its call in the right state. Return
    (events/s, events lost)."""
    path = f'/{quote(name)}/callcenter/events'
    log(f"posting for {seconds} s, {batch} event(s) per request, "
        f"{CLIENTS} keep-alive connections to {SERVER}, one "
        "trytond-worker")
    cpu_before = cpu_snapshot(name, servers)
    started = time.monotonic()
    clients = post_events(servers[:-1], path, cc, tag, seconds, batch)
    posted = time.monotonic()
    done = drained(name)
    cpu_after = cpu_snapshot(name, servers)
    # post_events() starts its clients half a second after it is called
    elapsed = done - started - 0.5
    acked = sum(c.acked for c in clients)
    requests = sum(c.requests for c in clients)
    errors = sum((c.errors for c in clients), Counter())
    for client in clients:
        for status, sample in client.samples.items():
            log(f"answer {status}: {sample!r}")
    latencies = sorted(l for c in clients for l in c.latencies)
    rate = acked / elapsed
    post_s = posted - started - 0.5
    log(f"{acked} events acknowledged in {requests} requests in "
        f"{post_s:.1f} s ({acked / post_s:.0f} events/s through the "
        f"webhook, {requests / post_s:.0f} requests/s); errors "
        f"{dict(errors) or 'none'}")
    if latencies:
        log("webhook latency median %.1f ms, p95 %.1f ms" % (
                1000 * latencies[len(latencies) // 2],
                1000 * latencies[int(len(latencies) * 0.95)]))
    log(f"the last event applied {done - posted:.1f} s after the posts: "
        f"{rate:.0f} events/s stored and made calls")
    benchlib.log_cpu(cpu_before, cpu_after, acked,
        done - started - 0.5)
    _, stored, calls, tasks = event_counts(name, tag + '-')
    acked_ids = {f'{call["call_id"]}:{t}' for c in clients
        for call in c.calls for t in call['acked']}
    lost = len(acked_ids - stored)
    extra = len(stored - acked_ids)
    duplicates = sum(c.duplicates for c in clients)
    log(f"database: {len(stored)} events stored for {len(acked_ids)} "
        f"acknowledged ({lost} lost, {extra} stored without an "
        f"acknowledgement, {duplicates} answered as duplicates); "
        f"ir_queue: {tasks[0]} tasks, {tasks[1]} finished, {tasks[2]} "
        "not taken yet")
    expected = {call['call_id']: expected_state(call) for c in clients
        for call in c.calls if call['acked']}
    wrong = {i: (s, calls.get(i, (None,))[0]) for i, s in expected.items()
        if calls.get(i, (None,))[0] != s}
    states = Counter(s for s, *_ in calls.values())
    known = sum(1 for c in clients for call in c.calls
        if call['acked'] and call['from'].startswith('+4930'))
    with_party = sum(1 for i, (_, party, _, _) in calls.items()
        if party and i in expected)
    without_agent = sum(1 for i, (_, _, agent, queue) in calls.items()
        if not (agent and queue))
    log(f"{len(calls)} calls for {len(expected)} with events: {dict(states)}"
        f"; {with_party} with their party ({known} from a known number), "
        f"{without_agent} without agent or queue; {len(wrong)} in a wrong "
        "state" + (f", e.g. {list(wrong.items())[:5]}" if wrong else ''))
    check(not wrong, len(wrong))
    check(with_party == known, (with_party, known))
    check(not without_agent, without_agent)
    check(not extra, extra)
    return rate, lost, acked


def worker_summary(worker):
    """Stop trytond-worker and say what its log tells about its tasks: how
    many ran, failed (retried), fell back to one call at a time"""
    import signal
    import subprocess
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    worker.log.seek(0)
    lines = worker.log.read().decode('utf-8', 'replace').splitlines()
    kinds = Counter()
    for line in lines:
        if '<Task ' in line and ' in ' in line and ' ms' in line:
            kinds['tasks done'] += 1
        elif 'failed after' in line:
            kinds['tasks failed (retried later)'] += 1
        elif 'calls applied one by one' in line:
            kinds['batches applied one call at a time'] += 1
        elif 'left pending' in line:
            kinds['calls left pending'] += 1
    log(f"trytond-worker: {dict(kinds)}")


def measure(name, options):
    started = time.monotonic()
    now = dt.datetime.now().replace(microsecond=0)
    cc = populate(name, options, now)
    log(f"population done after {time.monotonic() - started:.0f} s")

    # Wallboard
    call, result = wallboard(name, cc)
    with benchlib.profiled(options.profile):
        wallboard_ms, durations = benchlib.median_ms(
            call, runs=RUNS, warmup=WARMUP)
    figures, agents = result['figures']
    log("wallboard runs (ms): " + ' '.join(f'{d:.1f}' for d in durations))
    for queue in cc['queues']:
        log(f"wallboard {queue['number']}: {figures[queue['id']]}")
    log(f"agents by status: {agents}")
    log("EXPLAIN ANALYZE of the wallboard's queries:\n"
        + explain_wallboard(name, cc))
    check(sum(f['waiting'] for f in figures.values())
        == cc['live']['ringing'], figures)
    check(sum(f['answered'] for f in figures.values()) > 0, figures)

    benchlib.release(name)
    # As in production (README.md): the queue left to trytond-worker,
    # Python's asserts off (trytond's debugging checks, some quadratic)
    env = {'TRYTOND_QUEUE__WORKER': 'True', 'TRYTOND_LOGGING_LEVEL': '30',
        'PYTHONOPTIMIZE': '1'}
    if SERVER == 'gunicorn':
        servers = benchlib.start_gunicorn(name, GUNICORN_WORKERS,
            GUNICORN_THREADS, env=env)
    else:
        servers = benchlib.start_servers(name, TRYTOND_SERVERS, env=env)
    # The worker logs each task (INFO): how many ran, failed, retried
    servers += benchlib.start_worker(name, env={
            **env, 'TRYTOND_LOGGING_LEVEL': '20'})
    batched = sip_rate = None
    try:
        # Routing, one decision at a time on an idle system
        durations, decisions = routing(name, cc, servers[0][1], ROUTES)
        routing_ms = statistics.median(durations)
        log(f"routing: {len(durations)} decisions {dict(decisions)}, "
            f"median {routing_ms:.1f} ms, p90 "
            f"{sorted(durations)[int(len(durations) * 0.9)]:.1f} ms")
        check(decisions == {'agent': len(durations)}, decisions)
        with transaction(name, cc['admin'], {'company': cc['company']}):
            from trytond.pool import Pool
            Agent = Pool().get('callcenter.agent')
            Agent.go_available(Agent.search([]))

        run = uuid.uuid4().hex[:6]
        log(f"warm-up: {EVENTS_WARMUP_S} s")
        warm = post_events(servers[:-1],
            f'/{quote(name)}/callcenter/events', cc, f'w{run}',
            EVENTS_WARMUP_S)
        drained(name)
        check_columns(name, [call['call_id'] for c in warm
                for call in c.calls])
        rate, lost, _ = ingest(name, cc, servers, options.seconds,
            f'e{run}')
        if rate < EVENTS_TARGET:
            log(f"one event per request is below {EVENTS_TARGET}/s: the "
                f"same with {BATCH_SIZE} events per request")
            batched, batched_lost, _ = ingest(name, cc, servers,
                options.seconds, f'b{run}', batch=BATCH_SIZE)
            lost += batched_lost
        # Real SIP calls through Kamailio to these servers (bench/sipp.py)
        sip_rate = sipp.sustained_rate(name, cc, servers[:-1],
            party_phone, options.quick)
    finally:
        worker_summary(servers[-1][0])
        benchlib.stop_servers(servers)
    if batched:
        log(f"events/s: {rate:.0f} one per request, {batched:.0f} "
            f"{BATCH_SIZE} per request")
    for value, target, what in [
            (rate, EVENTS_TARGET, 'events/s at least'),
            (routing_ms, ROUTING_TARGET_MS, 'routing ms at most'),
            (wallboard_ms, WALLBOARD_TARGET_MS, 'wallboard ms at most')]:
        if (value < target) if 'least' in what else (value > target):
            log(f"missed the target: {value:.1f} for {target} {what}")
    figures = [
        ('cti_events_per_s', rate, 'events/s'),
        ('cti_events_lost', lost, 'events'),
        ('routing_ms', routing_ms, 'ms'),
        ('wallboard_ms', wallboard_ms, 'ms'),
        ]
    if sip_rate is not None:
        figures.append(('sip_calls_per_s', sip_rate, 'calls/s'))
    return figures


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        calls=(1_000_000, 100_000), parties=(20_000, 2_000),
        seconds=(30, 10))
    started = time.monotonic()
    log(f"load average: {os.getloadavg()}")
    with benchlib.bench_database(keep=options.keep,
            modules=('crm_callcenter',)) as name:
        figures = measure(name, options)
    log(f"run time {time.monotonic() - started:.0f} s; load average "
        f"{os.getloadavg()}")
    benchlib.print_figures(figures)


if __name__ == '__main__':
    main()
