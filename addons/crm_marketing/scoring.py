"""Lead scoring rules and the behaviour that scores.

A rule gives points for an attribute of the lead (country, source,
campaign, category of the party, expected revenue...) or for a behaviour
of its party (opened, clicked, responded, unsubscribed). Behaviour is
kept as events whose points halve every `scoring_half_life` days: a
click of last year weighs little."""
import datetime as dt

from trytond.model import (
    DeactivableMixin, Index, ModelSQL, ModelView, fields, sequence_ordered)
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

ATTRIBUTES = {
    'country', 'source', 'medium', 'campaign', 'category', 'lifecycle',
    'revenue', 'priority'}
BEHAVIOURS = {'opened', 'clicked', 'responded', 'unsubscribed'}


class Rule(sequence_ordered(), DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'crm.lead.scoring.rule'
    __string__ = "Lead Scoring Rule"

    name = fields.Char("Name", required=True, translate=True)
    company = fields.Many2One('company.company', "Company", required=True)
    criterion = fields.Selection([
            ('country', "Country"),
            ('source', "Source"),
            ('medium', "Medium"),
            ('campaign', "Campaign"),
            ('category', "Party Category"),
            ('lifecycle', "Lifecycle Status"),
            ('revenue', "Expected Revenue From"),
            ('priority', "Priority"),
            ('opened', "Opened an Email"),
            ('clicked', "Clicked a Link"),
            ('responded', "Responded to a Campaign"),
            ('unsubscribed', "Unsubscribed"),
            ], "Criterion", required=True, sort=False)
    country = fields.Many2One('country.country', "Country",
        states={'invisible': Eval('criterion') != 'country',
            'required': Eval('criterion') == 'country'})
    source = fields.Many2One('marketing.source', "Source",
        states={'invisible': Eval('criterion') != 'source',
            'required': Eval('criterion') == 'source'})
    medium = fields.Many2One('marketing.medium', "Medium",
        states={'invisible': Eval('criterion') != 'medium',
            'required': Eval('criterion') == 'medium'})
    campaign = fields.Many2One('marketing.campaign', "Campaign",
        states={'invisible': ~Eval('criterion').in_(
                ['campaign', 'opened', 'clicked', 'responded']),
            'required': Eval('criterion') == 'campaign'},
        help="For a behaviour: only in this campaign (else any).")
    category = fields.Many2One('party.category', "Category",
        states={'invisible': Eval('criterion') != 'category',
            'required': Eval('criterion') == 'category'})
    lifecycle_status = fields.Selection('get_lifecycle_statuses',
        "Lifecycle Status",
        states={'invisible': Eval('criterion') != 'lifecycle',
            'required': Eval('criterion') == 'lifecycle'})
    revenue = fields.Numeric("Expected Revenue From", digits=(16, 2),
        states={'invisible': Eval('criterion') != 'revenue',
            'required': Eval('criterion') == 'revenue'})
    priority = fields.Selection('get_priorities', "Priority",
        states={'invisible': Eval('criterion') != 'priority',
            'required': Eval('criterion') == 'priority'})
    points = fields.Integer("Points", required=True,
        help="May be negative.")

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def get_lifecycle_statuses(cls):
        Party = Pool().get('party.party')
        return [(None, "")] + Party.fields_get(['lifecycle_status'])[
            'lifecycle_status']['selection']

    @classmethod
    def get_priorities(cls):
        Lead = Pool().get('crm.lead')
        return [(None, "")] + Lead.fields_get(['priority'])[
            'priority']['selection']

    @property
    def is_behaviour(self):
        return self.criterion in BEHAVIOURS

    def matches(self, lead):
        "Whether the attribute rule holds for the lead"
        party = lead.party
        criterion = self.criterion
        if criterion == 'country':
            countries = {lead.country} if lead.country else set()
            if party:
                countries |= {a.country for a in party.addresses
                    if a.country}
            return self.country in countries
        if criterion in {'source', 'medium', 'campaign'}:
            return getattr(lead, 'marketing_' + criterion) == getattr(
                self, criterion)
        if criterion == 'category':
            return bool(party) and self.category in party.categories
        if criterion == 'lifecycle':
            return bool(party) and (
                party.lifecycle_status == self.lifecycle_status)
        if criterion == 'revenue':
            return (lead.expected_revenue or 0) >= self.revenue
        if criterion == 'priority':
            return lead.priority == self.priority
        return False


class Event(ModelSQL, ModelView):
    __name__ = 'crm.lead.scoring.event'
    __string__ = "Scoring Event"

    party = fields.Many2One('party.party', "Party", required=True,
        ondelete='CASCADE')
    rule = fields.Many2One('crm.lead.scoring.rule', "Rule", required=True,
        ondelete='CASCADE')
    date = fields.DateTime("Date", required=True)
    points = fields.Integer("Points", required=True,
        help="Before decay.")
    origin = fields.Reference("Origin", selection=[
            (None, ""),
            ('marketing.campaign.member', "Campaign Member"),
            ])

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.party, Index.Range())))
        cls._order.insert(0, ('date', 'DESC'))

    @classmethod
    def record(cls, members, step, when=None):
        """The scoring events of the behaviour rules for this step of these
        campaign members; the leads of their parties are scored again"""
        pool = Pool()
        Rule = pool.get('crm.lead.scoring.rule')
        Lead = pool.get('crm.lead')
        if step not in BEHAVIOURS or not members:
            return []
        when = when or dt.datetime.now()
        rules = Rule.search([('criterion', '=', step)])
        if not rules:
            return []
        existing = {(e.rule.id, e.origin) for e in cls.search([
                    ('rule', 'in', [r.id for r in rules]),
                    ('origin', 'in', [str(m) for m in members]),
                    ])}
        to_create = []
        for member in members:
            for rule in rules:
                if rule.campaign and rule.campaign != member.campaign:
                    continue
                if (rule.id, member) in existing:
                    continue
                to_create.append({'party': member.party.id,
                        'rule': rule.id, 'date': when,
                        'points': rule.points, 'origin': str(member)})
        events = cls.create(to_create)
        parties = list({e.party for e in events})
        if parties:
            Lead.update_scores(Lead.search([
                        ('party', 'in', [p.id for p in parties]),
                        ('state', '=', 'open'),
                        ]), now=when)
        return events
