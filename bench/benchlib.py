"""Shared helpers of the benchmarks in bench/

A benchmark runs against PostgreSQL (CRM_BENCH_DB_URI, default
postgresql://postgres@127.0.0.1:5432/), in a database of its own that it
creates with crm_core activated and drops at the end, even on failure.
It prints its figures last, one per line: ``figure: <name> <value> <unit>``.

Import this module before anything of trytond: it sets the database URI of
trytond from CRM_BENCH_DB_URI.
"""
import argparse
import contextlib
import cProfile
import datetime as dt
import http.client
import io
import logging
import os
import pstats
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_URI = 'postgresql://postgres@127.0.0.1:5432/'
BENCH_URI = os.environ.get('CRM_BENCH_DB_URI', DEFAULT_URI)
if not BENCH_URI.startswith('postgresql'):
    sys.exit(f"CRM_BENCH_DB_URI must be a PostgreSQL URI, not {BENCH_URI}")
# trytond reads its configuration from the environment when imported
os.environ['TRYTOND_DATABASE__URI'] = BENCH_URI
os.environ.pop('TRYTOND_DATABASE_URI', None)

BATCH = 500
SALESPEOPLE = [
    # login, name, team
    ('bench_anna', "Anna Bench", 0),
    ('bench_ben', "Ben Bench", 0),
    ('bench_cleo', "Cleo Bench", 1),
    ('bench_dan', "Dan Bench", 1),
    ]
TEAMS = ["Direct Sales", "Key Accounts"]
# stage xml id of crm_core, weight
STAGE_WEIGHTS = [
    ('stage_new', 30), ('stage_qualified', 20), ('stage_proposition', 15),
    ('stage_negotiation', 10), ('stage_won', 15), ('stage_lost', 10),
    ]
STATE_OF_KIND = {'open': 'open', 'won': 'won', 'lost': 'lost'}


def log(message):
    "Progress goes to stderr, so that figures stay last on stdout"
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
        flush=True)


def parse_args(description, **sizes):
    """Command line: --quick picks the small sizes. sizes maps a name to
    (full, quick)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--quick', action='store_true',
        help="run a small version (a few seconds)")
    parser.add_argument('--keep', action='store_true',
        help="keep the database at the end (to look at it)")
    parser.add_argument('--profile', metavar='FILE',
        help="write a cProfile of the measured ORM part to FILE")
    options = parser.parse_args()
    for name, (full, quick) in sizes.items():
        setattr(options, name, quick if options.quick else full)
    return options


def check(condition, *details):
    """A check of the bench's own data or results, kept under python -O
    (unlike assert): fail with the details"""
    if not condition:
        raise AssertionError(*details)


def print_figures(figures):
    "The last lines of the output: figure: <name> <value> <unit>"
    sys.stdout.flush()
    for name, value, unit in figures:
        if isinstance(value, float):
            value = (f'{value:.0f}' if abs(value) >= 100
                else f'{value:.2f}' if abs(value) >= 1
                else f'{value:.3g}')
        print(f'figure: {name} {value} {unit}', flush=True)


def admin_connection():
    "An autocommit connection to the maintenance database of the server"
    import psycopg
    parts = urlsplit(BENCH_URI)
    dsn = urlunsplit(parts._replace(path='/postgres'))
    return psycopg.connect(dsn, autocommit=True)


@contextlib.contextmanager
def bench_database(prefix='crm_bench', keep=False, modules=('crm_core',)):
    """Create a database with the modules (crm_core) activated, yield its
    name, drop it at the end whatever happens"""
    from psycopg import sql
    name = f'{prefix}_{os.getpid()}'
    logging.basicConfig(level=logging.WARNING)
    with admin_connection() as connection:
        connection.execute(sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'unicode'")
            .format(sql.Identifier(name)))
    log(f"created database {name}")
    try:
        start = time.monotonic()
        activate(name, modules)
        log(f"activated {', '.join(modules)} in "
            f"{time.monotonic() - start:.0f} s")
        yield name
    finally:
        release(name)
        if keep:
            log(f"kept database {name}")
        else:
            with admin_connection() as connection:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} "
                        "WITH (FORCE)").format(sql.Identifier(name)))
            log(f"dropped database {name}")


def activate(name, modules=('crm_core',)):
    "Initialise the Tryton database and activate the modules in this process"
    from trytond import backend
    from trytond.pool import Pool
    database = backend.Database(name).connect()
    database.init()
    Pool(name).init(update=list(modules), lang=['en'], activatedeps=True)


def release(name):
    "Close the connections of this process to the database"
    from trytond import backend
    from trytond.pool import Pool
    Pool.stop(name)
    with contextlib.suppress(Exception):
        backend.Database(name).close()


@contextlib.contextmanager
def transaction(name, user=0, context=None, readonly=False, **extras):
    """A transaction, committed when the block ends without error; extras:
    what a TransactionError's fix() asks for (tables locked at start)"""
    from trytond.transaction import Transaction
    with Transaction().start(name, user, readonly=readonly,
            context=context or {}, **extras) as transaction:
        yield transaction


def ref(module, fs_id):
    from trytond.pool import Pool
    return Pool().get('ir.model.data').get_id(module, fs_id)


def setup_sales(name):
    """Company, salespeople and two teams, through the ORM.
    Return a dict of ids: company, currency, admin, users {login: id},
    teams [id, id], members {team id: [user ids]}."""
    from trytond.pool import Pool
    with transaction(name) as tx:
        pool = Pool()
        Currency = pool.get('currency.currency')
        Party = pool.get('party.party')
        Company = pool.get('company.company')
        User = pool.get('res.user')
        Team = pool.get('crm.team')
        currency, = Currency.create([{
                    'name': "Euro", 'code': 'EUR', 'symbol': '€',
                    'rounding': Decimal('0.01'), 'digits': 2,
                    }])
        party, = Party.create([{'name': "Bench Company"}])
        company, = Company.create([{
                    'party': party.id, 'currency': currency.id,
                    'timezone': 'Europe/Berlin'}])
        admin = User(ref('res', 'user_admin'))
        User.write([admin], {
                'companies': [('add', [company.id])],
                'company': company.id})
        users = User.create([{
                    'login': login, 'name': full_name,
                    'company': company.id,
                    'companies': [('add', [company.id])],
                    'groups': [('add', [ref('crm_core', 'group_crm_user')])],
                    } for login, full_name, _ in SALESPEOPLE])
        teams = Team.create([{
                    'name': team_name, 'company': company.id,
                    'members': [('add', [
                                u.id for u, (_, _, t) in zip(
                                    users, SALESPEOPLE) if t == i])],
                    } for i, team_name in enumerate(TEAMS)])
        tx.commit()
        return {
            'company': company.id,
            'currency': currency.id,
            'admin': admin.id,
            'users': {u.login: u.id for u in users},
            'teams': [t.id for t in teams],
            'members': {
                teams[i].id: [u.id for u, (_, _, t) in zip(
                        users, SALESPEOPLE) if t == i]
                for i in range(len(TEAMS))},
            }


def batches(values, size=BATCH):
    for i in range(0, len(values), size):
        yield values[i:i + size]


def insert_parties(name, count, admin):
    """Insert count companies with raw SQL (population, not measured),
    with the normalised name that Party.create stores (the duplicate
    check looks it up). Return their ids."""
    from sql import Table
    from trytond.transaction import Transaction
    from crm_core.contact import normalise_name
    party = Table('party_party')
    now = dt.datetime.now()
    ids = []
    with transaction(name):
        cursor = Transaction().connection.cursor()
        rows = []
        for i in range(1, count + 1):
            party_name = f'Bench Customer {i:06d}'
            rows.append([party_name, normalise_name(party_name), f'B{i:06d}',
                    True, 'prospect', admin, now])
        for batch in batches(rows):
            cursor.execute(*party.insert(
                    [party.name, party.name_normalised, party.code,
                        party.active, party.lifecycle_status,
                        party.create_uid, party.create_date],
                    batch, returning=[party.id]))
            ids.extend(r for r, in cursor)
    return ids


def stages():
    """The default stages of crm_core: [(id, kind, probability, weight)]"""
    from trytond.pool import Pool
    Stage = Pool().get('crm.stage')
    result = []
    for fs_id, weight in STAGE_WEIGHTS:
        stage = Stage(ref('crm_core', fs_id))
        result.append((stage.id, stage.kind, stage.probability, weight))
    return result


def lead_values(count, sales, parties, seed=42):
    """Realistic values of count opportunities, as Lead.create takes them:
    team, owner of the team, party, stage, expected revenue; the closed ones
    closed over the last year. Call it in a transaction."""
    rnd = random.Random(seed)
    all_stages = stages()
    weights = [s[3] for s in all_stages]
    lost_reason = ref('crm_core', 'lost_reason_price')
    today = dt.date.today()
    now = dt.datetime.now().replace(microsecond=0)
    vlist = []
    for i in range(count):
        team = rnd.choice(sales['teams'])
        stage, kind, _, _ = rnd.choices(all_stages, weights)[0]
        values = {
            'name': f"Deal {i:06d}",
            'type': 'opportunity',
            'company': sales['company'],
            'party': rnd.choice(parties),
            'team': team,
            'owner': rnd.choice(sales['members'][team]),
            'stage': stage,
            'priority': rnd.choice('0112'),
            'expected_revenue': Decimal(rnd.randrange(500, 200000, 50)),
            'expected_close': today + dt.timedelta(
                days=rnd.randint(-60, 180)),
            }
        if kind != 'open':
            values['date_closed'] = now - dt.timedelta(
                minutes=rnd.randint(0, 365 * 24 * 60))
        if kind == 'lost':
            values['lost_reason'] = lost_reason
        vlist.append(values)
    return vlist


# The columns crm.lead.create fills from lead_values: the given values plus
# what preprocess_values adds, and the create stamps
LEAD_COLUMNS = [
    'name', 'type', 'company', 'party', 'team', 'owner', 'stage', 'priority',
    'expected_revenue', 'expected_close', 'date_closed', 'lost_reason',
    'state', 'probability', 'date_conversion', 'create_uid', 'create_date']


def lead_rows(vlist, user):
    "The rows of LEAD_COLUMNS that the ORM would insert for vlist"
    kinds = {s[0]: (s[1], s[2]) for s in stages()}
    now = dt.datetime.now()
    rows = []
    for values in vlist:
        kind, probability = kinds[values['stage']]
        row = [values.get(c) for c in LEAD_COLUMNS[:-5]]
        row += [STATE_OF_KIND[kind], probability, now, user, now]
        rows.append(row)
    return rows


def insert_leads(cursor, rows):
    "One multi-row INSERT into crm_lead per batch of rows of LEAD_COLUMNS"
    from sql import Table
    lead = Table('crm_lead')
    columns = [getattr(lead, c) for c in LEAD_COLUMNS]
    for batch in batches(rows):
        cursor.execute(*lead.insert(columns, batch))


def analyze(name):
    "Refresh the planner statistics after a bulk load, as autovacuum would"
    from trytond.transaction import Transaction
    with transaction(name):
        Transaction().connection.cursor().execute('ANALYZE')


def vacuum(name, tables=()):
    """VACUUM ANALYZE after a bulk load, as autovacuum would do: it also
    merges the pending entries of GIN indexes, which searches read one by
    one until then"""
    import psycopg
    from psycopg import sql
    parts = urlsplit(BENCH_URI)
    dsn = urlunsplit(parts._replace(path='/' + name))
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL('VACUUM ANALYZE {}').format(
                sql.SQL(', ').join(sql.Identifier(t) for t in tables))
            if tables else 'VACUUM ANALYZE')


def timed(function, *args, **kwargs):
    "Return (result, seconds)"
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def median_ms(function, runs=20, warmup=2):
    "Median wall time of function() in milliseconds, after warm-up calls"
    for _ in range(warmup):
        function()
    durations = []
    for _ in range(runs):
        _, seconds = timed(function)
        durations.append(seconds * 1000)
    return statistics.median(durations), durations


@contextlib.contextmanager
def profiled(path=None, top=25):
    "Profile the block with cProfile when path is given"
    if not path:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(path)
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats('cumulative').print_stats(top)
        log(f"profile written to {path}\n{out.getvalue()}")


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _start(command, name, env, args=None):
    """A trytond command on the bench database (or the command with args),
    its log in a file"""
    process_env = {**os.environ,
        'TRYTOND_DATABASE__URI': BENCH_URI,
        'TRYTOND_LOGGING_LEVEL': '40',
        **env}
    process_env.pop('TRYTOND_DATABASE_URI', None)
    process_env.pop('TRYTOND_CONFIG', None)
    # A file, not a pipe: a full pipe would block the server
    log_file = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), command),
            *(args if args is not None else ['-d', name])],
        env=process_env, stdout=subprocess.DEVNULL, stderr=log_file,
        start_new_session=True)
    process.log = log_file
    return process


def start_worker(name, env=None):
    """A trytond-worker process running the queue's tasks of the database
    (the servers need TRYTOND_QUEUE__WORKER=True to leave them to it).
    Return [(process, None)] for stop_servers."""
    worker = _start('trytond-worker', name, env or {})
    log(f"trytond-worker pid {worker.pid}")
    return [(worker, None)]


def start_servers(name, count=2, env=None, probe='/'):
    """count trytond processes serving the database, each on its own port
    (env: more TRYTOND_* settings; probe: a path of the database answered
    once the server is up). Return [(process, port)]."""
    servers = []
    for _ in range(count):
        port = free_port()
        servers.append((_start('trytond', name, {
                        'TRYTOND_WEB__LISTEN': f'127.0.0.1:{port}',
                        **(env or {})}), port))
    return _wait_ready(name, servers, probe)


def start_gunicorn(name, workers, threads, env=None, probe='/'):
    """trytond's WSGI application in gunicorn, as production runs it (see
    README.md): `workers` processes of `threads` threads on one port, the
    database loaded before the first request. Return [(process, port)]."""
    port = free_port()
    process = _start('gunicorn', name, {
            'TRYTOND_DATABASE_NAMES': name, **(env or {})}, args=[
            '--workers', str(workers), '--worker-class', 'gthread',
            '--threads', str(threads), '--keep-alive', '30',
            '--bind', f'127.0.0.1:{port}', 'trytond.application:app'])
    log(f"gunicorn: {workers} workers of {threads} threads")
    return _wait_ready(name, [(process, port)], probe)


def _wait_ready(name, servers, probe):
    "The servers once each answers the probe path of the database"
    try:
        deadline = time.monotonic() + 120
        for process, port in servers:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"trytond exited: {server_log(process)}")
                try:
                    connection = http.client.HTTPConnection(
                        '127.0.0.1', port, timeout=5)
                    connection.request(
                        'OPTIONS' if probe != '/' else 'GET',
                        f'/{quote(name)}{probe}')
                    connection.getresponse().read()
                    connection.close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            log(f"trytond pid {process.pid} serving on port {port}")
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def server_log(process, size=2000):
    process.log.seek(0)
    return process.log.read().decode('utf-8', 'replace')[-size:]


def stop_servers(servers):
    """Stop the servers, say how many error lines each logged; return the
    log lines of each"""
    for process, _ in servers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    logs = []
    for process, _ in servers:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        lines = server_log(process, 200000).splitlines()
        errors = [l for l in lines if 'ERROR' in l or 'Traceback' in l]
        if errors:
            log(f"trytond {process.pid}: {len(errors)} error lines, "
                f"last: {errors[-1][:300]}")
        process.log.close()
        logs.append(lines)
    return logs


def start_worker_processes(name, processes, env=None):
    """A trytond-worker with `processes` processes (its -n; trytond's own
    default is one per CPU) running the queue's tasks of the database.
    Return [(process, None)] for stop_servers."""
    process_env = {**os.environ,
        'TRYTOND_DATABASE__URI': BENCH_URI,
        'TRYTOND_LOGGING_LEVEL': '40',
        **(env or {})}
    process_env.pop('TRYTOND_DATABASE_URI', None)
    process_env.pop('TRYTOND_CONFIG', None)
    log_file = tempfile.TemporaryFile()
    worker = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), 'trytond-worker'),
            '-d', name, '-n', str(processes)],
        env=process_env, stdout=subprocess.DEVNULL, stderr=log_file,
        start_new_session=True)
    worker.log = log_file
    log(f"trytond-worker pid {worker.pid} with {processes} processes")
    return [(worker, None)]


# CPU accounting (Linux /proc): where the CPU of a measured run went

def cpu_seconds(pid):
    "User and system CPU seconds of a process, 0 if gone"
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid):
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def postgresql_pids(name):
    """The PostgreSQL processes working for the database: its backends
    and the server's own (WAL writer, checkpointer...); none when the
    server is not on this machine"""
    if urlsplit(BENCH_URI).hostname not in {
            '127.0.0.1', 'localhost', '::1', None}:
        return []
    with admin_connection() as connection:
        rows = connection.execute('SELECT pid FROM pg_stat_activity '
            'WHERE datname = %s OR datname IS NULL', (name,)).fetchall()
    return [p for p, in rows]


def cpu_snapshot(name, processes, own):
    """CPU seconds used so far by processes ({label: pid}, each with its
    children), the local PostgreSQL processes of the database, this
    process (labelled own) and the whole machine"""
    snapshot = {label: sum(cpu_seconds(p) for p in [pid] + children(pid))
        for label, pid in processes.items()}
    snapshot['postgresql'] = {p: cpu_seconds(p)
        for p in postgresql_pids(name)}
    times = os.times()
    snapshot[own] = times.user + times.system
    with open('/proc/stat') as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    snapshot['machine'] = ((sum(ticks) - ticks[3] - ticks[4])
        / os.sysconf('SC_CLK_TCK'))
    return snapshot


def log_cpu(before, after, count, seconds, unit='event'):
    """CPU per unit of each part, what the machine did besides, and the
    rate the machine's cores would give at this cost"""
    used = {k: after[k] - before[k] for k in before if k != 'postgresql'}
    # A backend that started meanwhile used all its CPU in the meantime
    used['postgresql'] = sum(v - before['postgresql'].get(p, 0)
        for p, v in after['postgresql'].items())
    ours = sum(v for k, v in used.items() if k != 'machine')
    log(f"CPU per {unit}: " + ', '.join(f'{k} {1000 * v / count:.2f} ms'
            for k, v in used.items() if k != 'machine')
        + f"; total {1000 * ours / count:.2f} ms; the machine was busy "
        f"{used['machine']:.0f} CPU s in {seconds:.0f} s "
        f"({used['machine'] - ours:.0f} s of other work); at this cost "
        f"its {os.cpu_count()} cores give at most "
        f"{os.cpu_count() * count / ours:.0f} {unit}s/s")
