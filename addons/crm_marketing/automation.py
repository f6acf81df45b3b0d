"""What crm_marketing adds to the sending, tracking and unsubscribing of
marketing_automation and marketing_email: consent is asked before every
marketing send, and the campaign members follow what happens to their
email."""
import datetime
import re
import uuid
from collections import defaultdict
from contextvars import ContextVar
from email.utils import getaddresses
from functools import partial
from urllib.parse import (
    parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit)

from genshi.core import END, START, Attrs, QName, escape
from genshi.template import MarkupTemplate
from genshi.template import TemplateError as GenshiTemplateError
from genshi.template import TextTemplate

import trytond.config as config

from trytond.i18n import gettext
from trytond.model import Workflow, dualmethod
from trytond.modules.marketing_automation.exceptions import TemplateError
from trytond.pool import Pool, PoolMeta
from trytond.report import mjml_to_html
from trytond.sendmail import SMTPDataManager, send_message_transactional
from trytond.tools.email_ import format_address, has_rcpt
from trytond.transaction import Transaction
from trytond.url import http_base
from trytond.wsgi import Base64Converter

# The unsubscribe URL of the email being made
_unsubscribe = ContextVar('crm_marketing_unsubscribe', default=None)


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


    def execute_send_email(self, record_activity, **kwargs):
        # No recipient (no address, or one that may not receive marketing):
        # no email (marketing_automation would address it to "None")
        if not self._email_recipient(record_activity.record.record):
            return
        # _email adds the List-Unsubscribe header of this record
        token = _unsubscribe.set(unsubscribe_url(record_activity.record))
        try:
            return super().execute_send_email(record_activity, **kwargs)
        finally:
            _unsubscribe.reset(token)

    def _email(self, sender, to, subject, content):
        msg = super()._email(sender, to, subject, content)
        url = _unsubscribe.get()
        if url:
            # marketing_automation's unsubscribe page (a GET: no one-click)
            msg['List-Unsubscribe'] = f'<{url}>'
        return msg

    @classmethod
    def execute_emails(cls, record_activities, smtpd_datamanager=None,
            **kwargs):
        """What execute does for record activities of send-email
        activities, for many at once: the same emails (execute_send_email's
        template, tracked links, opening image, unsubscribe link, ir.email)
        and the same next activities, but each template parsed once per
        language, and the links, the ir.email and the next activities of
        all of them created together. A record without recipient (no
        address, or one that may not receive marketing) gets nothing."""
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Record = pool.get('marketing.automation.record')
        WebShortener = pool.get('web.shortened_url')
        Email = pool.get('ir.email')
        transaction = Transaction()
        url_base = config.get(
            'marketing', 'automation_base', default=http_base())
        url_open = urljoin(url_base, '/m/empty.gif')
        url_unsubscribe = urljoin(url_base, quote(
                '/m/%(database)s/unsubscribe' % {
                    'database': Base64Converter(None).to_url(
                        transaction.database.name),
                    }))
        # The links get their shortened URL once all of them are created:
        # until then the email holds a key of the link
        links = []
        key = uuid.uuid4().hex
        keys = re.compile(re.escape(key) + r'-(\d+)-')

        def short(record_activity, url, event):
            links.append(WebShortener(
                    record=record_activity,
                    method='marketing.automation.record.activity|%s' % event,
                    redirect_url=url))
            return '%s-%s-' % (key, len(links) - 1)

        def unsubscribe(record, redirect):
            parts = urlsplit(url_unsubscribe)
            query = parse_qsl(parts.query)
            query.append(('r', record.uuid))
            if redirect:
                query.append(('next', redirect))
            parts = list(parts)
            parts[3] = urlencode(query)
            return urlunsplit(parts)

        def convert_href(record_activity, record):
            def convert(stream):
                for kind, data, pos in stream:
                    if kind is START:
                        tag, attrs = data
                        if tag == 'a' and attrs.get('href'):
                            href = attrs.get('href')
                            attrs -= 'href'
                            if href.startswith('unsubscribe'):
                                href = unsubscribe(
                                    record, href[len('unsubscribe|'):])
                            else:
                                href = short(record_activity, href,
                                    'on_email_clicked')
                            attrs |= [(QName('href'), href)]
                            data = tag, attrs
                    elif kind is END and data == 'body':
                        yield START, (QName('img'), Attrs([
                                    (QName('src'), short(record_activity,
                                            url_open, 'on_email_opened')),
                                    (QName('height'), '1'),
                                    (QName('width'), '1'),
                                    ])), pos
                        yield END, QName('img'), pos
                    yield kind, data, pos
            return convert

        to_send, children = [], []
        for record_activity in record_activities:
            record = record_activity.record
            activity = record_activity.activity
            # As it is a reference, the record may have been deleted
            if not record.record:
                continue
            if activity.condition and not record.eval(activity.condition):
                continue
            to_send.append(record_activity)
            children.extend(RecordActivity.get(record, child)
                for child in activity.children)

        by_language = defaultdict(list)
        for record_activity in to_send:
            by_language[record_activity.record.language].append(
                record_activity)
        made = []
        for language, language_activities in by_language.items():
            with transaction.set_context(language=language):
                records = Record.browse(
                    [ra.record.id for ra in language_activities])
                translations = {a.id: a for a in cls.browse(sorted(
                            {ra.activity.id for ra in language_activities}))}
            templates = {}
            for record_activity, record in zip(language_activities, records):
                activity = record_activity.activity
                to = activity._email_recipient(record.record)
                if not to:
                    continue
                translated = translations[activity.id]
                if activity.id not in templates:
                    templates[activity.id] = activity._email_templates(
                        translated)
                title, content = templates[activity.id]
                context = activity.email_context(record)
                context['short'] = partial(
                    short, record_activity, event='on_email_clicked')
                try:
                    title = title.generate(**context).render()
                except GenshiTemplateError as exception:
                    raise TemplateError(gettext('marketing_automation'
                            '.msg_activity_invalid_email_title',
                            activity=activity.rec_name,
                            exception=exception)) from exception
                try:
                    content = (content.generate(**context)
                        .filter(convert_href(record_activity, record))
                        .render())
                except GenshiTemplateError as exception:
                    raise TemplateError(gettext('marketing_automation'
                            '.msg_activity_invalid_email_template',
                            activity=activity.rec_name,
                            exception=exception)) from exception
                made.append((activity, translated, record, to, title, content))

        WebShortener.save(links)
        urls = WebShortener.get_url(links, 'shortened_url')
        urls = [urls[l.id] for l in links]
        emails = []
        for activity, translated, record, to, title, content in made:
            title = keys.sub(lambda m: urls[int(m.group(1))], title)
            content = keys.sub(
                lambda m: str(escape(urls[int(m.group(1))])), content)
            if content.startswith('<mjml'):
                content = mjml_to_html(content)
            token = _unsubscribe.set(unsubscribe_url(record))
            try:
                msg = activity._email(
                    translated.email_from, to, title, content)
            finally:
                _unsubscribe.reset(token)
            if has_rcpt(msg):
                send_message_transactional(
                    msg, datamanager=smtpd_datamanager)
                emails.append(Email.from_message(
                        msg, resource=record.record,
                        marketing_automation_activity=activity,
                        marketing_automation_record=record))
        Email.save(emails)
        RecordActivity.save(children)

    def _email_templates(self, translated):
        """The title and content templates of the translated activity,
        parsed"""
        try:
            title = TextTemplate(translated.email_title)
        except GenshiTemplateError as exception:
            raise TemplateError(gettext('marketing_automation'
                    '.msg_activity_invalid_email_title',
                    activity=self.rec_name,
                    exception=exception)) from exception
        try:
            content = MarkupTemplate(translated.email_template)
        except GenshiTemplateError as exception:
            raise TemplateError(gettext('marketing_automation'
                    '.msg_activity_invalid_email_template',
                    activity=self.rec_name,
                    exception=exception)) from exception
        return title, content

    def _has_opposite(self):
        """Whether a sibling activity waits for the same event the other way
        round (what RecordActivity._cancel_opposite cancels)"""
        return bool(self.search([
                    ('parent', '=', str(self.parent)),
                    ('event', '=', self.event),
                    ('negative', '=', not self.negative),
                    ], limit=1))


def unsubscribe_url(record):
    """The URL of marketing_automation's unsubscribe page for a record, as
    its emails link it"""
    base = config.get('marketing', 'automation_base', default=http_base())
    database = Base64Converter(None).to_url(Transaction().database.name)
    return urljoin(base, quote(f'/m/{database}/unsubscribe')) + '?' + (
        urlencode({'r': record.uuid}))


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
    def process(cls):
        """marketing_automation's cron: the due record activities to the
        queue, taken by id (a search makes a record of each, and trytond
        checks every id of the list for each one: 6 s for 10,000)"""
        transaction = Transaction()
        context = transaction.context
        now = datetime.datetime.now()
        query = cls.search([
                ('state', '=', 'waiting'),
                ('at', '<=', now),
                ('record.blocked', '!=', True),
                ], query=True)
        cursor = transaction.connection.cursor()
        cursor.execute(*query)
        activities = [i for i, in cursor]
        with transaction.set_context(
                queue_batch=context.get('queue_batch', True)):
            cls.__queue__.do(activities)

    @classmethod
    def do(cls, record_activities, **kwargs):
        """Send with the batch's blocked addresses read once, then mark the
        members whose email left"""
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Consent = pool.get('marketing.consent')
        # The campaigns' emails are made together, the rest one by one
        emails = [ra for ra in record_activities
            if ra.activity.action == 'send_email'
            and isinstance(ra.record.record, Member)]
        members = [ra.record.record for ra in emails]
        blocked = Consent.blocked([m.email for m in members if m.email])
        context = Transaction().context
        if '_marketing_blocked' in context:
            blocked |= context['_marketing_blocked']
        chosen = set(emails)
        others = [ra for ra in record_activities if ra not in chosen]
        with Transaction().set_context(_marketing_blocked=blocked):
            if others:
                super().do(others, **kwargs)
            if emails:
                cls._do_emails(emails, **kwargs)
        Member.mark([m for m in members
                if m.email and m.email.lower() not in blocked], 'sent')

    @classmethod
    @Workflow.transition('done')
    def _do_emails(cls, record_activities, **kwargs):
        "do of send-email record activities, their emails made together"
        opposites = {}
        for record_activity in record_activities:
            activity = record_activity.activity
            if activity not in opposites:
                opposites[activity] = activity._has_opposite()
        cls._cancel_opposite([ra for ra in record_activities
                if opposites[ra.activity]])
        now = datetime.datetime.now()
        smtpd_datamanager = Transaction().join(SMTPDataManager())
        Pool().get('marketing.automation.activity').execute_emails(
            record_activities, smtpd_datamanager=smtpd_datamanager, **kwargs)
        # One UPDATE for all (save writes each record apart)
        cls.write(list(record_activities), {'at': now, 'state': 'done'})

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

