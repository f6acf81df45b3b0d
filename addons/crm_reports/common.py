"""What the analyses of crm_reports share: their context (dates, period,
company, team, owner, currency), the records the reader may see, the
period of a date and amounts in one currency, and the drill-down from a
row of figures to the records counted in it."""
import datetime as dt
from decimal import Decimal

from sql import Literal
from sql.conditionals import Case

from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval, If, PYSONEncoder
from trytond.transaction import Transaction
from trytond.wizard import StateAction, Wizard

from crm_core.sqltools import period_start

from .exceptions import ReportError

PERIODS = [
    ('month', "Month"),
    ('quarter', "Quarter"),
    ('year', "Year"),
    ]


class Context(ModelView):
    "The filters of an analysis, kept by the client beside its rows"
    __name__ = 'crm.report.context'
    __string__ = "CRM Report Context"

    company = fields.Many2One('company.company', "Company",
        help="Leave empty to count all your companies together, "
        "their amounts converted to the currency.")
    currency = fields.Many2One('currency.currency', "Currency",
        required=True)
    from_date = fields.Date("From Date",
        domain=[If(Eval('from_date') & Eval('to_date'),
                ('from_date', '<=', Eval('to_date')), ())])
    to_date = fields.Date("To Date",
        domain=[If(Eval('from_date') & Eval('to_date'),
                ('to_date', '>=', Eval('from_date')), ())])
    period = fields.Selection(PERIODS, "Period", required=True, sort=False)
    team = fields.Many2One('crm.team', "Team")
    owner = fields.Many2One('res.user', "Salesperson")

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_currency(cls):
        pool = Pool()
        Company = pool.get('company.company')
        company = Transaction().context.get('company')
        if company is not None and company >= 0:
            return Company(company).currency.id

    @classmethod
    def default_from_date(cls):
        context = Transaction().context
        if 'from_date' in context:
            return context['from_date']
        return dt.date.today().replace(month=1, day=1)

    @classmethod
    def default_to_date(cls):
        context = Transaction().context
        if 'to_date' in context:
            return context['to_date']
        return dt.date.today().replace(month=12, day=31)

    @classmethod
    def default_period(cls):
        return Transaction().context.get('period', 'month')

    @fields.depends('company', 'currency')
    def on_change_company(self):
        if self.company:
            self.currency = self.company.currency


def context_companies():
    """The ids of the companies an analysis counts: the context's company
    when it is one of the user's, else all of them"""
    pool = Pool()
    User = pool.get('res.user')
    companies = User.get_companies()
    company = Transaction().context.get('company')
    if company is not None and company >= 0:
        return [company] if company in companies else []
    return list(companies)


def context_period():
    period = Transaction().context.get('period') or 'month'
    if period not in dict(PERIODS):
        raise ReportError(gettext('crm_reports.msg_period_unknown',
                period=period))
    return period


def date_range(column):
    """The condition that column (a date or timestamp) is within the
    context's dates"""
    context = Transaction().context
    where = Literal(True)
    if context.get('from_date'):
        where &= column >= dt.datetime.combine(
            context['from_date'], dt.time())
    if context.get('to_date'):
        where &= column < dt.datetime.combine(
            context['to_date'] + dt.timedelta(days=1), dt.time())
    return where


def period_of(column):
    "The first day of the context's period (month by default) of column"
    return period_start(column, context_period())


def period_domain(field, start):
    "A domain: field within the context's period that starts at start"
    months = {'month': 1, 'quarter': 3, 'year': 12}[context_period()]
    month = start.month - 1 + months
    end = dt.date(start.year + month // 12, month % 12 + 1, 1)
    return [(field, '>=', start), (field, '<', end)]


def readable(model, domain=None):
    """A query of the ids of the model's records that the user may read
    (access rules, company) and that match the domain: an analysis counts
    no more than its reader could open"""
    Model = Pool().get(model)
    return Model.search(domain or [], order=[], query=True)


def lead_domain():
    "The context's company, team and salesperson as a domain on crm.lead"
    context = Transaction().context
    domain = [('company', 'in', context_companies())]
    if context.get('team'):
        domain.append(('team', '=', context['team']))
    if context.get('owner'):
        domain.append(('owner', '=', context['owner']))
    return domain


def report_currency():
    """The currency of the amounts of an analysis: the context's, else the
    company's"""
    pool = Pool()
    Company = pool.get('company.company')
    Currency = pool.get('currency.currency')
    context = Transaction().context
    if context.get('currency'):
        return Currency(context['currency'])
    companies = context_companies()
    if companies:
        return Company(companies[0]).currency


def converted(amount, company_column):
    """amount (a column in the currency of the company of company_column)
    in the report's currency at the rate of the context's end date (today
    when none): a factor per company, known before the query runs"""
    pool = Pool()
    Company = pool.get('company.company')
    Currency = pool.get('currency.currency')
    target = report_currency()
    if target is None:
        return amount
    date = Transaction().context.get('to_date') or dt.date.today()
    whens = []
    with Transaction().set_context(date=min(date, dt.date.today())):
        for company in Company.browse(context_companies()):
            if company.currency == target:
                continue
            unit = Decimal(1_000_000)
            rate = Currency.compute(
                company.currency, unit, target, round=False) / unit
            whens.append((company_column == company.id, amount * rate))
    if not whens:
        return amount
    return Case(*whens, else_=amount)


class AnalysisMixin:
    """An analysis whose rows open the records they count (the drill-down
    wizard): the act_window of those records and a domain per row"""
    __slots__ = ()
    # 'module.xml_id' of the act_window listing the counted records
    _drill_down_action = 'crm_reports.act_drill_down_leads'

    def drill_down_domain(self):
        raise NotImplementedError


class DrillDown(Wizard):
    "Open the records counted in the selected rows of an analysis"
    __name__ = 'crm.report.drill_down'
    start_state = 'open_'
    open_ = StateAction('crm_reports.act_drill_down_leads')

    def do_open_(self, action):
        pool = Pool()
        Action = pool.get('ir.action')
        ModelData = pool.get('ir.model.data')
        module, xml_id = self.model._drill_down_action.split('.')
        action, = Action.get_action_values('ir.action.act_window', [
                Action.get_action_id(ModelData.get_id(module, xml_id))])
        domains = [r.drill_down_domain() for r in self.records]
        if not domains:
            raise ReportError(gettext('crm_reports.msg_drill_down_none'))
        action['pyson_domain'] = PYSONEncoder().encode(
            ['OR', *domains] if len(domains) > 1 else domains[0])
        action['name'] = '%s (%s)' % (action['name'], self.model.__string__)
        return action, {}
