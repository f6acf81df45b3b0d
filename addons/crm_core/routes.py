"Custom pages of the CRM served by trytond, next to the sao web client"
import json
import logging
import mimetypes
import os
import queue
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from werkzeug.exceptions import NotFound
from werkzeug.utils import safe_join
from werkzeug.wrappers import Response

from trytond import backend, config
from trytond.exceptions import UserError, UserWarning
from trytond.i18n import gettext
from trytond.model.modelsql import SQLConstraintError
from trytond.pool import Pool
from trytond.protocols.wrappers import (
    set_max_request_size, with_pool, with_transaction)
from trytond.transaction import Transaction
from trytond.wsgi import app

from .capture import (
    APPLICATION, IDEMPOTENCY_KEY_SIZE, error_result, process,
    request_hash)

logger = logging.getLogger(__name__)


def web_root():
    "The project's web/ folder: [crm] web_root, or next to addons/"
    root = config.get('crm', 'web_root', default=None)
    if root:
        return Path(root)
    return Path(__file__).resolve().parents[2] / 'web'


# Files a page may load: the project's pages, and the front-end libraries
# installed from npm (web/package.json). Nothing else of web/ is served.
STATIC_DIRS = {
    'crm': 'crm',
    'lib/sortablejs': 'node_modules/sortablejs/modular',
    }


def send_file(path):
    """The file of a custom page at path (None: refused by safe_join), or
    404; the pages of other modules use it too"""
    if path is None or not os.path.isfile(path):
        raise NotFound()
    mimetype = mimetypes.guess_type(path)[0] or 'application/octet-stream'
    with open(path, 'rb') as file:
        response = Response(file.read(), mimetype=mimetype)
    # The pages change with the module: let the browser check each time
    response.headers['Cache-Control'] = 'no-cache'
    response.headers['X-Content-Type-Options'] = 'nosniff'
    return response


@app.route('/<database_name>/crm/board', methods={'GET'})
def board(request, database_name):
    return send_file(os.fspath(web_root() / 'crm' / 'board.html'))


@app.route('/<database_name>/crm/static/<path:path>', methods={'GET'})
def static(request, database_name, path):
    prefix, _, rest = path.rpartition('/')
    for url_dir, fs_dir in STATIC_DIRS.items():
        if path.startswith(url_dir + '/'):
            return send_file(safe_join(
                    os.fspath(web_root() / fs_dir), path[len(url_dir) + 1:]))
    raise NotFound()


# Web lead capture ------------------------------------------------------
# A web site posts its contact form to POST /<db>/crm/leads with the key of
# a res.user.application 'crm_lead_capture' (see doc/api.rst).
CAPTURE_MAX_BODY = 64 * 1024
CAPTURE_PATH = re.compile(r'^/[^/]+/crm/leads/?$')
CAPTURE_ORIGIN = 'crm.capture.origin'
CAPTURE_ALLOW_HEADERS = 'Authorization, Content-Type, Idempotency-Key'
# Most posts created in one transaction, and how long a post waits
CAPTURE_BATCH = 50
CAPTURE_TIMEOUT = 60


class CaptureOriginMiddleware:
    """Let the lead capture route answer cross-origin posts itself.

    trytond refuses (403) any Origin not listed in [web] cors before
    routing; the allowed origins of lead capture are per key, so the Origin
    of that path is moved aside here and checked by the route."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if ('HTTP_ORIGIN' in environ
                and CAPTURE_PATH.match(environ.get('PATH_INFO') or '')):
            environ[CAPTURE_ORIGIN] = environ.pop('HTTP_ORIGIN')
        return self.app(environ, start_response)


if not isinstance(app.wsgi_app, CaptureOriginMiddleware):
    app.wsgi_app = CaptureOriginMiddleware(app.wsgi_app)


def _json(data, status, headers=None):
    return Response(
        json.dumps(data), status=status, headers=headers,
        content_type='application/json')


def _error(status, error, message, headers=None, **extra):
    return _json(
        {'error': error, 'message': message, **extra}, status, headers)


def _capture_key(request):
    "The key: Authorization Bearer (or Basic password), or ?key= for forms"
    authorization = request.authorization
    if authorization is not None:
        if authorization.type == 'bearer':
            return getattr(authorization, 'token', None) or None
        elif authorization.type == 'basic':
            return authorization.get('password') or None
    return request.args.get('key') or None


def _same_origin(request, origin):
    return urlsplit(origin).netloc == request.headers.get('Host')


def _cors_headers(origin, preflight=False):
    headers = {
        'Access-Control-Allow-Origin': origin,
        'Vary': 'Origin',
        'Access-Control-Expose-Headers': 'Location, Idempotent-Replayed',
        }
    if preflight:
        headers.update({
                'Access-Control-Allow-Methods': 'POST',
                'Access-Control-Allow-Headers': CAPTURE_ALLOW_HEADERS,
                'Access-Control-Max-Age': '86400',
                })
    return headers


def _posted_data(request):
    """The posted fields as a dict of str; None: unsupported content type;
    raise ValueError for a body that is not JSON"""
    mimetype = request.mimetype
    if mimetype == 'application/json':
        raw = request.get_data(cache=True)
        return json.loads(raw.decode('utf-8'))
    elif mimetype in {
            'application/x-www-form-urlencoded', 'multipart/form-data'}:
        request.get_data(cache=True)
        data = {}
        for name, values in request.form.lists():
            data[name] = values[0] if len(values) == 1 else values
        for name in request.files:
            data[name] = ['file']
        return data
    return None


def _capture_item(request, origin):
    """What process() needs of the post (reading the body: 413 when huge).
    Errors are named here and worded by process(), in a transaction."""
    item = {
        'key': _capture_key(request),
        'origin': origin,
        'idempotency_key': None,
        'digest': None,
        }
    try:
        data = _posted_data(request)
    except ValueError:
        item['error'] = 'body'
        return item
    if data is None:
        item['error'] = 'content_type'
        return item
    item['data'] = data
    idempotency_key = request.headers.get('Idempotency-Key')
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip()
        if (not idempotency_key
                or len(idempotency_key) > IDEMPOTENCY_KEY_SIZE):
            item['error'] = 'idempotency_key'
            return item
        item['idempotency_key'] = idempotency_key
        item['digest'] = request_hash(data)
    return item


def _committed(pool, func, *args, retry_on=()):
    """Call func in a transaction, committed, retried on concurrent
    updates; return its result and the transaction's queued tasks"""
    retry = config.getint('database', 'retry')
    count = 0
    while True:
        if count:
            time.sleep(0.02 * count)
        try:
            with Transaction().start(pool.database_name, 0) as transaction:
                result = func(*args)
                transaction.commit()
            return result, transaction.tasks
        except (backend.DatabaseOperationalError, *retry_on):
            if count >= retry:
                raise
            count += 1


def _capture_run(pool, items):
    """Process the items in a transaction, then run its queued tasks (the
    webhooks) as trytond does after a request"""
    from trytond.worker import run_task
    # Two workers may create the same new UTM name at the same time: the
    # second one waits for the first, fails, and finds it when retried.
    results, tasks = _committed(pool, process, items,
        retry_on=(backend.DatabaseIntegrityError, SQLConstraintError))
    while tasks:
        run_task(pool, tasks.pop())
    return results


def _capture_run_safe(pool, items):
    "Like _capture_run; a failing list is retried item by item"
    try:
        return _capture_run(pool, items)
    except Exception as exception:
        if len(items) > 1:
            return [_capture_run_safe(pool, [i])[0] for i in items]
        if isinstance(exception, (UserError, UserWarning)):
            return [error_result(400, 'invalid', exception.message)]
        logger.exception("lead capture failed")
        return [error_result(500, 'error', str(exception))]


class CaptureBatcher:
    """Group commit: the posts that arrive while a transaction runs are
    created together in the next one (one per process and database), so
    that the cost of a transaction is shared under load. Alone, a post
    is created at once."""
    _lock = threading.Lock()
    _instances = {}

    def __init__(self, pool):
        self.database_name = pool.database_name
        self.queue = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self.run, daemon=True,
            name=f'crm-lead-capture-{pool.database_name}')
        self.thread.start()

    @classmethod
    def get(cls, pool):
        with cls._lock:
            key = (os.getpid(), pool.database_name)
            if key not in cls._instances:
                cls._instances[key] = cls(pool)
            return cls._instances[key]

    def submit(self, item):
        slot = [item, threading.Event(), None]
        self.queue.put(slot)
        if not slot[1].wait(CAPTURE_TIMEOUT):
            return error_result(503, 'timeout', 'Timeout')
        return slot[2]

    def run(self):
        while True:
            slots = [self.queue.get()]
            while len(slots) < CAPTURE_BATCH:
                try:
                    slots.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                results = _capture_run_safe(
                    Pool(self.database_name), [s[0] for s in slots])
            except BaseException as exception:
                logger.exception("lead capture batch failed")
                results = [error_result(500, 'error', str(exception))
                    ] * len(slots)
            for slot, result in zip(slots, results):
                slot[2] = result
                slot[1].set()


def _batching():
    # Off by default in tests: SQLite's in-memory database is not shared
    # with another thread
    return config.getboolean('crm', 'capture_batch', default=not Pool.test)


def _preflight(request, pool, origin):
    "Answer the CORS preflight of a browser (it carries no Authorization)"
    if not origin:
        return Response(status=204)

    @with_transaction(readonly=True)
    def refused(request, pool):
        "None when allowed, else the message"
        UserApplication = pool.get('res.user.application')
        key = _capture_key(request)
        domain = [
            ('application', '=', APPLICATION),
            ('state', '=', 'validated'),
            ]
        if key:
            domain.append(('key', '=', key))
        if any(a.crm_origin_allowed(origin)
                for a in UserApplication.search(domain)):
            return None
        return gettext('crm_core.msg_capture_origin_refused', origin=origin)
    message = refused(request, pool)
    if message is None:
        return Response(
            status=204, headers=_cors_headers(origin, preflight=True))
    return _error(403, 'origin_refused', message)


@app.route('/<database_name>/crm/leads', methods={'POST', 'OPTIONS'})
@set_max_request_size(CAPTURE_MAX_BODY)
@with_pool
def lead_capture(request, pool):
    origin = request.environ.get(CAPTURE_ORIGIN)
    if origin and _same_origin(request, origin):
        origin = None
    if request.method == 'OPTIONS':
        return _preflight(request, pool, origin)
    item = _capture_item(request, origin)
    if _batching():
        result = CaptureBatcher.get(pool).submit(item)
    else:
        result = _capture_run_safe(pool, [item])[0]

    status, body = result['status'], result['body']
    headers = {}
    if status == 401:
        headers['WWW-Authenticate'] = 'Bearer realm="CRM lead capture"'
    elif origin and status != 403:
        headers.update(_cors_headers(origin))
    if status != 201:
        return _json(body, status, headers)
    if result.get('replayed'):
        headers['Idempotent-Replayed'] = 'true'
    database = quote(pool.database_name, safe='')
    headers['Location'] = (
        f'{request.host_url}{database}/rest/model/crm.lead/{body["id"]}')
    if (result.get('success_url')
            and request.mimetype != 'application/json'):
        headers['Location'] = result['success_url']
        return Response(status=303, headers=headers)
    return _json(body, 201, headers)
