from sql import Union

from trytond.model import (
    DeactivableMixin, ModelSQL, ModelView, fields)
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction

from .calendar import WorkingClock


class Team(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'crm.team'
    __string__ = "CRM Team"

    name = fields.Char("Name", required=True, translate=True)
    company = fields.Many2One('company.company', "Company", required=True)
    leader = fields.Many2One('res.user', "Leader")
    members = fields.Many2Many(
        'crm.team-res.user', 'team', 'user', "Members")
    calendar = fields.Many2One(
        'crm.working_calendar', "Business Hours",
        domain=[('company', '=', Eval('company', -1))],
        help="Working hours used to count support deadlines.")
    round_robin = fields.Boolean(
        "Round-Robin Assignment",
        help="Assign new leads without owner to the members in turn.")
    # SQLite only: on PostgreSQL the turn is a sequence (see next_owners)
    round_robin_position = fields.Integer(
        "Round-Robin Position", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def __register__(cls, module):
        super().__register__(module)
        transaction = Transaction()
        if transaction.database.has_sequence():
            cursor = transaction.connection.cursor()
            table = cls.__table__()
            cursor.execute(*table.select(table.id))
            cls._create_round_robin_sequences([i for i, in cursor])

    @classmethod
    def default_round_robin_position(cls):
        return 0

    @classmethod
    def on_modification(cls, mode, teams, field_names=None):
        super().on_modification(mode, teams, field_names=field_names)
        clear_rule_cache()
        database = Transaction().database
        if database.has_sequence():
            if mode == 'create':
                cls._create_round_robin_sequences([t.id for t in teams])
            elif mode == 'delete':
                connection = Transaction().connection
                for team in teams:
                    name = cls._round_robin_sequence(team.id)
                    if database.sequence_exist(connection, name):
                        database.sequence_delete(connection, name)

    @classmethod
    def _round_robin_sequence(cls, team_id):
        return f'crm_team_round_robin_{team_id}'

    @classmethod
    def _create_round_robin_sequences(cls, team_ids):
        transaction = Transaction()
        database, connection = transaction.database, transaction.connection
        for team_id in team_ids:
            name = cls._round_robin_sequence(team_id)
            if not database.sequence_exist(connection, name):
                database.sequence_create(connection, name)

    def working_clock(self):
        "How the team counts working time: its business hours, else 24x7"
        return WorkingClock(self.calendar)

    def next_owners(self, count):
        """The user ids of the members who get the next count leads, in
        turn (None without members)"""
        members = sorted(u.id for u in self.members)
        if not members or count <= 0:
            return [None] * count
        transaction = Transaction()
        database = transaction.database
        if database.has_sequence():
            # A sequence, not a column of the team: workers assigning leads
            # of one team at the same time would wait for each other on its
            # row. A turn taken by a rolled back transaction is skipped.
            turns = [n - 1 for n in database.sequence_nextvals(
                    transaction.connection,
                    self._round_robin_sequence(self.id), count)]
        else:
            position = self.round_robin_position or 0
            turns = range(position, position + count)
            self.__class__.write(
                [self], {'round_robin_position': position + count})
        return [members[t % len(members)] for t in turns]


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
