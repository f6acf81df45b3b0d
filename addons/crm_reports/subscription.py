"""Scheduled reports: an analysis of crm_reports, computed with the rights
of the user who set it up, rendered (PDF, spreadsheet, CSV) and emailed to
its recipients on a schedule; every sending is logged and a failed one is
retried, then left failed and its owner notified."""
import calendar
import datetime as dt
import logging
import re
import smtplib
from collections import OrderedDict
from contextlib import ExitStack
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from lxml import etree
from trytond import backend, config
from trytond.exceptions import UserError
from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, fields)
from trytond.model.exceptions import AccessError, ValidationError
from trytond.pool import Pool
from trytond.pyson import Eval, If
from trytond.sendmail import get_smtp_server
from trytond.tools import timezone as tz
from trytond.tools.email_ import EmailNotValidError, validate_email
from trytond.transaction import (
    Transaction, TransactionError, without_check_access)
from trytond.url import host

from crm_core.retry import RetrySchedule
from crm_core.savepoint import savepoint

from . import render
from .common import PERIODS
from .exceptions import ReportError

logger = logging.getLogger(__name__)

# Minutes to wait before each retry of a failed sending; after the last
# one it stays failed
RETRY_DELAYS = [5, 15, 60]
RETRIES = RetrySchedule(dt.timedelta(minutes=m) for m in RETRY_DELAYS)
MAX_ATTEMPTS = RETRIES.max_attempts
ERROR_SIZE = 2000
CONTEXT_MODEL = 'crm.report.context'
# The schedule's fields: changing one computes the next run again
SCHEDULE_FIELDS = {
    'frequency', 'weekday', 'day', 'time', 'timezone', 'active'}

DATE_RANGES = [
    ('previous_week', "Previous Week"),
    ('previous_month', "Previous Month"),
    ('previous_quarter', "Previous Quarter"),
    ('month_to_date', "Month to Date"),
    ('year_to_date', "Year to Date"),
    ]


def relative_dates(range_, today):
    "(from, to) dates of the relative range on the day today"
    if range_ == 'previous_week':
        start = today - dt.timedelta(days=today.weekday() + 7)
        return start, start + dt.timedelta(days=6)
    if range_ == 'previous_month':
        end = today.replace(day=1) - dt.timedelta(days=1)
        return end.replace(day=1), end
    if range_ == 'previous_quarter':
        first = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
        end = first - dt.timedelta(days=1)
        return end.replace(month=end.month - 2, day=1), end
    if range_ == 'month_to_date':
        return today.replace(day=1), today
    if range_ == 'year_to_date':
        return today.replace(month=1, day=1), today
    raise ValueError(f"unknown date range {range_!r}")


def next_run(after, frequency, at, timezone=None, weekday=None, day=None):
    """The first time of the schedule strictly after `after` (naive UTC, as
    Tryton stores timestamps): at the time `at` of the timezone, every day,
    every week on weekday (0 is Monday) or every month on day (its last day
    when the month is shorter)"""
    zone = tz.ZoneInfo(timezone) if timezone else tz.UTC
    today = after.replace(tzinfo=tz.UTC).astimezone(zone).date()

    def candidates():
        if frequency == 'daily':
            for days in range(3):
                yield today + dt.timedelta(days=days)
        elif frequency == 'weekly':
            first = today + dt.timedelta(days=(weekday - today.weekday()) % 7)
            for weeks in range(3):
                yield first + dt.timedelta(weeks=weeks)
        elif frequency == 'monthly':
            year, month = today.year, today.month
            for _ in range(3):
                last = calendar.monthrange(year, month)[1]
                yield dt.date(year, month, min(day, last))
                year, month = (year + 1, 1) if month == 12 \
                    else (year, month + 1)
        else:
            raise ValueError(f"unknown frequency {frequency!r}")
    for date in candidates():
        # A time that a change of clock skips is taken as of the old
        # offset: 02:30 of the spring change runs at 03:30
        moment = dt.datetime.combine(date, at, tzinfo=zone).astimezone(
            tz.UTC).replace(tzinfo=None)
        if moment > after:
            return moment


def parse_emails(text):
    "The addresses of a text: one a line, or separated by commas or spaces"
    return [e for e in re.split(r'[\s,;]+', text or '') if e]


def check_email(email):
    "Whether email is an address a mail server accepts"
    try:
        address = Address(addr_spec=email)
    except (ValueError, IndexError, TypeError, HeaderParseError):
        return False
    if (not address.username or not address.domain
            or address.addr_spec != email):
        return False
    try:
        validate_email(email)
    except EmailNotValidError:
        return False
    return True


class Subscription(DeactivableMixin, ModelSQL, ModelView):
    "An analysis emailed to its recipients on a schedule"
    __name__ = 'crm.report.subscription'
    __string__ = "Scheduled Report"

    name = fields.Char("Name", required=True)
    company = fields.Many2One('company.company', "Company",
        help="The office whose figures the report counts.\n"
        "Leave empty to count all the owner's companies together, "
        "their amounts converted to the currency.")
    owner = fields.Many2One('res.user', "Owner", required=True,
        readonly=True,
        help="The report counts what this user may read.")
    owner_companies = fields.Function(fields.Many2Many(
            'company.company', None, None, "Owner's Companies"),
        'on_change_with_owner_companies')

    analysis = fields.Selection('get_analyses', "Analysis", required=True)
    date_range = fields.Selection(DATE_RANGES, "Dates", required=True,
        sort=False, help="The dates counted, on the day of the sending.")
    period = fields.Selection(PERIODS, "Period", required=True, sort=False)
    team = fields.Many2One('crm.team', "Team",
        domain=[If(Eval('company'),
                ('company', '=', Eval('company', -1)),
                ('company', 'in', Eval('owner_companies', [])))])
    salesperson = fields.Many2One('res.user', "Salesperson",
        domain=[If(Eval('company'),
                ('companies', '=', Eval('company', -1)),
                ('companies', 'in', Eval('owner_companies', [])))])
    currency = fields.Many2One('currency.currency', "Currency",
        required=True)
    format = fields.Selection([
            ('pdf', "PDF"),
            ('xlsx', "Spreadsheet (XLSX)"),
            ('csv', "CSV"),
            ], "Format", required=True, sort=False)

    users = fields.Many2Many('crm.report.subscription-res.user',
        'subscription', 'user', "Users",
        domain=[If(Eval('company'),
                ('companies', '=', Eval('company', -1)),
                ('companies', 'in', Eval('owner_companies', [])))],
        help="The users who receive the report at their email address.")
    emails = fields.Text("Other Recipients",
        help="Email addresses, one a line.")

    frequency = fields.Selection([
            ('daily', "Daily"),
            ('weekly', "Weekly"),
            ('monthly', "Monthly"),
            ], "Frequency", required=True, sort=False)
    weekday = fields.Many2One('ir.calendar.day', "Day of Week",
        states={
            'required': Eval('frequency') == 'weekly',
            'invisible': Eval('frequency') != 'weekly',
            })
    day = fields.Integer("Day of Month",
        domain=[If(Eval('frequency') == 'monthly',
                [('day', '>=', 1), ('day', '<=', 31)],
                [])],
        states={
            'required': Eval('frequency') == 'monthly',
            'invisible': Eval('frequency') != 'monthly',
            },
        help="The last day of the shorter months for 29 to 31.")
    time = fields.Time("Time", format='%H:%M', required=True)
    timezone = fields.Selection('get_timezones', "Timezone", required=True,
        translate=False)
    next_run = fields.Timestamp("Next Run", readonly=True)

    sendings = fields.One2Many('crm.report.sending', 'subscription',
        "Sendings", readonly=True, order=[('date', 'DESC'), ('id', 'DESC')])

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.next_run, Index.Range())))
        cls._order = [('name', 'ASC'), ('id', 'ASC')]
        cls._buttons.update({
                'send_now': {
                    'icon': 'tryton-email',
                    'readonly': Eval('id', -1) < 0,
                    'depends': ['id'],
                    },
                })

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_owner(cls):
        return Transaction().user

    @classmethod
    def default_currency(cls):
        pool = Pool()
        Company = pool.get('company.company')
        company = cls.default_company()
        if company is not None and company >= 0:
            return Company(company).currency.id

    @classmethod
    def default_date_range(cls):
        return 'previous_month'

    @classmethod
    def default_period(cls):
        return 'month'

    @classmethod
    def default_format(cls):
        return 'pdf'

    @classmethod
    def default_frequency(cls):
        return 'monthly'

    @classmethod
    def default_day(cls):
        return 1

    @classmethod
    def default_time(cls):
        return dt.time(7, 0)

    @classmethod
    def default_timezone(cls):
        pool = Pool()
        Company = pool.get('company.company')
        company = cls.default_company()
        if company is not None and company >= 0:
            return Company(company).timezone or 'UTC'
        return 'UTC'

    @fields.depends('company', 'currency', 'timezone')
    def on_change_company(self):
        # Without a company (all the owner's companies) the currency and
        # the timezone stay as they were: the amounts are converted to it
        if self.company:
            self.currency = self.company.currency
            self.timezone = self.company.timezone or self.timezone

    @fields.depends('owner')
    def on_change_with_owner_companies(self, name=None):
        "The companies an all-companies report counts"
        if self.owner:
            with without_check_access():
                return [c.id for c in self.owner.companies]
        return []

    @classmethod
    def get_timezones(cls):
        return [(z, z) for z in sorted(tz.available_timezones())]

    @classmethod
    def get_analyses(cls):
        """The analyses of crm_reports (and of its bridges): models named
        crm.report.* on a table_query whose action has the analyses'
        context"""
        pool = Pool()
        Action = pool.get('ir.action.act_window')
        Model = pool.get('ir.model')
        with without_check_access():
            actions = Action.search([
                    ('res_model', 'like', 'crm.report.%'),
                    ('context_model', '=', CONTEXT_MODEL),
                    ])
        names = Model.get_names()
        analyses = set()
        for action in actions:
            name = action.res_model
            try:
                Analysis = pool.get(name)
            except KeyError:
                continue
            if (issubclass(Analysis, ModelSQL)
                    and Analysis._is_table_query()):
                analyses.add((name, names.get(name, name)))
        return sorted(analyses, key=lambda a: (a[1], a[0]))

    @classmethod
    def validate_fields(cls, subscriptions, field_names):
        super().validate_fields(subscriptions, field_names)
        cls.check_recipients(subscriptions, field_names)
        cls.check_owner_company(subscriptions, field_names)

    @classmethod
    def check_recipients(cls, subscriptions, field_names=None):
        if field_names and not (field_names & {'users', 'emails'}):
            return
        for subscription in subscriptions:
            for email in parse_emails(subscription.emails):
                if not check_email(email):
                    raise ValidationError(gettext(
                            'crm_reports.msg_subscription_email_invalid',
                            email=email, subscription=subscription.rec_name))
            for user in subscription.users:
                if not user.email:
                    raise ValidationError(gettext(
                            'crm_reports.msg_subscription_user_no_email',
                            user=user.rec_name,
                            subscription=subscription.rec_name))
            if not subscription.users and not parse_emails(
                    subscription.emails):
                raise ValidationError(gettext(
                        'crm_reports.msg_subscription_no_recipient',
                        subscription=subscription.rec_name))

    @classmethod
    def check_owner_company(cls, subscriptions, field_names=None):
        if field_names and not (field_names & {'owner', 'company'}):
            return
        for subscription in subscriptions:
            subscription.owner_check_company()

    def owner_check_company(self):
        if not self.company:
            # All the owner's companies: they need one at least
            if not self.owner.companies:
                raise ValidationError(gettext(
                        'crm_reports.msg_subscription_owner_no_company',
                        user=self.owner.rec_name,
                        subscription=self.rec_name))
        elif self.company not in self.owner.companies:
            raise ValidationError(gettext(
                    'crm_reports.msg_subscription_owner_company',
                    user=self.owner.rec_name, subscription=self.rec_name,
                    company=self.company.rec_name))

    def report_companies(self):
        """The ids of the companies the report counts: its company, else
        all the companies of its owner"""
        if self.company:
            return [self.company.id]
        return [c.id for c in self.owner.companies]

    @classmethod
    def check_modification(
            cls, mode, subscriptions, values=None, external=False):
        super().check_modification(
            mode, subscriptions, values=values, external=external)
        # The report is computed with the owner's rights: nobody but the
        # owner may make a subscription theirs
        user = Transaction().user
        if external and user and mode in {'create', 'write'}:
            if mode == 'write' and 'owner' in values:
                owners = [values['owner']]
            elif mode == 'create':
                owners = [s.owner.id for s in subscriptions]
            else:
                owners = []
            for owner in owners:
                if owner != user:
                    raise AccessError(gettext(
                            'crm_reports.msg_subscription_owner',
                            subscription=(subscriptions[0].rec_name
                                if subscriptions else '')))

    @classmethod
    def on_modification(cls, mode, subscriptions, field_names=None):
        super().on_modification(
            mode, subscriptions, field_names=field_names)
        if mode == 'create' or (mode == 'write' and (
                    field_names is None or field_names & SCHEDULE_FIELDS)):
            now = dt.datetime.now()
            to_write = []
            for subscription in subscriptions:
                to_write.extend(([subscription], {
                            'next_run': subscription.compute_next_run(now),
                            }))
            if to_write:
                with without_check_access():
                    cls.write(*to_write)

    def compute_next_run(self, after):
        if (not self.active or not self.time
                or (self.frequency == 'weekly' and not self.weekday)
                or (self.frequency == 'monthly' and not self.day)):
            return None
        return next_run(after, self.frequency, self.time, self.timezone,
            weekday=int(self.weekday.index) if self.weekday else None,
            day=self.day)

    @classmethod
    def copy(cls, subscriptions, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('sendings')
        default.setdefault('next_run')
        if Transaction().user:
            default.setdefault('owner', Transaction().user)
        return super().copy(subscriptions, default=default)

    @classmethod
    @ModelView.button
    def send_now(cls, subscriptions):
        "Queue a sending of each subscription now, its schedule unchanged"
        pool = Pool()
        Sending = pool.get('crm.report.sending')
        with without_check_access():
            sendings = Sending.create([{
                        'subscription': s.id,
                        'manual': True,
                        } for s in subscriptions])
        Sending.queue(sendings)

    @classmethod
    def send_due(cls):
        """Cron: a sending for each subscription whose time has come (its
        next run computed again) and the queued sendings due, one task each"""
        pool = Pool()
        Sending = pool.get('crm.report.sending')
        now = dt.datetime.now()
        subscriptions = cls.search([
                ('next_run', '<=', now),
                ], order=[('next_run', 'ASC'), ('id', 'ASC')])
        if subscriptions:
            Sending.create([{'subscription': s.id, 'next_attempt': now}
                    for s in subscriptions])
            to_write = []
            for subscription in subscriptions:
                to_write.extend(([subscription], {
                            'next_run': subscription.compute_next_run(now),
                            }))
            cls.write(*to_write)
        # With those just made: the retries due and what a lost task left
        Sending.queue(Sending.search([
                    ('state', '=', 'queued'),
                    *RETRIES.due(now),
                    ], order=[('next_attempt', 'ASC'), ('id', 'ASC')]))

    # The report

    def analysis_context(self, today):
        "The context of the analysis on the day today"
        from_date, to_date = relative_dates(self.date_range, today)
        return {
            # None: all the companies of the owner (as_owner), converted
            'company': self.company.id if self.company else None,
            'currency': self.currency.id,
            'from_date': from_date,
            'to_date': to_date,
            'period': self.period,
            'team': self.team.id if self.team else None,
            'owner': self.salesperson.id if self.salesperson else None,
            }

    def as_owner(self):
        """Act as the owner, their access rules applied, in the company of
        the subscription (without one: in all of the owner's companies,
        whatever their company filter) and the owner's language"""
        owner = self.owner
        if not owner.active:
            raise ReportError(gettext(
                    'crm_reports.msg_subscription_owner_inactive',
                    user=owner.rec_name, subscription=self.rec_name))
        self.owner_check_company()
        transaction = Transaction()
        stack = ExitStack()
        stack.enter_context(transaction.set_user(owner.id))
        # _companies: the owner's companies cached for another current
        # company must not decide what this office counts (checked above);
        # the company rules of the analyses read it as `companies`
        stack.enter_context(transaction.set_context(
                _check_access=True,
                company=self.company.id if self.company else None,
                _companies=self.report_companies(),
                language=self.language()))
        return stack

    def language(self):
        "The code of the language of the report: the owner's"
        if self.owner.language:
            return self.owner.language.code
        return Transaction().context.get('language')

    def make_report(self):
        """The report (render.Report) of the analysis, computed now as the
        owner: the columns of its list view, the chart of its first graph
        view"""
        pool = Pool()
        Lang = pool.get('ir.lang')
        IrModel = pool.get('ir.model')
        Company = pool.get('company.company')
        zone = tz.ZoneInfo(self.timezone) if self.timezone else tz.UTC
        now = dt.datetime.now(tz.UTC).astimezone(zone)
        context = self.analysis_context(now.date())
        with self.as_owner():
            lang = Lang.get()
            with Transaction().set_context(context):
                Analysis = pool.get(self.analysis)
                columns, records, getters = _table(Analysis, zone)
                chart = _chart(Analysis, records, lang)
                rows = [[getter(r) for getter in getters] for r in records]
            if self.company:
                company = self.company.rec_name
            else:
                company = gettext('crm_reports.msg_report_all_companies',
                    companies=', '.join(sorted(c.rec_name
                            for c in Company.browse(
                                self.report_companies()))))
            report = render.Report(
                title=self.name,
                subtitle=IrModel.get_names().get(
                    self.analysis, self.analysis),
                company=company,
                filters=self.filters(context, lang),
                date=now.replace(tzinfo=None),
                columns=columns,
                rows=rows,
                chart=chart,
                labels=_labels(),
                date_format=lang.date,
                decimal_point=lang.decimal_point,
                thousands_sep=lang.thousands_sep)
        return report

    def filters(self, context, lang):
        "[(label, text)] of the filters of the report, in words"
        pool = Pool()
        Context = pool.get(CONTEXT_MODEL)
        strings = Context.fields_get(['period', 'team', 'owner', 'currency'])
        periods = dict(strings['period']['selection'])
        ranges = dict(self.fields_get(['date_range'])['date_range'][
                'selection'])
        all_ = gettext('crm_reports.msg_report_filter_all')
        return [
            (gettext('crm_reports.msg_report_dates'),
                gettext('crm_reports.msg_report_dates_range',
                    range=ranges[self.date_range],
                    from_date=lang.strftime(context['from_date']),
                    to_date=lang.strftime(context['to_date']))),
            (strings['period']['string'], periods[self.period]),
            (strings['team']['string'],
                self.team.rec_name if self.team else all_),
            (strings['owner']['string'],
                self.salesperson.rec_name if self.salesperson else all_),
            (strings['currency']['string'], self.currency.rec_name),
            ]

    def recipients(self):
        "The email addresses of the recipients, each once"
        addresses = OrderedDict()
        for email in [u.email for u in self.users if u.email] + parse_emails(
                self.emails):
            addresses.setdefault(email.lower(), email)
        return list(addresses.values())

    def make_email(self, report, data, extension, mimetype):
        "The email to the recipients with the document attached"
        with Transaction().set_context(language=self.language()):
            return self._make_email(report, data, extension, mimetype)

    def _make_email(self, report, data, extension, mimetype):
        sender = (config.get('crm_reports', 'email_from')
            or config.get('email', 'from'))
        if not sender:
            raise ReportError(gettext('crm_reports.msg_sending_no_sender'))
        recipients = self.recipients()
        if not recipients:
            raise ReportError(gettext(
                    'crm_reports.msg_sending_no_recipient',
                    subscription=self.rec_name))
        date = report.date.strftime(report.date_format)
        filename = '%s-%s.%s' % (
            re.sub(r'[^\w-]+', '-', self.name).strip('-') or 'report',
            report.date.strftime('%Y-%m-%d'), extension)
        msg = EmailMessage()
        msg['From'] = sender
        msg['To'] = ', '.join(recipients)
        if self.owner.email:
            msg['Reply-To'] = self.owner.email
        msg['Subject'] = gettext('crm_reports.msg_report_email_subject',
            name=self.name, date=date)
        msg['Date'] = formatdate()
        msg['Message-ID'] = make_msgid(domain=host())
        msg['Auto-Submitted'] = 'auto-generated'
        msg.set_content(gettext('crm_reports.msg_report_email_body',
                title=report.title, analysis=report.subtitle,
                company=report.company,
                filters='\n'.join(f'{k}: {v}' for k, v in report.filters),
                filename=filename, owner=self.owner.rec_name))
        maintype, subtype = mimetype.split('/', 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype,
            filename=filename)
        return msg, recipients, filename


def _labels():
    "The words of render.Report in the language of the context"
    labels = {k: gettext(f'crm_reports.msg_report_{k}') for k in [
            'company', 'date', 'total', 'empty', 'yes', 'no', 'chart',
            'report']}
    labels['page'] = gettext('crm_reports.msg_report_page',
        page='%(page)s', pages='%(pages)s')
    return labels


def _column_type(field, widget):
    if widget in {'progressbar', 'percentage'}:
        return 'percent'
    return {
        'integer': 'integer',
        'float': 'number',
        'numeric': 'number',
        'date': 'date',
        'datetime': 'datetime',
        'timestamp': 'datetime',
        'timedelta': 'timedelta',
        'boolean': 'boolean',
        }.get(field['type'], 'text')


def _getter(Model, name, definition):
    "A function of a record: the value of the field as the report shows it"
    type_ = definition['type']
    if type_ in {'many2one', 'one2one', 'reference'}:
        return lambda r: (getattr(r, name).rec_name
            if getattr(r, name) is not None else None)
    if type_ in {'one2many', 'many2many'}:
        return lambda r: ', '.join(v.rec_name for v in getattr(r, name))
    if type_ in {'selection', 'multiselection'}:
        # The label of the value (of each value), in the language
        label = Model._fields[name].translated(name)
        if type_ == 'multiselection':
            return lambda r: ', '.join(map(str, label.__get__(r, Model)))
        return lambda r: label.__get__(r, Model)
    return lambda r: getattr(r, name)


def _digits(Model, name, records):
    "The decimals of a number column: the field's or its currency's"
    digits = getattr(Model._fields[name], 'digits', None)
    if isinstance(digits, str):
        for record in records:
            target = getattr(record, digits, None)
            if getattr(target, 'digits', None) is not None:
                return target.digits
        return 2
    if isinstance(digits, (tuple, list)) and isinstance(digits[1], int):
        return digits[1]
    return 2


def _table(Model, zone):
    """The columns of the list view of the model, its records and a getter
    of each column's values: ([render.Column], records, [getter]); times in
    the zone"""
    view = Model.fields_view_get(view_type='tree')
    tree = etree.fromstring(view['arch'])
    records = Model.search([])
    columns, getters, seen = [], [], set()
    for node in tree.findall('field'):
        name = node.get('name')
        definition = view['fields'].get(name)
        if (not definition or name in seen
                or node.get('optional') == '1'
                or node.get('tree_invisible') in {'1', 'True'}):
            continue
        seen.add(name)
        type_ = _column_type(definition, node.get('widget'))
        columns.append(render.Column(
                name=name,
                string=node.get('string') or definition['string'],
                type=type_,
                digits=_digits(Model, name, records)
                if type_ in {'number', 'percent'} else 0,
                total=node.get('sum') is not None
                and type_ in render.NUMERIC))
        getter = _getter(Model, name, definition)
        if type_ == 'datetime':
            getter = _in_zone(getter, zone)
        getters.append(getter)
    return columns, records, getters


def _in_zone(getter, zone):
    "The getter of a timestamp (naive UTC) as a time of the zone"
    def local(record):
        value = getter(record)
        if value is not None:
            value = value.replace(tzinfo=tz.UTC).astimezone(zone).replace(
                tzinfo=None)
        return value
    return local


def _chart(Model, records, lang):
    """The first y figure of the first graph view of the model summed by
    its x field, in the order of the x values when they sort"""
    pool = Pool()
    View = pool.get('ir.ui.view')
    views = View.search([
            ('model', '=', Model.__name__),
            ('type', '=', 'graph'),
            ('inherit', '=', None),
            ], order=[('priority', 'ASC'), ('id', 'ASC')], limit=1)
    if not views:
        return None
    view = Model.fields_view_get(view_id=views[0].id, view_type='graph')
    graph = etree.fromstring(view['arch'])
    x = graph.find('x/field')
    y = graph.find('y/field')
    if x is None or y is None:
        return None
    x_name, y_name = x.get('name'), y.get('name')
    if x_name not in view['fields'] or y_name not in view['fields']:
        return None
    x_def, y_def = view['fields'][x_name], view['fields'][y_name]
    get_x = _getter(Model, x_name, x_def)
    sums = OrderedDict()
    for record in records:
        key = get_x(record)
        sums[key] = sums.get(key, 0) + (getattr(record, y_name) or 0)
    keys = list(sums)
    if x_def['type'] in {'date', 'datetime', 'timestamp', 'integer',
            'float', 'numeric'}:
        keys.sort(key=lambda k: (k is None, k if k is not None else 0))

    def label(key):
        if key is None:
            return '-'
        if isinstance(key, dt.date):
            return lang.strftime(key)
        return str(key)
    return render.Chart(
        type='line' if graph.get('type') == 'line' else 'bar',
        title=gettext('crm_reports.msg_report_chart_title',
            figure=y.get('string') or y_def['string'],
            grouping=x.get('string') or x_def['string']),
        labels=[label(k) for k in keys],
        series=[(y.get('string') or y_def['string'],
                [sums[k] for k in keys])])


class SubscriptionUser(ModelSQL):
    "A user who receives a scheduled report"
    __name__ = 'crm.report.subscription-res.user'
    __string__ = "Scheduled Report Recipient"

    subscription = fields.Many2One('crm.report.subscription',
        "Scheduled Report", required=True, ondelete='CASCADE')
    user = fields.Many2One('res.user', "User", required=True,
        ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('subscription')


class Sending(ModelSQL, ModelView):
    "One sending of a scheduled report: its attempts and what came of them"
    __name__ = 'crm.report.sending'
    __string__ = "Scheduled Report Sending"

    subscription = fields.Many2One('crm.report.subscription',
        "Scheduled Report", required=True, ondelete='CASCADE',
        readonly=True)
    date = fields.Timestamp("Date", required=True, readonly=True)
    manual = fields.Boolean("Sent on Demand", readonly=True,
        help="Sent with the Send Now button, not by the schedule.")
    state = fields.Selection([
            ('queued', "Queued"),
            ('sent', "Sent"),
            ('failed', "Failed"),
            ], "State", required=True, readonly=True, sort=False)
    attempts = fields.Integer("Attempts", required=True, readonly=True)
    next_attempt = fields.Timestamp("Next Attempt", readonly=True)
    date_sent = fields.Timestamp("Sent On", readonly=True)
    error = fields.Text("Error", readonly=True)
    recipients = fields.Text("Recipients", readonly=True)
    filename = fields.Char("File Name", readonly=True)
    size = fields.Integer("Attachment Size", readonly=True,
        help="In bytes.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('subscription')
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.next_attempt, Index.Range()),
                    where=t.state == 'queued'),
                Index(t, (t.subscription, Index.Range())),
                })
        cls._order = [('date', 'DESC'), ('id', 'DESC')]

    @classmethod
    def default_date(cls):
        return dt.datetime.now()

    @classmethod
    def default_next_attempt(cls):
        return dt.datetime.now()

    @classmethod
    def default_state(cls):
        return 'queued'

    @classmethod
    def default_attempts(cls):
        return 0

    @classmethod
    def default_manual(cls):
        return False

    def get_rec_name(self, name):
        return '%s (%s)' % (self.subscription.rec_name,
            self.date.replace(microsecond=0))

    @classmethod
    def queue(cls, sendings):
        "One task for each sending"
        for sending in sendings:
            cls.__queue__.send([sending])

    @classmethod
    def send(cls, sendings, force=False):
        """The task: send the queued sendings whose attempt has come (all
        queued ones with force); a failure is retried later, the last one
        is notified to the owner"""
        cls.lock(sendings)
        sendings = cls.browse([s.id for s in sendings])
        now = dt.datetime.now()
        to_save, retry, failed = [], [], []
        for sending in sendings:
            if sending.state != 'queued':
                continue
            if (not force and sending.next_attempt
                    and sending.next_attempt > now):
                continue
            sending.attempt()
            to_save.append(sending)
            if sending.state == 'queued':
                retry.append(sending)
            elif sending.state == 'failed':
                failed.append(sending)
        cls.save(to_save)
        # One task for each sending, as queue() does
        RETRIES.queue(cls, 'send', retry, each=True)
        for sending in failed:
            subscription = sending.subscription
            with Transaction().set_context(
                    language=subscription.language()):
                cls.notify_user([sending], 'tryton-warning',
                    gettext('crm_reports.msg_sending_failed',
                        subscription=subscription.rec_name),
                    gettext('crm_reports.msg_sending_failed_description',
                        attempts=sending.attempts, error=sending.error),
                    user=subscription.owner.id)

    def attempt(self):
        "Render the report and email it; the outcome on the sending"
        subscription = self.subscription
        now = dt.datetime.now()
        self.attempts += 1
        try:
            # An error of the analysis's query must not abort the
            # transaction that logs it
            with savepoint('crm_report_sending'):
                report = subscription.make_report()
                data, extension, mimetype = render.render(
                    report, subscription.format)
                msg, recipients, filename = subscription.make_email(
                    report, data, extension, mimetype)
            self.recipients = ', '.join(recipients)
            self.filename = filename
            self.size = len(data)
            refused = deliver(msg)
        except (TransactionError, backend.DatabaseOperationalError):
            raise
        except Exception as exception:
            if isinstance(exception, UserError):
                error = exception.message
            else:
                # Not the user's doing: the administrator needs the trace
                logger.warning("sending %s of scheduled report %s failed",
                    self.id, subscription.id, exc_info=True)
                error = str(exception) or exception.__class__.__name__
            self.error = error[:ERROR_SIZE]
            self.next_attempt = RETRIES.next_attempt(self.attempts, now)
            if self.next_attempt is None:
                self.state = 'failed'
            return
        self.state = 'sent'
        self.date_sent = now
        self.next_attempt = None
        # Accepted for the others: those the server refused are told here
        self.error = gettext('crm_reports.msg_sending_refused',
            recipients=', '.join(refused)) if refused else None


def deliver(msg):
    """Send the email now, through the server of the configuration, and
    raise what goes wrong: {refused address: (code, answer)}.

    Not send_message_transactional: it sends after the commit and only
    logs what the server refuses, so a sending would say sent for an email
    that never left. Here a failure is logged on the sending and retried;
    an email sent but whose log fails to commit is sent again (rather twice
    than never)."""
    server = get_smtp_server(strict=True)
    try:
        return server.send_message(msg)
    finally:
        try:
            server.quit()
        except smtplib.SMTPException:
            server.close()
