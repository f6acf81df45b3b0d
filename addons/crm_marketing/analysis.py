"""Marketing figures for graphs, computed in SQL (table_query): the results
of each campaign by medium (leads, won revenue, costs, ROI) and the leads
of each source per month. Both count the leads of the context's company
created in the context's dates that the reader may read (a salesperson:
their own and their teams')."""
import datetime as dt

from sql import Literal, Null
from sql.aggregate import Count, Min, Sum
from sql.conditionals import Case, Coalesce

from trytond.model import ModelSQL, ModelView, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool
from trytond.pyson import Eval, If
from trytond.transaction import Transaction

from crm_core.sqltools import month_start, readable_table


class Context(ModelView):
    __name__ = 'marketing.analysis.context'
    __string__ = "Marketing Analysis Context"

    company = fields.Many2One('company.company', "Company", required=True)
    from_date = fields.Date("From Date",
        domain=[If(Eval('from_date') & Eval('to_date'),
                ('from_date', '<=', Eval('to_date')), ())])
    to_date = fields.Date("To Date",
        domain=[If(Eval('from_date') & Eval('to_date'),
                ('to_date', '>=', Eval('from_date')), ())])

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_from_date(cls):
        context = Transaction().context
        if 'from_date' in context:
            return context['from_date']
        today = dt.date.today()
        return today.replace(year=today.year - 1, day=1)

    @classmethod
    def default_to_date(cls):
        return Transaction().context.get('to_date')


def leads():
    """(table, from, where): the leads of the analysis (lead_filter) that
    the reader may read"""
    lead, from_, where = readable_table('crm.lead')
    return lead, from_, where & lead_filter(lead)


def lead_filter(lead):
    "The leads of the analysis: the context's company (one of the user's)"
    pool = Pool()
    User = pool.get('res.user')
    context = Transaction().context
    company = context.get('company')
    if company is None or company not in User.get_companies():
        return Literal(False)
    where = lead.company == company
    if context.get('from_date'):
        where &= lead.create_date >= dt.datetime.combine(
            context['from_date'], dt.time())
    if context.get('to_date'):
        where &= lead.create_date < dt.datetime.combine(
            context['to_date'] + dt.timedelta(days=1), dt.time())
    return where


class CampaignMedium(ModelSQL, ModelView):
    __name__ = 'marketing.analysis.campaign_medium'
    __string__ = "Campaign Results by Medium"

    campaign = fields.Many2One('marketing.campaign', "Campaign")
    medium = fields.Many2One('marketing.medium', "Medium")
    leads = fields.Integer("Leads")
    won = fields.Integer("Won")
    won_revenue = Monetary("Won Revenue", currency='currency',
        digits='currency')
    cost = Monetary("Cost", currency='currency', digits='currency')
    roi = fields.Function(fields.Float("ROI", digits=(16, 2)), 'get_roi')
    currency = fields.Function(fields.Many2One(
            'currency.currency', "Currency"), 'get_currency')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('won_revenue', 'DESC'), ('campaign', 'ASC'),
            ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        "Leads and costs of each (campaign, medium), added up"
        lead, from_, where = leads()
        won = lead.state == 'won'
        lead_rows = from_.select(
            lead.marketing_campaign.as_('campaign'),
            lead.marketing_medium.as_('medium'),
            Literal(1).as_('lead'),
            Case((won, 1), else_=0).as_('won'),
            Case((won, lead.expected_revenue), else_=0).as_('revenue'),
            Literal(0).as_('cost'),
            where=where & (lead.marketing_campaign != Null))
        cost, from_, where = readable_table('marketing.campaign.cost')
        costs = from_.select(
            cost.campaign.as_('campaign'), cost.medium.as_('medium'),
            Literal(0).as_('lead'), Literal(0).as_('won'),
            Literal(0).as_('revenue'), cost.amount.as_('cost'),
            where=where & cost_filter(cost))
        rows = lead_rows | costs
        rows.all_ = True
        # One row per (campaign, medium): an id from both
        return rows.select(
            (rows.campaign * 100000 + Coalesce(rows.medium, 0)).as_('id'),
            rows.campaign, rows.medium,
            Sum(rows.lead).as_('leads'), Sum(rows.won).as_('won'),
            Sum(rows.revenue).as_('won_revenue'),
            Sum(rows.cost).as_('cost'),
            group_by=[rows.campaign, rows.medium])

    def get_roi(self, name):
        if self.cost:
            return float((self.won_revenue - self.cost) / self.cost)

    def get_currency(self, name):
        pool = Pool()
        Company = pool.get('company.company')
        company = Transaction().context.get('company')
        if company is not None and company >= 0:
            return Company(company).currency.id


def cost_filter(cost):
    "The costs of the analysis: the context's dates"
    context = Transaction().context
    where = Literal(True)
    if context.get('from_date'):
        where &= cost.date >= context['from_date']
    if context.get('to_date'):
        where &= cost.date <= context['to_date']
    return where


class SourceMonth(ModelSQL, ModelView):
    __name__ = 'marketing.analysis.source_month'
    __string__ = "Leads by Source per Month"

    month = fields.Date("Month")
    source = fields.Many2One('marketing.source', "Source")
    leads = fields.Integer("Leads")
    opportunities = fields.Integer("Opportunities")
    won = fields.Integer("Won")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('month', 'ASC'), ('source', 'ASC'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        lead, from_, where = leads()
        # Grouped outside: PostgreSQL does not see the month's expression
        # in the select and in the group by as one (their parameters)
        rows = from_.select(lead.id,
            month_start(lead.create_date).as_('month'),
            lead.marketing_source.as_('source'), lead.type, lead.state,
            where=where)
        return rows.select(
            Min(rows.id).as_('id'), rows.month, rows.source,
            Count().as_('leads'),
            Sum(Case((rows.type == 'opportunity', 1), else_=0)).as_(
                'opportunities'),
            Sum(Case((rows.state == 'won', 1), else_=0)).as_('won'),
            group_by=[rows.month, rows.source])
