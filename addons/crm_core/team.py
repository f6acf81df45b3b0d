from sql import Union

from trytond.model import (
    DeactivableMixin, ModelSQL, ModelView, fields)
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction


class Team(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'crm.team'
    __string__ = "CRM Team"

    name = fields.Char("Name", required=True, translate=True)
    company = fields.Many2One('company.company', "Company", required=True)
    leader = fields.Many2One('res.user', "Leader")
    members = fields.Many2Many(
        'crm.team-res.user', 'team', 'user', "Members")
    round_robin = fields.Boolean(
        "Round-Robin Assignment",
        help="Assign new leads without owner to the members in turn.")
    last_assigned = fields.Many2One(
        'res.user', "Last Assigned", readonly=True,
        help="The member who received the last round-robin lead.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def on_modification(cls, mode, teams, field_names=None):
        super().on_modification(mode, teams, field_names=field_names)
        clear_rule_cache()

    def next_owner(self):
        "Return the member who gets the next lead and remember it"
        members = sorted(self.members, key=lambda u: u.id)
        if not members:
            return None
        following = [u for u in members
            if self.last_assigned and u.id > self.last_assigned.id]
        owner = (following or members)[0]
        self.__class__.write([self], {'last_assigned': owner.id})
        return owner


class TeamMember(ModelSQL):
    __name__ = 'crm.team-res.user'
    __string__ = "CRM Team Member"

    team = fields.Many2One(
        'crm.team', "Team", required=True, ondelete='CASCADE')
    user = fields.Many2One(
        'res.user', "User", required=True, ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('team')

    @classmethod
    def on_modification(cls, mode, members, field_names=None):
        super().on_modification(mode, members, field_names=field_names)
        clear_rule_cache()


def clear_rule_cache():
    "Record rules of leads and activities depend on team membership"
    Pool().get('ir.rule')._domain_get_cache.clear()


class User(metaclass=PoolMeta):
    __name__ = 'res.user'

    crm_teams = fields.Many2Many(
        'crm.team-res.user', 'user', 'team', "CRM Teams")

    @classmethod
    def get_crm_teams(cls, user_id):
        "Return the ids of the active teams the user leads or belongs to"
        pool = Pool()
        Team = pool.get('crm.team')
        Member = pool.get('crm.team-res.user')
        team = Team.__table__()
        member = Member.__table__()
        cursor = Transaction().connection.cursor()
        query = Union(
            team.select(team.id,
                where=(team.leader == user_id) & (team.active == True)),
            member.join(team, condition=member.team == team.id).select(
                member.team,
                where=(member.user == user_id) & (team.active == True)))
        cursor.execute(*query)
        return sorted({r for r, in cursor})
