from trytond.model import (
    DeactivableMixin, ModelSQL, ModelView, sequence_ordered, fields)



class TeamStagesMixin:
    """Stages with an optional team (empty: every team's) and a kind; crm
    modules with stages of their own share it"""
    __slots__ = ()

    @classmethod
    def for_team(cls, team, kind=None):
        "Stages a team works with, in their order"
        domain = [['OR',
                ('team', '=', None),
                ('team', '=', team.id if team else None),
                ]]
        if kind:
            domain.append(('kind', '=', kind))
        return cls.search(domain)

class Stage(
        TeamStagesMixin, DeactivableMixin, sequence_ordered(), ModelSQL,
        ModelView):
    __name__ = 'crm.stage'
    __string__ = "CRM Stage"

    name = fields.Char("Name", required=True, translate=True)
    kind = fields.Selection([
            ('open', "Open"),
            ('won', "Won"),
            ('lost', "Lost"),
            ], "Kind", required=True, sort=False,
        help="Moving an opportunity into a won or lost stage closes it.")
    probability = fields.Integer(
        "Probability", required=True,
        domain=[('probability', '>=', 0), ('probability', '<=', 100)],
        help="Default probability in % of winning an opportunity "
        "in this stage.")
    team = fields.Many2One(
        'crm.team', "Team", ondelete='CASCADE',
        help="Leave empty for a stage every team uses.")

    @classmethod
    def default_kind(cls):
        return 'open'

    @classmethod
    def default_probability(cls):
        return 10



class LostReason(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'crm.lost_reason'
    __string__ = "CRM Lost Reason"

    name = fields.Char("Name", required=True, translate=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))
