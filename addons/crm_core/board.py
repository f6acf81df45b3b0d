"""Server side of the pipeline board (web/crm/board.html)

The board is a custom page: it calls these methods through JSON-RPC with
the sao session. Every read goes through ``crm.lead`` searches, so the
access rights and record rules of the user apply as in the client.

Closed columns: the won and lost stages only show the opportunities closed
in the last ``CLOSED_DAYS`` days (``filters['closed_days']`` changes it),
and their counts and sums are those of that window. An open pipeline is
what the board is for; the full history stays in the Opportunities list.
"""
import datetime as dt
from decimal import Decimal

from sql import As, Column, Window
from sql.aggregate import Count, Sum
from sql.conditionals import Case
from sql.functions import RowNumber

from trytond import backend
from trytond.model import Model
from trytond.pool import Pool
from trytond.rpc import RPC
from trytond.tools import escape_wildcard, grouped_slice
from trytond.transaction import Transaction

PAGE_SIZE = 50
# The order of the cards in a column, by kind of stage
OPEN_ORDER = [('priority', 'DESC'), ('id', 'DESC')]
CLOSED_ORDER = [('date_closed', 'DESC'), ('id', 'DESC')]
CLOSED_DAYS = 30
SEARCH_MAX_LENGTH = 100


class Board(Model):
    __name__ = 'crm.lead.board'
    __string__ = "CRM Pipeline Board"

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__rpc__.update({
                'get_teams': RPC(readonly=True),
                'get_board': RPC(readonly=True),
                'get_cards': RPC(readonly=True),
                'get_totals': RPC(readonly=True),
                })

    @classmethod
    def get_teams(cls):
        """Return the teams the user can see and the one to show first:
        {'teams': [{'id', 'name'}], 'default': id or None}

        A team with id None stands for the opportunities without team; it
        is listed only when the user can see some."""
        pool = Pool()
        Team = pool.get('crm.team')
        User = pool.get('res.user')
        Lead = pool.get('crm.lead')
        user_id = Transaction().user
        teams = Team.search([])
        result = [{'id': t.id, 'name': t.name} for t in teams]
        if Lead.search([
                    ('company', 'in', User.get_companies()),
                    ('team', '=', None),
                    ('type', '=', 'opportunity'),
                    ], limit=1, order=[]):
            result.append({'id': None, 'name': None})
        visible = {t.id for t in teams}
        default = next(
            (t for t in User.get_crm_teams(user_id) if t in visible), None)
        if default is None and teams:
            default = teams[0].id
        return {'teams': result, 'default': default}

    @classmethod
    def get_board(cls, team_id, filters=None):
        """Return the columns of the team's pipeline with the first cards:
        {'team': {'id', 'name'},
         'currency': {'code', 'symbol', 'digits'},
         'stages': [{'id', 'name', 'kind', 'probability',
             'count', 'expected', 'weighted', 'cards': [...]}],
         'lost_reasons': [{'id', 'name'}],
         'owners': [{'id', 'name'}],
         'closed_since': ISO date, 'page_size': int}

        Amounts are decimal strings rounded to the currency."""
        pool = Pool()
        LostReason = pool.get('crm.lost_reason')
        filters = cls._clean_filters(filters)
        team, company = cls._team_company(team_id)
        currency = company.currency if company else None
        stages = cls._stages(team)
        domain = cls._domain(team, company, filters) + [
            ('stage', 'in', [s.id for s in stages])]
        totals, ids_of_stage = cls._first_cards(domain, stages, currency)
        cards = cls._cards(
            [i for ids in ids_of_stage.values() for i in ids], currency)
        columns = []
        for stage in stages:
            count, expected, weighted = totals.get(
                stage.id, (0, Decimal(0), Decimal(0)))
            columns.append({
                    'id': stage.id,
                    'name': stage.name,
                    'kind': stage.kind,
                    'probability': stage.probability,
                    'count': count,
                    'expected': str(expected),
                    'weighted': str(weighted),
                    'cards': [
                        cards[i] for i in ids_of_stage.get(stage.id, [])],
                    })
        return {
            'team': {
                'id': team.id if team else None,
                'name': team.name if team else None,
                },
            'currency': {
                'code': currency.code,
                'symbol': currency.symbol or currency.code,
                'digits': currency.digits,
                } if currency else None,
            'stages': columns,
            'lost_reasons': [
                {'id': r.id, 'name': r.name} for r in LostReason.search([])],
            'owners': cls._owners(team),
            'closed_since': cls._closed_since(filters).date().isoformat(),
            'page_size': PAGE_SIZE,
            }

    @classmethod
    def get_cards(cls, team_id, stage_id, filters=None, offset=0):
        "Return the next cards of one column, from offset"
        pool = Pool()
        Stage = pool.get('crm.stage')
        filters = cls._clean_filters(filters)
        team, company = cls._team_company(team_id)
        stage = Stage(int(stage_id))
        if stage not in cls._stages(team):
            return []
        domain = cls._domain(team, company, filters)
        ids = cls._search_cards(
            domain, stage, max(int(offset or 0), 0), filters)
        cards = cls._cards(ids, company.currency if company else None)
        return [cards[i] for i in ids]

    @classmethod
    def get_totals(cls, team_id, filters=None):
        """Return the count and sums of each column, to refresh the headers
        after a move: [{'id', 'count', 'expected', 'weighted'}]"""
        filters = cls._clean_filters(filters)
        team, company = cls._team_company(team_id)
        stages = cls._stages(team)
        domain = cls._domain(team, company, filters) + [
            ('stage', 'in', [s.id for s in stages])]
        totals = cls._totals(domain, company.currency if company else None)
        result = []
        for stage in stages:
            count, expected, weighted = totals.get(
                stage.id, (0, Decimal(0), Decimal(0)))
            result.append({
                    'id': stage.id,
                    'count': count,
                    'expected': str(expected),
                    'weighted': str(weighted),
                    })
        return result

    @classmethod
    def _clean_filters(cls, filters):
        filters = filters if isinstance(filters, dict) else {}
        owner = filters.get('owner')
        closed_days = filters.get('closed_days')
        try:
            closed_days = min(max(int(closed_days), 1), 3660)
        except (TypeError, ValueError):
            closed_days = CLOSED_DAYS
        return {
            'owner': int(owner) if owner not in {None, ''} else None,
            'mine': bool(filters.get('mine')),
            'search': str(filters.get('search') or '').strip()[
                :SEARCH_MAX_LENGTH],
            'closed_days': closed_days,
            }

    @classmethod
    def _team_company(cls, team_id):
        "Return the team (None for no team) and its company"
        pool = Pool()
        Team = pool.get('crm.team')
        User = pool.get('res.user')
        Company = pool.get('company.company')
        if team_id not in {None, ''}:
            team, = Team.browse([int(team_id)])
            # Reading checks that the user may see the team
            Team.read([team.id], ['name', 'company'])
            return team, team.company
        company_id = Transaction().context.get('company')
        if company_id is not None:
            return None, Company(company_id)
        return None, User(Transaction().user).company

    @classmethod
    def _stages(cls, team):
        pool = Pool()
        Stage = pool.get('crm.stage')
        return Stage.for_team(team)

    @classmethod
    def _closed_since(cls, filters):
        return dt.datetime.now() - dt.timedelta(days=filters['closed_days'])

    @classmethod
    def _domain(cls, team, company, filters):
        "The domain of the opportunities on the board, all columns together"
        domain = [
            ('company', '=', company.id if company else None),
            ('team', '=', team.id if team else None),
            ('type', '=', 'opportunity'),
            ['OR',
                ('state', '=', 'open'),
                ('date_closed', '>=', cls._closed_since(filters)),
                ],
            ]
        owner = filters['owner']
        if filters['mine']:
            owner = Transaction().user
        if owner:
            domain.append(('owner', '=', owner))
        for word in filters['search'].split():
            like = '%' + escape_wildcard(word) + '%'
            domain.append(['OR',
                    ('name', 'ilike', like),
                    ('party.name', 'ilike', like),
                    ('contact.name', 'ilike', like),
                    ('contact_name', 'ilike', like),
                    ('company_name', 'ilike', like),
                    ])
        return domain

    @classmethod
    def _totals(cls, domain, currency):
        """Count and sum the opportunities of each stage in one GROUP BY
        query over what the user may read:
        {stage id: (count, expected, weighted)}"""
        cursor = Transaction().connection.cursor()
        query, lead = _readable_query(domain)
        # Aggregate in the search query itself: no self-join
        query.columns = [
            lead.stage,
            Count(lead.id),
            Sum(lead.expected_revenue),
            Sum(lead.expected_revenue * lead.probability),
            ]
        query.group_by = [lead.stage]
        cursor.execute(*query)
        result = {}
        for stage_id, count, expected, weighted in cursor:
            expected = _decimal(expected)
            weighted = _decimal(weighted) / 100
            result[stage_id] = (
                count, _round(currency, expected), _round(currency, weighted))
        return result

    @classmethod
    def _first_cards(cls, domain, stages, currency):
        """Return the totals of each stage and the ids of its first cards,
        in one query over what the user may read (the search query applies
        the record rules): a window per stage ranks the cards in the order
        of get_cards and sums the column.

        At 100,000 leads this reads the team's rows once instead of seven
        times (a GROUP BY and a query per column)."""
        Lead = Pool().get('crm.lead')
        cursor = Transaction().connection.cursor()
        query, lead = _readable_query(domain)

        # The order of each kind of column, as the search of get_cards
        # orders it: within a stage, the other kind's keys are all NULL.
        tables = {None: (lead, None)}
        order_by = []
        for kind_order, stage_ids in [
                (OPEN_ORDER, [s.id for s in stages if s.kind == 'open']),
                (CLOSED_ORDER, [s.id for s in stages if s.kind != 'open']),
                ]:
            if not stage_ids:
                continue
            for fname, direction in kind_order:
                if fname == 'id':
                    continue
                for expression in Lead._fields[fname].convert_order(
                        fname, tables, Lead):
                    expression = Case(
                        (lead.stage.in_(stage_ids), expression))
                    order_by.append(
                        expression.desc if direction == 'DESC'
                        else expression.asc)
        order_by.append(lead.id.desc)
        assert len(tables) == 1, "ordering on a joined table"

        column = Window([lead.stage])
        query.columns = [
            lead.id.as_('id'),
            lead.stage.as_('stage'),
            RowNumber(window=Window([lead.stage], order_by=order_by)
                ).as_('rank'),
            Count(lead.id, window=column).as_('total_count'),
            Sum(lead.expected_revenue, window=column).as_('expected'),
            Sum(lead.expected_revenue * lead.probability, window=column
                ).as_('weighted'),
            ]
        cursor.execute(*query.select(
                *(Column(query, n) for n in [
                        'id', 'stage', 'total_count', 'expected',
                        'weighted']),
                where=Column(query, 'rank') <= PAGE_SIZE,
                order_by=[Column(query, 'stage'), Column(query, 'rank')]))
        totals, ids_of_stage = {}, {}
        for id_, stage_id, count, expected, weighted in cursor:
            if stage_id not in totals:
                totals[stage_id] = (
                    count,
                    _round(currency, _decimal(expected)),
                    _round(currency, _decimal(weighted) / 100))
            ids_of_stage.setdefault(stage_id, []).append(id_)
        return totals, ids_of_stage

    @classmethod
    def _search_cards(cls, domain, stage, offset, filters):
        "Return the ids of one page of a column, rules applied"
        pool = Pool()
        Lead = pool.get('crm.lead')
        cursor = Transaction().connection.cursor()
        order = OPEN_ORDER if stage.kind == 'open' else CLOSED_ORDER
        # Only the ids: the cards are read below in one query for all
        # columns, without instantiating the leads.
        cursor.execute(*Lead.search(
                domain + [('stage', '=', stage.id)],
                offset=offset, limit=PAGE_SIZE, order=order, query=True))
        return [i for i, in cursor]

    @classmethod
    def _cards(cls, ids, currency):
        """Return the card of each lead id by id, in two queries.

        The ids come from searches with the record rules, so the rows are
        read directly; the access to the model and its fields is checked
        as read() would."""
        pool = Pool()
        Lead = pool.get('crm.lead')
        Party = pool.get('party.party')
        User = pool.get('res.user')
        ModelAccess = pool.get('ir.model.access')
        FieldAccess = pool.get('ir.model.field.access')
        if not ids:
            return {}
        fnames = [
            'name', 'party', 'expected_revenue', 'owner', 'priority',
            'probability', 'stage', 'state', 'next_activity_date',
            'next_activity_overdue']
        ModelAccess.check('crm.lead', 'read')
        FieldAccess.check('crm.lead', fnames, 'read')
        ModelAccess.check('party.party', 'read')
        lead = Lead.__table__()
        party = Party.__table__()
        user = User.__table__()
        cursor = Transaction().connection.cursor()
        activities = cls._next_activities(ids)
        now = dt.datetime.now()
        cards = {}
        for sub_ids in grouped_slice(ids, backend.MAX_QUERY_PARAMS):
            cursor.execute(*lead
                .join(party, 'LEFT', condition=lead.party == party.id)
                .join(user, 'LEFT', condition=lead.owner == user.id)
                .select(
                    lead.id, lead.name, party.name, party.code,
                    lead.expected_revenue, lead.owner, user.name,
                    user.login, lead.priority, lead.probability,
                    lead.stage, lead.state,
                    where=lead.id.in_(list(sub_ids))))
            for (id_, name, party_name, party_code, revenue, owner_id,
                    owner_name, owner_login, priority, probability,
                    stage_id, state) in cursor:
                if party_name or party_code:
                    # party.party's rec_name
                    party_name = party_name or f'[{party_code}]'
                next_date = activities.get(id_)
                cards[id_] = {
                    'id': id_,
                    'name': name,
                    'party': party_name,
                    'expected_revenue': str(_round(
                            currency, _decimal(revenue))),
                    # res.user's rec_name
                    'owner': (owner_name or owner_login) if owner_id else None,
                    'owner_id': owner_id,
                    'next_activity_date': (
                        _iso_utc(next_date) if next_date else None),
                    'next_activity_overdue': bool(
                        next_date and next_date < now),
                    'priority': priority,
                    'probability': probability,
                    'stage': stage_id,
                    'state': state,
                    }
        return cards

    @classmethod
    def _next_activities(cls, ids):
        """Return the start of the first planned activity of each lead id,
        in one query: the first step of Lead.get_next_activity, which also
        reads the subject and instantiates the activities and origins (it
        costs more than the rest of the board for 300 cards)"""
        pool = Pool()
        Activity = pool.get('crm.activity')
        starts = Activity.first_planned_starts(f'crm.lead,{i}' for i in ids)
        return {int(o.split(',', 1)[1]): s for o, s in starts.items()}

    @classmethod
    def _owners(cls, team):
        "The users to filter on: the team's leader and members, and me"
        pool = Pool()
        User = pool.get('res.user')
        users = {User(Transaction().user)}
        if team:
            users.update(team.members)
            if team.leader:
                users.add(team.leader)
        owners = [{'id': u.id, 'name': u.rec_name} for u in users if u.id]
        return sorted(owners, key=lambda o: (o['name'] or '').lower())


def _decimal(value):
    "Aggregates come back as float on SQLite"
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _readable_query(domain):
    """Return the search query of the leads the user may read (the record
    rules applied) and the lead table to put columns on"""
    Lead = Pool().get('crm.lead')
    query = Lead.search(domain, order=[], query=True)
    lead = _main_table(query)
    if lead is None:
        lead = Lead.__table__()
        query = lead.select(where=lead.id.in_(query))
    return query, lead


def _main_table(query):
    "The table of the ids a search query selects, if it is that simple"
    if len(query.columns) == 1:
        column = query.columns[0]
        if isinstance(column, As):
            column = column.expression
        if isinstance(column, Column) and column.name == 'id':
            return column.table


def _round(currency, amount):
    if currency:
        return currency.round(amount)
    return amount.quantize(Decimal('0.01'))


def _iso_utc(value):
    "trytond keeps naive UTC datetimes"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(microsecond=0).isoformat() + 'Z'
