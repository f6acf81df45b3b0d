"""The IVR runner's API (doc/ivr.rst), authenticated like the telephony's
API (routes.py: the key of a 'crm_callcenter' user application, the
HMAC-SHA256 signature of the body):

    POST /<db>/callcenter/ivr/step          what the runner does next
    GET  /<db>/callcenter/ivr/audio/<node>  the WAV prompt of a node
"""
import re

from werkzeug.wrappers import Response

from trytond.exceptions import UserError
from trytond.i18n import gettext
from trytond.protocols.wrappers import (
    set_max_request_size, with_pool, with_transaction)
from trytond.wsgi import app

from .exceptions import EventError
from .routes import MAX_BODY, _body, _error, _json, authenticated

MAX_TEXT = 128
DIGITS = re.compile(r'^[0-9*#A-D]{1,32}$')


def _number(value, minimum=0):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
        and value >= minimum)


def parse_step(data):
    """The arguments of IVR.step from the JSON of a step request; raises
    EventError naming the fields at fault"""
    if not isinstance(data, dict):
        raise EventError(gettext('crm_callcenter.msg_route_invalid',
                fields='body'), fields=['body'])
    wrong = []
    for name in ['call_id', 'ivr']:
        value = data.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
            wrong.append(name)
    from_number = data.get('from')
    if from_number is not None and (not isinstance(from_number, str)
            or len(from_number) > MAX_TEXT):
        wrong.append('from')
    node = data.get('node')
    if node is not None and not (isinstance(node, int)
            and not isinstance(node, bool) and node > 0):
        wrong.append('node')
    digits = data.get('digits')
    if digits == '':
        digits = None
    if digits is not None and (not isinstance(digits, str)
            or not DIGITS.match(digits)):
        wrong.append('digits')
    attempt = data.get('attempt', 1)
    if attempt is None:
        attempt = 1
    if not (isinstance(attempt, int) and _number(attempt, 1)
            and attempt <= 1000):
        wrong.append('attempt')
    waited = data.get('waited', 0)
    if waited is None:
        waited = 0
    if not _number(waited):
        wrong.append('waited')
    if wrong:
        raise EventError(gettext('crm_callcenter.msg_route_invalid',
                fields=', '.join(wrong)), fields=wrong)
    return {
        'call_id': data['call_id'],
        'ivr': data['ivr'],
        'from_number': from_number or None,
        'node': node,
        'digits': digits,
        'attempt': attempt,
        'waited': waited,
        }


@app.route('/<database_name>/callcenter/ivr/step', methods={'POST'})
@set_max_request_size(MAX_BODY)
@with_pool
@with_transaction()
@authenticated()
def step(request, pool, application, company):
    IVR = pool.get('callcenter.ivr')
    Node = pool.get('callcenter.ivr.node')
    values = parse_step(_body(request))
    menu = IVR.by_number(values['ivr'], company)
    if not menu:
        return _error(404, 'unknown_ivr', gettext(
                'crm_callcenter.msg_ivr_unknown', number=values['ivr']))
    node = None
    if values['node'] is not None:
        nodes = Node.search([
                ('id', '=', values['node']),
                ('ivr', '=', menu.id),
                ], limit=1)
        if not nodes:
            raise EventError(gettext('crm_callcenter.msg_ivr_node_unknown',
                    node=values['node'], number=menu.number),
                fields=['node'])
        node, = nodes
    try:
        answer = menu.step(values['call_id'], values['from_number'], node,
            values['digits'], values['attempt'], waited=values['waited'],
            application=application.id)
    except EventError:
        raise
    except UserError as exception:
        # A set-up the step cannot follow (a calendar without hours...)
        return _error(409, 'configuration', exception.message)
    if answer.get('play'):
        answer['play'] = request.root_url.rstrip('/') + answer['play']
    return _json(answer)


@app.route('/<database_name>/callcenter/ivr/audio/<int:node_id>',
    methods={'GET'})
@with_pool
@with_transaction()
@authenticated(signed=False)
def audio(request, pool, application, company, node_id):
    "The prompt audio of a node of the application's company"
    Node = pool.get('callcenter.ivr.node')
    nodes = Node.search([
            ('id', '=', node_id),
            ('ivr.company', '=', company),
            ], limit=1)
    data = nodes[0].prompt_audio if nodes else None
    if not data:
        return _error(404, 'not_found', gettext(
                'crm_callcenter.msg_ivr_audio_unknown', node=node_id))
    return Response(bytes(data), status=200, content_type='audio/wav',
        headers={'Cache-Control': 'private, max-age=86400'})
