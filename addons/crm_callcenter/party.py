from trytond.model import fields
from trytond.pool import Pool, PoolMeta


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    calls = fields.One2Many('callcenter.call', 'party', "Calls",
        readonly=True)


class Replace(metaclass=PoolMeta):
    __name__ = 'party.replace'

    @classmethod
    def fields_to_replace(cls):
        return super().fields_to_replace() + [
            ('callcenter.call', 'party'),
            ]


class Erase(metaclass=PoolMeta):
    __name__ = 'party.erase'

    def to_erase(self, party_id):
        pool = Pool()
        Call = pool.get('callcenter.call')
        return super().to_erase(party_id) + [
            (Call, [('party', '=', party_id)], True,
                ['from_number', 'to_number', 'notes', 'recording_url'],
                [None, None, None, None]),
            ]
