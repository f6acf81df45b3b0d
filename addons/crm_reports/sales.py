"""Sales analyses on crm_core's leads, opportunities and activities
(table_query): each counts only the records its reader may open, in the
context's companies, team and salesperson."""
import datetime as dt

from sql import Cast, Literal, Null, Union, Window
from sql.aggregate import Avg, Count, Max, Min, Sum
from sql.conditionals import Case, Coalesce
from sql.operators import Concat, Exists
from sql.functions import Lead as Next

from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.model.fields import SQL_OPERATORS
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction

from crm_core.sqltools import readable_table, seconds_between, week_start

from .common import (
    AnalysisMixin, CurrencyMixin, context_companies, date_domain, date_range,
    grouped, lead_domain, lead_revenue, period_domain, period_of, rate,
    report_currency, user_domain)
from .summary import (
    COMMIT_MARGIN, Summary, last_written, last_written_index, union_id)

DAY = 86400
# Beyond this many leads written since the refresh, the Stage Funnel counts
# every lead from its history
STALE_LIMIT = 5000


class SalesKeysMixin:
    "The company, salesperson and team a row of sales figures is about"
    __slots__ = ()
    company = fields.Many2One('company.company', "Company")
    owner = fields.Many2One('res.user', "Salesperson")
    team = fields.Many2One('crm.team', "Team")


class Pipeline(SalesKeysMixin, CurrencyMixin, AnalysisMixin, ModelSQL,
        ModelView):
    """The open opportunities by stage, salesperson, team and period of
    their expected close (those without a date too)"""
    __name__ = 'crm.report.pipeline'
    __string__ = "Pipeline"

    stage = fields.Many2One('crm.stage', "Stage")
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
        lead, leads, where = readable_table('crm.lead', lead_domain() + [
                ('state', '=', 'open'),
                ('type', '=', 'opportunity'),
                ])
        expected = lead_revenue(lead)
        rows = leads.select(
            lead.id, lead.company, lead.stage, lead.owner, lead.team,
            period_of(lead.expected_close).as_('period'),
            expected.as_('expected'),
            (expected * Coalesce(lead.probability, 0) / 100).as_(
                'weighted'),
            where=where
            & (date_range(lead.expected_close, timestamp=False)
                | (lead.expected_close == Null)))
        return grouped(rows,
            ['company', 'stage', 'owner', 'team', 'period'],
            Count().as_('count'),
            Sum(rows.expected).as_('expected'),
            Sum(rows.weighted).as_('weighted'))

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



class NewOpportunity(SalesKeysMixin, CurrencyMixin, AnalysisMixin, ModelSQL,
        ModelView):
    """The opportunities that came in each period of the context's dates:
    dated by their conversion, which is their creation for those created as
    opportunities (a lead becomes a new opportunity when converted)"""
    __name__ = 'crm.report.new_opportunity'
    __string__ = "New Opportunities"

    period = fields.Date("Period")
    count = fields.Integer("Opportunities")
    expected = Monetary("Expected Revenue", currency='currency',
        digits='currency')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('period', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _lead_domain(cls):
        return lead_domain() + [('type', '=', 'opportunity')]

    @classmethod
    def table_query(cls):
        lead, leads, where = readable_table('crm.lead', cls._lead_domain())
        rows = leads.select(
            lead.id, lead.company, lead.owner, lead.team,
            period_of(lead.date_conversion).as_('period'),
            lead_revenue(lead).as_('expected'),
            where=where & date_range(lead.date_conversion))
        return grouped(rows, ['company', 'period', 'owner', 'team'],
            Count().as_('count'),
            Sum(rows.expected).as_('expected'))

    def drill_down_domain(self):
        return (self._lead_domain()
            + self._keys_domain('company', 'owner', 'team')
            + period_domain('date_conversion', self.period, timestamp=True)
            + date_domain('date_conversion'))


# The age bands of the open quotes: the days from the quote's first print
# to the context's end date (None: no end)
AGE_BANDS = {
    '0-7': (0, 7),
    '8-30': (8, 30),
    '31-90': (31, 90),
    '90+': (91, None),
    }


class OpenQuote(SalesKeysMixin, CurrencyMixin, AnalysisMixin, ModelSQL,
        ModelView):
    """The open opportunities whose quotation was printed, by age of the
    quote at the context's end date (today without one); quotes first
    printed after that date are left out, those of any earlier date kept"""
    __name__ = 'crm.report.open_quote'
    __string__ = "Open Quotes"

    age = fields.Selection([
            ('0-7', "0-7 Days"),
            ('8-30', "8-30 Days"),
            ('31-90', "31-90 Days"),
            ('90+', "Over 90 Days"),
            ], "Age", sort=False,
        help="The days since the quotation was first printed.")
    count = fields.Integer("Opportunities")
    expected = Monetary("Expected Revenue", currency='currency',
        digits='currency')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('age', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _lead_domain(cls):
        return lead_domain() + [
            ('type', '=', 'opportunity'),
            ('state', '=', 'open'),
            ('quotation_date', '!=', None),
            ]

    @classmethod
    def _age_range(cls, age):
        """The first quotation timestamp of the age band and the one after
        its last (None: no limit)"""
        end = Transaction().context.get('to_date') or dt.date.today()

        def day(days):
            return dt.datetime.combine(
                end - dt.timedelta(days=days), dt.time())
        low, high = AGE_BANDS[age]
        return day(high) if high is not None else None, day(low - 1)

    @classmethod
    def table_query(cls):
        lead, leads, where = readable_table('crm.lead', cls._lead_domain())
        *younger, oldest = AGE_BANDS
        age = Case(*((lead.quotation_date >= cls._age_range(a)[0], a)
                for a in younger), else_=oldest)
        rows = leads.select(
            lead.id, lead.company, lead.owner, lead.team, age.as_('age'),
            lead_revenue(lead).as_('expected'),
            where=where
            & (lead.quotation_date < cls._age_range(younger[0])[1]))
        return grouped(rows, ['company', 'age', 'owner', 'team'],
            Count().as_('count'),
            Sum(rows.expected).as_('expected'))

    def drill_down_domain(self):
        low, high = self._age_range(self.age)
        domain = (self._lead_domain()
            + self._keys_domain('company', 'owner', 'team')
            + [('quotation_date', '<', high)])
        if low:
            domain.append(('quotation_date', '>=', low))
        return domain


class WonLost(SalesKeysMixin, CurrencyMixin, AnalysisMixin, ModelSQL,
        ModelView):
    """The opportunities closed in each period of the context's dates (by
    their closing date): won and lost, win rate, average deal size and
    sales cycle"""
    __name__ = 'crm.report.won_lost'
    __string__ = "Won and Lost"

    period = fields.Date("Period")
    won = fields.Integer("Won")
    lost = fields.Integer("Lost")
    win_rate = fields.Function(fields.Float("Win Rate", digits=(16, 1),
            help="In %: won out of won and lost."), 'get_win_rate')
    won_revenue = Monetary("Won Revenue", currency='currency',
        digits='currency')
    average_deal = fields.Function(Monetary("Average Deal Size",
            currency='currency', digits='currency',
            help="The won revenue per won opportunity."),
        'get_average_deal')
    cycle_days = fields.Float("Sales Cycle (days)", digits=(16, 1),
        help="The days from creation to closing of the won opportunities, "
        "on average.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('period', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _lead_domain(cls):
        return lead_domain() + [
            ('type', '=', 'opportunity'),
            ('state', 'in', ['won', 'lost']),
            ]

    @classmethod
    def table_query(cls):
        lead, leads, where = readable_table('crm.lead', cls._lead_domain())
        won = lead.state == 'won'
        rows = leads.select(
            lead.id, lead.company, lead.owner, lead.team,
            period_of(lead.date_closed).as_('period'),
            Case((won, 1), else_=0).as_('won'),
            Case((lead.state == 'lost', 1), else_=0).as_('lost'),
            Case((won, lead_revenue(lead)), else_=0).as_('won_revenue'),
            Case((won, seconds_between(lead.create_date, lead.date_closed)
                    / DAY), else_=Null).as_('cycle'),
            where=where & date_range(lead.date_closed))
        return grouped(rows, ['company', 'period', 'owner', 'team'],
            Sum(rows.won).as_('won'),
            Sum(rows.lost).as_('lost'),
            Sum(rows.won_revenue).as_('won_revenue'),
            cls.cycle_days.sql_cast(Avg(rows.cycle)).as_('cycle_days'))

    def get_win_rate(self, name):
        return rate(self.won, self.won + self.lost)

    def get_average_deal(self, name):
        if self.won:
            average = self.won_revenue / self.won
            currency = report_currency()
            return currency.round(average) if currency else average

    def drill_down_domain(self):
        return (self._lead_domain()
            + self._keys_domain('company', 'owner', 'team')
            + period_domain('date_closed', self.period, timestamp=True)
            + date_domain('date_closed'))


def stage_facts(leads, lead, where):
    """Per lead (of leads, a from whose lead table is lead, matching where)
    and stage of its stage history: id, company, lead, stage, went_on (1
    when from an open stay in the stage, the lead went on to an open stage
    of a higher sequence or was won), seconds (of the stays in the stage
    that ended, or None) and open_since (the start of the lead's current
    stay when in it and open). One pass over the history with windows."""
    pool = Pool()
    History = pool.get('crm.lead.history')
    Stage = pool.get('crm.stage')
    history = History.__table__()
    stage = Stage.__table__()
    order = [history.date.asc, history.id.asc]
    # The lead's changes from this one on
    following = Window([history.lead], order_by=order, frame='ROWS',
        start=0, end=None)
    sequence = Coalesce(stage.sequence, 0)
    won = Case((history.to_state == 'won', 1), else_=0)
    # Each stay in a stage ends with the lead's next change
    stays = leads.join(history, condition=history.lead == lead.id
        ).join(stage, condition=history.to_stage == stage.id).select(
        history.id, lead.company, history.lead,
        history.to_stage.as_('stage'), history.to_state, history.date,
        Next(history.date, window=Window([history.lead],
                order_by=order)).as_('until'),
        sequence.as_('sequence'),
        Max(Case((history.to_state == 'open', sequence)),
            window=following).as_('highest'),
        Max(won, window=following).as_('won'),
        where=where)
    went_on = Case(((stays.to_state == 'open')
            & ((stays.highest > stays.sequence) | (stays.won == 1)), 1),
        else_=0)
    ended = stays.until != Null
    return stays.select(
        Min(stays.id).as_('id'), stays.company, stays.lead, stays.stage,
        Max(went_on).as_('went_on'),
        Sum(Case((ended, seconds_between(stays.date, stays.until)),
                else_=Null)).as_('seconds'),
        Max(Case((~ended & (stays.to_state == 'open'), stays.date),
                else_=Null)).as_('open_since'),
        group_by=[stays.company, stays.lead, stays.stage])


class StageSummary(Summary):
    """The figures of each lead per stage of its history (stage_facts),
    kept for the Stage Funnel: the leads whose history was written since
    the last refresh are counted from their history, and all of them once
    a stage was changed (its sequence decides what went on)"""
    __name__ = 'crm.report.stage_summary'
    __string__ = "Stage Summary"

    lead = fields.Many2One('crm.lead', "Lead", required=True,
        ondelete='CASCADE')
    stage = fields.Many2One('crm.stage', "Stage", required=True,
        ondelete='CASCADE')
    went_on = fields.Integer("Went On")
    seconds = fields.Float("Seconds", help="In the stays that ended.")
    open_since = fields.DateTime("Open Since")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.lead, Index.Range())))

    @classmethod
    def stale_leads(cls, state=None):
        """A query of the ids of the leads to count from their history
        (written since the refresh), or None for all of them"""
        pool = Pool()
        History = pool.get('crm.lead.history')
        Stage = pool.get('crm.stage')
        history = History.__table__()
        stage = Stage.__table__()
        state = state or cls._state()
        if not state:
            return None
        refreshed_at = state[2]
        cursor = Transaction().connection.cursor()
        cursor.execute(*stage.select(stage.id,
                where=last_written(stage) >= refreshed_at, limit=1))
        if cursor.fetchone():
            return None
        return history.select(history.lead,
            where=last_written(history) >= refreshed_at)

    @classmethod
    def stale_lead_ids(cls):
        """The ids of the leads to count from their history, or None for
        all of them. Known before the analysis's query runs: PostgreSQL
        could only guess how many leads a range of write dates gives."""
        stale = cls.stale_leads()
        if stale is None:
            return None
        cursor = Transaction().connection.cursor()
        cursor.execute(*stale.select(stale.lead, distinct=True,
                limit=STALE_LIMIT + 1))
        ids = [l for l, in cursor]
        return ids if len(ids) <= STALE_LIMIT else None

    @classmethod
    def refresh(cls):
        "Summarize again the leads whose history changed (the cron)"
        pool = Pool()
        Refresh = pool.get('crm.report.summary.refresh')
        Lead = pool.get('crm.lead')
        table = cls.__table__()
        lead = Lead.__table__()
        cursor = Transaction().connection.cursor()
        Refresh.lock()
        now = dt.datetime.now()
        state = cls._state()
        stale = cls.stale_leads(state)
        if stale is not None:
            cursor.execute(*table.delete(where=table.lead.in_(stale)))
            where = lead.id.in_(stale)
        else:
            cursor.execute(*table.delete())
            where = Literal(True)
        facts = stage_facts(lead, lead, where)
        cursor.execute(*table.insert([table.lead, table.stage,
                    table.went_on, table.seconds, table.open_since],
                facts.select(facts.lead, facts.stage, facts.went_on,
                    facts.seconds, facts.open_since)))
        cls._set_state(state, now.date(), now - COMMIT_MARGIN)


class LeadHistory(metaclass=PoolMeta):
    __name__ = 'crm.lead.history'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # The leads whose history was written since the stage summary's
        # refresh are counted from their history
        cls._sql_indexes.add(last_written_index(t))


class StageFunnel(AnalysisMixin, ModelSQL, ModelView):
    """The stages that the leads created in the context's dates went
    through, from their stage history: how many reached each stage, how
    many of them went on to a later stage (by sequence) or were won, and
    the days they spent in it: from each change to the next, or to now in
    the current stage of an open lead (a won or lost stage is final)"""
    __name__ = 'crm.report.stage_funnel'
    __string__ = "Stage Funnel"

    company = fields.Many2One('company.company', "Company")
    stage = fields.Many2One('crm.stage', "Stage")
    reached = fields.Integer("Reached", help="The leads that came into "
        "the stage.")
    went_on = fields.Integer("Went On", help="Of those, the leads that "
        "moved from it to a later stage (by sequence) or were won.")
    conversion = fields.Function(fields.Float("Conversion", digits=(16, 1),
            help="In %: went on out of reached."), 'get_conversion')
    average_days = fields.Float("Average Days in Stage", digits=(16, 1),
        help="The days a lead spent in the stage (all its stays there), "
        "on average over the leads that left it or are open in it.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('stage', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _lead_domain(cls):
        return lead_domain() + date_domain('create_date')

    @classmethod
    def table_query(cls):
        pool = Pool()
        Summary = pool.get('crm.report.stage_summary')
        summary = Summary.__table__()
        lead, leads, where = readable_table('crm.lead', cls._lead_domain())
        now = Literal(dt.datetime.now())
        stale = Summary.stale_lead_ids()
        live = stage_facts(leads, lead, where & (
                SQL_OPERATORS['in'](lead.id, stale) if stale is not None
                else Literal(True)))
        live = live.select(union_id(live, False).as_('id'), live.company,
            live.stage, live.went_on, live.seconds, live.open_since)
        if stale is not None:
            kept = leads.join(summary, condition=summary.lead == lead.id
                ).select(union_id(summary, True).as_('id'), lead.company,
                summary.stage, summary.went_on, summary.seconds,
                summary.open_since, where=where
                & SQL_OPERATORS['not in'](lead.id, stale))
            facts = Union(live, kept, all_=True)
        else:
            facts = live
        # The stays that ended, and the current one of an open lead
        seconds = Case(((facts.seconds != Null) | (facts.open_since != Null),
                Coalesce(facts.seconds, 0) + Coalesce(
                    seconds_between(facts.open_since, now), 0)),
            else_=Null)
        return grouped(facts, ['company', 'stage'],
            Count().as_('reached'),
            Sum(facts.went_on).as_('went_on'),
            cls.average_days.sql_cast(Avg(seconds / DAY)).as_(
                'average_days'))

    def get_conversion(self, name):
        return rate(self.went_on, self.reached)

    def drill_down_domain(self):
        return (self._lead_domain() + self._keys_domain('company')
            + [('history.to_stage', '=', self.stage.id)])


class LostSales(CurrencyMixin, AnalysisMixin, ModelSQL, ModelView):
    "The opportunities lost in the context's dates by reason and competitor"
    __name__ = 'crm.report.lost_reason'
    __string__ = "Lost Sales"

    company = fields.Many2One('company.company', "Company")
    lost_reason = fields.Many2One('crm.lost_reason', "Reason")
    competitor = fields.Many2One('party.party', "Competitor",
        context={'company': Eval('company', -1)}, depends={'company'})
    count = fields.Integer("Opportunities")
    revenue = Monetary("Lost Revenue", currency='currency',
        digits='currency', help="Their expected revenue.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('count', 'DESC'), ('id', 'ASC')]

    @classmethod
    def _lead_domain(cls):
        return lead_domain() + [
            ('type', '=', 'opportunity'),
            ('state', '=', 'lost'),
            ]

    @classmethod
    def table_query(cls):
        lead, leads, where = readable_table('crm.lead', cls._lead_domain())
        rows = leads.select(
            lead.id, lead.company, lead.lost_reason, lead.competitor,
            lead_revenue(lead).as_('revenue'),
            where=where & date_range(lead.date_closed))
        return grouped(rows, ['company', 'lost_reason', 'competitor'],
            Count().as_('count'),
            Sum(rows.revenue).as_('revenue'))

    def drill_down_domain(self):
        return (self._lead_domain()
            + self._keys_domain('company', 'lost_reason', 'competitor')
            + date_domain('date_closed'))


class Neglected(SalesKeysMixin, CurrencyMixin, AnalysisMixin, ModelSQL,
        ModelView):
    """The open leads and opportunities with no planned activity: none
    whose origin is the lead. An activity planned on the lead's party only
    does not count: a party may have several deals, and the lead's next
    activity (shown in its lists) follows the same rule."""
    __name__ = 'crm.report.neglected'
    __string__ = "Neglected Leads"

    type = fields.Selection('get_types', "Type")
    count = fields.Integer("Leads")
    expected = Monetary("Expected Revenue", currency='currency',
        digits='currency')
    last_activity = fields.DateTime("Oldest Last Activity",
        help="The oldest of the last done activities (their start) of "
        "these leads; the lead's creation when nothing was done yet.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('last_activity', 'ASC'), ('id', 'ASC')]

    @classmethod
    def get_types(cls):
        Lead = Pool().get('crm.lead')
        return Lead.fields_get(['type'])['type']['selection']

    @classmethod
    def _lead_domain(cls):
        return lead_domain() + [('state', '=', 'open')]

    @classmethod
    def table_query(cls):
        lead, leads, where = readable_table('crm.lead', cls._lead_domain())
        planned, planned_activities, planned_where = readable_table(
            'crm.activity', [('state', '=', 'planned')])
        done, done_activities, done_where = readable_table(
            'crm.activity', [('state', '=', 'done')])
        # Looked up per open lead (indexed on the origin): fewer than all
        # the activities of all the leads
        origin = Concat('crm.lead,', Cast(lead.id, 'VARCHAR'))
        last_done = done_activities.select(Max(done.start),
            where=done_where & (done.origin == origin))
        rows = leads.select(
            lead.id, lead.company, lead.owner, lead.team, lead.type,
            lead_revenue(lead).as_('expected'),
            Coalesce(last_done, lead.create_date).as_('last_activity'),
            where=where & ~Exists(planned_activities.select(Literal(1),
                    where=planned_where & (planned.origin == origin))))
        return grouped(rows, ['company', 'owner', 'team', 'type'],
            Count().as_('count'),
            Sum(rows.expected).as_('expected'),
            Min(rows.last_activity).as_('last_activity'))

    def drill_down_domain(self):
        return (self._lead_domain()
            + self._keys_domain('company', 'owner', 'team', 'type')
            + [('activities', 'not where', [('state', '=', 'planned')])])


# The activity types counted and their column
ACTIVITY_COLUMNS = [
    ('call', 'calls'),
    ('meeting', 'meetings'),
    ('email', 'emails'),
    ('task', 'tasks'),
    ]


class SalespersonActivity(AnalysisMixin, ModelSQL, ModelView):
    """The activities done by each salesperson (assigned to) per week (the
    Monday of the ISO week of their start), started in the context's
    dates; a salesperson sees their own and their teams' (visible_users)"""
    __name__ = 'crm.report.salesperson_activity'
    __string__ = "Activities per Salesperson"
    _drill_down_action = 'crm_reports.act_drill_down_activities'

    company = fields.Many2One('company.company', "Company")
    user = fields.Many2One('res.user', "Salesperson")
    week = fields.Date("Week", help="Its Monday.")
    calls = fields.Integer("Calls")
    meetings = fields.Integer("Meetings")
    emails = fields.Integer("Emails")
    tasks = fields.Integer("Tasks")
    total = fields.Integer("Total")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('week', 'ASC'), ('user', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _activity_domain(cls):
        return [
            ('company', 'in', context_companies()),
            ('state', '=', 'done'),
            ] + user_domain('user')

    @classmethod
    def table_query(cls):
        activity, activities, where = readable_table(
            'crm.activity', cls._activity_domain())
        rows = activities.select(
            activity.id, activity.company, activity.user,
            week_start(activity.start).as_('week'),
            *(Case((activity.type == t, 1), else_=0).as_(c)
                for t, c in ACTIVITY_COLUMNS),
            where=where & date_range(activity.start))
        return grouped(rows, ['company', 'user', 'week'],
            *(Sum(getattr(rows, c)).as_(c) for _, c in ACTIVITY_COLUMNS),
            Count().as_('total'))

    def drill_down_domain(self):
        start = dt.datetime.combine(self.week, dt.time())
        return (self._activity_domain()
            + self._keys_domain('company', 'user')
            + [('start', '>=', start),
                ('start', '<', start + dt.timedelta(days=7))]
            + date_domain('start'))
