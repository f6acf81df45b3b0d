"""Web lead capture: leads posted by web site forms, with a per-site key
(a res.user.application of kind 'crm_lead_capture')"""
import datetime as dt
import hashlib
import json
import re
from collections import Counter
from urllib.parse import urlsplit

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import (
    Transaction, inactive_records, without_check_access)

from .contact import clean_email, e164
from .exceptions import CaptureOriginError

APPLICATION = 'crm_lead_capture'
# Fields a form may post, with their maximum length
FIELDS = {
    'title': 200,
    'contact_name': 200,
    'company_name': 200,
    'email': 254,
    'phone': 40,
    'country': 2,
    'message': 5000,
    'utm_campaign': 100,
    'utm_medium': 100,
    'utm_source': 100,
    }
UTM_FIELDS = {
    'utm_campaign': ('marketing.campaign', 'marketing_campaign'),
    'utm_medium': ('marketing.medium', 'marketing_medium'),
    'utm_source': ('marketing.source', 'marketing_source'),
    }
_UTM_NAME = re.compile(r'^[\w][\w .+:/-]*$')
_CONTROL = re.compile(r'[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
IDEMPOTENCY_KEY_SIZE = 255
# Below this score, a posted contact stays a raw lead
LINK_SCORE = 80
ORIGIN_INVISIBLE = {'invisible': Eval('application') != APPLICATION}


def normalise_origin(origin):
    """The origin as browsers send it (scheme://host[:port], lower case),
    or raise ValueError"""
    origin = (origin or '').strip().rstrip('/').lower()
    parts = urlsplit(origin)
    if (parts.scheme not in {'http', 'https'} or not parts.hostname
            or parts.path or parts.query or parts.fragment
            or parts.username or parts.password):
        raise ValueError(origin)
    parts.port  # raises ValueError for a bad port
    return origin


def request_hash(values):
    "A digest of the posted values, to recognise a retried post"
    data = json.dumps(values, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode('utf-8')).hexdigest()


class FieldErrors(Exception):
    "The posted fields in error: a list of {field, error, message}"

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


class UserApplication(metaclass=PoolMeta):
    __name__ = 'res.user.application'

    crm_origins = fields.Text(
        "Allowed Origins", states=ORIGIN_INVISIBLE,
        help="The web sites allowed to post leads from a browser, "
        "one origin per line (e.g. https://www.example.com).")
    crm_team = fields.Many2One(
        'crm.team', "Team", ondelete='RESTRICT', states=ORIGIN_INVISIBLE,
        help="The team that receives the leads (round robin if set).")
    crm_campaign = fields.Many2One(
        'marketing.campaign', "Campaign", ondelete='RESTRICT',
        states=ORIGIN_INVISIBLE,
        help="Used when the form posts no utm_campaign.")
    crm_medium = fields.Many2One(
        'marketing.medium', "Medium", ondelete='RESTRICT',
        states=ORIGIN_INVISIBLE,
        help="Used when the form posts no utm_medium.")
    crm_source = fields.Many2One(
        'marketing.source', "Source", ondelete='RESTRICT',
        states=ORIGIN_INVISIBLE,
        help="Used when the form posts no utm_source.")
    crm_success_url = fields.Char(
        "Success URL", states=ORIGIN_INVISIBLE,
        help="Where a plain HTML form post is redirected once the lead "
        "is created (JSON posts always get a JSON answer).")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.application.selection.append(
            (APPLICATION, "CRM Lead Capture"))

    @classmethod
    def view_attributes(cls):
        return super().view_attributes() + [
            ('//separator[@id="crm_lead_capture"]', 'states',
                ORIGIN_INVISIBLE),
            ]

    @classmethod
    def validate_fields(cls, applications, field_names):
        super().validate_fields(applications, field_names)
        if field_names is None or field_names & {
                'crm_origins', 'crm_success_url'}:
            for application in applications:
                for line in (application.crm_origins or '').splitlines():
                    if not line.strip():
                        continue
                    try:
                        normalise_origin(line)
                    except ValueError:
                        raise CaptureOriginError(gettext(
                                'crm_core.msg_capture_origin_invalid',
                                origin=line.strip()))
                url = application.crm_success_url
                if url and urlsplit(url).scheme not in {'http', 'https'}:
                    raise CaptureOriginError(gettext(
                            'crm_core.msg_capture_success_url_invalid',
                            url=url))

    @property
    def crm_allowed_origins(self):
        origins = set()
        for line in (self.crm_origins or '').splitlines():
            try:
                origins.add(normalise_origin(line))
            except ValueError:
                continue
        return origins

    def crm_origin_allowed(self, origin):
        try:
            return normalise_origin(origin) in self.crm_allowed_origins
        except ValueError:
            return False


class CaptureRequest(ModelSQL, ModelView):
    """A lead capture post made with an Idempotency-Key header: a retry
    with the same key gets the same answer and creates nothing"""
    __name__ = 'crm.lead.capture.request'
    __string__ = "CRM Lead Capture Request"

    application = fields.Many2One(
        'res.user.application', "Application", required=True,
        ondelete='CASCADE', readonly=True)
    key = fields.Char("Idempotency Key", required=True, readonly=True)
    request_hash = fields.Char("Request Hash", readonly=True)
    lead = fields.Many2One(
        'crm.lead', "Lead", ondelete='SET NULL', readonly=True)
    status = fields.Integer("Status", readonly=True)
    response = fields.Text("Response", readonly=True)
    date = fields.Timestamp("Date", required=True, readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('application_key_unique', Unique(t, t.application, t.key),
                'crm_core.msg_capture_request_key_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.date, Index.Range())))
        cls._order = [('date', 'DESC'), ('id', 'DESC')]

    @classmethod
    def default_date(cls):
        return dt.datetime.now()

    @classmethod
    def find(cls, application, key):
        records = cls.search([
                ('application', '=', application.id),
                ('key', '=', key),
                ], limit=1)
        return records[0] if records else None

    @classmethod
    def clean(cls, days=30):
        "Forget the keys older than the days: a client retries for minutes"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        limit = dt.datetime.now() - dt.timedelta(days=days)
        cursor.execute(*table.delete(where=table.date < limit))


def error_result(status, error, message, **extra):
    return {
        'status': status,
        'body': {'error': error, 'message': message, **extra},
        }


def invalid_result(errors):
    return error_result(400, 'invalid',
        gettext('crm_core.msg_capture_invalid'), fields=errors)


def item_error(kind):
    "The result of a post refused by the route before processing"
    if kind == 'content_type':
        return error_result(415, 'unsupported_media_type',
            gettext('crm_core.msg_capture_content_type'))
    elif kind == 'idempotency_key':
        return invalid_result([{
                    'field': 'Idempotency-Key', 'error': 'invalid',
                    'message': gettext(
                        'crm_core.msg_capture_idempotency_key_invalid',
                        size=IDEMPOTENCY_KEY_SIZE),
                    }])
    return invalid_result([{
                'field': None, 'error': 'invalid',
                'message': gettext('crm_core.msg_capture_body_invalid'),
                }])


def validate(data, countries):
    """Return the clean values of the posted data (a dict of str) or raise
    FieldErrors. countries maps the upper-case ISO codes to records."""
    errors = []

    def error(field, code, message_id, **kwargs):
        errors.append({
                'field': field,
                'error': code,
                'message': gettext(
                    'crm_core.' + message_id, field=field, **kwargs),
                })

    values = {}
    if not isinstance(data, dict):
        raise FieldErrors([{
                    'field': None, 'error': 'invalid',
                    'message': gettext('crm_core.msg_capture_body_invalid'),
                    }])
    for name, value in data.items():
        if name not in FIELDS:
            error(name, 'unknown', 'msg_capture_field_unknown')
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            error(name, 'invalid', 'msg_capture_field_type')
            continue
        value = value.strip()
        if not value:
            continue
        if len(value) > FIELDS[name]:
            error(name, 'too_long', 'msg_capture_field_too_long',
                size=FIELDS[name])
            continue
        if _CONTROL.search(value):
            error(name, 'invalid', 'msg_capture_field_type')
            continue
        values[name] = value

    if not (values.get('contact_name') or values.get('company_name')):
        if not any(e['field'] in {'contact_name', 'company_name'}
                for e in errors):
            error('contact_name', 'required', 'msg_capture_name_required')
    if not (values.get('email') or values.get('phone')):
        if not any(e['field'] in {'email', 'phone'} for e in errors):
            error('email', 'required', 'msg_capture_contact_required')

    country = None
    if values.get('country'):
        country = countries.get(values['country'].upper())
        if country:
            values['country'] = country.code
        else:
            error('country', 'invalid', 'msg_capture_country_invalid')
            del values['country']
    if values.get('email'):
        try:
            values['email'] = clean_email(values['email'])
        except ValueError:
            error('email', 'invalid', 'msg_capture_email_invalid')
    if values.get('phone'):
        try:
            values['phone'] = e164(
                values['phone'], country.code if country else None)
        except ValueError:
            error('phone', 'invalid', 'msg_capture_phone_invalid')
    for name in UTM_FIELDS:
        if values.get(name) and not _UTM_NAME.match(values[name]):
            error(name, 'invalid', 'msg_capture_utm_invalid')
    if errors:
        raise FieldErrors(errors)
    return values


def _countries(items):
    pool = Pool()
    Country = pool.get('country.country')
    codes = {i['data']['country'].strip().upper() for i in items
        if isinstance(i.get('data'), dict)
        and isinstance(i['data'].get('country'), str)
        and i['data']['country'].strip()}
    if not codes:
        return {}
    return {c.code: c for c in Country.search([('code', 'in', list(codes))])}


def _best_parties(rows):
    "For each clean row, the id of the existing party to link, or None"
    pool = Pool()
    Party = pool.get('party.party')
    queries = [{
            'name': r.get('company_name') or r.get('contact_name'),
            'emails': [r['email']] if r.get('email') else [],
            'phones': [r['phone']] if r.get('phone') else [],
            } for r in rows]
    with without_check_access():
        if hasattr(Party, 'match_bulk'):
            matches = Party.match_bulk(queries)
        elif hasattr(Party, 'duplicate_candidates'):
            matches = []
            for query in queries:
                found = Party.duplicate_candidates(limit=1, **query)
                matches.append(
                    (found[0][0].id, *found[0][1:]) if found else None)
        else:
            matches = [None] * len(rows)
    return [m[0] if m and m[1] >= LINK_SCORE else None for m in matches]


def _utm_records(rows):
    "{(model, name): id} of the UTM names, created when missing"
    pool = Pool()
    records = {}
    with without_check_access(), inactive_records():
        for name, (model, _) in UTM_FIELDS.items():
            Parameter = pool.get(model)
            # Stored lower-cased, as Parameter.from_name does, but looked
            # up in one query per model: it runs for every batch of posts
            values = sorted({r[name].strip().lower() for r in rows
                    if r.get(name)} - {v for m, v in records if m == model})
            if not values:
                continue
            for record in Parameter.search([('name', 'in', values)]):
                records[model, record.name] = record.id
            missing = [v for v in values if (model, v) not in records]
            if missing:
                for record in Parameter.create(
                        [{'name': v} for v in missing]):
                    records[model, record.name] = record.id
    return records


def _applications(items):
    pool = Pool()
    Application = pool.get('res.user.application')
    keys = list({i['key'] for i in items if i.get('key')})
    if not keys:
        return {}
    return {a.key: a for a in Application.search([
                ('key', 'in', keys),
                ('application', '=', APPLICATION),
                ('state', '=', 'validated'),
                ])}


def _lead_values(application, values, party_id, utm, owner_id, stage_id):
    team = application.crm_team
    user = application.user
    company = team.company if team else user.company
    title = values.get('title') or gettext(
        'crm_core.msg_capture_lead_title',
        name=values.get('company_name') or values.get('contact_name'))
    lead = {
        'name': title[:200],
        'company': company.id if company else None,
        'team': team.id if team else None,
        # Set here: the round robin of the team, never the key's user
        'owner': owner_id,
        'contact_name': values.get('contact_name'),
        'company_name': values.get('company_name'),
        'email': values.get('email'),
        'phone': values.get('phone'),
        'description': values.get('message'),
        'party': party_id,
        }
    # None: the lead's own default (the first open stage)
    lead['stage'] = stage_id
    lead['country'] = values['country_id'] if values.get('country') else None
    for name, (model, field) in UTM_FIELDS.items():
        if values.get(name):
            lead[field] = utm[model, values[name].strip().lower()]
        else:
            record = getattr(application, 'crm_' + name[4:])
            lead[field] = record.id if record else None
    return lead


def _idempotency_lock(pairs):
    "Serialise the posts of the same idempotency keys (PostgreSQL)"
    if backend.name != 'postgresql' or not pairs:
        return
    cursor = Transaction().connection.cursor()
    lock_ids = set()
    for application_id, key in pairs:
        digest = hashlib.sha256(f'{application_id}:{key}'.encode()).digest()
        lock_ids.add(int.from_bytes(digest[:8], 'big', signed=True))
    for lock_id in sorted(lock_ids):
        cursor.execute('SELECT pg_advisory_xact_lock(%s)', (lock_id,))


def process(items):
    """Answer the posts, creating their leads in the current transaction
    with a constant number of queries for the whole list.

    An item is a dict: key, origin (None when same origin or absent),
    data (the posted dict), error (what the route refused: 'body',
    'content_type' or 'idempotency_key'),
    idempotency_key, digest. Return for each item a result dict: status,
    body and, for a created lead, success_url (of the application)."""
    pool = Pool()
    Request = pool.get('crm.lead.capture.request')
    Lead = pool.get('crm.lead')
    Team = pool.get('crm.team')
    results = [None] * len(items)

    applications = _applications(items)
    todo = []
    for index, item in enumerate(items):
        application = applications.get(item.get('key'))
        if not application or not application.user:
            results[index] = error_result(401, 'unauthorized',
                gettext('crm_core.msg_capture_key_invalid'))
        elif (item.get('origin')
                and not application.crm_origin_allowed(item['origin'])):
            results[index] = error_result(403, 'origin_refused', gettext(
                    'crm_core.msg_capture_origin_refused',
                    origin=item['origin']))
        elif item.get('error'):
            results[index] = item_error(item['error'])
        else:
            todo.append((index, item, application))

    # Idempotency: a key seen before (or earlier in this list) replays
    idempotent = {(a.id, i['idempotency_key'])
        for _, i, a in todo if i.get('idempotency_key')}
    previous = {}
    if idempotent:
        _idempotency_lock(sorted(idempotent))
        for request in Request.search([
                    ('application', 'in',
                        list({a for a, _ in idempotent})),
                    ('key', 'in', list({k for _, k in idempotent})),
                    ]):
            previous[request.application.id, request.key] = request
    first_of = {}
    followers = []
    creating = []
    for index, item, application in todo:
        pair = (application.id, item.get('idempotency_key'))
        if item.get('idempotency_key'):
            if pair in previous:
                request = previous[pair]
                if request.request_hash != item['digest']:
                    results[index] = error_result(
                        422, 'idempotency_key_reused', gettext(
                            'crm_core.msg_capture_idempotency_key_reused'))
                else:
                    results[index] = {
                        'status': request.status or 201,
                        'body': json.loads(request.response or 'null') or {
                            'id': request.lead.id if request.lead else None},
                        'success_url': application.crm_success_url,
                        'replayed': True,
                        }
                continue
            if pair in first_of:
                followers.append((index, item, first_of[pair]))
                continue
            first_of[pair] = (index, item)
        creating.append((index, item, application))

    # Validation
    countries = _countries([i for _, i, _ in creating])
    valid = []
    for index, item, application in creating:
        try:
            values = validate(item['data'], countries)
        except FieldErrors as exception:
            results[index] = invalid_result(exception.errors)
            continue
        if values.get('country'):
            values['country_id'] = countries[values['country']].id
        valid.append((index, item, application, values))

    if valid:
        rows = [v for *_, v in valid]
        parties = _best_parties(rows)
        utm = _utm_records(rows)
        turns = Counter(a.crm_team.id for _, _, a, _ in valid
            if a.crm_team and a.crm_team.round_robin)
        owners = {t: iter(Team(t).next_owners(n)) for t, n in turns.items()}
        stages = {}
        groups = {}
        for (index, item, application, values), party_id in zip(
                valid, parties):
            team = application.crm_team
            team_id = team.id if team else None
            owner_id = next(owners.get(team_id, iter(())), None)
            if team_id not in stages:
                stage = Lead.first_open_stage(team_id)
                stages[team_id] = stage.id if stage else None
            lead = _lead_values(
                application, values, party_id, utm, owner_id,
                stages[team_id])
            group = groups.setdefault(
                (application.user.id, lead['company']), [])
            group.append((index, item, application, lead))
        to_record = []
        transaction = Transaction()
        for (user_id, company_id), group in groups.items():
            with transaction.set_user(user_id), \
                    transaction.set_context(company=company_id), \
                    without_check_access():
                leads = Lead.create([g[3] for g in group])
            for (index, item, application, _), lead in zip(group, leads):
                body = {'id': lead.id}
                results[index] = {
                    'status': 201, 'body': body,
                    'success_url': application.crm_success_url,
                    }
                if item.get('idempotency_key'):
                    to_record.append({
                            'application': application.id,
                            'key': item['idempotency_key'],
                            'request_hash': item['digest'],
                            'lead': lead.id,
                            'status': 201,
                            'response': json.dumps(body),
                            })
        if to_record:
            with without_check_access():
                Request.create(to_record)

    for index, item, (first, first_item) in followers:
        if item['digest'] != first_item['digest']:
            results[index] = error_result(422, 'idempotency_key_reused',
                gettext('crm_core.msg_capture_idempotency_key_reused'))
        elif results[first]['status'] == 201:
            results[index] = {**results[first], 'replayed': True}
        else:
            results[index] = results[first]
    return results


class Erase(metaclass=PoolMeta):
    __name__ = 'party.erase'

    def to_erase(self, party_id):
        pool = Pool()
        Request = pool.get('crm.lead.capture.request')
        return super().to_erase(party_id) + [
            (Request, ['OR',
                    ('lead.party', '=', party_id),
                    ('lead.contact', '=', party_id),
                    ], False,
                ['request_hash', 'response'],
                [None, None]),
            ]
