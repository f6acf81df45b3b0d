"""Email to ticket: inbound_email's webhook hands each message to the
first matching rule; the helpdesk action makes a ticket of it or adds it
to the ticket it answers."""
import base64
import datetime as dt
import json
import logging
from email.message import EmailMessage

from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction

from . import mail
from .exceptions import InboundEmailError

logger = logging.getLogger(__name__)
ACTION = 'helpdesk.ticket|from_inbound_email'


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
    """The ticket the email goes to (None when it is ignored: automatic
    mail, our own mail, a loop); refuses malformed or oversized mail"""
    pool = Pool()
    Configuration = pool.get('helpdesk.configuration')
    config_ = Configuration(1)
    try:
        message = mail.parse(raw_message(email_),
            max_size=config_.max_size * 1024 * 1024)
    except mail.MailError as error:
        logger.warning("inbound email %s refused: %s: %s",
            email_.id, error.reason, error.detail)
        raise InboundEmailError(gettext(
                f'crm_helpdesk.msg_inbound_{error.reason}',
                detail=error.detail), reason=error.reason) from error
    support = (config_.support_address or '').lower()
    if message.automatic:
        logger.info("inbound email from %s ignored: %s",
            message.from_address, message.automatic)
        return None
    if support and message.from_address == support:
        logger.info("inbound email from the support address ignored")
        return None
    if _too_many(message.from_address, config_.loop_limit):
        logger.warning("inbound email from %s ignored: more than %s "
            "within an hour", message.from_address, config_.loop_limit)
        return None
    ticket = find_ticket(message, support)
    if ticket:
        ticket = _add_reply(ticket, message)
    else:
        ticket = _create_ticket(message, rule)
    return ticket


def _too_many(address, limit):
    "More messages than limit from this address within the last hour"
    pool = Pool()
    Message = pool.get('ir.chat.message')
    since = dt.datetime.now() - dt.timedelta(hours=1)
    return Message.search_count([
            ('email', '=', address),
            ('user', '=', None),
            ('create_date', '>=', since),
            ]) >= limit


def find_ticket(message, support_address):
    """The ticket a message answers: by the ids of the messages we sent,
    by the token of the reply-to address, by the reference in the
    subject (only from the ticket's own customer)"""
    pool = Pool()
    Ticket = pool.get('helpdesk.ticket')
    ChatMessage = pool.get('ir.chat.message')
    ticket = None
    ids = [*message.in_reply_to, *message.references]
    if ids:
        found = ChatMessage.search([
                ('reference', 'in', ids),
                ('channel.resource', 'like', 'helpdesk.ticket,%'),
                ], order=[('id', 'DESC')], limit=1)
        if found:
            ticket = found[0].channel.resource
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
    return ticket


def _post(ticket, message):
    "The customer's message in the ticket's conversation, with its files"
    content = message.reply_text.strip() or message.text.strip() or (
        message.subject or '-')
    return ticket.add_customer_message(message.from_address, content,
        [(a.name, a.data) for a in message.attachments],
        reference=message.message_id)


def _add_reply(ticket, message):
    if ticket.kind == 'cancelled':
        # A cancelled request stays closed: the answer opens a follow-up
        return _create_ticket(message, None, parent=ticket)
    _post(ticket, message)
    return ticket


def _create_ticket(message, rule, parent=None):
    pool = Pool()
    Ticket = pool.get('helpdesk.ticket')
    Party = pool.get('party.party')
    party = Party.find_by_contact(email=message.from_address)
    if not party:
        party = Party.create_contact_person(
            message.from_name or message.from_address,
            email=message.from_address)
    team = rule.helpdesk_team if rule else (parent.team if parent else None)
    type_ = rule.helpdesk_type if rule else (parent.type if parent else None)
    company = (team.company.id if team
        else Transaction().context.get('company'))
    if not company:
        raise InboundEmailError(gettext(
                'crm_helpdesk.msg_inbound_no_team'), reason='no_team')
    ticket, = Ticket.create([{
                'company': company,
                'subject': message.subject or gettext(
                    'crm_helpdesk.msg_no_subject'),
                'description': message.text,
                'party': party.id,
                'email': message.from_address,
                'team': team.id if team else None,
                'type': type_.id if type_ else None,
                'channel': 'email',
                'parent': parent.id if parent else None,
                }])
    _post(ticket, message)
    return ticket
