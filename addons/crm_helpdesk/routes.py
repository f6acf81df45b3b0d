"""Routes of crm_helpdesk: the customer's status page of a ticket and the
JSON errors of the email webhook.

The status page needs no login: the link of the ticket's emails is signed
(Ticket.status_url / Ticket.from_link), it expires and names its ticket.
Its holder sees the ticket's state and public conversation (never the
internal notes), answers with a message or files, and rates a solved
ticket. Every page is rendered here, every value escaped, in the language
of the ticket's customer.

    GET  /<db>/helpdesk/status/<id>/<expires>/<signature>           page
    POST /<db>/helpdesk/status/<id>/<expires>/<signature>           reply
    POST /<db>/helpdesk/status/<id>/<expires>/<signature>/rate      rating
    GET  /<db>/helpdesk/status/<id>/<expires>/<signature>/file/<n>  file

A rating can be changed as long as the ticket stays solved; once it is
reopened or cancelled the rating form is gone and a rating is refused.
"""
import html
import json
import logging
import os
import re
import unicodedata
from functools import wraps
from urllib.parse import quote

from werkzeug.exceptions import (
    HTTPException, NotFound, RequestEntityTooLarge)
from werkzeug.wrappers import Response

import trytond.config as config
from trytond.exceptions import UserError
from trytond.i18n import gettext
from trytond.modules.inbound_email import routes as inbound_routes
from trytond.pool import Pool
from trytond.protocols.wrappers import (
    set_max_request_size, with_pool, with_transaction)
from trytond.tools import timezone as tz
from trytond.transaction import Transaction
from trytond.wsgi import app

from .exceptions import InboundEmailError

logger = logging.getLogger(__name__)

STATUS_PATH = (
    '/<database_name>/helpdesk/status/<int:ticket_id>/<int:expires>'
    '/<signature>')
# Ticket.status_url signs with the first 32 hex digits of an HMAC-SHA256
SIGNATURE = re.compile(r'^[0-9a-f]{32}$')
# The body of a reply: as large as trytond lets an email in; each file is
# then held to the helpdesk configuration's maximum size
MAX_REQUEST = config.getint(
    'inbound_email', 'max_size',
    default=config.getint('request', 'max_size'))
# Text fields of the forms, in characters
MAX_TEXT = 100_000
MAX_FILENAME = 200

HEADERS = {
    'Cache-Control': 'no-store',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': (
        "default-src 'none'; style-src 'unsafe-inline'; "
        "form-action 'self'"),
    }
NOTICES = {
    'reply': 'crm_helpdesk.msg_status_reply_sent',
    'rating': 'crm_helpdesk.msg_status_rating_sent',
    }
STYLE = """
:root { color-scheme: light; --accent: #2a6f97; --muted: #5f6b73;
  --line: #d9dee2; --soft: #f4f6f8; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--soft); color: #1d2428;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 46rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
header .number { margin: 0; color: var(--muted); font-size: .9rem; }
h1 { margin: .2rem 0 1rem; font-size: 1.5rem; line-height: 1.25;
  overflow-wrap: anywhere; }
h2 { margin: 2rem 0 .75rem; font-size: 1.15rem; }
.facts { display: grid; grid-template-columns: max-content 1fr;
  gap: .25rem 1rem; margin: 0; padding: 1rem; background: #fff;
  border: 1px solid var(--line); border-radius: 6px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.kind { display: inline-block; padding: 0 .5rem; border-radius: 1rem;
  background: #e3edf3; font-weight: 600; }
.kind-waiting { background: #fff1cc; }
.kind-solved { background: #dcf2e2; }
.kind-cancelled { background: #eceff1; color: var(--muted); }
.notice, .error { padding: .75rem 1rem; border-radius: 6px;
  margin: 0 0 1rem; }
.notice { background: #dcf2e2; }
.error { background: #fde2e1; }
.messages { list-style: none; margin: 0; padding: 0; }
.message { margin: 0 0 .75rem; padding: .75rem 1rem; background: #fff;
  border: 1px solid var(--line); border-radius: 6px; }
.message.customer { border-left: 4px solid var(--accent); }
.meta { margin: 0 0 .35rem; color: var(--muted); font-size: .9rem; }
.author { font-weight: 600; color: #1d2428; }
.content { white-space: pre-wrap; overflow-wrap: anywhere; }
.empty { color: var(--muted); }
.files { padding-left: 1.2rem; }
.files a { color: var(--accent); overflow-wrap: anywhere; }
.size { color: var(--muted); font-size: .9rem; }
form { padding: 1rem; background: #fff; border: 1px solid var(--line);
  border-radius: 6px; }
label { display: block; margin: 0 0 .35rem; font-weight: 600; }
textarea { width: 100%; min-height: 7rem; padding: .5rem; font: inherit;
  border: 1px solid var(--line); border-radius: 4px; }
input[type=file] { margin: .25rem 0 1rem; }
fieldset { border: 0; margin: 0 0 1rem; padding: 0; }
legend { font-weight: 600; margin-bottom: .35rem; padding: 0; }
.scale { display: flex; gap: .75rem; flex-wrap: wrap; }
.scale label { display: inline; font-weight: normal; }
.hint { color: var(--muted); font-size: .9rem; margin: .25rem 0 0; }
.field { margin-bottom: 1rem; }
button { padding: .5rem 1.25rem; border: 0; border-radius: 4px;
  background: var(--accent); color: #fff; font: inherit; cursor: pointer; }
button:focus-visible, textarea:focus-visible, input:focus-visible {
  outline: 2px solid var(--accent); outline-offset: 2px; }
"""


def _(message, **variables):
    "The translated text of one of the module's messages"
    return gettext(f'crm_helpdesk.{message}', **variables)


def _e(value):
    return html.escape(str(value if value is not None else ''), quote=True)


def _secure(response):
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


def _html(title, body, status=200, language=None):
    "A whole page, with its style inline and the security headers"
    language = language or Transaction().language or 'en'
    page = (
        '<!DOCTYPE html>\n'
        f'<html lang="{_e(language.replace("_", "-"))}"><head>'
        '<meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f'<title>{_e(title)}</title><style>{STYLE}</style></head>'
        f'<body><main>{body}</main></body></html>\n')
    return _secure(Response(page, status=status, mimetype='text/html'))


def _error(status, message, language=None):
    text = _(message)
    return _html(text, f'<p class="error" role="alert">{_e(text)}</p>',
        status=status, language=language)


def _redirect(location):
    return _secure(Response(status=303, headers={'Location': location}))


def _visitor_language(request, pool):
    "The language of a page that has no ticket: the browser's, if we have it"
    Lang = pool.get('ir.lang')
    codes = Lang.get_translatable_languages()
    best = request.accept_languages.best_match(
        [c.replace('_', '-') for c in codes])
    if best:
        return best.replace('-', '_')
    return Transaction().language


def _invalid_link(request, pool):
    "404, without telling whether the ticket exists"
    language = _visitor_language(request, pool)
    with Transaction().set_context(language=language):
        return _error(404, 'msg_status_link_invalid', language=language)


def _ticket(pool, ticket_id, expires, signature):
    "The ticket of the link, or None when it is not a valid link"
    Configuration = pool.get('helpdesk.configuration')
    Ticket = pool.get('helpdesk.ticket')
    if not SIGNATURE.match(signature):
        return None
    if not Configuration(1).secret:
        # No link was ever made; from_link would make the key
        return None
    return Ticket.from_link(ticket_id, expires, signature)


def _language(ticket):
    return ticket.chat_language(audience='public') or Transaction().language


def _base(request, ticket_id, expires, signature):
    "The path of the status page of the link"
    database = quote(Transaction().database.name, safe='')
    return (f'{request.script_root}/{database}/helpdesk/status/'
        f'{ticket_id}/{expires}/{signature}')


def with_ticket(func):
    """Find the ticket of the link (404 page otherwise) and run func in the
    language and company of the ticket. A refusal of the models (UserError)
    rolls the transaction back and answers a 400 page."""
    @wraps(func)
    def wrapper(request, pool, ticket_id, expires, signature, **kwargs):
        if not _activated(pool.database_name):
            raise NotFound()
        Ticket = pool.get('helpdesk.ticket')
        ticket = _ticket(pool, ticket_id, expires, signature)
        if ticket is None:
            return _invalid_link(request, pool)
        language = _language(ticket)
        with Transaction().set_context(
                language=language, company=ticket.company.id):
            # Read again in the language of the customer
            ticket = Ticket(ticket.id)
            base = _base(request, ticket_id, expires, signature)
            try:
                return func(request, pool, ticket, base, **kwargs)
            except UserError as exception:
                # Nothing half-made: the page answers, the transaction
                # commits nothing
                transaction = Transaction()
                transaction.rollback()
                transaction.tasks.clear()
                logger.warning("status page of ticket %s refused %s: %s",
                    ticket_id, request.method, exception.message)
                return _html(exception.message,
                    f'<p class="error" role="alert">'
                    f'{_e(exception.message)}</p>', status=400)
    return wrapper


def _activated(database_name):
    "Whether crm_helpdesk is activated in the database"
    try:
        Pool(database_name).get('helpdesk.configuration')
    except KeyError:
        return False
    return True


# The page ---------------------------------------------------------------

def _datetime(pool, ticket, value):
    "The date and time in the company's timezone, as the language writes"
    Lang = pool.get('ir.lang')
    if not value:
        return ''
    timezone = ticket.company.timezone if ticket.company else None
    if timezone:
        value = value.replace(tzinfo=tz.UTC).astimezone(
            tz.get_tzinfo(timezone)).replace(tzinfo=None)
    lang = Lang.get()
    return lang.strftime(value, lang.date + ' %H:%M')


def _iso(value):
    "The UTC datetime of the database for a <time> element"
    return value.replace(microsecond=0).isoformat() + 'Z'


def _author(pool, ticket, message):
    Configuration = pool.get('helpdesk.configuration')
    if message.user and message.user.id:
        return message.user.name or message.user.login, False
    if message.email:
        if ticket.from_customer(message.email):
            return _('msg_status_you'), True
        return message.email, False
    return Configuration(1).support_name or _('msg_status_support'), False


def _messages(pool, ticket):
    Message = pool.get('ir.chat.message')
    return Message.search([
            ('channel.resource', '=', str(ticket)),
            ('audience', '=', 'public'),
            ], order=[('create_date', 'ASC'), ('id', 'ASC')])


def _attachments(pool, ticket):
    Attachment = pool.get('ir.attachment')
    return Attachment.search([
            ('resource', '=', str(ticket)),
            ('type', '=', 'data'),
            ('helpdesk_public', '=', True),
            ], order=[('create_date', 'ASC'), ('id', 'ASC')])


def _size(value):
    value = value or 0
    for unit in ['B', 'KB', 'MB']:
        if value < 1024 or unit == 'MB':
            return f'{value:.0f} {unit}' if unit == 'B' else (
                f'{value:.1f} {unit}')
        value /= 1024


def _render_conversation(pool, ticket):
    items = []
    for message in _messages(pool, ticket):
        author, customer = _author(pool, ticket, message)
        when = message.create_date
        items.append(
            f'<li class="message{" customer" if customer else ""}">'
            f'<p class="meta"><span class="author">{_e(author)}</span> '
            f'&middot; <time datetime="{_e(_iso(when))}">'
            f'{_e(_datetime(pool, ticket, when))}</time></p>'
            f'<div class="content">{_e(message.content)}</div></li>')
    if not items:
        return f'<p class="empty">{_e(_("msg_status_no_message"))}</p>'
    return f'<ol class="messages">{"".join(items)}</ol>'


def _render_files(pool, ticket, base):
    attachments = _attachments(pool, ticket)
    if not attachments:
        return ''
    items = ''.join(
        f'<li><a href="{_e(f"{base}/file/{a.id}")}" download>'
        f'{_e(a.name)}</a> <span class="size">({_e(_size(a.data_size))})'
        '</span></li>'
        for a in attachments)
    return (f'<section><h2>{_e(_("msg_status_files"))}</h2>'
        f'<ul class="files">{items}</ul></section>')


def _render_reply(pool, ticket, base):
    Configuration = pool.get('helpdesk.configuration')
    if ticket.merged_into:
        # Its conversation went on in the other request, by email
        return ''
    if ticket.kind == 'cancelled':
        return (f'<p class="empty">{_e(_("msg_status_reply_cancelled"))}'
            '</p>')
    max_size = Configuration(1).max_size
    reopens = ''
    if ticket.kind == 'solved':
        reopens = f'<p class="hint">{_e(_("msg_status_reply_reopens"))}</p>'
    return (
        f'<section><h2>{_e(_("msg_status_reply"))}</h2>{reopens}'
        f'<form method="post" action="{_e(base)}" '
        'enctype="multipart/form-data">'
        '<div class="field">'
        f'<label for="message">{_e(_("msg_status_reply_message"))}</label>'
        f'<textarea id="message" name="message" maxlength="{MAX_TEXT}">'
        '</textarea></div>'
        '<div class="field">'
        f'<label for="file">{_e(_("msg_status_reply_file"))}</label>'
        '<input type="file" id="file" name="file" multiple>'
        f'<p class="hint">{_e(_("msg_status_file_limit", size=max_size))}'
        '</p></div>'
        f'<button type="submit">{_e(_("msg_status_send"))}</button>'
        '</form></section>')


def _render_rating(ticket, base):
    if ticket.kind != 'solved':
        return ''
    current = ticket.rating
    parts = ['<section>',
        f'<h2>{_e(_("msg_status_rate"))}</h2>']
    if current:
        parts.append(f'<p>{_e(_("msg_status_rated", rating=current))}</p>')
        if ticket.rating_comment:
            parts.append(
                f'<div class="content">{_e(ticket.rating_comment)}</div>')
    button = 'msg_status_rate_change' if current else 'msg_status_rate_send'
    scale = ''.join(
        f'<label><input type="radio" name="rating" value="{i}" required'
        f'{" checked" if current == str(i) else ""}> {i}</label>'
        for i in range(1, 6))
    parts.append(
        f'<form method="post" action="{_e(base + "/rate")}">'
        '<fieldset>'
        f'<legend>{_e(_("msg_status_rating"))}</legend>'
        f'<div class="scale">{scale}</div>'
        f'<p class="hint">{_e(_("msg_status_rating_scale"))}</p>'
        '</fieldset>'
        '<div class="field">'
        f'<label for="comment">{_e(_("msg_status_rating_comment"))}</label>'
        f'<textarea id="comment" name="comment" maxlength="{MAX_TEXT}">'
        f'{_e(ticket.rating_comment if current else "")}</textarea></div>'
        f'<button type="submit">{_e(_(button))}</button>'
        '</form></section>')
    return ''.join(parts)


def render_status(request, pool, ticket, base):
    "The status page of the ticket"
    Ticket = pool.get('helpdesk.ticket')
    kinds = dict(Ticket.fields_get(['kind'])['kind']['selection'])
    kind = ticket.kind
    parts = [
        '<header>',
        f'<p class="number">{_e(_("msg_status_number", number=ticket.number))}'
        '</p>',
        f'<h1>{_e(ticket.subject)}</h1>',
        '</header>',
        ]
    notice = NOTICES.get(request.args.get('done'))
    if notice:
        parts.append(
            f'<p class="notice" role="status">{_e(gettext(notice))}</p>')
    parts.append(
        '<dl class="facts">'
        f'<dt>{_e(_("msg_status_state"))}</dt>'
        f'<dd><span class="kind kind-{_e(kind)}">{_e(kinds.get(kind, ""))}'
        '</span></dd>'
        f'<dt>{_e(_("msg_status_stage"))}</dt>'
        f'<dd>{_e(ticket.stage.name if ticket.stage else "")}</dd>'
        f'<dt>{_e(_("msg_status_opened"))}</dt>'
        f'<dd>{_e(_datetime(pool, ticket, ticket.opened))}</dd>'
        '</dl>')
    if ticket.merged_into:
        merged = _('msg_status_merged', number=ticket.merged_into.number)
        parts.append(f'<p class="notice">{_e(merged)}</p>')
    parts.append(
        f'<section><h2>{_e(_("msg_status_conversation"))}</h2>'
        f'{_render_conversation(pool, ticket)}</section>')
    parts.append(_render_files(pool, ticket, base))
    parts.append(_render_rating(ticket, base))
    parts.append(_render_reply(pool, ticket, base))
    title = _('msg_status_title', number=ticket.number,
        subject=ticket.subject)
    return _html(title, ''.join(parts), language=_language(ticket))


@app.route(STATUS_PATH, methods={'GET'})
@with_pool
@with_transaction()
@with_ticket
def status(request, pool, ticket, base):
    return render_status(request, pool, ticket, base)


# Reply ------------------------------------------------------------------

def _filename(name):
    "The base name the browser sent, without control characters"
    name = (name or '').replace('\\', '/').rsplit('/', 1)[-1]
    name = ''.join(
        c for c in name if unicodedata.category(c)[0] != 'C').strip()
    if name in {'', '.', '..'}:
        name = 'file'
    if len(name) > MAX_FILENAME:
        stem, ext = os.path.splitext(name)
        name = stem[:MAX_FILENAME - len(ext[:20])] + ext[:20]
    return name


def _posted_files(request, max_bytes):
    """The files of the form as [(name, data)]; None when one is larger than
    max_bytes"""
    files = []
    for storage in request.files.getlist('file'):
        if not storage or not storage.filename:
            # The empty part of a file input left alone
            continue
        # From the start: a retried transaction reads the files again
        storage.stream.seek(0)
        data = storage.stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            return None
        files.append((_filename(storage.filename), data))
    return files


def _customer_email(ticket):
    if ticket.email:
        return ticket.email
    for party in filter(None, [ticket.contact, ticket.party]):
        email = party.email
        if email:
            return email


@app.route(STATUS_PATH, methods={'POST'})
@set_max_request_size(MAX_REQUEST)
@with_pool
@with_transaction()
@with_ticket
def reply(request, pool, ticket, base):
    "The customer's answer: a public message and its files"
    Configuration = pool.get('helpdesk.configuration')
    if ticket.kind == 'cancelled':
        return _error(409, 'msg_status_reply_cancelled')
    email = _customer_email(ticket)
    if not email:
        return _error(409, 'msg_status_reply_no_email')
    max_bytes = Configuration(1).max_size * 1024 * 1024
    try:
        content = (request.form.get('message') or '').strip()
        files = _posted_files(request, max_bytes)
    except RequestEntityTooLarge:
        files = None
    if files is None:
        logger.info("status page reply of ticket %s refused: file too large",
            ticket.id)
        return _error(413, 'msg_status_file_too_large')
    if not content and not files:
        return _error(400, 'msg_status_reply_empty')
    if len(content) > MAX_TEXT:
        return _error(413, 'msg_status_reply_too_long')
    if not content:
        content = _('msg_status_reply_files',
            files=', '.join(name for name, _data in files))

    ticket.add_customer_message(email, content, files)
    return _redirect(f'{base}?done=reply')


# Rating -----------------------------------------------------------------

@app.route(STATUS_PATH + '/rate', methods={'POST'})
@with_pool
@with_transaction()
@with_ticket
def rate(request, pool, ticket, base):
    "The customer's rating of a solved ticket; it may change while solved"
    Ticket = pool.get('helpdesk.ticket')
    rating = (request.form.get('rating') or '').strip()
    comment = (request.form.get('comment') or '').strip()
    if rating not in {str(i) for i in range(1, 6)}:
        return _error(400, 'msg_status_rating_invalid')
    if len(comment) > MAX_TEXT:
        return _error(413, 'msg_status_reply_too_long')
    if ticket.kind != 'solved':
        return _error(409, 'msg_status_rating_not_solved')
    Ticket.write([ticket], {
            'rating': rating,
            'rating_comment': comment or None,
            })
    return _redirect(f'{base}?done=rating')


# Files ------------------------------------------------------------------

@app.route(STATUS_PATH + '/file/<int:attachment_id>', methods={'GET'})
@with_pool
@with_transaction()
@with_ticket
def download(request, pool, ticket, base, attachment_id):
    "A file of the ticket, and only of that ticket"
    Attachment = pool.get('ir.attachment')
    attachments = Attachment.search([
            ('id', '=', attachment_id),
            ('resource', '=', str(ticket)),
            ('type', '=', 'data'),
            ('helpdesk_public', '=', True),
            ])
    if not attachments:
        return _invalid_link(request, pool)
    attachment, = attachments
    response = Response(
        bytes(attachment.data or b''), mimetype='application/octet-stream')
    response.headers.set(
        'Content-Disposition', 'attachment',
        **_disposition_names(attachment.name))
    return _secure(response)


def _disposition_names(name):
    "The filename parameters of Content-Disposition (RFC 6266)"
    name = _filename(name)
    try:
        name.encode('ascii')
    except UnicodeEncodeError:
        simple = unicodedata.normalize('NFKD', name).encode(
            'ascii', 'ignore').decode('ascii') or 'file'
        return {
            'filename': simple,
            'filename*': "UTF-8''" + quote(name, safe="!#$&+-.^_`|~"),
            }
    return {'filename': name}


# Webhook errors ---------------------------------------------------------
# inbound_email's webhook runs the rules in its transaction: when the
# helpdesk refuses an email (InboundEmailError), the transaction is rolled
# back, no inbound.email is stored and the sender gets a JSON error.

INBOUND_PATH = '/inbound_email/inbox/'
INBOUND_STATUS = {'too_large': 413}


def _inbound_json(reason, message, status):
    return Response(
        json.dumps({'error': reason, 'message': message}),
        status=status, content_type='application/json')


@app.error_handler
def inbound_email_error(app, request, exception):
    "The JSON answer of the webhook to an email it refuses"
    if INBOUND_PATH not in (request.path or ''):
        return None
    if isinstance(exception, InboundEmailError):
        reason = exception.reason
    elif isinstance(exception, UserError):
        reason = 'invalid'
    else:
        return None
    status = INBOUND_STATUS.get(reason, 400)
    logger.warning("inbound email from %s refused (%s): %s",
        request.remote_addr, reason, exception.message)
    return _inbound_json(reason, exception.message, status)


def _raise_inbound_errors(endpoint):
    """trytond's with_pool turns a UserError into an HTTP 400 that the WSGI
    app returns without calling the error handlers: raise it again for
    them, and name trytond's own size limit too_large"""
    @wraps(endpoint)
    def wrapper(request, database_name, *args, **kwargs):
        try:
            return endpoint(request, database_name, *args, **kwargs)
        except RequestEntityTooLarge as exception:
            if not _activated(database_name):
                raise
            with Transaction().start(database_name, 0, readonly=True):
                message = gettext('crm_helpdesk.msg_inbound_too_large',
                    detail=f'more than {request.max_content_length} bytes')
            raise InboundEmailError(message, reason='too_large') \
                from exception
        except HTTPException as exception:
            if (isinstance(exception.description, UserError)
                    and _activated(database_name)):
                raise exception.description from exception
            raise
    wrapper.raises_inbound_errors = True
    return wrapper


def _wrap_inbound_endpoint():
    url_map = app.url_map
    for rule in list(url_map.iter_rules()):
        if (rule.endpoint is inbound_routes.inbound_email
                and not getattr(
                    rule.endpoint, 'raises_inbound_errors', False)):
            old = rule.endpoint
            rule.endpoint = _raise_inbound_errors(old)
            # werkzeug finds the rules of an endpoint there when it matches
            rules = url_map._rules_by_endpoint.pop(old, [])
            url_map._rules_by_endpoint.setdefault(
                rule.endpoint, []).extend(rules)


_wrap_inbound_endpoint()
