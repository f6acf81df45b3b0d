"""The CRM served over real HTTP to the rig, for the module tests of
crm_callcenter that place real calls (test_sip.py, test_ivr_sip.py).

Kamailio asks the routing API and posts the call events, the IVR runner
asks for its steps: they need the CRM on a socket. CrmHttpTestMixin, put
before trytond's RouteTestCase, serves trytond's WSGI application from a
thread of the test process on a free port of 127.0.0.1 (crm_core's
serve_http) and starts the rig against it; both are stopped when the test
ends, also when it fails.

The served database is the test database: what the test case's
setUpDatabase made is committed, and the server's threads open their own
connections to it. That needs PostgreSQL (an SQLite :memory: database is
one per connection): skip_reason() says why such tests cannot run.

Unlike rig.py (standard library only), this module imports trytond."""
import signal
import threading
from contextlib import contextmanager

from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME
from trytond.transaction import Transaction

from crm_core.tests.tools import serve_http, served_database_skip_reason

from .rig import Rig, hmac_available, missing_binaries

__all__ = ['skip_reason', 'CrmHttpTestMixin']


def skip_reason(*binaries):
    """Why the tests of real calls to the served CRM cannot run here (the
    backend, a binary of binaries missing), or None"""
    reason = served_database_skip_reason()
    if reason:
        return reason
    missing = missing_binaries(*binaries)
    if not missing and not hmac_available():
        missing = ['kamailio module crypto.so (kamailio-tls-modules)']
    if missing:
        return 'not installed: %s (run scripts/telephony.sh)' % ', '.join(
            missing)
    return None


class CrmHttpTestMixin:
    """For a RouteTestCase whose setUpDatabase sets cls.key (the key of a
    validated 'crm_callcenter' user application) and cls.ids['company'].

    setUp makes a test that runs longer than TEST_TIMEOUT seconds fail
    instead of hanging."""
    TEST_TIMEOUT = 30

    def setUp(self):
        super().setUp()
        self._deadline()

    def _deadline(self):
        if threading.current_thread() is not threading.main_thread():
            return
        timeout = self.TEST_TIMEOUT

        def expired(signum, frame):
            raise TimeoutError('test ran longer than %ss' % timeout)
        previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(timeout)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.alarm, 0)

    def serve(self):
        """The URL of the test database (http://127.0.0.1:<port>/<db>),
        served until the test ends (crm_core.tests.tools.serve_http)"""
        return '%s/%s' % (serve_http(self), DB_NAME)

    def start_rig(self, url, **kwargs):
        """A started Rig whose Kamailio asks and tells the CRM at url (the
        database's URL) with the test case's key; stopped when the test
        ends. kwargs: Rig's (ring_timeout...)"""
        rig = Rig(routing_url=url + '/callcenter/route',
            events_url=url + '/callcenter/events', api_key=self.key,
            **kwargs)
        self.addCleanup(rig.stop)
        rig.start()
        return rig

    @contextmanager
    def transaction(self, readonly=False):
        "A new transaction of the company in the test database (committed)"
        with Transaction().start(DB_NAME, 0, readonly=readonly, context={
                    'company': self.ids['company']}) as transaction:
            yield transaction

    def read(self, function):
        "function(pool) in a new read-only transaction: what is committed"
        with self.transaction(readonly=True):
            return function(Pool())
