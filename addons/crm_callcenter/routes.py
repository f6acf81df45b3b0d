"""The telephony's API (doc/api.rst):

    POST /<db>/callcenter/events    CTI events, JSON: one object, a list,
                                    or {"events": [...]}
    POST /<db>/callcenter/route     routing decision of an incoming call
    POST /<db>/callcenter/generic   Generic CTI form posts (newCall,
                                    answer, hangup)

A connector authenticates with the key of a res.user.application
'crm_callcenter' (Authorization: Bearer <key>) and signs the JSON body:
X-CRM-Signature: sha256=<hex HMAC-SHA256 of the body with the key>. Bad
input is answered 400 with the fields at fault, nothing of it stored."""
import hashlib
import hmac
import json
import logging
import time
from functools import wraps

from werkzeug.wrappers import Response

from trytond.i18n import gettext
from trytond.protocols.wrappers import (
    set_max_request_size, with_pool, with_transaction)
from trytond.transaction import Transaction
from trytond.wsgi import app

from .cti import Router, validate
from .exceptions import EventError
from .res import APPLICATION

logger = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
MAX_EVENTS = 1000
GENERIC_EVENTS = {'newCall': 'ringing', 'answer': 'answered',
    'hangup': 'ended'}
# Generic CTI hangup causes of a call nobody answered
GENERIC_MISSED = {'cancel': 'abandoned', 'noAnswer': 'no_answer',
    'busy': 'busy', 'congestion': 'rejected', 'notFound': 'rejected'}


def _json(data, status=200):
    return Response(json.dumps(data), status=status,
        content_type='application/json')


def _error(status, error, message, fields=None):
    body = {'error': error, 'message': message}
    if fields:
        body['fields'] = fields
    return _json(body, status)


def _key(request):
    authorization = request.authorization
    if authorization is not None:
        if authorization.type == 'bearer':
            return getattr(authorization, 'token', None) or None
        if authorization.type == 'basic':
            return authorization.get('password') or None
    return request.args.get('key') or None


def _application(pool, key):
    """(application, user, company) ids of the validated key of the
    telephony application, read in one query (the ORM's check and reads
    of the user cost more than the rest of an event's request)"""
    Application = pool.get('res.user.application')
    User = pool.get('res.user')
    application = Application.__table__()
    user = User.__table__()
    cursor = Transaction().connection.cursor()
    cursor.execute(*application.join(user,
            condition=application.user == user.id).select(
            application.id, user.id, user.company,
            where=(application.key == key)
            & (application.application == APPLICATION)
            & (application.state == 'validated'),
            limit=1))
    return cursor.fetchone()


def authenticated(signed=True):
    """The application of the key (and the body's signature): the
    endpoint runs as its user, in its user's company"""
    def decorator(func):
        @wraps(func)
        def wrapper(request, pool, *args, **kwargs):
            key = _key(request)
            row = _application(pool, key) if key else None
            if not row:
                return _error(401, 'unauthorized',
                    gettext('crm_callcenter.msg_api_unauthorized'))
            if signed:
                signature = request.headers.get('X-CRM-Signature', '')
                expected = 'sha256=' + hmac.new(key.encode(),
                    request.get_data(), hashlib.sha256).hexdigest()
                if not hmac.compare_digest(signature.encode(),
                        expected.encode()):
                    return _error(401, 'bad_signature',
                        gettext('crm_callcenter.msg_api_signature'))
            application, user, company = row
            if not company:
                return _error(403, 'no_company',
                    gettext('crm_callcenter.msg_api_no_company'))
            application = pool.get('res.user.application')(application)
            with Transaction().set_user(user), \
                    Transaction().set_context(company=company):
                try:
                    return func(request, pool, application, company,
                        *args, **kwargs)
                except EventError as exception:
                    # Raised before anything is written
                    return _error(400, 'invalid', exception.message,
                        exception.fields)
        return wrapper
    return decorator


def _body(request):
    if request.mimetype != 'application/json':
        raise EventError(gettext('crm_callcenter.msg_api_json'),
            fields=['Content-Type'])
    try:
        return json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError) as exception:
        raise EventError(gettext('crm_callcenter.msg_api_malformed',
                detail=str(exception)), fields=['body']) from exception


def _store(pool, application, company, raws):
    Event = pool.get('callcenter.event')
    if len(raws) > MAX_EVENTS:
        raise EventError(gettext('crm_callcenter.msg_api_too_many',
                limit=MAX_EVENTS), fields=['events'])
    events, errors = [], []
    for index, raw in enumerate(raws):
        try:
            events.append(validate(raw))
        except EventError as exception:
            errors.append({'index': index, 'fields': exception.fields})
    if errors:
        error = EventError(gettext('crm_callcenter.msg_api_events_invalid',
                count=len(errors)),
            fields=[f'events[{e["index"]}].{f}' for e in errors
                for f in e['fields']])
        raise error
    stored = Event.ingest(company, events, application=application.id)
    return {'received': len(events), 'stored': stored,
        'duplicates': len(events) - stored}


@app.route('/<database_name>/callcenter/events', methods={'POST'})
@set_max_request_size(MAX_BODY)
@with_pool
@with_transaction()
@authenticated()
def events(request, pool, application, company):
    data = _body(request)
    if isinstance(data, dict) and isinstance(data.get('events'), list):
        raws = data['events']
    elif isinstance(data, list):
        raws = data
    else:
        raws = [data]
    result = _store(pool, application, company, raws)
    return _json(result, 202 if result['stored'] else 200)


@app.route('/<database_name>/callcenter/route', methods={'POST'})
@set_max_request_size(MAX_BODY)
@with_pool
@with_transaction()
@authenticated()
def route(request, pool, application, company):
    data = _body(request)
    wrong = [name for name in ['call_id', 'to']
        if not isinstance(data, dict) or not isinstance(data.get(name), str)
        or not data[name] or len(data[name]) > 128]
    if isinstance(data, dict) and data.get('from') is not None and (
            not isinstance(data['from'], str) or len(data['from']) > 128):
        wrong.append('from')
    waited = data.get('waited', 0) if isinstance(data, dict) else 0
    if not isinstance(waited, (int, float)) or isinstance(waited, bool) \
            or waited < 0:
        wrong.append('waited')
    if wrong:
        raise EventError(gettext('crm_callcenter.msg_route_invalid',
                fields=', '.join(wrong)), fields=wrong)
    decision = Router(company).route(data['call_id'], data.get('from'),
        data['to'], waited=waited)
    return _json(decision)


@app.route('/<database_name>/callcenter/generic', methods={'POST'})
@set_max_request_size(MAX_BODY)
@with_pool
@with_transaction()
@authenticated(signed=False)
def generic(request, pool, application, company):
    "The Generic CTI form posts many PBXes send to CRMs"
    form = request.form
    kind = GENERIC_EVENTS.get(form.get('event'))
    wrong = [] if kind else ['event']
    wrong += [f for f in ['callId'] if not form.get(f)]
    if wrong:
        raise EventError(gettext('crm_callcenter.msg_route_invalid',
                fields=', '.join(wrong)), fields=wrong)
    reason = None
    if kind == 'ended':
        reason = GENERIC_MISSED.get(form.get('cause'))
        if reason:
            kind = 'missed'
    users = form.getlist('user[]') or form.getlist('user')
    raw = {
        'id': f'{form["callId"]}:{form["event"]}',
        'call_id': form['callId'],
        'type': kind,
        'from': form.get('from'),
        'to': form.get('to'),
        'direction': 'outbound' if form.get('direction') == 'out'
        else 'inbound',
        'extension': form.get('answeringNumber') or (
            users[0] if users else None),
        'reason': reason,
        'timestamp': time.time(),
        }
    result = _store(pool, application, company, [raw])
    return _json(result, 202 if result['stored'] else 200)
