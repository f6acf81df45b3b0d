"""Marketing consent per email address, and the suppression list.

Every marketing send asks `Consent.blocked` (or its SQL form) first: an
address opted out anywhere (a campaign's unsubscribe link, a mailing
list, by hand) or suppressed (bounced, complained) gets no marketing
email from any campaign or list. Transactional mail (tickets, quotes)
does not ask."""
import datetime as dt
import email
import email.policy
import re

from sql.functions import Lower

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool, PoolMeta
from trytond.tools import grouped_slice
from trytond.tools.email_ import normalize_email
from trytond.transaction import Transaction

BOUNCE_ACTION = 'marketing.suppression|from_inbound_email'
# A permanent failure in a delivery status notification (RFC 3464)
FAILED = re.compile(r'^\s*Action:\s*failed', re.I | re.M)
RECIPIENT = re.compile(
    r'^\s*(?:Final|Original)-Recipient:\s*(?:rfc822;)?\s*<?([^\s>]+@[^\s>]+)',
    re.I | re.M)


def clean(address):
    return normalize_email(address or '').strip().lower() or None


class AddressMixin:
    "A record about an email address, kept in its cleaned form, dated"
    __slots__ = ()
    email = fields.Char("Email", required=True)
    date = fields.DateTime("Date", required=True)

    @classmethod
    def default_date(cls):
        return dt.datetime.now()

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if values.get('email'):
            values['email'] = clean(values['email'])
        return values


class Consent(AddressMixin, ModelSQL, ModelView):
    __name__ = 'marketing.consent'
    __string__ = "Marketing Consent"

    party = fields.Many2One('party.party', "Party", ondelete='CASCADE')
    status = fields.Selection([
            ('opted_in', "Opted In"),
            ('opted_out', "Opted Out"),
            ], "Status", required=True, sort=False)
    method = fields.Selection([
            ('form', "Web Form"),
            ('double_opt_in', "Double Opt-In"),
            ('unsubscribe', "Unsubscribe Link"),
            ('mailing_list', "Mailing List"),
            ('complaint', "Spam Complaint"),
            ('import', "Import"),
            ('manual', "By Hand"),
            ], "How", required=True, sort=False)
    source = fields.Char("Source",
        help="Where it was given or withdrawn: campaign, list, page.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('email_unique', Unique(t, t.email),
                'crm_marketing.msg_consent_email_unique'),
            ]
        cls._sql_indexes.add(Index(t, (t.party, Index.Range())))
        cls._order.insert(0, ('date', 'DESC'))

    @classmethod
    def default_method(cls):
        return 'manual'

    @classmethod
    def record(cls, emails, status, method, source=None, parties=None):
        """Record the consent given or withdrawn for these addresses (the
        latest wins); parties maps an address to its party"""
        pool = Pool()
        Party = pool.get('party.party')
        parties = parties or {}
        emails = {clean(e) for e in emails} - {None}
        if not emails:
            return
        now = dt.datetime.now()
        existing = {c.email: c for c in cls.search(
                [('email', 'in', list(emails))])}
        to_write, to_create = [], []
        for address in sorted(emails):
            values = {'status': status, 'method': method, 'source': source,
                'date': now}
            party = parties.get(address)
            if party is None and address not in existing:
                party = Party.find_by_contact(email=address)
            if party:
                values['party'] = int(party)
            if address in existing:
                to_write.extend(([existing[address]], values))
            else:
                to_create.append(dict(values, email=address))
        if to_write:
            cls.write(*to_write)
        if to_create:
            cls.create(to_create)

    @classmethod
    def blocked_sql(cls, column):
        """The SQL condition true for addresses that may not receive
        marketing: opted out or suppressed (or not opted in when the
        configuration asks for an opt-in)"""
        pool = Pool()
        Suppression = pool.get('marketing.suppression')
        Configuration = pool.get('crm.configuration')
        consent = cls.__table__()
        suppression = Suppression.__table__()
        address = Lower(column)
        condition = (
            address.in_(consent.select(consent.email,
                    where=consent.status == 'opted_out'))
            | address.in_(suppression.select(suppression.email)))
        config_ = Configuration.get_singleton()
        if config_ and config_.marketing_opt_in_required:
            condition |= ~address.in_(consent.select(consent.email,
                    where=consent.status == 'opted_in'))
        return condition

    @classmethod
    def blocked(cls, emails):
        "The addresses among these that may not receive marketing"
        pool = Pool()
        Suppression = pool.get('marketing.suppression')
        Configuration = pool.get('crm.configuration')
        emails = sorted({clean(e) for e in emails} - {None})
        if not emails:
            return set()
        consents = {c.email: c.status for c in cls.search(
                [('email', 'in', emails)])}
        blocked = {e for e, s in consents.items() if s == 'opted_out'}
        blocked |= {s.email for s in Suppression.search(
                [('email', 'in', emails)])}
        config_ = Configuration.get_singleton()
        if config_ and config_.marketing_opt_in_required:
            blocked |= {e for e in emails if consents.get(e) != 'opted_in'}
        return blocked


class Suppression(AddressMixin, ModelSQL, ModelView):
    __name__ = 'marketing.suppression'
    __string__ = "Suppressed Address"

    reason = fields.Selection([
            ('bounce', "Bounce"),
            ('complaint', "Complaint"),
            ('manual', "By Hand"),
            ], "Reason", required=True, sort=False)
    detail = fields.Text("Detail")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('email_unique', Unique(t, t.email),
                'crm_marketing.msg_suppression_email_unique'),
            ]
        cls._order.insert(0, ('date', 'DESC'))

    @classmethod
    def default_reason(cls):
        return 'manual'

    @classmethod
    def on_modification(cls, mode, suppressions, field_names=None):
        super().on_modification(mode, suppressions, field_names=field_names)
        if mode in {'create', 'write'}:
            cls._undeliverable(
                [s.email for s in suppressions if s.reason == 'bounce'])

    @classmethod
    def suppress(cls, emails, reason, detail=None):
        "Suppress these addresses (once each); the records"
        emails = {clean(e) for e in emails} - {None}
        existing = cls.search([('email', 'in', list(emails))])
        new = emails - {s.email for s in existing}
        created = cls.create([{'email': e, 'reason': reason,
                    'detail': detail} for e in sorted(new)])
        return existing + created

    @classmethod
    def _undeliverable(cls, emails):
        """A bounced address is marked undeliverable on the parties (which
        lowers their quality score) and its members bounced"""
        pool = Pool()
        Mechanism = pool.get('party.contact_mechanism')
        Member = pool.get('marketing.campaign.member')
        if not emails:
            return
        mechanism = Mechanism.__table__()
        cursor = Transaction().connection.cursor()
        ids = []
        for sub in grouped_slice(sorted(emails)):
            cursor.execute(*mechanism.select(mechanism.id,
                    where=(mechanism.type == 'email')
                    & Lower(mechanism.value_compact).in_(list(sub))))
            ids.extend(i for i, in cursor)
        mechanisms = Mechanism.search([
                ('id', 'in', ids), ('undeliverable', '!=', True)])
        if mechanisms:
            Mechanism.write(mechanisms, {'undeliverable': True})
        members = Member.search([
                ('email', 'in', list(emails)),
                ('sent', '!=', None),
                ])
        Member.mark(members, 'bounced')

    @classmethod
    def from_inbound_email(cls, email_, rule):
        """The inbound_email action: a bounce (delivery status
        notification) or a spam complaint (feedback report) suppresses
        the address it is about"""
        pool = Pool()
        Consent = pool.get('marketing.consent')
        kind, addresses, detail = parse_report(email_)
        if not addresses:
            return None
        if kind == 'complaint':
            Consent.record(addresses, 'opted_out', 'complaint',
                source=gettext('crm_marketing.msg_complaint_source'))
        suppressions = cls.suppress(addresses, kind, detail=detail)
        return suppressions[0] if suppressions else None


def parse_report(email_):
    """('bounce' or 'complaint', the addresses, the detail) of an inbound
    email; no address when it is neither a permanent failure nor a
    complaint"""
    if email_.data_type == 'raw':
        message = email.message_from_bytes(
            bytes(email_.data), policy=email.policy.default)
        report_type = (message.get_param('report-type') or '').lower()
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == 'multipart':
                continue
            payload = part.get_payload(decode=True)
            if payload is None:
                # message/* parts: their text
                payload = part.as_bytes()
            parts.setdefault(part.get_content_type(), []).append(
                payload.decode('utf-8', 'replace'))
        if report_type == 'feedback-report' or 'message/feedback-report' in (
                parts):
            text = '\n'.join(parts.get('message/feedback-report', []))
            found = re.findall(
                r'^\s*Original-Rcpt-To:\s*<?([^\s>]+@[^\s>]+)', text,
                re.I | re.M)
            if not found:
                text = '\n'.join(parts.get('message/rfc822', [])
                    + parts.get('text/rfc822-headers', []))
                found = re.findall(r'^To:\s*(?:.*<)?([^\s<>]+@[^\s>]+)',
                    text, re.I | re.M)
            return 'complaint', found[:1], text[:2000]
        status = '\n'.join(parts.get('message/delivery-status', []))
        failed = message.get_all('X-Failed-Recipients') or []
    else:
        values = email_.as_dict()
        status = values.get('text') or ''
        headers = values.get('headers') or {}
        failed = [headers['X-Failed-Recipients']] if headers.get(
            'X-Failed-Recipients') else []
    addresses = []
    if status and FAILED.search(status):
        addresses = RECIPIENT.findall(status)
    addresses += [a.strip() for f in failed for a in str(f).split(',')]
    return 'bounce', list(dict.fromkeys(a for a in addresses if a)), (
        status[:2000] or None)


class InboundEmailRule(metaclass=PoolMeta):
    __name__ = 'inbound.email.rule'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.action.selection.append(
            (BOUNCE_ACTION, "Suppress Bounced or Complaining Address"))

