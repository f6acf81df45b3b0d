"""Campaigns: marketing_campaign's UTM campaign gains a plan (type, dates,
owner, target segment, budget, costs, goals), members, and its results
counted in leads and won deals, live.

An email campaign is sent by marketing_automation: starting it makes a
scenario on the campaign's members with one send-email activity per
variant, so that sending (through the queue), open and click tracking and
unsubscribing are marketing_automation's own."""
import datetime as dt
from decimal import Decimal

from sql import Literal, Null
from sql.aggregate import Count, Min, Sum
from sql.conditionals import Case, Coalesce
from sql.functions import Random

from trytond.i18n import gettext
from trytond.model import (
    Index, ModelSQL, ModelView, Unique, Workflow, fields)
from trytond.modules.currency.fields import Monetary
from trytond.modules.marketing_automation.mixin import (
    MarketingAutomationMixin)
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Equal, Eval, PYSONEncoder
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from crm_core.sqltools import forget_cached, typed

from .exceptions import CampaignError

STATUSES = [
    ('targeted', "Targeted"),
    ('sent', "Sent"),
    ('opened', "Opened"),
    ('clicked', "Clicked"),
    ('responded', "Responded"),
    ('converted', "Converted"),
    ('unsubscribed', "Unsubscribed"),
    ('bounced', "Bounced"),
    ]
# A status replaces an earlier one only when it goes further
RANK = {s: i for i, (s, _) in enumerate(STATUSES)}
RANK['unsubscribed'] = RANK['bounced'] = -1
# The steps whose date a member keeps
DATED = ['sent', 'opened', 'clicked', 'responded', 'converted']


class Campaign(Workflow, metaclass=PoolMeta):
    __name__ = 'marketing.campaign'
    _transition_state = 'status'

    _planned = {'readonly': Eval('status') != 'planned'}
    _open = {'readonly': Eval('status').in_(['done', 'cancelled'])}

    type = fields.Selection([
            ('email', "Email"),
            ('event', "Event"),
            ('call', "Call"),
            ('advertising', "Advertising"),
            ('web', "Web"),
            ('other', "Other"),
            ], "Type", required=True, sort=False, states=_planned)
    status = fields.Selection([
            ('planned', "Planned"),
            ('running', "Running"),
            ('done', "Done"),
            ('cancelled', "Cancelled"),
            ], "Status", required=True, readonly=True, sort=False)
    start_date = fields.Date("Start Date", states=_open)
    end_date = fields.Date("End Date", states=_open,
        domain=['OR', ('end_date', '=', None),
            ('end_date', '>=', Eval('start_date', None))])
    owner = fields.Many2One('res.user', "Owner", states=_open)
    segment = fields.Many2One('crm.segment', "Target Segment",
        states=_planned)
    currency = fields.Many2One('currency.currency', "Currency",
        states=_open)
    budget = Monetary("Budget", currency='currency', digits='currency',
        states=_open)
    costs = fields.One2Many('marketing.campaign.cost', 'campaign', "Costs",
        states=_open)
    expected_revenue = Monetary("Expected Revenue", currency='currency',
        digits='currency', states=_open)
    goal_leads = fields.Integer("Goal: Leads", states=_open)
    goals = fields.Text("Goals", states=_open)
    variants = fields.One2Many('marketing.campaign.variant', 'campaign',
        "Emails", states={
            'invisible': Eval('type') != 'email',
            'readonly': _planned['readonly'],
            })
    ab_test = fields.Boolean("A/B Test", states={
            'invisible': Eval('type') != 'email',
            'readonly': _planned['readonly'],
            },
        help="Send variants A and B to a sample, then the variant that "
        "did best to the other members.")
    _ab = {
        'invisible': ~Eval('ab_test') | (Eval('type') != 'email'),
        'required': Bool(Eval('ab_test')) & (Eval('type') == 'email'),
        'readonly': _planned['readonly'],
        }
    ab_sample = fields.Integer("Sample", states=_ab,
        domain=['OR', ('ab_sample', '=', None),
            [('ab_sample', '>', 0), ('ab_sample', '<', 100)]],
        help="In % of the members, split between A and B.")
    ab_metric = fields.Selection([
            ('opened', "Open Rate"),
            ('clicked', "Click Rate"),
            ], "Winner By", states=_ab, sort=False)
    ab_delay = fields.TimeDelta("Winner After", states=_ab,
        help="How long after sending the sample the winner is chosen.")
    ab_winner = fields.Selection([
            (None, ""),
            ('a', "A"),
            ('b', "B"),
            ], "Winner", readonly=True, states={
            'invisible': ~Eval('ab_test'),
            })
    ab_decide_at = fields.DateTime("Winner Chosen At", readonly=True,
        states={'invisible': ~Eval('ab_test')})
    scenario = fields.Many2One(
        'marketing.automation.scenario', "Scenario", readonly=True,
        states={'invisible': ~Eval('scenario')})
    members = fields.One2Many(
        'marketing.campaign.member', 'campaign', "Members", readonly=True)
    leads = fields.One2Many('crm.lead', 'marketing_campaign', "Leads",
        readonly=True)
    del _planned, _open, _ab

    # The funnel, live
    targeted = fields.Function(fields.Integer("Targeted"), 'get_funnel')
    reached = fields.Function(fields.Integer("Reached"), 'get_funnel')
    opened = fields.Function(fields.Integer("Opened"), 'get_funnel')
    clicked = fields.Function(fields.Integer("Clicked"), 'get_funnel')
    responded = fields.Function(fields.Integer("Responded"), 'get_funnel')
    unsubscribed = fields.Function(
        fields.Integer("Unsubscribed"), 'get_funnel')
    bounced = fields.Function(fields.Integer("Bounced"), 'get_funnel')
    lead_count = fields.Function(fields.Integer("Leads"), 'get_funnel')
    opportunity_count = fields.Function(
        fields.Integer("Opportunities"), 'get_funnel')
    won_count = fields.Function(fields.Integer("Won"), 'get_funnel')
    won_revenue = fields.Function(Monetary("Won Revenue",
            currency='currency', digits='currency'), 'get_funnel')
    cost = fields.Function(Monetary("Cost", currency='currency',
            digits='currency'), 'get_funnel')
    cost_per_lead = fields.Function(Monetary("Cost per Lead",
            currency='currency', digits='currency'), 'get_funnel')
    roi = fields.Function(fields.Float("ROI", digits=(16, 2),
            help="(Won revenue - cost) / cost"), 'get_funnel')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._transitions |= {
            ('planned', 'running'),
            ('running', 'done'),
            ('planned', 'cancelled'),
            ('running', 'cancelled'),
            ('cancelled', 'planned'),
            }
        cls._buttons.update({
                'plan': {
                    'invisible': Eval('status') != 'cancelled',
                    'depends': ['status'],
                    },
                'run': {
                    'invisible': Eval('status') != 'planned',
                    'depends': ['status'],
                    },
                'finish': {
                    'invisible': Eval('status') != 'running',
                    'depends': ['status'],
                    },
                'cancel': {
                    'invisible': ~Eval('status').in_(['planned', 'running']),
                    'depends': ['status'],
                    },
                })

    @classmethod
    def view_attributes(cls):
        return super().view_attributes() + [
            ('//page[@id="emails"]', 'states', {
                    'invisible': Eval('type') != 'email'}),
            ]

    @classmethod
    def default_type(cls):
        return 'email'

    @classmethod
    def default_status(cls):
        return 'planned'

    @classmethod
    def default_currency(cls):
        pool = Pool()
        Company = pool.get('company.company')
        company = Transaction().context.get('company')
        if company and company >= 0:
            return Company(company).currency.id

    @classmethod
    def default_ab_sample(cls):
        return 20

    @classmethod
    def default_ab_metric(cls):
        return 'opened'

    @classmethod
    def default_ab_delay(cls):
        return dt.timedelta(hours=4)

    @classmethod
    def get_funnel(cls, campaigns, names):
        """The funnel of the campaigns in a few grouped queries: members by
        step, leads, opportunities and won deals of the campaign, costs"""
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Lead = pool.get('crm.lead')
        Cost = pool.get('marketing.campaign.cost')
        member = Member.__table__()
        lead = Lead.__table__()
        cost = Cost.__table__()
        cursor = Transaction().connection.cursor()
        ids = [c.id for c in campaigns]
        zero = {n: 0 for n in [
                'targeted', 'reached', 'opened', 'clicked', 'responded',
                'unsubscribed', 'bounced', 'lead_count',
                'opportunity_count', 'won_count']}
        result = {c.id: dict(zero, won_revenue=Decimal(0), cost=Decimal(0))
            for c in campaigns}

        def count(condition):
            return Sum(Case((condition, 1), else_=0))
        for sub_ids in grouped_slice(ids):
            sub_ids = list(sub_ids)
            cursor.execute(*member.select(
                    member.campaign, Count(),
                    count(member.sent != Null),
                    count(member.opened != Null),
                    count(member.clicked != Null),
                    count(member.responded != Null),
                    count(member.status == 'unsubscribed'),
                    count(member.status == 'bounced'),
                    where=member.campaign.in_(sub_ids),
                    group_by=[member.campaign]))
            for id_, *counts in cursor:
                result[id_].update(zip(['targeted', 'reached', 'opened',
                            'clicked', 'responded', 'unsubscribed',
                            'bounced'], counts))
            cursor.execute(*lead.select(
                    lead.marketing_campaign, Count(),
                    count(lead.type == 'opportunity'),
                    count(lead.state == 'won'),
                    Sum(Case((lead.state == 'won', lead.expected_revenue),
                            else_=0)),
                    where=lead.marketing_campaign.in_(sub_ids),
                    group_by=[lead.marketing_campaign]))
            for id_, leads, opportunities, won, revenue in cursor:
                result[id_].update(lead_count=leads,
                    opportunity_count=opportunities, won_count=won,
                    won_revenue=Decimal(str(revenue or 0)))
            cursor.execute(*cost.select(cost.campaign, Sum(cost.amount),
                    where=cost.campaign.in_(sub_ids),
                    group_by=[cost.campaign]))
            for id_, amount in cursor:
                result[id_]['cost'] = Decimal(str(amount or 0))
        for campaign in campaigns:
            values = result[campaign.id]
            spent = values['cost']
            values['cost_per_lead'] = (
                (spent / values['lead_count']).quantize(Decimal('0.01'))
                if values['lead_count'] and spent else None)
            values['roi'] = (
                float((values['won_revenue'] - spent) / spent)
                if spent else None)
        return {n: {c: v[n] for c, v in result.items()} for n in names}

    @classmethod
    def copy(cls, campaigns, default=None):
        default = default.copy() if default is not None else {}
        for name in ['scenario', 'ab_winner', 'ab_decide_at']:
            default.setdefault(name, None)
        default.setdefault('members', None)
        default.setdefault('costs', None)
        default.setdefault('leads', None)
        default.setdefault('status', 'planned')
        return super().copy(campaigns, default=default)

    @classmethod
    @ModelView.button
    @Workflow.transition('planned')
    def plan(cls, campaigns):
        pass

    @classmethod
    @ModelView.button
    @Workflow.transition('running')
    def run(cls, campaigns):
        for campaign in campaigns:
            campaign.check_startable()
        for campaign in campaigns:
            if campaign.segment:
                campaign.add_members()
            if campaign.type == 'email':
                campaign.start_sending()
        today = dt.date.today()
        cls.write([c for c in campaigns if not c.start_date],
            {'start_date': today})

    @classmethod
    @ModelView.button
    @Workflow.transition('done')
    def finish(cls, campaigns):
        cls._stop_scenarios(campaigns)
        cls.write([c for c in campaigns if not c.end_date],
            {'end_date': dt.date.today()})

    @classmethod
    @ModelView.button
    @Workflow.transition('cancelled')
    def cancel(cls, campaigns):
        cls._stop_scenarios(campaigns)

    @classmethod
    def _stop_scenarios(cls, campaigns):
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        scenarios = [c.scenario for c in campaigns
            if c.scenario and c.scenario.state == 'running']
        if scenarios:
            Scenario.stop(scenarios)

    def check_startable(self):
        if self.type == 'email':
            if not self.segment:
                raise CampaignError(gettext(
                        'crm_marketing.msg_campaign_no_segment',
                        campaign=self.rec_name))
            names = sorted(v.name for v in self.variants)
            if names not in (['a'], ['a', 'b']) or (
                    self.ab_test and names != ['a', 'b']):
                raise CampaignError(gettext(
                        'crm_marketing.msg_campaign_variants',
                        campaign=self.rec_name))

    def add_members(self):
        """The parties of the segment become members, in SQL: for an email
        campaign only those with an email that may receive marketing"""
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Mechanism = pool.get('party.contact_mechanism')
        Consent = pool.get('marketing.consent')
        member = Member.__table__()
        mechanism = Mechanism.__table__()
        cursor = Transaction().connection.cursor()
        parties = self.segment.parties_query()
        # The first email of each party, as party_email does
        first = mechanism.select(mechanism.party, Min(mechanism.value).as_(
                'email'),
            where=(mechanism.type == 'email')
            & (mechanism.active == Literal(True))
            & (Coalesce(mechanism.undeliverable, False) == Literal(False)),
            group_by=[mechanism.party])
        emails = parties.join(first, 'LEFT',
            condition=first.party == parties.id)
        where = ~parties.id.in_(member.select(member.party,
                where=member.campaign == self.id))
        if self.type == 'email':
            where &= (first.email != Null) & ~Consent.blocked_sql(
                first.email)
        now = dt.datetime.now()
        query = emails.select(
            typed(self.id, Member.campaign), parties.id, first.email,
            typed('targeted', Member.status),
            typed(self.type, Member.reached_by),
            typed(Transaction().user, Member.create_uid),
            typed(now, Member.create_date),
            where=where)
        cursor.execute(*member.insert(
                [member.campaign, member.party, member.email, member.status,
                    member.reached_by, member.create_uid, member.create_date],
                query))

    def start_sending(self):
        """Share the members between the variants and start the
        marketing_automation scenario that sends them"""
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        member = Member.__table__()
        cursor = Transaction().connection.cursor()
        where = (member.campaign == self.id) & (member.variant == Null)
        if self.ab_test:
            cursor.execute(*member.select(Count(), where=where))
            total, = cursor.fetchone()
            half = max(total * self.ab_sample // 200, 1)
            ordered = member.select(member.id, where=where,
                order_by=[Random()])
            cursor.execute(*ordered)
            ids = [i for i, in cursor]
            for variant, sample in [('a', ids[:half]),
                    ('b', ids[half:2 * half])]:
                for sub_ids in grouped_slice(sample):
                    cursor.execute(*member.update(
                            [member.variant, member.sample],
                            [variant, True],
                            where=member.id.in_(list(sub_ids))))
            self.ab_decide_at = dt.datetime.now() + self.ab_delay
        else:
            cursor.execute(*member.update([member.variant], ['a'],
                    where=where))
        forget_cached(Member)
        encoder = PYSONEncoder()
        scenario = Scenario(
            name=self.name,
            model='marketing.campaign.member',
            domain=encoder.encode([
                    ('campaign', '=', self.id),
                    ('variant', '!=', None),
                    ]),
            unsubscribable=True,
            activities=[Activity(
                    name=variant.rec_name,
                    action='send_email',
                    condition=encoder.encode(
                        Equal(Eval('self.variant'), variant.name)),
                    email_from=variant.from_,
                    email_title=variant.subject,
                    email_template=variant.body,
                    marketing_campaign=self,
                    ) for variant in self.variants])
        scenario.save()
        Scenario.run([scenario])
        self.scenario = scenario
        self.save()
        Scenario.trigger([scenario])

    @classmethod
    def choose_winners(cls, campaigns=None, now=None):
        """The cron: when the delay of an A/B test is over, the variant
        with the better rate on its sample goes to the other members"""
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        Scenario = pool.get('marketing.automation.scenario')
        member = Member.__table__()
        cursor = Transaction().connection.cursor()
        now = now or dt.datetime.now()
        if campaigns is None:
            campaigns = cls.search([
                    ('status', '=', 'running'),
                    ('ab_test', '=', True),
                    ('ab_winner', '=', None),
                    ('ab_decide_at', '<=', now),
                    ])
        for campaign in campaigns:
            rates = {}
            for variant in ['a', 'b']:
                column = getattr(member, campaign.ab_metric)
                cursor.execute(*member.select(
                        Count(),
                        Sum(Case((column != Null, 1), else_=0)),
                        where=(member.campaign == campaign.id)
                        & (member.variant == variant)
                        & (member.sample == Literal(True))
                        & (member.sent != Null)))
                sent, hits = cursor.fetchone()
                rates[variant] = (hits or 0) / sent if sent else 0
            # A tie goes to A: it was written first
            winner = 'b' if rates['b'] > rates['a'] else 'a'
            cursor.execute(*member.update([member.variant], [winner],
                    where=(member.campaign == campaign.id)
                    & (member.variant == Null)))
            forget_cached(Member)
            campaign.ab_winner = winner
            campaign.save()
            if campaign.scenario:
                Scenario.trigger([campaign.scenario])


class Cost(ModelSQL, ModelView):
    __name__ = 'marketing.campaign.cost'
    __string__ = "Campaign Cost"

    campaign = fields.Many2One('marketing.campaign', "Campaign",
        required=True, ondelete='CASCADE')
    date = fields.Date("Date", required=True)
    description = fields.Char("Description", required=True)
    amount = Monetary("Amount", currency='currency', digits='currency',
        required=True)
    medium = fields.Many2One('marketing.medium', "Medium",
        ondelete='RESTRICT',
        help="What the money paid for: the ROI by medium counts it.")
    currency = fields.Function(fields.Many2One(
            'currency.currency', "Currency"), 'on_change_with_currency')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('campaign')
        cls._order.insert(0, ('date', 'DESC'))

    @classmethod
    def default_date(cls):
        return dt.date.today()

    @fields.depends('campaign', '_parent_campaign.currency')
    def on_change_with_currency(self, name=None):
        return self.campaign.currency if self.campaign else None


class Variant(ModelSQL, ModelView):
    __name__ = 'marketing.campaign.variant'
    __string__ = "Campaign Email"
    _rec_name = 'subject'

    campaign = fields.Many2One('marketing.campaign', "Campaign",
        required=True, ondelete='CASCADE')
    name = fields.Selection([
            ('a', "A"),
            ('b', "B"),
            ], "Variant", required=True, sort=False)
    from_ = fields.Char("From",
        help="Leave empty for the address of the configuration file.")
    subject = fields.Char("Subject", required=True,
        help="Genshi text: 'record' is the member ('record.party').")
    body = fields.Text("Body", required=True,
        help="Genshi HTML: 'record' is the member ('record.party'); "
        "links are tracked; a link to 'unsubscribe' unsubscribes.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('campaign')
        t = cls.__table__()
        cls._sql_constraints += [
            ('campaign_name_unique', Unique(t, t.campaign, t.name),
                'crm_marketing.msg_campaign_variant_unique'),
            ]

    @classmethod
    def default_name(cls):
        return 'a'

    def get_rec_name(self, name):
        return '%s (%s)' % (self.campaign.rec_name, self.name.upper())


class Member(MarketingAutomationMixin, ModelSQL, ModelView):
    __name__ = 'marketing.campaign.member'
    __string__ = "Campaign Member"

    campaign = fields.Many2One('marketing.campaign', "Campaign",
        required=True, ondelete='CASCADE')
    party = fields.Many2One('party.party', "Party", required=True,
        ondelete='CASCADE')
    email = fields.Char("Email")
    reached_by = fields.Selection('get_types', "Reached By")
    variant = fields.Selection([
            (None, ""),
            ('a', "A"),
            ('b', "B"),
            ], "Variant", readonly=True)
    sample = fields.Boolean("A/B Sample", readonly=True)
    status = fields.Selection(STATUSES, "Status", required=True,
        readonly=True, sort=False)
    sent = fields.DateTime("Sent", readonly=True)
    opened = fields.DateTime("Opened", readonly=True)
    clicked = fields.DateTime("Clicked", readonly=True)
    responded = fields.DateTime("Responded", readonly=True)
    converted = fields.DateTime("Converted", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('campaign')
        t = cls.__table__()
        cls._sql_constraints += [
            ('campaign_party_unique', Unique(t, t.campaign, t.party),
                'crm_marketing.msg_campaign_member_unique'),
            ]
        cls._sql_indexes.update({
                Index(t, (t.party, Index.Range())),
                Index(t, (t.email, Index.Equality(cardinality='high'))),
                })

    @classmethod
    def default_status(cls):
        return 'targeted'

    @classmethod
    def default_sample(cls):
        return False

    @classmethod
    def get_types(cls):
        Campaign = Pool().get('marketing.campaign')
        return [(None, "")] + Campaign.fields_get(['type'])['type'][
            'selection']

    def get_rec_name(self, name):
        return '%s @ %s' % (self.party.rec_name, self.campaign.rec_name)

    def get_marketing_party(self, name):
        return self.party.id

    @classmethod
    def search_marketing_party(cls, name, clause):
        return [('party' + clause[0][len(name):], *clause[1:])]

    @classmethod
    def mark(cls, members, step, when=None):
        """Record a step of the funnel (sent, opened, clicked, responded,
        converted, unsubscribed, bounced) on the members, in SQL; the
        status only goes further, but an unsubscribe or a bounce wins"""
        Event = Pool().get('crm.lead.scoring.event')
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        when = when or dt.datetime.now()
        ids = sorted({int(m) for m in members})
        if not ids:
            return
        later = [s for s, r in RANK.items() if r > RANK[step]]
        if step in {'unsubscribed', 'bounced'}:
            status = Literal(step)
        else:
            status = Case((table.status.in_(
                        later + ['unsubscribed', 'bounced']), table.status),
                else_=step)
        columns, values = [table.status], [status]
        if step in DATED:
            # A click opened the email too (images may be blocked)
            for name in [step] + (['opened'] if step == 'clicked' else []):
                column = getattr(table, name)
                columns.append(column)
                values.append(Coalesce(column, when))
        for sub_ids in grouped_slice(ids):
            cursor.execute(*table.update(columns, values,
                    where=table.id.in_(list(sub_ids))))
        forget_cached(cls, ids)
        Event.record(cls.browse(ids), step, when)
