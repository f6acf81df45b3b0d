"The data quality of parties: configuration and analysis"
from sql import Literal, Null
from sql.aggregate import Avg, Count, Min, Sum
from sql.conditionals import Case
from sql.functions import CurrentTimestamp

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import PYSONEncoder
from trytond.transaction import Transaction
from trytond.wizard import StateAction, Wizard

from .party import DUPLICATE_ISSUES, INCOMPLETE_ISSUES, INVALID_ISSUES

GROUPINGS = [
    ('team', "Team"),
    ('owner', "Owner"),
    ('creator', "Created By"),
    ]


class Configuration(metaclass=PoolMeta):
    __name__ = 'crm.configuration'

    quality_stale_days = fields.Integer(
        "Stale Party After", required=True,
        domain=[('quality_stale_days', '>', 0)],
        help="Number of days without a done activity after which the data "
        "of a party is considered stale (its quality score drops).")

    @classmethod
    def default_quality_stale_days(cls):
        return 365


class PartyQualityContext(ModelView):
    __name__ = 'crm.party.quality.context'
    __string__ = "Party Data Quality Context"

    company = fields.Many2One(
        'company.company', "Company",
        help="Only the teams of this company when grouped by team.")
    group_by = fields.Selection(
        GROUPINGS, "Group By", required=True, sort=False)

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_group_by(cls):
        return Transaction().context.get('group_by') or 'team'


class PartyQualityAnalysis(ModelSQL, ModelView):
    __name__ = 'crm.party.quality.analysis'
    __string__ = "Party Data Quality Analysis"

    grouping = fields.Selection(GROUPINGS, "Grouping", sort=False)
    team = fields.Many2One('crm.team', "Team")
    user = fields.Many2One('res.user', "User")
    parties = fields.Integer("Parties")
    average_score = fields.Float("Average Score", digits=(3, 1))
    incomplete = fields.Integer(
        "Incomplete", help="Parties without email or phone, address with "
        "country or owner.")
    invalid = fields.Integer(
        "Invalid", help="Parties with an invalid email or phone.")
    duplicate = fields.Integer(
        "Suspected Duplicates",
        help="Parties sharing an email, phone or name with another one.")
    incomplete_rate = fields.Function(
        fields.Float("Incomplete %", digits=(3, 1)), 'get_rate')
    invalid_rate = fields.Function(
        fields.Float("Invalid %", digits=(3, 1)), 'get_rate')
    duplicate_rate = fields.Function(
        fields.Float("Duplicate %", digits=(3, 1)), 'get_rate')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('average_score', 'ASC'), ('id', 'ASC')]

    @classmethod
    def table_query(cls):
        pool = Pool()
        Party = pool.get('party.party')
        Member = pool.get('crm.team-res.user')
        Team = pool.get('crm.team')
        context = Transaction().context
        group_by = context.get('group_by') or 'team'
        party = Party.__table__()
        tables = {None: (party, None)}

        def has(issues):
            condition = Party.quality_issues.convert_domain(
                ('quality_issues', 'in', issues), tables, Party)
            return Sum(Case((condition, 1), else_=0))

        where = party.active == Literal(True)
        if group_by == 'team':
            member = Member.__table__()
            team = Team.__table__()
            from_ = party.join(member,
                condition=member.user == party.owner).join(team,
                condition=team.id == member.team)
            where &= team.active == Literal(True)
            if context.get('company'):
                where &= team.company == context['company']
            key = [team.id.as_('id'), team.id.as_('team'),
                cls.user.sql_cast(Literal(Null)).as_('user')]
            group = [team.id]
        else:
            column = party.owner if group_by == 'owner' else party.create_uid
            from_ = party
            key = [Min(party.id).as_('id'),
                cls.team.sql_cast(Literal(Null)).as_('team'),
                column.as_('user')]
            group = [column]
        return from_.select(
            *key,
            Literal(group_by).as_('grouping'),
            Literal(0).as_('create_uid'),
            CurrentTimestamp().as_('create_date'),
            cls.write_uid.sql_cast(Literal(Null)).as_('write_uid'),
            cls.write_date.sql_cast(Literal(Null)).as_('write_date'),
            Count(party.id).as_('parties'),
            cls.average_score.sql_cast(
                Avg(party.quality_score)).as_('average_score'),
            has(INCOMPLETE_ISSUES).as_('incomplete'),
            has(INVALID_ISSUES).as_('invalid'),
            has(DUPLICATE_ISSUES).as_('duplicate'),
            where=where,
            group_by=group)

    @classmethod
    def get_rate(cls, records, names):
        result = {}
        for name in names:
            count = name[:-len('_rate')]
            result[name] = {
                r.id: (100 * getattr(r, count) / r.parties
                    if r.parties else 0.0)
                for r in records}
        return result

    def get_rec_name(self, name):
        if self.team:
            return self.team.rec_name
        if self.user:
            return self.user.rec_name
        return '-'

    def parties_domain(self):
        "The domain of the parties counted in this row"
        domain = [('active', '=', True)]
        user_id = self.user.id if self.user else None
        if self.grouping == 'team':
            domain.append(('owner.crm_teams', '=', self.team.id))
        elif self.grouping == 'owner':
            domain.append(('owner', '=', user_id))
        else:
            domain.append(('create_uid', '=', user_id))
        return domain


class PartyQualityOpen(Wizard):
    "Open the parties to fix of a row of the data quality analysis"
    __name__ = 'crm.party.quality.analysis.open'
    start_state = 'open_'
    open_ = StateAction('crm_core.act_party_quality_parties')

    def do_open_(self, action):
        domain = []
        names = []
        for record in self.records:
            domain.append(record.parties_domain())
            names.append(record.rec_name)
        action['pyson_domain'] = PYSONEncoder().encode(
            [('quality_score', '<', 100), ['OR', *domain]])
        action['name'] += ' (%s)' % ', '.join(names)
        return action, {}
