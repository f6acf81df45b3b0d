"""Outgoing webhooks: events of the CRM posted to other applications,
signed, from the queue, with retries"""
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from decimal import Decimal
from urllib.parse import urlsplit

from trytond.cache import Cache
from trytond import config
from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, fields)
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access

from .exceptions import WebhookValidationError
from .retry import RetrySchedule

# Seconds to wait before each retry; after the last one, failed
RETRY_DELAYS = [60, 5 * 60, 30 * 60, 2 * 60 * 60, 12 * 60 * 60]
RETRIES = RetrySchedule(dt.timedelta(seconds=s) for s in RETRY_DELAYS)
MAX_ATTEMPTS = RETRIES.max_attempts
USER_AGENT = 'Tryton-CRM-Webhook/1.0'
ERROR_SIZE = 2000


def sign(secret, timestamp, body):
    """The X-CRM-Signature of the body (bytes) sent at timestamp (int):
    sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the secret>"""
    message = str(timestamp).encode('ascii') + b'.' + body
    digest = hmac.new(
        secret.encode('utf-8'), message, hashlib.sha256).hexdigest()
    return f'sha256={digest}'


def verify(secret, timestamp, body, signature, tolerance=300, now=None):
    """What a receiver does (see doc/api.rst): True when the signature is
    right and the timestamp recent"""
    try:
        timestamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or '')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    "A redirect is an answer of the receiver, not a delivery"

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(repr(value))


class Webhook(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'crm.webhook'
    __string__ = "CRM Webhook"

    name = fields.Char("Name", required=True)
    url = fields.Char(
        "URL", required=True,
        help="Where the events are posted (https:// in production).")
    secret = fields.Char(
        "Secret", required=True, strip=False,
        help="Signs each delivery (X-CRM-Signature): "
        "give it to the receiver.")
    events = fields.MultiSelection([
            ('party_created', "Party Created"),
            ('party_changed', "Party Changed"),
            ('lead_created', "Lead Created"),
            ('lead_stage_changed', "Lead Stage Changed"),
            ('lead_won', "Lead Won"),
            ('lead_lost', "Lead Lost"),
            ], "Events", sort=False)
    company = fields.Many2One(
        'company.company', "Company", required=True,
        help="Lead events are sent for the leads of this company; "
        "party events for every party.")
    deliveries = fields.One2Many(
        'crm.webhook.delivery', 'webhook', "Deliveries", readonly=True)

    _subscriptions = Cache('crm.webhook.subscriptions', context=False)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_secret(cls):
        return secrets.token_hex(32)

    @classmethod
    def validate_fields(cls, webhooks, field_names):
        super().validate_fields(webhooks, field_names)
        if field_names is None or 'url' in field_names:
            for webhook in webhooks:
                parts = urlsplit(webhook.url or '')
                if parts.scheme not in {'http', 'https'} or not parts.hostname:
                    raise WebhookValidationError(gettext(
                            'crm_core.msg_webhook_url_invalid',
                            url=webhook.url, webhook=webhook.rec_name))

    @classmethod
    def on_modification(cls, mode, webhooks, field_names=None):
        super().on_modification(mode, webhooks, field_names=field_names)
        cls._subscriptions.clear()

    @classmethod
    def subscriptions(cls):
        """{event: [(webhook id, company id), ...]} of the active webhooks,
        cached: events cost nothing when nobody listens"""
        result = cls._subscriptions.get(None)
        if result is not None:
            return result
        result = defaultdict(list)
        with without_check_access():
            for webhook in cls.search([]):
                for event in webhook.events or ():
                    result[event].append((webhook.id, webhook.company.id))
        result = dict(result)
        cls._subscriptions.set(None, result)
        return result

    @classmethod
    def wants(cls, *events):
        subscriptions = cls.subscriptions()
        return any(e in subscriptions for e in events)

    @classmethod
    def emit(cls, event, records):
        """Queue a delivery of the event for each record to each webhook
        subscribed to it. A record with a company goes only to the
        webhooks of its company. Records give their data with
        get_webhook_payload()."""
        pool = Pool()
        Delivery = pool.get('crm.webhook.delivery')
        subscribers = cls.subscriptions().get(event)
        if not subscribers or not records:
            return []
        now = dt.datetime.now()
        to_create = []
        with without_check_access():
            for record in records:
                company = getattr(record, 'company', None)
                data = None
                for webhook_id, company_id in subscribers:
                    if company is not None and company.id != company_id:
                        continue
                    if data is None:
                        data = record.get_webhook_payload()
                    delivery_id = uuid.uuid4().hex
                    payload = json.dumps({
                            'id': delivery_id,
                            'event': event,
                            'created': now.isoformat() + 'Z',
                            'model': record.__name__,
                            'data': data,
                            }, default=_json_default, sort_keys=True)
                    to_create.append({
                            'webhook': webhook_id,
                            'uuid': delivery_id,
                            'event': event,
                            'resource': str(record),
                            'payload': payload,
                            })
            if not to_create:
                return []
            deliveries = Delivery.create(to_create)
            Delivery.__queue__.deliver(deliveries)
        return deliveries


class Delivery(ModelSQL, ModelView):
    __name__ = 'crm.webhook.delivery'
    __string__ = "CRM Webhook Delivery"

    webhook = fields.Many2One(
        'crm.webhook', "Webhook", required=True, ondelete='CASCADE',
        readonly=True)
    uuid = fields.Char(
        "UUID", required=True, readonly=True,
        help="Sent as X-CRM-Delivery: the same for every attempt.")
    event = fields.Selection('get_events', "Event", required=True,
        readonly=True)
    resource = fields.Reference(
        "Resource", selection='get_resources', readonly=True)
    payload = fields.Text("Payload", readonly=True)
    state = fields.Selection([
            ('pending', "Pending"),
            ('done', "Done"),
            ('failed', "Failed"),
            ], "State", required=True, readonly=True, sort=False)
    attempts = fields.Integer("Attempts", required=True, readonly=True)
    response_code = fields.Integer("Last Response Code", readonly=True)
    last_error = fields.Text("Last Error", readonly=True)
    next_attempt = fields.Timestamp("Next Attempt", readonly=True)
    date_done = fields.Timestamp("Delivered On", readonly=True)
    attempt_logs = fields.One2Many(
        'crm.webhook.delivery.attempt', 'delivery', "Attempts Log",
        readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.state, Index.Equality(cardinality='low')),
                    (t.next_attempt, Index.Range()),
                    where=t.state == 'pending'),
                Index(t, (t.webhook, Index.Range())),
                })
        cls._order = [('create_date', 'DESC'), ('id', 'DESC')]
        cls._buttons.update({
                'replay': {
                    'invisible': Eval('state') == 'pending',
                    'icon': 'tryton-refresh',
                    },
                })

    @classmethod
    def default_state(cls):
        return 'pending'

    @classmethod
    def default_attempts(cls):
        return 0

    @classmethod
    def default_uuid(cls):
        return uuid.uuid4().hex

    @classmethod
    def get_events(cls):
        pool = Pool()
        Webhook = pool.get('crm.webhook')
        return Webhook.fields_get(['events'])['events']['selection']

    @classmethod
    def get_resources(cls):
        pool = Pool()
        Model = pool.get('ir.model')
        models = ['party.party', 'crm.lead']
        return [(None, '')] + [
            (m, Model.get_name(m)) for m in models]

    def get_rec_name(self, name):
        return f'{self.webhook.rec_name} - {self.event} - {self.uuid}'

    @classmethod
    @ModelView.button
    def replay(cls, deliveries):
        "Send the deliveries again, with the same body and UUID"
        cls.write(deliveries, {
                'state': 'pending',
                'attempts': 0,
                'next_attempt': None,
                'date_done': None,
                })
        cls.__queue__.deliver(deliveries)

    @classmethod
    def deliver(cls, deliveries, force=False):
        """Post the pending deliveries that are due (all of them with
        force), each attempt logged; a failure is retried later"""
        pool = Pool()
        Attempt = pool.get('crm.webhook.delivery.attempt')
        cls.lock(deliveries)
        deliveries = cls.browse([d.id for d in deliveries])
        now = dt.datetime.now()
        logs, to_save, retry = [], [], []
        for delivery in deliveries:
            if (delivery.state != 'pending' or not delivery.webhook.active
                    or not delivery.payload):
                continue
            if (not force and delivery.next_attempt
                    and delivery.next_attempt > now):
                continue
            logs.append(delivery.post())
            to_save.append(delivery)
            if delivery.state == 'pending':
                retry.append(delivery)
        cls.save(to_save)
        Attempt.save(logs)
        # One task per delay
        RETRIES.queue(cls, 'deliver', retry)

    def post(self):
        "One attempt: return its log and update the delivery"
        pool = Pool()
        Attempt = pool.get('crm.webhook.delivery.attempt')
        body = self.payload.encode('utf-8')
        timestamp = int(time.time())
        request = urllib.request.Request(
            self.webhook.url, data=body, method='POST', headers={
                'Content-Type': 'application/json',
                'User-Agent': USER_AGENT,
                'X-CRM-Event': self.event,
                'X-CRM-Delivery': self.uuid,
                'X-CRM-Timestamp': str(timestamp),
                'X-CRM-Signature': sign(self.webhook.secret, timestamp, body),
                })
        timeout = config.getfloat('crm', 'webhook_timeout', default=10)
        code, error = None, None
        started = time.monotonic()
        try:
            with _opener.open(request, timeout=timeout) as response:
                code = response.status
                response.read(1024)
        except urllib.error.HTTPError as exception:
            code = exception.code
            error = exception.read(ERROR_SIZE).decode('utf-8', 'replace')
            error = f'HTTP {code}: {error or exception.reason}'
        except (urllib.error.URLError, OSError, ValueError) as exception:
            error = str(getattr(exception, 'reason', exception))
        duration = int((time.monotonic() - started) * 1000)
        now = dt.datetime.now()
        self.attempts += 1
        self.response_code = code
        if code is not None and 200 <= code < 300:
            self.state = 'done'
            self.date_done = now
            self.next_attempt = None
            self.last_error = None
        else:
            self.last_error = (error or f'HTTP {code}')[:ERROR_SIZE]
            self.next_attempt = RETRIES.next_attempt(self.attempts, now)
            if self.next_attempt is None:
                self.state = 'failed'
        return Attempt(
            delivery=self, date=now, number=self.attempts,
            response_code=code, error=self.last_error, duration=duration)

    @classmethod
    def retry_due(cls):
        "Cron: queue the pending deliveries whose next attempt has come"
        deliveries = cls.search([
                ('state', '=', 'pending'),
                *RETRIES.due(dt.datetime.now(), unset=True),
                ])
        if deliveries:
            cls.__queue__.deliver(deliveries)


class DeliveryAttempt(ModelSQL, ModelView):
    __name__ = 'crm.webhook.delivery.attempt'
    __string__ = "CRM Webhook Delivery Attempt"

    delivery = fields.Many2One(
        'crm.webhook.delivery', "Delivery", required=True,
        ondelete='CASCADE', readonly=True)
    number = fields.Integer("Number", readonly=True)
    date = fields.Timestamp("Date", required=True, readonly=True)
    response_code = fields.Integer("Response Code", readonly=True)
    error = fields.Text("Error", readonly=True)
    duration = fields.Integer("Duration", readonly=True, help="In ms.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('delivery')
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.delivery, Index.Range())))
        cls._order = [('date', 'DESC'), ('id', 'DESC')]


class Lead(metaclass=PoolMeta):
    __name__ = 'crm.lead'

    def get_webhook_payload(self):
        def ref(record):
            if record:
                return {'id': record.id, 'name': record.rec_name}
        return {
            'id': self.id,
            'name': self.name,
            'type': self.type,
            'state': self.state,
            'stage': ref(self.stage),
            'company': ref(self.company),
            'team': ref(self.team),
            'owner': ref(self.owner),
            'party': ref(self.party),
            'contact': ref(self.contact),
            'contact_name': self.contact_name,
            'company_name': self.company_name,
            'email': self.email,
            'phone': self.phone,
            'country': self.country.code if self.country else None,
            'expected_revenue': self.expected_revenue,
            'currency': self.currency.code if self.currency else None,
            'probability': self.probability,
            'expected_close': self.expected_close,
            'lost_reason': ref(self.lost_reason),
            'utm_campaign': (
                self.marketing_campaign.name
                if self.marketing_campaign else None),
            'utm_medium': (
                self.marketing_medium.name if self.marketing_medium else None),
            'utm_source': (
                self.marketing_source.name if self.marketing_source else None),
            'create_date': self.create_date,
            'write_date': self.write_date,
            }

    @classmethod
    def on_modification(cls, mode, leads, field_names=None):
        pool = Pool()
        Webhook = pool.get('crm.webhook')
        super().on_modification(mode, leads, field_names=field_names)
        if mode == 'create' and Webhook.wants('lead_created'):
            Webhook.emit('lead_created', leads)

    @classmethod
    def on_write(cls, leads, values):
        pool = Pool()
        Webhook = pool.get('crm.webhook')
        callbacks = super().on_write(leads, values)
        if (not values.keys() & {'stage', 'state'}
                or not Webhook.wants(
                    'lead_stage_changed', 'lead_won', 'lead_lost')):
            return callbacks
        before = {l.id: (l.stage.id, l.state) for l in leads}

        def emit():
            changed, won, lost = [], [], []
            for lead in cls.browse(list(before)):
                stage, state = before[lead.id]
                if lead.stage.id != stage:
                    changed.append(lead)
                if lead.state != state:
                    if lead.state == 'won':
                        won.append(lead)
                    elif lead.state == 'lost':
                        lost.append(lead)
            Webhook.emit('lead_stage_changed', changed)
            Webhook.emit('lead_won', won)
            Webhook.emit('lead_lost', lost)
        callbacks.append(emit)
        return callbacks


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    # Stored fields computed by the ORM or the data quality code: their
    # update is not a change made by someone
    _webhook_ignored_fields = {
        'code_alnum', 'code_digit', 'name_normalised',
        'quality_score', 'quality_issues'}

    def get_webhook_payload(self):
        return {
            'id': self.id,
            'name': self.name,
            'code': self.code,
            'lifecycle_status': self.lifecycle_status,
            'owner': (
                {'id': self.owner.id, 'name': self.owner.rec_name}
                if self.owner else None),
            'emails': [m.value for m in self.contact_mechanisms
                if m.type == 'email'],
            'phones': [m.value for m in self.contact_mechanisms
                if m.type in {'phone', 'mobile'}],
            'active': self.active,
            'create_date': self.create_date,
            'write_date': self.write_date,
            }

    @classmethod
    def on_modification(cls, mode, parties, field_names=None):
        pool = Pool()
        Webhook = pool.get('crm.webhook')
        super().on_modification(mode, parties, field_names=field_names)
        if mode == 'create' and Webhook.wants('party_created'):
            Webhook.emit('party_created', parties)
        elif (mode == 'write'
                and (field_names is None
                    or field_names - cls._webhook_ignored_fields)
                and Webhook.wants('party_changed')):
            Webhook.emit('party_changed', parties)


class Erase(metaclass=PoolMeta):
    __name__ = 'party.erase'

    def to_erase(self, party_id):
        pool = Pool()
        Delivery = pool.get('crm.webhook.delivery')
        return super().to_erase(party_id) + [
            (Delivery, ['OR',
                    ('resource', '=', f'party.party,{party_id}'),
                    ('resource.party', '=', party_id, 'crm.lead'),
                    ('resource.contact', '=', party_id, 'crm.lead'),
                    ], False,
                ['payload'], [None]),
            ]


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.extend([
                ('crm.webhook.delivery|retry_due',
                    "Retry Due Webhook Deliveries"),
                ('crm.lead.capture.request|clean',
                    "Forget Old Lead Capture Idempotency Keys"),
                ])
