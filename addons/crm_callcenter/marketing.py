"""With crm_marketing: outbound call lists from segments."""
from trytond.model import ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction


class CallList(metaclass=PoolMeta):
    __name__ = 'callcenter.call_list'

    segment = fields.Many2One('crm.segment', "Segment",
        ondelete='RESTRICT',
        domain=[('company', '=', Eval('company', -1))],
        states={'readonly': Eval('state') == 'done'},
        help="Its members with a phone are added when the list starts "
        "and by Add from Segment.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._buttons.update({
                'add_segment': {
                    'invisible': (~Eval('segment')
                        | (Eval('state') == 'done')),
                    'depends': ['segment', 'state'],
                    },
                })

    @classmethod
    def run(cls, lists):
        super().run(lists)
        cls.add_segment(lists)

    @classmethod
    @ModelView.button
    def add_segment(cls, lists):
        "Add the segment's current members (once each)"
        pool = Pool()
        Party = pool.get('party.party')
        cursor = Transaction().connection.cursor()
        for call_list in lists:
            if not call_list.segment:
                continue
            cursor.execute(*call_list.segment.parties_query())
            cls.add_parties(call_list, Party.browse([p for p, in cursor]))
