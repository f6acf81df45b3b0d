from trytond.model import ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval

PHONE_TYPES = {'phone', 'mobile'}


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
            ('callcenter.call_list.entry', 'party'),
            ]


class Erase(metaclass=PoolMeta):
    __name__ = 'party.erase'

    def to_erase(self, party_id):
        pool = Pool()
        Call = pool.get('callcenter.call')
        Entry = pool.get('callcenter.call_list.entry')
        return super().to_erase(party_id) + [
            (Call, [('party', '=', party_id)], True,
                ['from_number', 'to_number', 'notes', 'recording_url'],
                [None, None, None, None]),
            (Entry, [('party', '=', party_id)], False,
                ['number', 'notes'], ['', None]),
            ]


class ContactMechanism(metaclass=PoolMeta):
    __name__ = 'party.contact_mechanism'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._buttons.update({
                'callcenter_dial': {
                    'invisible': ~Eval('type').in_(list(PHONE_TYPES)),
                    'depends': ['type'],
                    },
                })

    @classmethod
    @ModelView.button
    def callcenter_dial(cls, mechanisms):
        "Call the number from the user's phone, else open it as tel: link"
        pool = Pool()
        Agent = pool.get('callcenter.agent')
        if not mechanisms:
            return
        mechanism = mechanisms[0]
        number = mechanism.value_compact or mechanism.value
        if mechanism.type not in PHONE_TYPES or not number:
            return
        if Agent.dial(number):
            return
        return {'type': 'ir.action.url', 'url': f'tel:{number}'}
