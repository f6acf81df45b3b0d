"""Leads: their marketing score, the hand-over to sales of the
marketing-qualified ones, and the campaign responses they are."""
import datetime as dt
from collections import defaultdict

from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction


class Lead(metaclass=PoolMeta):
    __name__ = 'crm.lead'

    marketing_score = fields.Integer("Score", readonly=True,
        help="Points of the scoring rules; behaviour loses weight with "
        "time.")
    marketing_score_reasons = fields.Text("Score Reasons", readonly=True)
    marketing_qualified = fields.DateTime("Marketing Qualified",
        readonly=True,
        help="When the score reached the threshold and the lead was "
        "handed to sales.")

    @classmethod
    def default_marketing_score(cls):
        return 0

    @classmethod
    def copy(cls, leads, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('marketing_qualified', None)
        return super().copy(leads, default=default)

    @classmethod
    def on_modification(cls, mode, leads, field_names=None):
        pool = Pool()
        Member = pool.get('marketing.campaign.member')
        super().on_modification(mode, leads, field_names=field_names)
        if mode == 'create':
            cls.update_scores([l for l in leads if l.state == 'open'])
        elif field_names and field_names & {
                'country', 'marketing_source', 'marketing_medium',
                'marketing_campaign', 'expected_revenue', 'priority',
                'party'}:
            cls.update_scores([l for l in leads if l.state == 'open'])
        # A lead of a campaign's member is its response; won, it converts
        steps = []
        if mode == 'create':
            steps.append('responded')
        if mode == 'create' or (field_names or set()) & {'state', 'stage'}:
            steps.append('converted')
        for step in steps:
            pairs = {(l.marketing_campaign.id, l.party.id) for l in leads
                if l.marketing_campaign and l.party
                and (step != 'converted' or l.state == 'won')}
            if pairs:
                members = Member.search(['OR'] + [
                        [('campaign', '=', c), ('party', '=', p)]
                        for c, p in sorted(pairs)])
                Member.mark(members, step)

    @classmethod
    def update_scores(cls, leads, now=None):
        """Score the leads: attribute rules now, behaviour events of their
        party with decay; hand the newly qualified ones to sales"""
        pool = Pool()
        Rule = pool.get('crm.lead.scoring.rule')
        Event = pool.get('crm.lead.scoring.event')
        Configuration = pool.get('crm.configuration')
        if not leads:
            return
        now = now or dt.datetime.now()
        config = Configuration.get_singleton()
        half_life = (config.scoring_half_life if config else None) or 30
        threshold = config.mql_threshold if config else None
        rules = defaultdict(list)
        for rule in Rule.search([]):
            if not rule.is_behaviour:
                rules[rule.company.id].append(rule)
        events = defaultdict(list)
        party_ids = list({l.party.id for l in leads if l.party})
        for event in Event.search([('party', 'in', party_ids)]):
            events[event.party.id].append(event)
        to_write, qualified = [], []
        for lead in leads:
            reasons, score = [], 0.0
            for rule in rules[lead.company.id]:
                if rule.matches(lead):
                    score += rule.points
                    reasons.append(gettext(
                            'crm_marketing.msg_score_reason_attribute',
                            rule=rule.name, points=rule.points))
            for event in events.get(lead.party.id if lead.party else None,
                    []):
                if event.rule.company != lead.company:
                    continue
                age = max((now - event.date).total_seconds() / 86400, 0)
                points = event.points * 0.5 ** (age / half_life)
                score += points
                reasons.append(gettext(
                        'crm_marketing.msg_score_reason_behaviour',
                        rule=event.rule.name, points=round(points, 1),
                        date=event.date.date()))
            score = int(round(score))
            values = {'marketing_score': score,
                'marketing_score_reasons': '\n'.join(reasons) or None}
            if (threshold is not None and score >= threshold
                    and not lead.marketing_qualified):
                values['marketing_qualified'] = now
                qualified.append(lead)
            if (lead.marketing_score != score
                    or lead.marketing_score_reasons
                    != values['marketing_score_reasons']
                    or 'marketing_qualified' in values):
                to_write.extend(([lead], values))
        if to_write:
            # Not through on_modification's rescoring: no scored field
            cls.write(*to_write)
        if qualified:
            cls.hand_over(qualified, config)

    @classmethod
    def hand_over(cls, leads, config):
        """Marketing-qualified leads go to the sales team of the
        configuration (its next member when there is no owner) with a
        follow-up activity for their owner"""
        pool = Pool()
        Activity = pool.get('crm.activity')
        team = config.mql_team if config else None
        to_write, owners = [], {}
        for lead in leads:
            values = {}
            if team and not lead.team:
                values['team'] = team.id
            owner = lead.owner
            if not owner and team:
                owner_id, = team.next_owners(1)
                if owner_id:
                    values['owner'] = owner_id
                    owner = owner_id
            if values:
                to_write.extend(([lead], values))
            owners[lead.id] = int(owner) if owner else None
        if to_write:
            cls.write(*to_write)
        Activity.create([{
                    'type': 'call',
                    'subject': gettext('crm_marketing.msg_mql_activity',
                        lead=lead.rec_name,
                        score=lead.marketing_score),
                    'party': lead.party.id if lead.party else None,
                    'company': lead.company.id,
                    'origin': str(lead),
                    'start': dt.datetime.now(),
                    'user': owners[lead.id] or Transaction().user,
                    'state': 'planned',
                    } for lead in leads])

    @classmethod
    def update_all_scores(cls):
        "The cron: decay moves every open lead's score"
        leads = cls.search([('state', '=', 'open')])
        for i in range(0, len(leads), 1000):
            cls.update_scores(leads[i:i + 1000])
