"""What crm_marketing adds to the sending, tracking and unsubscribing of
marketing_automation and marketing_email: consent is asked before every
marketing send, and the campaign members follow what happens to their
email."""
from email.utils import getaddresses

from trytond.pool import Pool, PoolMeta
from trytond.model import dualmethod
from trytond.tools.email_ import format_address
from trytond.transaction import Transaction


def _address(recipient):
    "The bare address of a formatted recipient"
    found = getaddresses([recipient or ''])
    return found[0][1] if found and found[0][1] else None


class Activity(metaclass=PoolMeta):
    __name__ = 'marketing.automation.activity'

    def _email_recipient(self, record):
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Consent = pool.get('marketing.consent')
        if isinstance(record, Member):
            recipient = (format_address(record.email, record.party.rec_name)
                if record.email else None)
        else:
            recipient = super()._email_recipient(record)
        address = _address(recipient)
        if not address:
            return None
        blocked = Transaction().context.get('_marketing_blocked')
        if blocked is None:
            blocked = Consent.blocked([address])
        if address.lower() in blocked:
            return None
        return recipient


class Record(metaclass=PoolMeta):
    __name__ = 'marketing.automation.record'

    @dualmethod
    def block(cls, records):
        "Unsubscribing from a campaign opts the address out of marketing"
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Consent = pool.get('marketing.consent')
        super().block(records)
        by_source = {}
        members = []
        for record in records:
            target = record.record
            if isinstance(target, Member):
                members.append(target)
                address = target.email
                source = target.campaign.rec_name
                party = target.party
            else:
                party = getattr(target, 'marketing_party', None)
                mechanism = (party.contact_mechanism_get('email')
                    if party else None)
                address = mechanism.email if mechanism else None
                source = record.scenario.rec_name
            if address:
                by_source.setdefault(source, {})[address.lower()] = party
        for source, parties in by_source.items():
            Consent.record(list(parties), 'opted_out', 'unsubscribe',
                source=source, parties=parties)
        Member.mark(members, 'unsubscribed')


class RecordActivity(metaclass=PoolMeta):
    __name__ = 'marketing.automation.record.activity'

    @classmethod
    def do(cls, record_activities, **kwargs):
        """Send with the batch's blocked addresses read once, then mark the
        members whose email left"""
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Consent = pool.get('marketing.consent')
        members = [ra.record.record for ra in record_activities
            if ra.activity.action == 'send_email'
            and isinstance(ra.record.record, Member)]
        blocked = Consent.blocked([m.email for m in members if m.email])
        context = Transaction().context
        if '_marketing_blocked' in context:
            blocked |= context['_marketing_blocked']
        with Transaction().set_context(_marketing_blocked=blocked):
            super().do(record_activities, **kwargs)
        Member.mark([m for m in members
                if m.email and m.email.lower() not in blocked], 'sent')

    @classmethod
    def on_email_opened(cls, record_activities):
        super().on_email_opened(record_activities)
        cls._mark_members(record_activities, 'opened')

    @classmethod
    def on_email_clicked(cls, record_activities):
        super().on_email_clicked(record_activities)
        cls._mark_members(record_activities, 'clicked')

    @classmethod
    def _mark_members(cls, record_activities, step):
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Member.mark([ra.record.record for ra in record_activities
                if isinstance(ra.record.record, Member)], step)


class EmailListEmail(metaclass=PoolMeta):
    __name__ = 'marketing.email'

    @classmethod
    def on_modification(cls, mode, emails, field_names=None):
        """Subscribing to a list (double opt-in) is a consent, leaving one
        withdraws it"""
        pool = Pool()
        Consent = pool.get('marketing.consent')
        super().on_modification(mode, emails, field_names=field_names)
        if mode == 'write' and 'active' in (field_names or ()):
            for active, status, method in [
                    (True, 'opted_in', 'double_opt_in'),
                    (False, 'opted_out', 'mailing_list')]:
                addresses = {}
                for email_ in emails:
                    if bool(email_.active) == active:
                        addresses.setdefault(email_.list_.rec_name, []
                            ).append(email_.email)
                for source, values in addresses.items():
                    Consent.record(values, status, method, source=source)


class EmailMessage(metaclass=PoolMeta):
    __name__ = 'marketing.email.message'

    @classmethod
    def process(cls, messages=None, emails=None, smtpd_datamanager=None):
        "A mailing skips the addresses that may not receive marketing"
        pool = Pool()
        Consent = pool.get('marketing.consent')
        if emails is not None:
            blocked = Consent.blocked([e.email for e in emails])
            return super().process(messages,
                [e for e in emails if e.email.lower() not in blocked],
                smtpd_datamanager=smtpd_datamanager)
        if messages is None:
            messages = cls.search([('state', '=', 'sending')])
        for message in messages:
            emails = list(message.list_.emails)
            blocked = Consent.blocked([e.email for e in emails])
            allowed = [e for e in emails if e.email.lower() not in blocked]
            if allowed:
                super().process([message], allowed,
                    smtpd_datamanager=smtpd_datamanager)
        cls.sent(messages)

