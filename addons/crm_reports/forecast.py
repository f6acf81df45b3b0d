"""Sales targets (quotas) of salespeople and teams, and the forecast
against them: won + weighted open pipeline of each target's period, beside
the target and last year's won."""
import datetime as dt

from sql import Cast, Literal, Null, Union
from sql.aggregate import Min, Sum
from sql.conditionals import Coalesce
from sql.functions import Function

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool
from trytond.pyson import Bool, Eval
from trytond.transaction import Transaction

from crm_core.sqltools import readable_table

from .common import (
    AnalysisMixin, context_companies, context_period, converted, lead_domain,
    period_domain, period_of, readable)
from .exceptions import TargetValidationError
from .sales import CurrencyMixin

PERIOD_MONTHS = {'month': 1, 'quarter': 3, 'year': 12}
# The target periods that fit in a period of the analysis: its rows sum them
FITTING = {
    'month': ['month'],
    'quarter': ['month', 'quarter'],
    'year': ['month', 'quarter'],
    }


def add_months(date, months):
    month = date.month - 1 + months
    return date.replace(year=date.year + month // 12, month=month % 12 + 1)


def period_start(date, period):
    "The first day of the month, quarter or year of date"
    months = PERIOD_MONTHS[period]
    return date.replace(month=(date.month - 1) // months * months + 1, day=1)


class Target(ModelSQL, ModelView):
    "A sales quota of a salesperson or a team for a month or a quarter"
    __name__ = 'crm.target'
    __string__ = "CRM Sales Target"

    company = fields.Many2One('company.company', "Company", required=True)
    user = fields.Many2One('res.user', "Salesperson", ondelete='CASCADE',
        domain=[('companies', '=', Eval('company', -1))],
        states={
            'required': ~Eval('team'),
            'readonly': Bool(Eval('team')),
            },
        help="The salesperson whose won deals count; leave empty for a "
        "team's target.")
    team = fields.Many2One('crm.team', "Team", ondelete='CASCADE',
        domain=[('company', '=', Eval('company', -1))],
        states={
            'required': ~Eval('user'),
            'readonly': Bool(Eval('user')),
            },
        help="The team whose won deals count; leave empty for a "
        "salesperson's target.")
    period_type = fields.Selection([
            ('month', "Month"),
            ('quarter', "Quarter"),
            ], "Period", required=True, sort=False)
    period_start = fields.Date("Start", required=True,
        help="The first day of the month or of the quarter.")
    period_end = fields.Function(fields.Date("End",
            help="The last day of the period."),
        'on_change_with_period_end')
    amount = Monetary("Amount", currency='currency', digits='currency',
        required=True, help="The revenue to win in the period.")
    currency = fields.Function(fields.Many2One(
            'currency.currency', "Currency"), 'on_change_with_currency')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # NULL users (teams' targets) and NULL teams never collide
        cls._sql_constraints += [
            ('user_period_unique',
                Unique(t, t.company, t.user, t.period_start),
                'crm_reports.msg_target_unique'),
            ('team_period_unique',
                Unique(t, t.company, t.team, t.period_start),
                'crm_reports.msg_target_unique'),
            ]
        cls._sql_indexes.add(Index(t,
                (t.company, Index.Range()),
                (t.period_start, Index.Range())))
        cls._order = [
            ('period_start', 'DESC'),
            ('user', 'ASC'),
            ('team', 'ASC'),
            ('id', 'DESC'),
            ]

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_period_type(cls):
        return 'month'

    @fields.depends('company')
    def on_change_with_currency(self, name=None):
        return self.company.currency if self.company else None

    @fields.depends('period_start', 'period_type')
    def on_change_with_period_end(self, name=None):
        if self.period_start and self.period_type:
            return add_months(
                period_start(self.period_start, self.period_type),
                PERIOD_MONTHS[self.period_type]) - dt.timedelta(days=1)

    @fields.depends('period_start', 'period_type')
    def on_change_period_start(self):
        # Snap a date picked in the period to the period's first day
        if self.period_start and self.period_type:
            self.period_start = period_start(
                self.period_start, self.period_type)

    @fields.depends(methods=['on_change_period_start'])
    def on_change_period_type(self):
        self.on_change_period_start()

    def get_rec_name(self, name):
        subject = self.user or self.team
        start = self.period_start
        if self.period_type == 'quarter':
            period = gettext('crm_reports.msg_target_quarter',
                year=start.year, quarter=(start.month - 1) // 3 + 1)
        else:
            period = f'{start.year}-{start.month:02d}'
        return f'{subject.rec_name if subject else ""} {period}'.strip()

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        if operator.startswith('!') or operator.startswith('not '):
            bool_op = 'AND'
        else:
            bool_op = 'OR'
        return [bool_op,
            ('user.rec_name', operator, operand, *extra),
            ('team.rec_name', operator, operand, *extra),
            ]

    @classmethod
    def validate_fields(cls, targets, field_names):
        super().validate_fields(targets, field_names)
        if field_names is None or field_names & {'user', 'team'}:
            cls.check_subject(targets)
        if field_names is None or field_names & {
                'period_type', 'period_start', 'user', 'team', 'company'}:
            cls.check_period(targets)

    @classmethod
    def check_subject(cls, targets):
        for target in targets:
            if bool(target.user) == bool(target.team):
                raise TargetValidationError(gettext(
                        'crm_reports.msg_target_user_or_team',
                        target=target.rec_name))

    @classmethod
    def check_period(cls, targets):
        """The start is the first day of its period, and no other target
        of the same salesperson or team covers a day of the period: the
        forecast sums the months of a quarter"""
        for target in targets:
            start = target.period_start
            if start != period_start(start, target.period_type):
                raise TargetValidationError(gettext(
                        'crm_reports.msg_target_period_start_%s'
                        % target.period_type,
                        target=target.rec_name, start=start))
            others = cls.search([
                    ('id', '!=', target.id),
                    ('company', '=', target.company.id),
                    ('user', '=', target.user.id if target.user else None),
                    ('team', '=', target.team.id if target.team else None),
                    # a quarter starts at most two months earlier
                    ('period_start', '>', add_months(start, -3)),
                    ('period_start', '<=', target.period_end),
                    ])
            for other in others:
                if other.period_end >= start:
                    raise TargetValidationError(gettext(
                            'crm_reports.msg_target_overlap',
                            target=target.rec_name, other=other.rec_name))


class _SQLiteDate(Function):
    __slots__ = ()
    _function = 'DATE'


def year_later(date):
    "The date (a date column or expression) one year later"
    if backend.name == 'sqlite':
        return _SQLiteDate(date, '+1 year')
    return Cast(date + Cast(Literal('1 year'), 'INTERVAL'), 'DATE')


def target_domain():
    """The targets of the analysis: the context's companies, salesperson
    and team (its own target and its members'), period starts within the
    context's dates, of the periods that fit in the context's period"""
    pool = Pool()
    Team = pool.get('crm.team')
    context = Transaction().context
    domain = [
        ('company', 'in', context_companies()),
        ('period_type', 'in', FITTING[context_period()]),
        ]
    if context.get('from_date'):
        domain.append(('period_start', '>=', context['from_date']))
    if context.get('to_date'):
        domain.append(('period_start', '<=', context['to_date']))
    if context.get('owner'):
        domain.append(('user', '=', context['owner']))
    if context.get('team'):
        team = Team(context['team'])
        domain.append(['OR',
                ('team', '=', team.id),
                ('user', 'in', [u.id for u in team.members]),
                ])
    return domain


class Forecast(CurrencyMixin, AnalysisMixin, ModelSQL, ModelView):
    """Per salesperson or team and per period of their targets: the target,
    the won revenue, the weighted open pipeline expected to close in the
    period, their sum (the forecast), the gap to the target and the revenue
    won in the same period last year"""
    __name__ = 'crm.report.forecast'
    __string__ = "Forecast"

    company = fields.Many2One('company.company', "Company")
    user = fields.Many2One('res.user', "Salesperson")
    team = fields.Many2One('crm.team', "Team")
    subject = fields.Function(fields.Char("Salesperson or Team"),
        'get_subject')
    period = fields.Date("Period")
    target = Monetary("Target", currency='currency', digits='currency')
    won = Monetary("Won", currency='currency', digits='currency',
        help="The revenue of the deals won in the period.")
    weighted = Monetary("Weighted Pipeline", currency='currency',
        digits='currency',
        help="The expected revenue times the probability of the open "
        "opportunities expected to close in the period.")
    forecast = Monetary("Forecast", currency='currency', digits='currency',
        help="Won plus weighted pipeline.")
    gap = Monetary("Gap", currency='currency', digits='currency',
        help="Target less forecast: what is still to be found.")
    last_year = Monetary("Won Last Year", currency='currency',
        digits='currency',
        help="The revenue won in the same period one year earlier.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('period', 'ASC'), ('user', 'ASC'), ('team', 'ASC'),
            ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Target = pool.get('crm.target')
        target = Target.__table__()
        # Grouped outside: PostgreSQL does not see the period's expression
        # in the select and in the group by as one (their parameters)
        rows = target.select(
            target.id, target.company, target.user, target.team,
            period_of(target.period_start).as_('period'),
            converted(target.amount, target.company).as_('amount'),
            where=target.id.in_(readable('crm.target', target_domain())))
        targets = rows.select(
            Min(rows.id).as_('id'), rows.company, rows.user, rows.team,
            rows.period, Sum(rows.amount).as_('target'),
            group_by=[rows.company, rows.user, rows.team, rows.period])

        facts = cls._lead_facts()
        by_user = facts.select(
            facts.company, facts.owner, facts.period,
            Sum(facts.won).as_('won'), Sum(facts.weighted).as_('weighted'),
            Sum(facts.last_year).as_('last_year'),
            where=facts.owner != Null,
            group_by=[facts.company, facts.owner, facts.period])
        by_team = facts.select(
            facts.company, facts.team, facts.period,
            Sum(facts.won).as_('won'), Sum(facts.weighted).as_('weighted'),
            Sum(facts.last_year).as_('last_year'),
            where=facts.team != Null,
            group_by=[facts.company, facts.team, facts.period])
        # A target has a user or a team: one of the joins finds its figures
        query = targets.join(by_user, 'LEFT', condition=(
                (by_user.company == targets.company)
                & (by_user.owner == targets.user)
                & (by_user.period == targets.period))
            ).join(by_team, 'LEFT', condition=(
                (by_team.company == targets.company)
                & (by_team.team == targets.team)
                & (by_team.period == targets.period)))
        won = Coalesce(by_user.won, by_team.won, 0)
        weighted = Coalesce(by_user.weighted, by_team.weighted, 0)
        return query.select(
            targets.id, targets.company, targets.user, targets.team,
            targets.period, targets.target,
            won.as_('won'), weighted.as_('weighted'),
            (won + weighted).as_('forecast'),
            (targets.target - won - weighted).as_('gap'),
            Coalesce(by_user.last_year, by_team.last_year, 0).as_(
                'last_year'))

    @classmethod
    def _lead_facts(cls):
        """Rows of (company, owner, team, period, won, weighted,
        last_year) of the readable leads: a won deal counts in the period
        of its close and, as last year's, in the period a year later; an
        open opportunity counts weighted in the period of its expected
        close"""
        context = Transaction().context
        period = context_period()
        lead, leads_from, leads = readable_table('crm.lead', lead_domain())
        amount = converted(Coalesce(lead.expected_revenue, 0), lead.company)
        # Only the leads of the periods the targets may cover
        start = end = None
        if context.get('from_date'):
            start = period_start(context['from_date'], period)
        if context.get('to_date'):
            end = add_months(period_start(context['to_date'], period),
                PERIOD_MONTHS[period])

        def within(column, years_before=0):
            where = Literal(True)
            if start:
                where &= column >= dt.datetime.combine(
                    add_months(start, -12 * years_before), dt.time())
            if end:
                where &= column < dt.datetime.combine(
                    add_months(end, -12 * years_before), dt.time())
            return where

        def within_dates(column):
            where = Literal(True)
            if start:
                where &= column >= start
            if end:
                where &= column < end
            return where

        columns = [lead.company, lead.owner, lead.team]
        # The type for PostgreSQL's union: a bare NULL parameter has none
        none = Cast(Literal(None), 'NUMERIC')
        won = leads_from.select(*columns,
            period_of(lead.date_closed).as_('period'),
            amount.as_('won'), none.as_('weighted'), none.as_('last_year'),
            where=leads & (lead.state == 'won')
            & within(lead.date_closed))
        last_year = leads_from.select(*columns,
            year_later(period_of(lead.date_closed)).as_('period'),
            none.as_('won'), none.as_('weighted'), amount.as_('last_year'),
            where=leads & (lead.state == 'won')
            & within(lead.date_closed, years_before=1))
        weighted = leads_from.select(*columns,
            period_of(lead.expected_close).as_('period'),
            none.as_('won'),
            (amount * Coalesce(lead.probability, 0) / 100).as_('weighted'),
            none.as_('last_year'),
            where=leads & (lead.state == 'open')
            & (lead.type == 'opportunity')
            & within_dates(lead.expected_close))
        return Union(won, last_year, weighted, all_=True)

    def get_subject(self, name):
        subject = self.user or self.team
        return subject.rec_name if subject else None

    def drill_down_domain(self):
        "The won deals and the weighted opportunities of the row"
        domain = lead_domain() + [('company', '=', self.company.id)]
        if self.user:
            domain.append(('owner', '=', self.user.id))
        else:
            domain.append(('team', '=', self.team.id))
        domain.append(['OR',
                [('state', '=', 'won')]
                + period_domain('date_closed', self.period, timestamp=True),
                [('state', '=', 'open'), ('type', '=', 'opportunity')]
                + period_domain('expected_close', self.period),
                ])
        return domain
