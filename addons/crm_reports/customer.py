"""Customer analyses: the lifecycle of the customers (from crm_core's
lifecycle history), the revenue of each customer and the customers by
owner, country and category. Parties belong to no company: the party
analyses count the parties the reader may read whose owner is one of the
users whose figures the reader may see (visible_users), or nobody."""
import datetime as dt

from sql import Column, Literal, Null, Values, Window
from sql.aggregate import Count, Max, Min, Sum
from sql.conditionals import Case, Coalesce
from sql.functions import Lead as Next, RowNumber

from trytond.model import ModelSQL, ModelView, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

from crm_core.sqltools import readable_table

from .common import (
    AnalysisMixin, CurrencyMixin, date_domain, date_range, grouped,
    lead_domain, lead_revenue, period_end, period_first_day, rate, user_domain)


def party_domain():
    "The context's team and salesperson as a domain on the parties' owner"
    return user_domain('owner', unowned=True)


def became_customer(change):
    "The condition that a crm.party.lifecycle row makes a new customer"
    return (change.to_status == 'customer') & (
        (change.from_status == Null) | (change.from_status != 'customer'))


def turned_former(change):
    "The condition that a crm.party.lifecycle row loses a customer"
    return (change.from_status == 'customer') & (change.to_status == 'former')


class CustomerLifecycle(AnalysisMixin, ModelSQL, ModelView):
    """Per period of the context's dates (the first and last cut to them):
    the parties that became customers, the customers that turned former,
    the customers at its start and the share of them kept; from the
    lifecycle history of the parties (the context's company does not
    apply: parties belong to no company)"""
    __name__ = 'crm.report.customer_lifecycle'
    __string__ = "Customer Lifecycle"
    _drill_down_action = 'crm_reports.act_drill_down_parties'

    period = fields.Date("Period")
    new = fields.Integer("New Customers",
        help="The prospects, new parties and former customers that "
        "became customers.")
    former = fields.Integer("Turned Former",
        help="The customers that became former customers.")
    at_start = fields.Integer("Customers at Start",
        help="The customers at the start of the period.")
    retention = fields.Function(fields.Float("Retention Rate",
            digits=(16, 1),
            help="In %: the customers at start less those turned former "
            "in the period, out of the customers at start."),
        'get_retention')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('period', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _periods(cls):
        """[(period, start, end)]: the first day of each period of the
        context's dates, and the timestamps it covers within them"""
        pool = Pool()
        Lifecycle = pool.get('crm.party.lifecycle')
        context = Transaction().context
        last = context.get('to_date') or dt.date.today()
        first = context.get('from_date')
        if not first:
            # From the first change
            change = Lifecycle.__table__()
            cursor = Transaction().connection.cursor()
            cursor.execute(*change.select(Min(change.date)))
            first, = cursor.fetchone()
            if isinstance(first, str):
                # SQLite does not convert aggregates
                first = dt.datetime.fromisoformat(first)
            first = first.date() if first else last
        # At least one period, even for dates the wrong way round
        first = min(first, last)
        periods = []
        period = period_first_day(first)
        while period <= last:
            end = period_end(period)
            periods.append((period,
                    dt.datetime.combine(max(period, first), dt.time()),
                    dt.datetime.combine(
                        min(end, last + dt.timedelta(days=1)), dt.time())))
            period = end
        return periods

    @classmethod
    def _changes(cls):
        """(change, from, where): the lifecycle changes (crm.party.lifecycle
        table) of the parties the reader may read"""
        change = Pool().get('crm.party.lifecycle').__table__()
        # Archived parties keep their history
        party, parties, where = readable_table('party.party',
            party_domain() + [('active', 'in', [True, False])])
        return change, parties.join(change,
            condition=change.party == party.id), where

    @classmethod
    def table_query(cls):
        change, changes, where = cls._changes()
        # Each status holds until the party's next change
        history = changes.select(
            change.party, change.date, change.from_status,
            change.to_status,
            Next(change.date, window=Window([change.party],
                    order_by=[change.date.asc, change.id.asc])
                ).as_('until'),
            where=where)
        periods = Values([(i, *p) for i, p in enumerate(cls._periods(), 1)])
        id_, period, start, end = (Column(periods, 'column%s' % i)
            for i in range(1, 5))
        in_period = history.date >= start
        return periods.join(history, 'LEFT',
            condition=(history.date < end)
            & ((history.until == Null) | (history.until >= start))).select(
            id_.as_('id'), period.as_('period'),
            Count(Case((in_period & became_customer(history),
                        history.party)), distinct=True).as_('new'),
            Count(Case((in_period & turned_former(history),
                        history.party)), distinct=True).as_('former'),
            Sum(Case((~in_period & (history.to_status == 'customer'), 1),
                    else_=0)).as_('at_start'),
            group_by=[id_, period])

    def get_retention(self, name):
        return rate(self.at_start - self.former, self.at_start)

    def drill_down_domain(self):
        "The parties that became customers or turned former in the period"
        change, changes, where = self._changes()
        _, start, end = next(p for p in self._periods() if p[0] == self.period)
        cursor = Transaction().connection.cursor()
        cursor.execute(*changes.select(change.party,
                where=where & (change.date >= start) & (change.date < end)
                & (became_customer(change) | turned_former(change)),
                group_by=[change.party]))
        return [
            ('id', 'in', [p for p, in cursor]),
            ('active', 'in', [True, False]),
            ]


class CustomerRevenue(CurrencyMixin, AnalysisMixin, ModelSQL, ModelView):
    """The revenue of each customer in a company: the expected revenue of
    its opportunities won in the context's dates, and its lifetime value.
    The context's team and salesperson choose the deals (as in the sales
    analyses); the owner shown is the customer's."""
    __name__ = 'crm.report.customer_revenue'
    __string__ = "Revenue per Customer"

    company = fields.Many2One('company.company', "Company")
    party = fields.Many2One('party.party', "Customer",
        context={'company': Eval('company', -1)}, depends={'company'})
    owner = fields.Many2One('res.user', "Owner",
        help="The salesperson in charge of the customer.")
    deals = fields.Integer("Won Deals")
    revenue = Monetary("Revenue", currency='currency', digits='currency',
        help="The expected revenue of the opportunities won in the dates.")
    first_won = fields.DateTime("First Won", help="In the dates.")
    last_won = fields.DateTime("Last Won", help="In the dates.")
    lifetime_value = Monetary("Lifetime Value", currency='currency',
        digits='currency',
        help="The expected revenue of all the opportunities won from the "
        "customer in the company, in the dates or before or after them "
        "(those counted for the team and salesperson asked).")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('revenue', 'DESC'), ('id', 'ASC')]

    @classmethod
    def _lead_domain(cls):
        return lead_domain() + [
            ('type', '=', 'opportunity'),
            ('state', '=', 'won'),
            ('party', '!=', None),
            ]

    @classmethod
    def table_query(cls):
        pool = Pool()
        party = pool.get('party.party').__table__()
        lead, leads, where = readable_table('crm.lead', cls._lead_domain())
        rows = leads.join(party, condition=lead.party == party.id).select(
            lead.id, lead.company, lead.party, party.owner, lead.date_closed,
            lead_revenue(lead).as_('amount'),
            Case((date_range(lead.date_closed), 1), else_=0).as_('in_dates'),
            where=where)
        in_dates = rows.in_dates == 1
        return grouped(rows, ['company', 'party', 'owner'],
            Sum(rows.in_dates).as_('deals'),
            Sum(Case((in_dates, rows.amount), else_=0)).as_('revenue'),
            Min(Case((in_dates, rows.date_closed))).as_('first_won'),
            Max(Case((in_dates, rows.date_closed))).as_('last_won'),
            Sum(rows.amount).as_('lifetime_value'),
            having=Sum(rows.in_dates) > 0)

    def drill_down_domain(self):
        return (self._lead_domain() + self._keys_domain('company', 'party')
            + date_domain('date_closed'))


class CustomerSegment(AnalysisMixin, ModelSQL, ModelView):
    """The active customers (lifecycle status customer) by owner, country of
    their first address and category"""
    __name__ = 'crm.report.customer_segment'
    __string__ = "Customers by Segment"
    _drill_down_action = 'crm_reports.act_drill_down_parties'

    owner = fields.Many2One('res.user', "Owner")
    country = fields.Many2One('country.country', "Country",
        help="Of the first address.")
    category = fields.Many2One('party.category', "Category")
    count = fields.Integer("Customers",
        help="A customer in several categories counts in each of them.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('count', 'DESC'), ('id', 'ASC')]

    @classmethod
    def _customers(cls):
        "A customer per category (or none), with its owner and country"
        pool = Pool()
        Address = pool.get('party.address')
        address = Address.__table__()
        link = pool.get('party.party-party.category').__table__()
        party, parties, where = readable_table('party.party',
            party_domain() + [('lifecycle_status', '=', 'customer')])
        # The first address in the order of Address (sequence, id)
        ranked = address.select(address.party, address.country,
            RowNumber(window=Window([address.party], order_by=[
                        address.sequence.asc.nulls_first,
                        address.id.asc])).as_('rank'),
            where=address.active == Literal(True))
        first = ranked.select(ranked.party, ranked.country,
            where=ranked.rank == 1)
        return parties.join(first, 'LEFT', condition=first.party == party.id
            ).join(link, 'LEFT', condition=link.party == party.id).select(
            # Unique: even for a category link, odd for a party without
            Coalesce(link.id * 2, party.id * 2 + 1).as_('id'),
            party.id.as_('party'), party.owner, first.country,
            link.category,
            where=where)

    @classmethod
    def table_query(cls):
        customers = cls._customers()
        return grouped(customers, ['owner', 'country', 'category'],
            Count().as_('count'))

    def drill_down_domain(self):
        "The customers of the row (no domain says 'the first address')"
        customers = self._customers()
        where = Literal(True)
        for name in ['owner', 'country', 'category']:
            value = getattr(self, name)
            column = Column(customers, name)
            where &= (column == value.id) if value else (column == Null)
        cursor = Transaction().connection.cursor()
        cursor.execute(*customers.select(customers.party, where=where))
        return [('id', 'in', [p for p, in cursor])]
