from trytond.model import fields
from trytond.pool import PoolMeta


class Configuration(metaclass=PoolMeta):
    __name__ = 'crm.configuration'

    marketing_opt_in_required = fields.Boolean("Opt-In Required",
        help="Send marketing only to addresses that opted in; else to "
        "every address that did not opt out.")
    scoring_half_life = fields.Integer("Score Half-Life",
        domain=['OR', ('scoring_half_life', '=', None),
            ('scoring_half_life', '>', 0)],
        help="In days: the points of a behaviour halve in this time.")
    mql_threshold = fields.Integer("Qualified From",
        help="The score from which a lead is marketing-qualified and "
        "handed to sales.")
    mql_team = fields.Many2One('crm.team', "Qualified Leads Team",
        help="The sales team that receives the marketing-qualified leads.")

    @classmethod
    def default_scoring_half_life(cls):
        return 30

    @classmethod
    def default_mql_threshold(cls):
        return 50
