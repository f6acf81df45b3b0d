"""What the analyses of crm_reports share: their context (dates, period,
company, team, owner, currency), the records the reader may see, the
period of a date and amounts in one currency, and the drill-down from a
row of figures to the records counted in it."""
import datetime as dt
from decimal import Decimal

from sql import Column, Literal, Values
from sql.aggregate import Min
from sql.conditionals import Case, Coalesce

from trytond.i18n import gettext
from trytond.model import Model, ModelView, fields
from trytond.tools.domain_inversion import is_leaf
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


def date_range(column, timestamp=True):
    """The condition that column (a timestamp, or a date when not
    timestamp) is within the context's dates; a date is compared with
    dates: SQLite compares them as text"""
    context = Transaction().context
    where = Literal(True)
    from_date, to_date = context.get('from_date'), context.get('to_date')
    if timestamp:
        if from_date:
            where &= column >= dt.datetime.combine(from_date, dt.time())
        if to_date:
            where &= column < dt.datetime.combine(
                to_date + dt.timedelta(days=1), dt.time())
    else:
        if from_date:
            where &= column >= from_date
        if to_date:
            where &= column <= to_date
    return where


def date_domain(field):
    """The context's dates as a domain on a date or timestamp field (the
    domain of date_range)"""
    context = Transaction().context
    domain = []
    if context.get('from_date'):
        domain.append((field, '>=', dt.datetime.combine(
                    context['from_date'], dt.time())))
    if context.get('to_date'):
        domain.append((field, '<', dt.datetime.combine(
                    context['to_date'] + dt.timedelta(days=1), dt.time())))
    return domain


def period_of(column):
    "The first day of the context's period (month by default) of column"
    return period_start(column, context_period())


def period_table(column):
    """(table, condition, start): the context's periods as a table of their
    first days to join where period_of(column) equals start, or None when
    the context has no dates. Grouped by the table's column, PostgreSQL
    knows there are only a few periods and hashes the rows instead of
    sorting them all (it cannot tell how many periods an expression
    yields)."""
    context = Transaction().context
    from_date, to_date = context.get('from_date'), context.get('to_date')
    if not from_date or not to_date:
        return None
    starts, start = [], period_first_day(from_date)
    while start <= to_date:
        starts.append([start])
        start = period_end(start)
    table = Values(starts)
    start = Column(table, 'column1')
    return table, start == period_of(column), start


def period_domain(field, start, timestamp=False):
    """A domain: field (a date, or a timestamp when said) within the
    context's period that starts at start"""
    end = period_end(start)
    if timestamp:
        start, end = (dt.datetime.combine(d, dt.time()) for d in (start, end))
    return [(field, '>=', start), (field, '<', end)]


def period_first_day(date):
    "The first day of the context's period of date (a Python date)"
    period = context_period()
    if period == 'year':
        return date.replace(month=1, day=1)
    if period == 'quarter':
        return date.replace(month=date.month - (date.month - 1) % 3, day=1)
    return date.replace(day=1)


def period_end(start):
    "The first day after the context's period that starts at start"
    months = {'month': 1, 'quarter': 3, 'year': 12}[context_period()]
    month = start.month - 1 + months
    return dt.date(start.year + month // 12, month % 12 + 1, 1)


def readable(model, domain=None):
    """A query of the ids of the model's records that the user may read
    (access rules, company) and that match the domain: an analysis counts
    no more than its reader could open"""
    Model = Pool().get(model)
    return Model.search(domain or [], order=[], query=True)


def domain_fields(domain):
    "The names of the fields (before any dot) the domain filters on"
    if is_leaf(domain):
        return {domain[0].split('.', 1)[0]}
    names = set()
    for clause in domain:
        if not isinstance(clause, str):
            names |= domain_fields(clause)
    return names


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


def _factors(currencies):
    """{currency: factor to the report's currency} at the rate of the
    context's end date (today when none), for the currencies that differ"""
    pool = Pool()
    Currency = pool.get('currency.currency')
    target = report_currency()
    if target is None:
        return {}
    date = Transaction().context.get('to_date') or dt.date.today()
    unit = Decimal(1_000_000)
    with Transaction().set_context(date=min(date, dt.date.today())):
        return {currency: Currency.compute(
                currency, unit, target, round=False) / unit
            for currency in set(currencies) if currency != target}


def converted(amount, company_column):
    """amount (a column in the currency of the company of company_column)
    in the report's currency: a factor per company, known before the query
    runs"""
    pool = Pool()
    Company = pool.get('company.company')
    companies = Company.browse(context_companies())
    factors = _factors(c.currency for c in companies)
    whens = [(company_column == c.id, amount * factors[c.currency])
        for c in companies if c.currency in factors]
    return Case(*whens, else_=amount) if whens else amount


def converted_from(amount, currency_column, currencies):
    """amount (a column in the currency of currency_column, one of
    currencies) in the report's currency"""
    factors = _factors(currencies)
    whens = [(currency_column == c.id, amount * f)
        for c, f in factors.items()]
    return Case(*whens, else_=amount) if whens else amount


def lead_revenue(lead):
    "The expected revenue of a crm.lead table in the report's currency"
    return converted(Coalesce(lead.expected_revenue, 0), lead.company)


def grouped(rows, keys, *aggregates, **kwargs):
    """rows (a sub-select with an id) grouped by its columns named keys,
    the smallest id of a group as its id. Grouped outside the select that
    computes the keys: PostgreSQL does not see an expression with
    parameters (a period) in the select and in the group by as one."""
    columns = [Column(rows, k) for k in keys]
    return rows.select(Min(rows.id).as_('id'), *columns, *aggregates,
        group_by=columns, **kwargs)


def rate(part, whole):
    "part in % of whole (None when whole is nothing)"
    return round(100 * part / whole, 1) if whole else None


def team_members(teams):
    "The ids of the members of the teams (ids)"
    Member = Pool().get('crm.team-res.user')
    member = Member.__table__()
    cursor = Transaction().connection.cursor()
    cursor.execute(*member.select(member.user,
            where=member.team.in_(list(teams) or [-1])))
    return {u for u, in cursor}


def visible_users():
    """The ids of the users whose own figures (activities, customers) the
    reader may see, None for all. Every CRM user may read every activity
    and party of the company, but a salesperson's figures are counted as
    crm_core's rules count leads: their own and those of the members of
    their teams; CRM managers see everybody's."""
    pool = Pool()
    User = pool.get('res.user')
    ModelData = pool.get('ir.model.data')
    transaction = Transaction()
    if not transaction.check_access:
        return None
    if ModelData.get_id('crm_core', 'group_crm_manager') in User.get_groups():
        return None
    return {transaction.user} | team_members(
        User.get_crm_teams(transaction.user))


def user_domain(field, unowned=False):
    """The context's team (its members) and salesperson as a domain on a
    res.user field, within the visible users; unowned: records without
    user count too when no team or salesperson is asked"""
    context = Transaction().context
    users = visible_users()
    if context.get('owner'):
        owner = {context['owner']}
        users = owner if users is None else users & owner
        unowned = False
    if context.get('team'):
        members = team_members([context['team']])
        users = members if users is None else users & members
        unowned = False
    if users is None:
        return []
    if unowned:
        return [['OR', (field, 'in', sorted(users)), (field, '=', None)]]
    return [(field, 'in', sorted(users))]


class CurrencyMixin:
    "Amounts of an analysis are in the report's currency"
    __slots__ = ()
    currency = fields.Function(fields.Many2One(
            'currency.currency', "Currency"), 'get_currency')

    def get_currency(self, name):
        currency = report_currency()
        return currency.id if currency else None


class AnalysisMixin:
    """An analysis whose rows open the records they count (the drill-down
    wizard): the act_window of those records and a domain per row"""
    __slots__ = ()
    # 'module.xml_id' of the act_window listing the counted records
    _drill_down_action = 'crm_reports.act_drill_down_leads'

    def drill_down_domain(self):
        raise NotImplementedError

    def _keys_domain(self, *names):
        """The row's values of the fields names (named as on the counted
        records) as a domain"""
        domain = []
        for name in names:
            value = getattr(self, name)
            if isinstance(value, Model):
                value = value.id
            domain.append((name, '=', value))
        return domain


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
