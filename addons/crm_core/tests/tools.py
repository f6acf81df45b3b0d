"Test data shared by the CRM modules' tests"
import contextlib
import logging
import socket
from contextlib import ExitStack

from trytond import backend

from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    DB_CACHE, TestCase, activate_module, backup_db_cache, drop_db,
    restore_db_cache)
from trytond.transaction import Transaction


def create_user(login, company, group='group_crm_user', name=None,
        password=None):
    "A user of the company, in the crm_core group (None: no CRM group)"
    pool = Pool()
    User = pool.get('res.user')
    ModelData = pool.get('ir.model.data')
    values = {
        'name': name or login.title(),
        'login': login,
        'companies': [('add', [company.id])],
        'company': company.id,
        }
    if group:
        values['groups'] = [('add', [ModelData.get_id('crm_core', group)])]
    if password:
        values['password'] = password
    user, = User.create([values])
    return user


def create_team(name, company, members, leader=None, **values):
    pool = Pool()
    Team = pool.get('crm.team')
    team, = Team.create([{
                'name': name,
                'company': company.id,
                'leader': leader.id if leader else None,
                'members': [('add', [u.id for u in members])],
                **values,
                }])
    return team


class CrmSetup:
    "A company with two sales teams, their salespeople and a manager"

    def __init__(self):
        pool = Pool()
        Stage = pool.get('crm.stage')
        self.company = create_company()
        self.manager = create_user(
            'manager', self.company, group='group_crm_manager')
        self.alice = create_user('alice', self.company)
        self.bob = create_user('bob', self.company)
        self.carol = create_user('carol', self.company)
        self.north = create_team(
            "North", self.company, [self.alice, self.bob],
            leader=self.manager)
        self.south = create_team(
            "South", self.company, [self.carol], leader=self.manager)
        stages = Stage.search([])
        self.stages = {s.name: s for s in stages}

    def stage(self, name):
        return self.stages[name]

    def as_user(self, user):
        "Act as the user through the client: access rules apply"
        transaction = Transaction()
        stack = ExitStack()
        stack.enter_context(transaction.set_user(user.id))
        stack.enter_context(transaction.set_context(
                _check_access=True, company=self.company.id))
        return stack

    def company_context(self):
        return set_company(self.company)


def create_party(name, emails=(), phones=(), countries=(), **values):
    "A party with those emails, phones and an address in each country"
    pool = Pool()
    Party = pool.get('party.party')
    mechanisms = [{'type': 'email', 'value': e} for e in emails]
    mechanisms += [{'type': 'phone', 'value': p} for p in phones]
    party, = Party.create([{
                'name': name,
                'contact_mechanisms': [('create', mechanisms)],
                'addresses': [('create', [
                            {'country': c.id} for c in countries])],
                **values,
                }])
    # A fresh instance: what the hooks stored (quality score), not the cache
    return Party(party.id)


def database_on_core(modules):
    """With a database cache (DB_CACHE), make DB_NAME the database of the
    modules: restored from the cache, or else built on crm_core's cached
    database and cached. crm_core's dependencies are then activated once
    per run, not once per list of modules (about 20 s on SQLite and 45 s
    on PostgreSQL each). Return whether it did."""
    modules = list(modules)
    if not DB_CACHE or modules == ['crm_core']:
        return False
    drop_db()
    if not restore_db_cache('-'.join(modules)):
        # crm_core's database (restored or built), then the others added
        # as a user activates them, and cached under their list
        activate_module(['crm_core'])
        activate_module(modules)
    return True


def activate_scenario(modules, *setups):
    """trytond.tests.tools.activate_modules() for a scenario, on the
    database of the modules that the unit tests use (database_on_core):
    the proteus configuration, after the setup functions ran once"""
    from proteus import config
    modules = [modules] if isinstance(modules, str) else list(modules)
    name = '-'.join(modules) + '--' + '|'.join(
        f.__qualname__ for f in setups)
    drop_db()
    if restore_db_cache(name):
        return config.set_trytond()
    if not database_on_core(modules):
        activate_module(modules)
    cfg = config.set_trytond()
    for setup in setups:
        setup(config=cfg)
    backup_db_cache(name)
    return cfg


class CoreDatabaseMixin:
    """For a ModuleTestCase: its database built on crm_core's cached one
    (database_on_core)"""
    __slots__ = ()

    @classmethod
    def setUpClass(cls):
        database_on_core([cls.module] + list(cls.extras or []))
        super().setUpClass()


class CrmDatabaseTestCase(TestCase):
    """A database with crm_core (or the modules listed) activated, for test
    files that leave the generic module checks to test_module.py"""
    modules = ['crm_core']

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not database_on_core(cls.modules):
            drop_db()
            activate_module(cls.modules)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()


@contextlib.contextmanager
def count_queries():
    "The list of the SQL statements run in the block"
    queries = []
    connection = Transaction().connection
    if backend.name == 'sqlite':
        connection.set_trace_callback(queries.append)
        try:
            yield queries
        finally:
            connection.set_trace_callback(None)
    else:
        logger = logging.getLogger('trytond.backend.postgresql.database')

        class Collect(logging.Handler):
            def emit(self, record):
                queries.append(record.getMessage())
        handler = Collect(logging.DEBUG)
        level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        try:
            yield queries
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


def smtp_server(test):
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps the envelopes
    it receives; trytond sends its mail there until the test ends"""
    from aiosmtpd.controller import Controller

    from trytond.config import config

    class Inbox:
        messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return '250 OK'
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    inbox = Inbox()
    inbox.messages = []
    controller = Controller(inbox, hostname='127.0.0.1', port=port)
    controller.start()
    test.addCleanup(controller.stop)
    uri = config.get('email', 'uri')
    config.set('email', 'uri', f'smtp://127.0.0.1:{port}')
    test.addCleanup(config.set, 'email', 'uri', uri)
    return inbox


def deliver_mail():
    """Send the mail the transaction holds, as its commit would, without
    committing (the test's transaction is rolled back)"""
    from trytond.sendmail import SMTPDataManager
    transaction = Transaction()
    for manager in list(transaction._datamanagers):
        if isinstance(manager, SMTPDataManager):
            manager.tpc_vote(transaction)
            manager.tpc_finish(transaction)


def shared_samples(name):
    """The folder of test data written by others (../shared/<name> of the
    checkout): CRM_SHARED_DIR, else the first shared/<name> found beside
    the checkout or above it (a clone elsewhere still finds the
    workspace's), else /work/shared/<name>"""
    import os
    from pathlib import Path
    if os.environ.get('CRM_SHARED_DIR'):
        return Path(os.environ['CRM_SHARED_DIR']) / name
    root = Path(__file__).resolve().parents[3]
    for parent in root.parents:
        candidate = parent / 'shared' / name
        if candidate.is_dir():
            return candidate
    return Path('/work/shared') / name


# The column types of sao 8.0's lists (Sao.View.TreeXMLViewParser.WIDGETS):
# a list column of another type (datetime, timestamp) stops sao from
# opening the list at all ("ColumnFactory is not a constructor")
SAO_LIST_WIDGETS = {
    'binary', 'boolean', 'callto', 'char', 'date', 'dict', 'email', 'float',
    'image', 'integer', 'many2many', 'many2one', 'numeric', 'one2many',
    'one2one', 'progressbar', 'reference', 'selection', 'multiselection',
    'sip', 'text', 'time', 'timedelta', 'url'}


def sao_unknown_list_columns(module):
    """[(view, field, type)] of the list views of the module (and of the
    views it inherits into) that sao cannot show"""
    from lxml import etree
    pool = Pool()
    View = pool.get('ir.ui.view')
    problems = []
    for view in View.search([('module', '=', module), ('type', 'in', [
                        'tree', None])]):
        if view.type is None and view.inherit and \
                view.inherit.type != 'tree':
            continue
        root_view = view.inherit or view
        if root_view.type != 'tree':
            continue
        Model = pool.get(view.model)
        result = Model.fields_view_get(view_id=root_view.id, view_type='tree')
        tree = etree.fromstring(result['arch'])
        for node in tree.iter('field'):
            name = node.get('name')
            field = result['fields'].get(name)
            if not field:
                continue
            widget = node.get('widget') or field['type']
            if widget not in SAO_LIST_WIDGETS:
                problems.append((view.name, name, widget))
    return problems


def serve_http(test):
    """Serve trytond's WSGI application over real HTTP from a thread of the
    test process, on a free port of 127.0.0.1, until the test ends: the
    base URL (http://127.0.0.1:<port>). The server's threads open their own
    connections: only what is committed is served, so it needs PostgreSQL
    (an SQLite :memory: database is one per connection)."""
    import threading

    from werkzeug.serving import WSGIRequestHandler, make_server

    from trytond.wsgi import app

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):
            pass
    server = make_server('127.0.0.1', 0, app, threaded=True,
        request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever,
        kwargs={'poll_interval': 0.1}, daemon=True, name='crm-http')
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()
        thread.join(5)
    test.addCleanup(stop)
    return 'http://127.0.0.1:%d' % server.server_port


def served_database_skip_reason():
    "Why a database cannot be served over HTTP to a test here, or None"
    if backend.name != 'postgresql':
        return ("needs PostgreSQL: the HTTP server's threads open their own "
            "connections and an SQLite :memory: database is one per "
            "connection")
