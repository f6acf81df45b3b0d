"Tests of the pipeline board: its server API, its page and its files"
import base64
import datetime as dt
import json
from decimal import Decimal

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import RouteTestCase, with_transaction
from trytond.transaction import Transaction

from .tools import create_user

RPC_LOGIN = 'board_rpc'
RPC_PASSWORD = 'Pipeline-Board-rpc-2026!'


def stages():
    "The stages every team uses, by name (crm_core's data)"
    pool = Pool()
    Stage = pool.get('crm.stage')
    return {s.name: s for s in Stage.search([('team', '=', None)])}


def build(company):
    """Create users, teams and opportunities in several stages:

    Team A (alice, bob): New: Alpha 1000@10% (alice, high), Beta 2000@20%
    (bob); Qualified: Gamma 500@30% (alice); Won: Delta 3000 (bob, today)
    and Epsilon 4000 (closed 60 days ago); Lost: Zeta 700 (alice, today);
    and a lead (not an opportunity) in New.
    Team B (carol): New: Bravo one 5000 (carol), Bravo two 6000 (alice).
    """
    pool = Pool()
    Team = pool.get('crm.team')
    Party = pool.get('party.party')
    Lead = pool.get('crm.lead')
    LostReason = pool.get('crm.lost_reason')

    alice = create_user('alice_board', company, name="Alice")
    bob = create_user('bob_board', company, name="Bob")
    carol = create_user('carol_board', company, name="Carol")
    outsider = create_user('oscar_board', company, group=None, name="Oscar")
    team_a, team_b = Team.create([{
                'name': "Team A",
                'company': company.id,
                'members': [('add', [alice.id, bob.id])],
                }, {
                'name': "Team B",
                'company': company.id,
                'members': [('add', [carol.id])],
                }])
    acme, globex, initech = Party.create([
            {'name': "Acme"}, {'name': "Globex"}, {'name': "Initech"}])
    stage = stages()
    reason = LostReason.search([], limit=1)[0]
    long_ago = dt.datetime.now() - dt.timedelta(days=60)

    def opportunity(name, team, party, stage_name, revenue, owner, **values):
        return {
            'name': name,
            'type': 'opportunity',
            'company': company.id,
            'team': team.id,
            'party': party.id,
            'stage': stage[stage_name].id,
            'expected_revenue': Decimal(revenue),
            'owner': owner.id,
            **values,
            }
    leads = Lead.create([
            opportunity("Alpha deal", team_a, acme, 'New', 1000, alice,
                probability=10, priority='2'),
            opportunity("Beta deal", team_a, globex, 'New', 2000, bob,
                probability=20),
            opportunity("Gamma deal", team_a, initech, 'Qualified', 500,
                alice, probability=30, contact_name="Peter Gibbons"),
            opportunity("Delta deal", team_a, globex, 'Won', 3000, bob),
            opportunity("Epsilon deal", team_a, acme, 'Won', 4000, bob,
                date_closed=long_ago),
            opportunity("Zeta deal", team_a, acme, 'Lost', 700, alice,
                lost_reason=reason.id),
            opportunity("Bravo one", team_b, acme, 'New', 5000, carol),
            opportunity("Bravo two", team_b, globex, 'New', 6000, alice),
            {
                'name': "Raw lead",
                'type': 'lead',
                'company': company.id,
                'team': team_a.id,
                'stage': stage['New'].id,
                'expected_revenue': Decimal(9999),
                'owner': alice.id,
                'company_name': "Acme",
                },
            ])
    return {
        'alice': alice, 'bob': bob, 'carol': carol, 'outsider': outsider,
        'team_a': team_a, 'team_b': team_b,
        'acme': acme, 'globex': globex,
        'stage': stage, 'reason': reason,
        'leads': {l.name: l for l in leads},
        }


def column(board, name):
    for stage in board['stages']:
        if stage['name'] == name:
            return stage
    raise KeyError(name)


def names(cards):
    return [c['name'] for c in cards]


class BoardTestCase(RouteTestCase):
    "Test the pipeline board"
    module = 'crm_core'

    @classmethod
    def setUpDatabase(cls):
        "Committed data for the requests through the WSGI application"
        pool = Pool()
        Team = pool.get('crm.team')
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        company = create_company(name="Board RPC Company")
        user = create_user(
            RPC_LOGIN, company, name="Board RPC", password=RPC_PASSWORD)
        team, = Team.create([{
                    'name': "RPC Team",
                    'company': company.id,
                    'members': [('add', [user.id])],
                    }])
        party, = Party.create([{'name': "RPC Customer"}])
        stage = stages()
        Lead.create([{
                    'name': "RPC deal",
                    'type': 'opportunity',
                    'company': company.id,
                    'team': team.id,
                    'party': party.id,
                    'stage': stage['New'].id,
                    'expected_revenue': Decimal('1234.50'),
                    'probability': 10,
                    'owner': user.id,
                    }])

    def get_board(self, team, filters=None):
        pool = Pool()
        Board = pool.get('crm.lead.board')
        return Board.get_board(team.id, filters or {})

    @with_transaction()
    def test_columns_counts_and_sums(self):
        "Columns follow the stage order with counts and sums of the team"
        company = create_company()
        with set_company(company):
            data = build(company)
            board = self.get_board(data['team_a'])

            self.assertEqual(
                [s['name'] for s in board['stages']],
                ['New', 'Qualified', 'Proposition', 'Negotiation', 'Won',
                    'Lost'])
            self.assertEqual(board['team'], {
                    'id': data['team_a'].id, 'name': "Team A"})
            self.assertEqual(board['currency']['digits'], 2)
            self.assertEqual(
                {(s['name'], s['count'], s['expected'], s['weighted'])
                    for s in board['stages']},
                {
                    ('New', 2, '3000.00', '500.00'),
                    ('Qualified', 1, '500.00', '150.00'),
                    ('Proposition', 0, '0', '0'),
                    ('Negotiation', 0, '0', '0'),
                    # Epsilon was closed before the window of the board
                    ('Won', 1, '3000.00', '3000.00'),
                    ('Lost', 1, '700.00', '0.00'),
                    })
            self.assertEqual(
                names(column(board, 'New')['cards']),
                ["Alpha deal", "Beta deal"])
            self.assertEqual(column(board, 'Won')['kind'], 'won')
            self.assertEqual(column(board, 'Lost')['kind'], 'lost')
            self.assertIn(data['reason'].id,
                [r['id'] for r in board['lost_reasons']])
            self.assertEqual(
                {o['name'] for o in board['owners']},
                {"Alice", "Bob", "Administrator"})

            card, = [c for c in column(board, 'New')['cards']
                if c['name'] == "Alpha deal"]
            self.assertEqual(card, {
                    'id': data['leads']["Alpha deal"].id,
                    'name': "Alpha deal",
                    'party': "Acme",
                    'expected_revenue': '1000.00',
                    'owner': "Alice",
                    'owner_id': data['alice'].id,
                    'next_activity_date': None,
                    'next_activity_overdue': False,
                    'priority': '2',
                    'probability': 10,
                    'stage': data['stage']['New'].id,
                    'state': 'open',
                    })

            Board = Pool().get('crm.lead.board')
            totals = Board.get_totals(data['team_a'].id, {})
            self.assertEqual(
                [(t['id'], t['count'], t['expected'], t['weighted'])
                    for t in totals],
                [(s['id'], s['count'], s['expected'], s['weighted'])
                    for s in board['stages']])

    @with_transaction()
    def test_closed_window(self):
        "closed_days widens the won and lost columns"
        company = create_company()
        with set_company(company):
            data = build(company)
            board = self.get_board(data['team_a'], {'closed_days': 90})
            won = column(board, 'Won')
            self.assertEqual(won['count'], 2)
            self.assertEqual(won['expected'], '7000.00')
            # Most recently closed first
            self.assertEqual(
                names(won['cards']), ["Delta deal", "Epsilon deal"])

    @with_transaction()
    def test_first_cards_and_more(self):
        "A column gives 50 cards, then get_cards the rest from an offset"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Board = pool.get('crm.lead.board')
        company = create_company()
        with set_company(company):
            data = build(company)
            proposition = data['stage']['Proposition']
            Lead.create([{
                        'name': f"Bulk {i:02d}",
                        'type': 'opportunity',
                        'company': company.id,
                        'team': data['team_a'].id,
                        'party': data['acme'].id,
                        'stage': proposition.id,
                        'expected_revenue': Decimal(100),
                        'owner': data['bob'].id,
                        'priority': '3' if i == 42 else '1',
                        } for i in range(55)])

            board = self.get_board(data['team_a'])
            col = column(board, 'Proposition')
            self.assertEqual(col['count'], 55)
            self.assertEqual(col['expected'], '5500.00')
            self.assertEqual(len(col['cards']), 50)
            self.assertEqual(board['page_size'], 50)
            # The highest priority first, then the newest
            self.assertEqual(col['cards'][0]['name'], "Bulk 42")
            self.assertEqual(col['cards'][1]['name'], "Bulk 54")

            more = Board.get_cards(
                data['team_a'].id, proposition.id, {}, 50)
            self.assertEqual(len(more), 5)
            ids = [c['id'] for c in col['cards'] + more]
            self.assertEqual(len(set(ids)), 55)
            self.assertEqual(
                Board.get_cards(data['team_a'].id, proposition.id, {}, 55),
                [])
            # A stage of another team gives nothing
            other, = pool.get('crm.stage').create([{
                        'name': "B only", 'team': data['team_b'].id}])
            self.assertEqual(
                Board.get_cards(data['team_a'].id, other.id, {}, 0), [])

    @with_transaction()
    def test_first_cards_as_get_cards(self):
        "The first cards of get_board are those get_cards orders first"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Board = pool.get('crm.lead.board')
        company = create_company()
        with set_company(company):
            data = build(company)
            team = data['team_a']
            stage = data['stage']
            now = dt.datetime.now()
            Lead.create([{
                        'name': f"Mixed {i:02d}",
                        'type': 'opportunity',
                        'company': company.id,
                        'team': team.id,
                        'party': data['globex'].id,
                        'stage': stage[name].id,
                        'expected_revenue': Decimal(i),
                        'owner': data['alice'].id,
                        'priority': str(i % 4),
                        'lost_reason': (
                            data['reason'].id if name == 'Lost' else None),
                        'date_closed': now - dt.timedelta(hours=i * 7 % 50),
                        } for i in range(120)
                    for name in ['New', 'Won', 'Lost'] if i % 3 or
                    name == 'New'])
            for filters in [{}, {'search': "mixed"}, {'owner': data[
                            'alice'].id}]:
                board = self.get_board(team, filters)
                for col in board['stages']:
                    with self.subTest(stage=col['name'], filters=filters):
                        cards = Board.get_cards(
                            team.id, col['id'], filters, 0)
                        self.assertEqual(
                            [c['id'] for c in col['cards']],
                            [c['id'] for c in cards])
                        self.assertLessEqual(len(cards), 50)
                totals = Board.get_totals(team.id, filters)
                self.assertEqual(
                    [(t['count'], t['expected'], t['weighted'])
                        for t in totals],
                    [(s['count'], s['expected'], s['weighted'])
                        for s in board['stages']])

    @with_transaction()
    def test_leads_without_team(self):
        "Opportunities without team have their own board"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Board = pool.get('crm.lead.board')
        company = create_company()
        with set_company(company):
            data = build(company)
            self.assertNotIn(None, [t['id'] for t in Board.get_teams()[
                        'teams']])
            lead, = Lead.create([{
                        'name': "Lonely deal",
                        'type': 'opportunity',
                        'company': company.id,
                        'party': data['acme'].id,
                        'expected_revenue': Decimal(10),
                        }])
            self.assertIn(None, [t['id'] for t in Board.get_teams()[
                        'teams']])
            board = Board.get_board(None, {})
            self.assertEqual(board['team'], {'id': None, 'name': None})
            self.assertEqual(
                [c['name'] for s in board['stages'] for c in s['cards']],
                ["Lonely deal"])

    @with_transaction()
    def test_filters(self):
        "My pipeline, owner and text search"
        pool = Pool()
        Board = pool.get('crm.lead.board')
        company = create_company()
        with set_company(company):
            data = build(company)
            team = data['team_a']

            def visible(filters):
                board = self.get_board(team, filters)
                return sorted(
                    c['name'] for s in board['stages'] for c in s['cards'])

            self.assertEqual(
                visible({'owner': data['bob'].id}),
                ["Beta deal", "Delta deal"])
            board = self.get_board(team, {'owner': data['bob'].id})
            self.assertEqual(column(board, 'New')['count'], 1)
            self.assertEqual(column(board, 'New')['expected'], '2000.00')

            with Transaction().set_user(data['alice'].id):
                self.assertEqual(
                    visible({'mine': True}),
                    ["Alpha deal", "Gamma deal", "Zeta deal"])
                # mine wins over another owner
                self.assertEqual(
                    visible({'mine': True, 'owner': data['bob'].id}),
                    ["Alpha deal", "Gamma deal", "Zeta deal"])

            # title, party name, contact name; every word must match
            self.assertEqual(visible({'search': "alpha"}), ["Alpha deal"])
            self.assertEqual(
                visible({'search': "ACME"}), ["Alpha deal", "Zeta deal"])
            self.assertEqual(visible({'search': "gibbons"}), ["Gamma deal"])
            self.assertEqual(
                visible({'search': "deal acme zeta"}), ["Zeta deal"])
            self.assertEqual(visible({'search': "%"}), [])
            self.assertEqual(visible({'search': "   "}), sorted([
                        "Alpha deal", "Beta deal", "Gamma deal",
                        "Delta deal", "Zeta deal"]))
            board = self.get_board(team, {'search': "acme"})
            self.assertEqual(column(board, 'Lost')['count'], 1)
            self.assertEqual(column(board, 'New')['count'], 1)
            self.assertEqual(
                len(Board.get_cards(
                        team.id, data['stage']['New'].id,
                        {'search': "acme"}, 0)), 1)

    @with_transaction()
    def test_next_activity(self):
        "Cards show the first planned activity, overdue or not"
        pool = Pool()
        Activity = pool.get('crm.activity')
        company = create_company()
        with set_company(company):
            data = build(company)
            alpha = data['leads']["Alpha deal"]
            beta = data['leads']["Beta deal"]
            yesterday = dt.datetime(2020, 1, 2, 9, 30)
            tomorrow = (dt.datetime.now() + dt.timedelta(days=1)).replace(
                microsecond=0)
            Activity.create([{
                        'subject': "Call back",
                        'company': company.id,
                        'origin': str(alpha),
                        'start': yesterday,
                        'user': data['alice'].id,
                        }, {
                        'subject': "Later",
                        'company': company.id,
                        'origin': str(alpha),
                        'start': tomorrow,
                        'user': data['alice'].id,
                        }, {
                        'subject': "Demo",
                        'company': company.id,
                        'origin': str(beta),
                        'start': tomorrow,
                        'user': data['bob'].id,
                        }])
            board = self.get_board(data['team_a'])
            cards = {c['name']: c for c in column(board, 'New')['cards']}
            self.assertEqual(
                cards["Alpha deal"]['next_activity_date'],
                '2020-01-02T09:30:00Z')
            self.assertTrue(cards["Alpha deal"]['next_activity_overdue'])
            self.assertEqual(
                cards["Beta deal"]['next_activity_date'],
                tomorrow.isoformat() + 'Z')
            self.assertFalse(cards["Beta deal"]['next_activity_overdue'])

            # The same as the Next Activity field of the leads
            Lead = pool.get('crm.lead')
            expected = Lead.get_next_activity(
                Lead.browse([c['id'] for c in cards.values()]),
                ['next_activity_date', 'next_activity_overdue'])
            for card in cards.values():
                date = expected['next_activity_date'][card['id']]
                self.assertEqual(
                    card['next_activity_date'],
                    date.isoformat() + 'Z' if date else None)
                self.assertEqual(
                    card['next_activity_overdue'],
                    expected['next_activity_overdue'][card['id']])

    @with_transaction()
    def test_access_rules(self):
        "A CRM user sees only their own leads and their teams' leads"
        pool = Pool()
        Board = pool.get('crm.lead.board')
        Lead = pool.get('crm.lead')
        company = create_company()
        with set_company(company):
            data = build(company)
            team_a, team_b = data['team_a'], data['team_b']

            def all_cards(board):
                return sorted(
                    c['name'] for s in board['stages'] for c in s['cards'])

            def total(board):
                return sum(s['count'] for s in board['stages'])

            # The manager (admin) sees everything
            self.assertEqual(total(self.get_board(team_b)), 2)

            with Transaction().set_user(data['carol'].id), \
                    Transaction().set_context(_check_access=True):
                teams = Board.get_teams()
                self.assertEqual(teams['default'], team_b.id)
                board = self.get_board(team_a)
                self.assertEqual(all_cards(board), [])
                self.assertEqual(total(board), 0)
                self.assertEqual(
                    Board.get_cards(
                        team_a.id, data['stage']['New'].id, {}, 0), [])
                self.assertEqual(
                    all_cards(self.get_board(team_b)),
                    ["Bravo one", "Bravo two"])

            with Transaction().set_user(data['alice'].id), \
                    Transaction().set_context(_check_access=True):
                teams = Board.get_teams()
                self.assertEqual(teams['default'], team_a.id)
                self.assertEqual(
                    {t['name'] for t in teams['teams']},
                    {"Team A", "Team B"})
                board = self.get_board(team_a)
                self.assertEqual(total(board), 5)
                # In team B only the lead she owns
                board = self.get_board(team_b)
                self.assertEqual(all_cards(board), ["Bravo two"])
                self.assertEqual(column(board, 'New')['count'], 1)
                self.assertEqual(column(board, 'New')['expected'], '6000.00')

                # Moving a card the rules hide is refused
                with self.assertRaises(AccessError):
                    Lead.write(
                        [Lead(data['leads']["Bravo one"].id)],
                        {'stage': data['stage']['Qualified'].id})

            with Transaction().set_user(data['outsider'].id), \
                    Transaction().set_context(_check_access=True):
                with self.assertRaises(AccessError):
                    self.get_board(team_a)

    @with_transaction()
    def test_moves(self):
        "The writes the page does when a card is dropped"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Board = pool.get('crm.lead.board')
        company = create_company()
        with set_company(company):
            data = build(company)
            stage = data['stage']
            alpha = data['leads']["Alpha deal"]
            with Transaction().set_user(data['alice'].id), \
                    Transaction().set_context(_check_access=True):
                Lead.write([Lead(alpha.id)], {'stage': stage['Won'].id})
                self.assertEqual(Lead(alpha.id).state, 'won')
                totals = {t['id']: t for t in Board.get_totals(
                        data['team_a'].id, {})}
                self.assertEqual(totals[stage['Won'].id]['count'], 2)
                self.assertEqual(totals[stage['New'].id]['count'], 1)

                # Lost needs a reason
                with self.assertRaises(UserError):
                    Lead.write([Lead(alpha.id)], {'stage': stage['Lost'].id})
                Lead.write([Lead(alpha.id)], {
                        'stage': stage['Lost'].id,
                        'lost_reason': data['reason'].id,
                        'lost_note': "Chose the cheaper offer",
                        })
                alpha = Lead(alpha.id)
                self.assertEqual(alpha.state, 'lost')
                self.assertEqual(alpha.lost_note, "Chose the cheaper offer")

    def test_page(self):
        "The page route answers the HTML"
        client = self.client()
        response = client.get(f'/{self.db_name}/crm/board')
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.mimetype, 'text/html')
        self.assertIn(b'board.js', response.data)

    def test_static_files(self):
        "The page's files and its npm libraries are served"
        client = self.client()
        for path, mimetype in [
                ('crm/board.js', 'javascript'),
                ('crm/board.css', 'text/css'),
                ('lib/sortablejs/sortable.esm.js', 'javascript'),
                ]:
            with self.subTest(path=path):
                response = client.get(
                    f'/{self.db_name}/crm/static/{path}')
                self.assertEqual(response.status_code, 200)
                self.assertIn(mimetype, response.mimetype)

    def test_static_refused(self):
        "Nothing outside the page folders is served"
        client = self.client()
        for path in [
                '../../etc/passwd',
                'crm/../../etc/passwd',
                'crm/../../package.json',
                'crm/../node_modules/sortablejs/package.json',
                'crm/%2e%2e/%2e%2e/package.json',
                'lib/sortablejs/../package.json',
                'lib/sortablejs/../../../../../etc/passwd',
                'lib/other/x.js',
                'node_modules/sortablejs/package.json',
                '/etc/passwd',
                'crm/missing.js',
                ]:
            with self.subTest(path=path):
                response = client.get(
                    f'/{self.db_name}/crm/static/{path}')
                self.assertIn(response.status_code, {404, 308})
                self.assertNotIn(b'root:', response.data)
                self.assertNotIn(b'"dependencies"', response.data)

    def rpc(self, method, params, authorization=None):
        client = self.client()
        headers = {'X-Requested-With': 'XMLHttpRequest'}
        if authorization:
            headers['Authorization'] = authorization
        response = client.post(
            f'/{self.db_name}/rpc/',
            data=json.dumps({'id': 1, 'method': method, 'params': params}),
            content_type='application/json', headers=headers)
        return response

    def session(self):
        response = self.rpc(
            'common.db.login',
            [RPC_LOGIN, {'password': RPC_PASSWORD}, 'en'])
        self.assertEqual(response.status_code, 200)
        user_id, token, _ = json.loads(response.data)['result']
        value = f'{RPC_LOGIN}:{user_id}:{token}'.encode()
        return 'Session ' + base64.b64encode(value).decode()

    def test_rpc(self):
        "The page's calls through JSON-RPC with a session"
        authorization = self.session()

        response = self.rpc(
            'model.crm.lead.board.get_teams', [{}], authorization)
        self.assertEqual(response.status_code, 200)
        teams = json.loads(response.data)['result']
        self.assertEqual(
            [t['name'] for t in teams['teams']], ["RPC Team"])

        response = self.rpc(
            'model.crm.lead.board.get_board',
            [teams['default'], {'mine': True, 'search': ''}, {}],
            authorization)
        self.assertEqual(response.status_code, 200)
        board = json.loads(response.data)['result']
        new = column(board, 'New')
        self.assertEqual(new['count'], 1)
        self.assertEqual(new['expected'], '1234.50')
        self.assertEqual(new['weighted'], '123.45')
        card, = new['cards']
        self.assertEqual(card['party'], "RPC Customer")

        response = self.rpc(
            'model.crm.lead.board.get_cards',
            [teams['default'], new['id'], {}, 0, {}], authorization)
        self.assertEqual(
            [c['id'] for c in json.loads(response.data)['result']],
            [card['id']])

        # A refused write answers an error the page shows
        lost = column(board, 'Lost')
        response = self.rpc(
            'model.crm.lead.write',
            [[card['id']], {'stage': lost['id']}, {}], authorization)
        self.assertEqual(response.status_code, 200)
        error = json.loads(response.data)['error']
        self.assertEqual(error[0], 'UserError')
        self.assertTrue(error[1][0])

    def test_rpc_without_session(self):
        "Without a session the page gets 401 and no Basic prompt"
        response = self.rpc(
            'model.crm.lead.board.get_teams', [{}])
        self.assertEqual(response.status_code, 401)
        self.assertNotIn('WWW-Authenticate', response.headers)

        value = base64.b64encode(f'{RPC_LOGIN}:1:expired'.encode()).decode()
        response = self.rpc(
            'model.crm.lead.board.get_teams', [{}], 'Session ' + value)
        self.assertEqual(response.status_code, 401)

    def test_rpc_missing_context(self):
        "trytond wants the context as last parameter"
        response = self.rpc(
            'model.crm.lead.board.get_teams', [], self.session())
        self.assertEqual(response.status_code, 422)
