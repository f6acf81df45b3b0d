"""With crm_helpdesk: segments of parties with (or without) open
tickets."""
from trytond.model import fields
from trytond.pool import PoolMeta
from trytond.pyson import Eval

from .segment import CHOICE


class Segment(metaclass=PoolMeta):
    __name__ = 'crm.segment'

    open_tickets = fields.Selection(CHOICE, "Open Tickets",
        states={'invisible': Eval('kind') != 'dynamic'}, sort=False)

    def party_domain(self):
        domain = super().party_domain()
        if self.open_tickets:
            operator = 'where' if self.open_tickets == 'with' else (
                'not where')
            domain.append(('tickets', operator, [
                        ('closed', '=', None)]))
        return domain
