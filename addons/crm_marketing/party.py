from sql import Null
from sql.aggregate import Max

from trytond.model import fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    crm_segments = fields.Many2Many(
        'crm.segment-party.party', 'party', 'segment', "Segments",
        readonly=True)
    campaign_memberships = fields.One2Many(
        'marketing.campaign.member', 'party', "Campaigns", readonly=True)
    marketing_consents = fields.One2Many(
        'marketing.consent', 'party', "Marketing Consent")
    crm_last_activity = fields.Function(
        fields.DateTime("Last Activity"),
        'get_crm_last_activity', searcher='search_crm_last_activity')

    @classmethod
    def get_crm_last_activity(cls, parties, name):
        pool = Pool()
        Activity = pool.get('crm.activity')
        activity = Activity.__table__()
        cursor = Transaction().connection.cursor()
        result = dict.fromkeys(map(int, parties))
        cursor.execute(*activity.select(activity.party, Max(activity.start),
                where=activity.party.in_(list(result))
                & (activity.state == 'done'),
                group_by=[activity.party]))
        result.update(cursor)
        return result

    @classmethod
    def search_crm_last_activity(cls, name, clause):
        "Parties whose last done activity compares so (none: never)"
        pool = Pool()
        Activity = pool.get('crm.activity')
        activity = Activity.__table__()
        _, operator, value = clause[:3]
        last = activity.select(activity.party,
            Max(activity.start).as_('last'),
            where=(activity.state == 'done') & (activity.party != Null),
            group_by=[activity.party])
        Operator = fields.SQL_OPERATORS[operator]
        where = Operator(last.last, value)
        if operator in {'<', '<='}:
            # Never active is older than anything
            where |= last.last == Null
        table = cls.__table__()
        query = table.join(last, 'LEFT',
            condition=last.party == table.id).select(table.id, where=where)
        return [('id', 'in', query)]


class Erase(metaclass=PoolMeta):
    __name__ = 'party.erase'

    def transition_erase(self):
        """The marketing data of the party goes too: consents, scoring,
        subscriptions to mailing lists, the address of its memberships"""
        pool = Pool()
        Consent = pool.get('marketing.consent')
        Event = pool.get('crm.lead.scoring.event')
        Member = pool.get('marketing.campaign.member')
        ListEmail = pool.get('marketing.email')
        Record = pool.get('marketing.automation.record')
        party = self.ask.party
        emails = {m.value.lower() for m in party.contact_mechanisms
            if m.type == 'email' and m.value}
        members = Member.search([('party', '=', party.id)])
        emails |= {m.email.lower() for m in members if m.email}
        Consent.delete(Consent.search(['OR',
                    ('party', '=', party.id),
                    ('email', 'in', list(emails)),
                    ]))
        Event.delete(Event.search([('party', '=', party.id)]))
        if members:
            Member.write(members, {'email': None})
        ListEmail.delete(ListEmail.search([
                    ('email', 'in', list(emails)),
                    ('active', 'in', [True, False]),
                    ]))
        Record.delete(Record.search([
                    ('record', 'in', [str(m) for m in members]
                        + [str(party)]),
                    ]))
        return super().transition_erase()


class Replace(metaclass=PoolMeta):
    __name__ = 'party.replace'

    @classmethod
    def fields_to_replace(cls):
        return super().fields_to_replace() + [
            ('crm.segment-party.party', 'party'),
            ('marketing.campaign.member', 'party'),
            ('marketing.consent', 'party'),
            ('crm.lead.scoring.event', 'party'),
            ]
