"Quality score of parties and the data quality analysis"
import datetime as dt

from trytond.pool import Pool
from trytond.pyson import PYSONDecoder
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from .test_dedup import count_queries
from .tools import CrmDatabaseTestCase, CrmSetup, create_party


class QualityTestCase(CrmDatabaseTestCase):
    "Party data quality (the generic module checks are in test_module.py)"

    def _country(self, code='FR', name="France"):
        pool = Pool()
        Country = pool.get('country.country')
        country, = Country.create([{'name': name, 'code': code}])
        return country

    def _sql_mechanism(self, party, type_, value):
        "A contact mechanism as a raw import would write it"
        pool = Pool()
        Mechanism = pool.get('party.contact_mechanism')
        table = Mechanism.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.insert(
                [table.party, table.type, table.value, table.value_compact,
                    table.active],
                [[party.id, type_, value, value, True]]))

    def _age(self, party, days):
        pool = Pool()
        Party = pool.get('party.party')
        table = Party.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update([table.create_date],
                [dt.datetime.now() - dt.timedelta(days=days)],
                where=table.id == party.id))

    @with_transaction()
    def test_complete_party_scores_100(self):
        "Email, phone valid for the country, address, owner: no issue"
        crm = CrmSetup()
        france = self._country()
        party = create_party("Acme", emails=["info@acme.example"],
            phones=["+33 1 42 68 53 00"], countries=[france],
            owner=crm.alice.id)
        self.assertEqual(party.quality_score, 100)
        self.assertEqual(party.quality_issues, ())

    @with_transaction()
    def test_incomplete_party(self):
        "Each missing piece costs its weight"
        pool = Pool()
        Party = pool.get('party.party')
        crm = CrmSetup()
        party = create_party("Nobody")
        self.assertEqual(set(party.quality_issues),
            {'no_contact', 'no_address_country', 'no_owner'})
        self.assertEqual(party.quality_score, 100 - 30 - 15 - 10)
        Party.write([party], {'owner': crm.bob.id})
        party = Party(party.id)
        self.assertEqual(party.quality_score, 100 - 30 - 15)

    @with_transaction()
    def test_recomputed_with_contact_mechanisms_and_addresses(self):
        "Adding, changing and deleting contacts and addresses updates it"
        pool = Pool()
        Party = pool.get('party.party')
        Mechanism = pool.get('party.contact_mechanism')
        Address = pool.get('party.address')
        france = self._country()
        party = create_party("Acme")
        mechanism, = Mechanism.create([{
                    'party': party.id, 'type': 'email',
                    'value': "info@acme.example"}])
        self.assertNotIn('no_contact', Party(party.id).quality_issues)
        address, = Address.create([{'party': party.id}])
        self.assertIn('no_address_country', Party(party.id).quality_issues)
        Address.write([address], {'country': france.id})
        self.assertNotIn(
            'no_address_country', Party(party.id).quality_issues)
        Mechanism.delete([mechanism])
        self.assertIn('no_contact', Party(party.id).quality_issues)
        Address.delete([address])
        self.assertIn('no_address_country', Party(party.id).quality_issues)

    @with_transaction()
    def test_invalid_email_and_phone(self):
        "Data written outside the ORM is checked: syntax, phone of country"
        pool = Pool()
        Party = pool.get('party.party')
        crm = CrmSetup()
        france = self._country()
        party = create_party(
            "Acme", countries=[france], owner=crm.alice.id)
        self._sql_mechanism(party, 'email', "info@@acme")
        # A German local number is not a French one
        self._sql_mechanism(party, 'phone', "030 901820")
        Party.update_quality([party])
        party = Party(party.id)
        self.assertEqual(
            set(party.quality_issues), {'invalid_email', 'invalid_phone'})
        self.assertEqual(party.quality_score, 100 - 15 - 10)

    @with_transaction()
    def test_stale_without_recent_activity(self):
        "Old parties without recent done activity are stale"
        pool = Pool()
        Party = pool.get('party.party')
        Activity = pool.get('crm.activity')
        Configuration = pool.get('crm.configuration')
        crm = CrmSetup()
        party = create_party("Old Customer")
        self.assertNotIn('stale', party.quality_issues)
        self._age(party, 400)
        Party.update_quality_all()
        self.assertIn('stale', Party(party.id).quality_issues)
        # The daily scheduled task runs it
        Cron = pool.get('ir.cron')
        crons = Cron.search(
            [('method', '=', 'party.party|update_quality_all')])
        self.assertEqual([c.interval_type for c in crons], ['days'])

        with crm.company_context():
            activity, = Activity.create([{
                        'subject': "Call", 'party': party.id,
                        'user': crm.alice.id,
                        'start': dt.datetime.now() - dt.timedelta(days=100),
                        }])
        Party.update_quality([party])
        # Planned only: still stale
        self.assertIn('stale', Party(party.id).quality_issues)
        Activity.do([activity])
        Party.update_quality([party])
        self.assertNotIn('stale', Party(party.id).quality_issues)

        config = Configuration(1)
        config.quality_stale_days = 30
        config.save()
        Party.update_quality([party])
        self.assertIn('stale', Party(party.id).quality_issues)

    @with_transaction()
    def test_duplicate_flags_both(self):
        "A new party with an existing email makes both suspects"
        pool = Pool()
        Party = pool.get('party.party')
        first = create_party("Acme", emails=["info@acme.example"])
        self.assertNotIn('duplicate', first.quality_issues)
        second = create_party("Acme Corp.", emails=["INFO@acme.example"])
        self.assertIn('duplicate', second.quality_issues)
        self.assertIn('duplicate', Party(first.id).quality_issues)
        Party.write([second], {'active': False})
        Party.update_quality_all()
        self.assertNotIn('duplicate', Party(first.id).quality_issues)

    @with_transaction()
    def test_update_quality_constant_queries(self):
        "The queries of a batch do not grow with its size"
        pool = Pool()
        Party = pool.get('party.party')
        parties = Party.create([{
                    'name': f"Party {i}",
                    'contact_mechanisms': [('create', [{
                                    'type': 'email',
                                    'value': f"p{i}@example.com"}])],
                    } for i in range(30)])
        counts = []
        for batch in [parties[:2], parties]:
            with count_queries() as queries:
                Party.update_quality(batch)
            counts.append(len(queries))
        self.assertEqual(counts[0], counts[1])
        self.assertLessEqual(counts[0], 12)

    def _analysis(self, group_by):
        pool = Pool()
        Analysis = pool.get('crm.party.quality.analysis')
        with Transaction().set_context(group_by=group_by):
            return {r.rec_name: r for r in Analysis.search([])}

    @with_transaction()
    def test_analysis_and_drill_down(self):
        "Average score and shares by team, owner and creator"
        pool = Pool()
        Analysis = pool.get('crm.party.quality.analysis')
        Party = pool.get('party.party')
        Open = pool.get('crm.party.quality.analysis.open', type='wizard')
        crm = CrmSetup()
        france = self._country()
        with Transaction().set_user(crm.alice.id):
            good = create_party("Good", emails=["good@example.com"],
                countries=[france], owner=crm.alice.id)
            poor = create_party("Poor", owner=crm.alice.id)
        with Transaction().set_user(crm.carol.id):
            dup = create_party("Dup", emails=["good@example.com"],
                owner=crm.carol.id)
        scores = {p: Party(p.id).quality_score for p in [good, poor, dup]}
        self.assertEqual(scores, {
                good: 100 - 10, poor: 100 - 30 - 15, dup: 100 - 15 - 10})

        by_owner = self._analysis('owner')
        alice = by_owner["Alice"]
        self.assertEqual(alice.parties, 2)
        self.assertAlmostEqual(alice.average_score, (90 + 55) / 2)
        self.assertEqual(
            (alice.incomplete, alice.invalid, alice.duplicate), (1, 0, 1))
        self.assertAlmostEqual(alice.incomplete_rate, 50.0)
        self.assertEqual(by_owner["Carol"].duplicate_rate, 100.0)

        by_team = self._analysis('team')
        self.assertEqual(
            {n: r.parties for n, r in by_team.items()},
            {"North": 2, "South": 1})

        by_creator = self._analysis('creator')
        self.assertEqual(by_creator["Carol"].parties, 1)
        self.assertEqual(by_creator["Alice"].parties, 2)

        with Transaction().set_context(group_by='owner'):
            row = Analysis(alice.id)
            with Transaction().set_context(
                    active_model=Analysis.__name__, active_id=row.id,
                    active_ids=[row.id]):
                session_id, _, _ = Open.create()
                action, _ = Open(session_id).do_open_({'name': "Parties"})
        domain = PYSONDecoder().decode(action['pyson_domain'])
        # The parties to fix of the row: both of Alice's have issues
        self.assertEqual(set(Party.search(domain)), {good, poor})
        self.assertIn("Alice", action['name'])

        with Transaction().set_context(group_by='team'):
            row = Analysis(by_team["South"].id)
            domain = row.parties_domain()
        self.assertEqual(Party.search(domain), [dup])

