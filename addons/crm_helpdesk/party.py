from trytond.model import fields
from trytond.pool import Pool, PoolMeta


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    tickets = fields.One2Many(
        'helpdesk.ticket', 'party', "Tickets", readonly=True)


class Replace(metaclass=PoolMeta):
    __name__ = 'party.replace'

    @classmethod
    def fields_to_replace(cls):
        return super().fields_to_replace() + [
            ('helpdesk.ticket', 'party'),
            ('helpdesk.ticket', 'contact'),
            ]


class Erase(metaclass=PoolMeta):
    __name__ = 'party.erase'

    def to_erase(self, party_id):
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        return super().to_erase(party_id) + [
            (Ticket, [('party', '=', party_id)], True,
                ['email', 'description', 'rating_comment'],
                [None, None, None]),
            ]
