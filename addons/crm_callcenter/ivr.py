"""IVR menus: a tree of nodes the caller walks with the keypad."""
from trytond.model import (
    DeactivableMixin, ModelSQL, ModelView, Unique, fields, tree)
from trytond.transaction import Transaction


class IVR(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'callcenter.ivr'
    __string__ = "IVR Menu"

    name = fields.Char("Name", required=True, translate=True)
    number = fields.Char("Number", required=True, strip=True,
        help="The number customers dial to reach the menu.")
    company = fields.Many2One('company.company', "Company", required=True)
    root = fields.Many2One('callcenter.ivr.node', "First Node",
        ondelete='RESTRICT')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('number_unique', Unique(t, t.company, t.number),
                'crm_callcenter.msg_ivr_number_unique'),
            ]
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def by_number(cls, number, company=None):
        domain = [('number', '=', number)]
        if company:
            domain.append(('company', '=', company))
        menus = cls.search(domain, limit=1)
        return menus[0] if menus else None

    def route_call(self, call_id, from_number, now):
        "The routing decision of a call to the menu's number"
        return {'action': 'ivr', 'ivr': self.number}


class IVRNode(tree(), ModelSQL, ModelView):
    __name__ = 'callcenter.ivr.node'
    __string__ = "IVR Node"

    name = fields.Char("Name", required=True)
    parent = fields.Many2One('callcenter.ivr.node', "Parent",
        ondelete='CASCADE')
    children = fields.One2Many('callcenter.ivr.node', 'parent', "Children")
