"""Email to ticket: inbound_email's webhook hands each message to the
first matching rule. The helpdesk action checks it at once (malformed or
oversized mail is refused, automatic mail ignored) and leaves it pending;
a queue task then makes tickets of the pending messages, or adds them to
the tickets they answer, many at a time: one message at a time would cost
the ORM's work per record for every message, and a provider's burst of
mail waits on the webhook."""
import base64
import datetime as dt
import json
import logging
from collections import defaultdict
from email.message import EmailMessage

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Index, ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction

from crm_core.savepoint import savepoint

from . import mail
from .exceptions import InboundEmailError

logger = logging.getLogger(__name__)
ACTION = 'helpdesk.ticket|from_inbound_email'
# Pending emails made into tickets in one go
BATCH = 100


class Email(metaclass=PoolMeta):
    __name__ = 'inbound.email'

    helpdesk_state = fields.Selection([
            (None, ""),
            ('pending', "Pending"),
            ('done', "Done"),
            ('ignored', "Ignored"),
            ('failed', "Failed"),
            ], "Helpdesk State", readonly=True, sort=False,
        help="Where email to ticket is with this email.")
    helpdesk_error = fields.Text("Helpdesk Error", readonly=True,
        states={'invisible': ~Eval('helpdesk_error')})

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(
            Index(t, (t.id, Index.Range()),
                where=t.helpdesk_state == 'pending'))

    @classmethod
    @ModelView.button
    def process(cls, emails):
        "An email that failed to become a ticket is tried again"
        failed = [e for e in emails if e.helpdesk_state == 'failed']
        if failed:
            cls.write(failed, {
                    'helpdesk_state': 'pending',
                    'helpdesk_error': None,
                    })
            process(cls.browse(failed))
        super().process(emails)

    @classmethod
    def claim_helpdesk_pending(cls, limit):
        """The oldest pending emails, locked for this transaction: another
        worker takes the next ones"""
        transaction = Transaction()
        table = cls.__table__()
        cursor = transaction.connection.cursor()
        query = table.select(table.id,
            where=table.helpdesk_state == 'pending',
            order_by=[table.id.asc], limit=limit)
        if transaction.database.has_select_for():
            For = transaction.database.get_select_for_skip_locked()
            query.for_ = For('UPDATE')
        cursor.execute(*query)
        return cls.browse([i for i, in cursor])


class Rule(metaclass=PoolMeta):
    __name__ = 'inbound.email.rule'

    helpdesk_team = fields.Many2One(
        'crm.team', "Support Team", ondelete='RESTRICT',
        states={'invisible': Eval('action') != ACTION},
        help="The team of the tickets this rule creates.")
    helpdesk_type = fields.Many2One(
        'helpdesk.type', "Ticket Type", ondelete='RESTRICT',
        states={'invisible': Eval('action') != ACTION})

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.action.selection.append(
            (ACTION, "Create or Update Helpdesk Ticket"))

    @classmethod
    def helpdesk_process(cls, rules):
        "Queue task: the pending emails become tickets"
        Pool().get('helpdesk.ticket').process_inbound_emails()


def raw_message(email_):
    "The RFC 5322 bytes of an inbound email, whatever the provider sent"
    data = email_.data
    if email_.data_type == 'raw':
        return bytes(data)
    payload = json.loads(data)
    raw = {
        'mailchimp': lambda: payload.get('raw_msg'),
        'mailpace': lambda: payload.get('raw'),
        'sendgrid': lambda: payload.get('email'),
        }.get(email_.data_type, lambda: None)()
    if raw:
        return raw.encode() if isinstance(raw, str) else raw
    if email_.data_type == 'postmark':
        return _postmark_message(payload)
    raise InboundEmailError(gettext(
            'crm_helpdesk.msg_inbound_malformed',
            detail=f"no message in the {email_.data_type} payload"),
        reason='malformed')


def _postmark_message(payload):
    "Postmark sends fields, not the message: rebuild it"
    msg = EmailMessage()
    for header in payload.get('Headers', []):
        if header.get('Name') in {'Message-ID', 'In-Reply-To', 'References',
                'Auto-Submitted', 'Precedence', 'Date'}:
            msg[header['Name']] = header['Value']
    msg['From'] = payload.get('From', '')
    msg['To'] = payload.get('To', '')
    if payload.get('Cc'):
        msg['Cc'] = payload['Cc']
    msg['Subject'] = payload.get('Subject', '')
    if payload.get('MessageID') and 'Message-ID' not in msg:
        msg['Message-ID'] = f"<{payload['MessageID']}>"
    msg.set_content(payload.get('TextBody') or '')
    if payload.get('HtmlBody'):
        msg.add_alternative(payload['HtmlBody'], subtype='html')
    for attachment in payload.get('Attachments', []):
        maintype, _, subtype = (attachment.get('ContentType')
            or 'application/octet-stream').partition('/')
        msg.add_attachment(base64.b64decode(attachment['Content']),
            maintype=maintype, subtype=subtype or 'octet-stream',
            filename=attachment.get('Name'))
    return msg.as_bytes()


def receive(email_, rule):
    """Check an email in the webhook: refuse malformed or oversized mail,
    ignore automatic mail and our own; leave the rest pending for
    process()"""
    pool = Pool()
    Configuration = pool.get('helpdesk.configuration')
    config_ = Configuration(1)
    message = _parse(email_, config_)
    if not (rule.helpdesk_team or Transaction().context.get('company')):
        raise InboundEmailError(gettext(
                'crm_helpdesk.msg_inbound_no_team'), reason='no_team')
    support = (config_.support_address or '').lower()
    if message.automatic:
        logger.info("inbound email from %s ignored: %s",
            message.from_address, message.automatic)
        email_.helpdesk_state = 'ignored'
        return None
    if support and message.from_address == support:
        logger.info("inbound email from the support address ignored")
        email_.helpdesk_state = 'ignored'
        return None
    email_.helpdesk_state = 'pending'
    rule.__class__.__queue__.helpdesk_process([rule])
    return None


def _parse(email_, config_):
    try:
        return mail.parse(raw_message(email_),
            max_size=config_.max_size * 1024 * 1024)
    except mail.MailError as error:
        logger.warning("inbound email %s refused: %s: %s",
            email_.id, error.reason, error.detail)
        raise InboundEmailError(gettext(
                f'crm_helpdesk.msg_inbound_{error.reason}',
                detail=error.detail), reason=error.reason) from error


def process(emails):
    """Make tickets of pending emails or add them to the tickets they
    answer, all at once; when that fails, one by one, and an email that
    still fails is set failed with its error: nothing is half-made"""
    pool = Pool()
    Email = pool.get('inbound.email')
    emails = [e for e in emails if e.helpdesk_state == 'pending']
    if not emails:
        return
    if len(emails) > 1:
        try:
            with savepoint('helpdesk_inbound'):
                _process(emails)
            return
        except backend.DatabaseOperationalError:
            raise
        except Exception:
            logger.info("%s inbound emails processed one by one",
                len(emails), exc_info=True)
    for email_ in Email.browse(emails):
        try:
            with savepoint('helpdesk_inbound_one'):
                _process([email_])
        except backend.DatabaseOperationalError:
            raise
        except Exception as exception:
            logger.exception("inbound email %s failed", email_.id)
            Email.write([email_], {
                    'helpdesk_state': 'failed',
                    'helpdesk_error': getattr(exception, 'message', None)
                    or repr(exception),
                    })


def _process(emails):
    pool = Pool()
    Configuration = pool.get('helpdesk.configuration')
    Email = pool.get('inbound.email')
    Ticket = pool.get('helpdesk.ticket')
    config_ = Configuration(1)
    support = (config_.support_address or '').lower()
    items = [(e, _parse(e, config_)) for e in emails]
    results = {}
    # A sender writing more than the limit within an hour is a mail loop
    flooding = _flooding([m for _, m in items], config_.loop_limit)
    kept = []
    for email_, message in items:
        if message.from_address in flooding:
            logger.warning("inbound email from %s ignored: more than %s "
                "within an hour", message.from_address, config_.loop_limit)
            results[email_] = None
        else:
            kept.append((email_, message))
    tickets = find_tickets([m for _, m in kept], support)
    new, replies = [], []
    for (email_, message), ticket in zip(kept, tickets):
        if ticket and ticket.kind != 'cancelled':
            replies.append((email_, message, ticket))
        else:
            # A cancelled request stays closed: the answer opens a follow-up
            new.append((email_, message, ticket))
    created = _create_tickets(new)
    for (email_, _, _), ticket in zip(new, created):
        results[email_] = ticket
    for email_, _, ticket in replies:
        results[email_] = ticket
    Ticket.add_customer_messages([
            (ticket, message.from_address, _content(message),
                [(a.name, a.data) for a in message.attachments],
                message.message_id)
            for (_, message, _), ticket in zip(new, created)]
        + [(ticket, message.from_address, _content(message),
                [(a.name, a.data) for a in message.attachments],
                message.message_id)
            for _, message, ticket in replies])
    # The acknowledgement answers the customer's message: sent after it
    Ticket.notify_customer(created, 'created')
    to_write = []
    for email_, ticket in results.items():
        to_write.extend(([email_], {
                    'result': str(ticket) if ticket else None,
                    'helpdesk_state': 'done' if ticket else 'ignored',
                    }))
    Email.write(*to_write)


def _flooding(messages, limit):
    """The senders of messages with more than limit messages within the
    last hour, those of messages counted"""
    pool = Pool()
    Message = pool.get('ir.chat.message')
    since = dt.datetime.now() - dt.timedelta(hours=1)
    counts = defaultdict(int)
    for message in messages:
        counts[message.from_address] += 1
    flooding = set()
    for address, count in counts.items():
        if count >= limit or Message.search_count([
                    ('email', '=', address),
                    ('user', '=', None),
                    ('create_date', '>=', since),
                    ]) + count > limit:
            flooding.add(address)
    return flooding


def _content(message):
    return message.reply_text.strip() or message.text.strip() or (
        message.subject or '-')


def find_tickets(messages, support_address):
    """The ticket each message answers, or None: by the ids of the
    messages we sent, by the token of the reply-to address, by the
    reference in the subject (only from the ticket's own customer)"""
    pool = Pool()
    Ticket = pool.get('helpdesk.ticket')
    ChatMessage = pool.get('ir.chat.message')
    ids = {i for m in messages for i in [*m.in_reply_to, *m.references]}
    # The newest of our messages each id names
    by_id = {}
    if ids:
        for found in ChatMessage.search([
                    ('reference', 'in', list(ids)),
                    ('channel.resource', 'like', 'helpdesk.ticket,%'),
                    ], order=[('id', 'ASC')]):
            by_id[found.reference] = found
    tickets = []
    for message in messages:
        ticket = None
        found = [by_id[i] for i in [*message.in_reply_to, *message.references]
            if i in by_id]
        if found:
            ticket = max(found, key=lambda m: m.id).channel.resource
        if not ticket and support_address:
            addresses = [*message.to, *message.cc, *message.delivered_to]
            for token in mail.plus_tokens(addresses, support_address):
                ticket = Ticket.from_reply_token(token)
                if ticket:
                    break
        if not ticket:
            numbers = mail.subject_references(message.subject)
            if numbers:
                for candidate in Ticket.search([('number', 'in', numbers)]):
                    if candidate.from_customer(message.from_address):
                        ticket = candidate
                        break
        # A reply to a merged ticket goes to the one it was merged into
        while ticket and ticket.merged_into:
            ticket = ticket.merged_into
        tickets.append(ticket)
    return tickets


def _create_tickets(new):
    """The tickets of new requests [(email, message, parent)]: the sender
    is matched to a party by email, a prospect is created when none"""
    pool = Pool()
    Ticket = pool.get('helpdesk.ticket')
    Party = pool.get('party.party')
    if not new:
        return []
    addresses = {m.from_address.lower() for _, m, _ in new}
    by_contact = Party._parties_by_contact(emails=addresses)
    parties = {a: min(ids) for a, ids in by_contact.items() if ids}
    missing = {}
    for _, message, _ in new:
        address = message.from_address.lower()
        if address not in parties and address not in missing:
            missing[address] = {
                'name': (message.from_name or message.from_address).strip(),
                'contact_mechanisms': [('create', [{
                                'type': 'email',
                                'value': message.from_address,
                                }])],
                }
    if missing:
        with Transaction().set_context(party_duplicate_warning=False):
            created = Party.create(list(missing.values()))
        parties.update(zip(missing, (p.id for p in created)))
    vlist = []
    for email_, message, parent in new:
        rule = email_.rule if not parent else None
        team = rule.helpdesk_team if rule else (parent.team if parent else None)
        type_ = rule.helpdesk_type if rule else (
            parent.type if parent else None)
        company = (team.company.id if team
            else Transaction().context.get('company'))
        if not company:
            raise InboundEmailError(gettext(
                    'crm_helpdesk.msg_inbound_no_team'), reason='no_team')
        vlist.append({
                'company': company,
                'subject': message.subject or gettext(
                    'crm_helpdesk.msg_no_subject'),
                'description': message.text,
                'party': parties[message.from_address.lower()],
                'email': message.from_address,
                'team': team.id if team else None,
                'type': type_.id if type_ else None,
                'channel': 'email',
                'parent': parent.id if parent else None,
                })
    # The acknowledgement is sent once the customer's message is posted
    with Transaction().set_context(helpdesk_silent=True):
        return Ticket.create(vlist)
