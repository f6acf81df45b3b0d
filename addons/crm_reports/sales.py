"""Sales analyses on crm_core's leads and opportunities (table_query):
each counts only the leads its reader may open, in the context's
companies, team and salesperson."""
from sql import Null
from sql.aggregate import Count, Min, Sum
from sql.conditionals import Coalesce

from trytond.model import ModelSQL, ModelView, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool

from .common import (
    AnalysisMixin, converted, date_range, lead_domain, period_domain,
    period_of, readable, report_currency)


class CurrencyMixin:
    "Amounts of an analysis are in the report's currency"
    __slots__ = ()
    currency = fields.Function(fields.Many2One(
            'currency.currency', "Currency"), 'get_currency')

    def get_currency(self, name):
        currency = report_currency()
        return currency.id if currency else None


class Pipeline(CurrencyMixin, AnalysisMixin, ModelSQL, ModelView):
    """The open opportunities by stage, salesperson, team and period of
    their expected close (those without a date too)"""
    __name__ = 'crm.report.pipeline'
    __string__ = "Pipeline"

    company = fields.Many2One('company.company', "Company")
    stage = fields.Many2One('crm.stage', "Stage")
    owner = fields.Many2One('res.user', "Salesperson")
    team = fields.Many2One('crm.team', "Team")
    period = fields.Date("Expected Close")
    count = fields.Integer("Opportunities")
    expected = Monetary("Expected Revenue", currency='currency',
        digits='currency')
    weighted = Monetary("Weighted Revenue", currency='currency',
        digits='currency')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('period', 'ASC NULLS LAST'), ('stage', 'ASC'),
            ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Lead = pool.get('crm.lead')
        lead = Lead.__table__()
        leads = readable('crm.lead', lead_domain() + [
                ('state', '=', 'open'),
                ('type', '=', 'opportunity'),
                ])
        expected = converted(Coalesce(lead.expected_revenue, 0),
            lead.company)
        # Grouped outside: PostgreSQL does not see the period's expression
        # in the select and in the group by as one (their parameters)
        rows = lead.select(
            lead.id, lead.company, lead.stage, lead.owner, lead.team,
            period_of(lead.expected_close).as_('period'),
            expected.as_('expected'),
            (expected * Coalesce(lead.probability, 0) / 100).as_(
                'weighted'),
            where=lead.id.in_(leads)
            & (date_range(lead.expected_close)
                | (lead.expected_close == Null)))
        return rows.select(
            Min(rows.id).as_('id'), rows.company, rows.stage, rows.owner,
            rows.team, rows.period,
            Count().as_('count'),
            Sum(rows.expected).as_('expected'),
            Sum(rows.weighted).as_('weighted'),
            group_by=[rows.company, rows.stage, rows.owner, rows.team,
                rows.period])

    def drill_down_domain(self):
        domain = lead_domain() + [
            ('state', '=', 'open'),
            ('type', '=', 'opportunity'),
            ('company', '=', self.company.id),
            ('stage', '=', self.stage.id if self.stage else None),
            ('owner', '=', self.owner.id if self.owner else None),
            ('team', '=', self.team.id if self.team else None),
            ]
        if self.period:
            domain += period_domain('expected_close', self.period)
        else:
            domain.append(('expected_close', '=', None))
        return domain

