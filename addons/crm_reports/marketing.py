"""Marketing figures (with crm_marketing): each campaign's funnel, the
leads it brought that the reader may read, what it cost and its return."""
from sql import Literal, Null
from sql.aggregate import Sum
from sql.conditionals import Case, Coalesce

from trytond.model import ModelSQL, ModelView, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool

from crm_core.sqltools import readable_table

from .common import (
    AnalysisMixin, CurrencyMixin, converted, converted_from, date_domain,
    date_range, lead_domain)


class Campaign(CurrencyMixin, AnalysisMixin, ModelSQL, ModelView):
    """Per campaign: its members and how far they went, the leads of the
    campaign created in the context's dates (those the reader may read),
    the won revenue, the costs dated in the context's dates, the cost per
    lead and the return on investment"""
    __name__ = 'crm.report.campaign'
    __string__ = "Campaign Results"

    campaign = fields.Many2One('marketing.campaign', "Campaign")
    members = fields.Integer("Members", help="The campaign's targets.")
    reached = fields.Integer("Reached", help="Members sent the campaign.")
    opened = fields.Integer("Opened")
    clicked = fields.Integer("Clicked")
    leads = fields.Integer("Leads")
    opportunities = fields.Integer("Opportunities")
    won = fields.Integer("Won")
    won_revenue = Monetary("Won Revenue", currency='currency',
        digits='currency')
    cost = Monetary("Cost", currency='currency', digits='currency')
    cost_per_lead = fields.Function(Monetary("Cost per Lead",
            currency='currency', digits='currency'), 'get_returns')
    roi = fields.Function(fields.Float("ROI", digits=(16, 2),
            help="(Won revenue - cost) / cost."), 'get_returns')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('won_revenue', 'DESC'), ('campaign', 'ASC'),
            ('id', 'ASC')]

    @classmethod
    def _lead_domain(cls):
        return lead_domain() + [('marketing_campaign', '!=', None)] \
            + date_domain('create_date')

    @classmethod
    def table_query(cls):
        pool = Pool()
        Campaign = pool.get('marketing.campaign')
        campaign = Campaign.__table__()
        zero = Literal(0)

        def one(condition):
            return Case((condition, 1), else_=0)
        lead, leads, where = readable_table('crm.lead', cls._lead_domain())
        won = lead.state == 'won'
        leads = leads.select(
            lead.id, lead.marketing_campaign.as_('campaign'),
            zero.as_('member'), zero.as_('reached'), zero.as_('opened'),
            zero.as_('clicked'), Literal(1).as_('lead'),
            one(lead.type == 'opportunity').as_('opportunity'),
            one(won).as_('won'),
            Case((won, converted(Coalesce(lead.expected_revenue, 0),
                        lead.company)), else_=0).as_('revenue'),
            zero.as_('cost'),
            where=where)
        member, members, where = readable_table('marketing.campaign.member')
        members = members.select(
            member.id, member.campaign,
            Literal(1).as_('member'), one(member.sent != Null),
            one(member.opened != Null), one(member.clicked != Null),
            zero, zero, zero, zero, zero,
            where=where)
        currencies = [c.currency for c in Campaign.search([])
            if c.currency]
        cost, costs, where = readable_table('marketing.campaign.cost')
        costs = costs.join(campaign,
            condition=cost.campaign == campaign.id).select(
            cost.id, cost.campaign, zero, zero, zero, zero, zero, zero,
            zero, zero,
            converted_from(cost.amount, campaign.currency, currencies),
            where=where & date_range(cost.date, timestamp=False))
        rows = leads | members | costs
        rows.all_ = True
        # One row per campaign: its id (those of the three tables meet)
        return rows.select(
            rows.campaign.as_('id'), rows.campaign,
            Sum(rows.member).as_('members'),
            Sum(rows.reached).as_('reached'),
            Sum(rows.opened).as_('opened'),
            Sum(rows.clicked).as_('clicked'),
            Sum(rows.lead).as_('leads'),
            Sum(rows.opportunity).as_('opportunities'),
            Sum(rows.won).as_('won'),
            Sum(rows.revenue).as_('won_revenue'),
            Sum(rows.cost).as_('cost'),
            group_by=[rows.campaign])

    @classmethod
    def get_returns(cls, rows, names):
        result = {'cost_per_lead': {}, 'roi': {}}
        for row in rows:
            cost = row.cost or 0
            result['cost_per_lead'][row.id] = (
                round(cost / row.leads, 2) if row.leads else None)
            result['roi'][row.id] = (
                float((row.won_revenue or 0) - cost) / float(cost)
                if cost else None)
        return result

    def drill_down_domain(self):
        return self._lead_domain() + [
            ('marketing_campaign', '=', self.campaign.id)]
