"""With crm_helpdesk: a call opens a ticket, a ticket lists its calls."""
from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval, If


class Call(metaclass=PoolMeta):
    __name__ = 'callcenter.call'

    ticket = fields.Many2One('helpdesk.ticket', "Ticket",
        ondelete='SET NULL',
        domain=[If(Bool(Eval('party')),
                ('party', '=', Eval('party', -1)), ())],
        context={'company': Eval('company', -1)}, depends={'company'})

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._buttons.update({
                'create_ticket': {
                    'invisible': Bool(Eval('ticket')),
                    'depends': ['ticket'],
                    },
                })

    @classmethod
    @ModelView.button_action('crm_helpdesk.act_ticket_form')
    def create_ticket(cls, calls):
        "A phone ticket of the caller for each call without one"
        pool = Pool()
        Ticket = pool.get('helpdesk.ticket')
        calls = [c for c in calls if not c.ticket]
        if not calls:
            return
        tickets = Ticket.create([{
                    'company': c.company.id,
                    'subject': gettext('crm_callcenter.msg_ticket_subject',
                        number=c.customer_number or '?'),
                    'description': c.notes,
                    'party': c.party.id if c.party else None,
                    'team': c.queue.team.id if c.queue and c.queue.team
                    else None,
                    'user': c.user.id if c.user else None,
                    'channel': 'phone',
                    } for c in calls])
        cls.write(*[x for c, t in zip(calls, tickets)
                for x in ([c], {'ticket': t.id})])
        return {'res_id': [t.id for t in tickets]}


class Ticket(metaclass=PoolMeta):
    __name__ = 'helpdesk.ticket'

    calls = fields.One2Many('callcenter.call', 'ticket', "Calls",
        readonly=True)
