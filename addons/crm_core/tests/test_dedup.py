"Duplicates: normalised names, matching, warnings, merge"
import datetime as dt
import unittest

from trytond.exceptions import UserWarning
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction, inactive_records

from ..contact import normalise_name, trigram_similarity, trigrams
from .tools import CrmDatabaseTestCase, CrmSetup, count_queries, create_party


class NormaliseTestCase(unittest.TestCase):
    "Pure functions: no database"

    def test_normalise_name(self):
        "Accents, case, punctuation and legal forms are ignored"
        for name, expected in [
                ("Acme Ltd", "acme"),
                ("ACME Limited", "acme"),
                ("Acme, Ltd.", "acme"),
                ("Müller & Söhne GmbH & Co. KG", "muller and sohne"),
                ("Kovács Kft.", "kovacs"),
                ("Société Générale S.A.", "societe generale"),
                ("Fiat S.p.A.", "fiat"),
                ("Straße Bau AG", "strasse bau"),
                ("O'Neil Inc.", "oneil"),
                ("  Globex   GmbH ", "globex"),
                ("AB", "ab"),
                ("", ""),
                (None, ""),
                ]:
            with self.subTest(name=name):
                self.assertEqual(normalise_name(name), expected)

    def test_trigrams_like_pg_trgm(self):
        "Words padded with two spaces before and one after"
        self.assertEqual(trigrams("cat"), {'  c', ' ca', 'cat', 'at '})
        self.assertEqual(trigrams("a-b"), {'  a', ' a ', '  b', ' b '})
        self.assertEqual(trigrams(""), set())

    def test_trigram_similarity(self):
        "Values computed by PostgreSQL 15's pg_trgm similarity()"
        self.assertAlmostEqual(
            trigram_similarity("muller bau", "mueller bau"), 0.64285713, 6)
        self.assertAlmostEqual(
            trigram_similarity("word", "two words"), 0.36363637, 6)
        self.assertEqual(trigram_similarity("acme", "ACME"), 1.0)
        self.assertEqual(trigram_similarity("", "acme"), 0.0)


class DedupTestCase(CrmDatabaseTestCase):
    "Duplicate parties (the generic module checks are in test_module.py)"

    @with_transaction()
    def test_name_normalised_stored(self):
        "The normalised name follows the name"
        pool = Pool()
        Party = pool.get('party.party')
        party = create_party("Kovács Kft.")
        self.assertEqual(party.name_normalised, "kovacs")
        Party.write([party], {'name': "Szabó és Társa Bt."})
        self.assertEqual(Party(party.id).name_normalised, "szabo es tarsa")
        self.assertEqual(
            Party.search([('name_normalised', '=', "kovacs")]), [])

    @with_transaction()
    def test_candidates_by_email_phone_name(self):
        "Same email (any case), same E.164 phone or a similar name"
        pool = Pool()
        Party = pool.get('party.party')
        acme = create_party("Acme Ltd", emails=["Sales@Acme.example"])
        globex = create_party("Globex", phones=["+49 30 901820"])
        create_party("Initech")

        result = Party.duplicate_candidates(emails=["sales@acme.example"])
        self.assertEqual(result, [(acme, 100, ['email'])])

        result = Party.duplicate_candidates(phones=["+4930901820"])
        self.assertEqual(result, [(globex, 90, ['phone'])])

        result = Party.duplicate_candidates(name="ACME Limited")
        self.assertEqual(result, [(acme, 80, ['name'])])

        # All reasons together: the best score plus 5 per other reason
        result = Party.duplicate_candidates(
            name="Acme", emails=["sales@acme.example"])
        self.assertEqual(result, [(acme, 100, ['email', 'name'])])
        result = Party.duplicate_candidates(
            name="Globex", phones=["+4930901820"])
        self.assertEqual(result, [(globex, 95, ['phone', 'name'])])

        self.assertEqual(Party.duplicate_candidates(
                name="Umbrella Corporation", emails=["x@umbrella.example"],
                phones=["+33142685300"]), [])
        self.assertEqual(Party.duplicate_candidates(
                emails=["sales@acme.example"], exclude_ids=[acme.id]), [])

    @with_transaction()
    def test_similar_name_both_backends(self):
        "Near-identical names score by trigram similarity, same everywhere"
        pool = Pool()
        Party = pool.get('party.party')
        mueller = create_party("Mueller Bau GmbH")
        create_party("Bauhaus")
        create_party("Schmidt Logistik")

        result = Party.duplicate_candidates(name="Müller Bau")
        similarity = trigram_similarity("muller bau", "mueller bau")
        self.assertEqual(result, [(mueller, round(similarity * 80), ['name'])])
        self.assertEqual(result[0][1], 51)
        # Below the threshold of 0.6: not a candidate
        self.assertLess(trigram_similarity("bauhaus", "muller bau"), 0.6)
        self.assertEqual(Party.duplicate_candidates(name="Schmidt"), [])

    @with_transaction()
    def test_register_fills_normalised_names(self):
        "Activating the module on existing parties normalises their names"
        pool = Pool()
        Party = pool.get('party.party')
        party = create_party("Kovács Kft.")
        table = Party.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update(
                [table.name_normalised], [None], where=table.id == party.id))
        Party.__register__('crm_core')
        cursor.execute(*table.select(table.name_normalised,
                where=table.id == party.id))
        self.assertEqual(cursor.fetchone(), ("kovacs",))

    @with_transaction()
    def test_inactive_parties_are_not_candidates(self):
        "Replaced or deactivated parties are not offered"
        pool = Pool()
        Party = pool.get('party.party')
        old = create_party("Acme", emails=["info@acme.example"])
        Party.write([old], {'active': False})
        self.assertEqual(Party.duplicate_candidates(
                name="Acme", emails=["info@acme.example"]), [])

    @with_transaction()
    def test_match_bulk(self):
        "One best match per row, aligned with the rows"
        pool = Pool()
        Party = pool.get('party.party')
        acme = create_party("Acme Ltd", emails=["info@acme.example"])
        globex = create_party("Globex", phones=["+49 30 901820"])
        result = Party.match_bulk([
                {'name': "Someone", 'emails': ["INFO@acme.example"],
                    'phones': []},
                {'name': "Nobody", 'emails': [], 'phones': ["+4930901820"]},
                {'name': "ACME Limited", 'emails': [], 'phones': []},
                {'name': "Unknown", 'emails': ["new@example.com"],
                    'phones': []},
                {'name': "Globex", 'emails': ["info@acme.example"],
                    'phones': ["+4930901820"]},
                ])
        self.assertEqual(result, [
                (acme.id, 100, ['email']),
                (globex.id, 90, ['phone']),
                (acme.id, 80, ['name']),
                None,
                # Acme by email (100) beats Globex by phone and name (95)
                (acme.id, 100, ['email']),
                ])
        self.assertEqual(Party.match_bulk([]), [])

    @with_transaction()
    def test_match_bulk_similar_names(self):
        "Similar names only when asked, and only with pg_trgm"
        pool = Pool()
        Party = pool.get('party.party')
        mueller = create_party("Mueller Bau GmbH")
        rows = [{'name': "Müller Bau", 'emails': [], 'phones': []}]
        self.assertEqual(Party.match_bulk(rows), [None])
        expected = [(mueller.id, 51, ['name'])] if (
            Party._has_trigram()) else [None]
        self.assertEqual(
            Party.match_bulk(rows, similar_names=True), expected)

    @with_transaction()
    def test_match_bulk_constant_queries(self):
        "The number of queries does not grow with the rows"
        pool = Pool()
        Party = pool.get('party.party')
        for i in range(5):
            create_party(f"Party {i}", emails=[f"p{i}@example.com"])
        counts = []
        for size in [2, 40]:
            rows = [{'name': f"Party {i}", 'emails': [f"p{i}@example.com"],
                    'phones': [f"+3314268530{i % 10}"]}
                for i in range(size)]
            with count_queries() as queries:
                result = Party.match_bulk(rows)
            self.assertEqual(len(result), size)
            counts.append(len(queries))
        self.assertEqual(counts[0], counts[1])

    @with_transaction()
    def test_warning_on_create_from_client(self):
        "Creating a party like an existing one warns the user, once"
        pool = Pool()
        Party = pool.get('party.party')
        Warning = pool.get('res.user.warning')
        crm = CrmSetup()
        create_party("Acme Ltd", emails=["info@acme.example"])
        values = {
            'name': "ACME Limited",
            'contact_mechanisms': [('create', [
                        {'type': 'email', 'value': "info@acme.example"}])],
            }
        # Code (imports, web capture) is not interrupted
        Party.create([values])
        cursor = Transaction().connection.cursor()
        # The RPC call that raises is rolled back
        cursor.execute('SAVEPOINT client_call')
        with crm.as_user(crm.manager):
            with self.assertRaises(UserWarning) as cm:
                Party.create([values])
        cursor.execute('ROLLBACK TO SAVEPOINT client_call')
        with crm.as_user(crm.manager):
            self.assertIn("Acme Ltd", cm.exception.message)
            self.assertIn("same email", cm.exception.message)
        # The user confirms (the client records it), then saves again
        Warning.create([{
                    'user': crm.manager.id, 'name': cm.exception.name}])
        with crm.as_user(crm.manager):
            party, = Party.create([values])
        self.assertEqual(party.name, "ACME Limited")

    @with_transaction()
    def test_duplicates_field(self):
        "The party form lists the possible duplicates while typing"
        pool = Pool()
        Party = pool.get('party.party')
        Mechanism = pool.get('party.contact_mechanism')
        acme = create_party("Acme Ltd", emails=["info@acme.example"])
        other = create_party("Other", emails=["info@acme.example"])
        self.assertEqual(list(acme.duplicates), [other])
        new = Party(name="Unrelated")
        self.assertEqual(new.on_change_with_duplicates(), [])
        new.contact_mechanisms = [
            Mechanism(type='email', value="INFO@acme.example")]
        self.assertEqual(
            set(new.on_change_with_duplicates()), {acme, other})

    def _lead(self, crm, **values):
        pool = Pool()
        Lead = pool.get('crm.lead')
        values.setdefault('name', "Enquiry")
        values.setdefault('team', crm.north.id)
        lead, = Lead.create([values])
        return lead

    @with_transaction()
    def test_lead_candidates_and_convert_links_best(self):
        "A raw lead shows the candidates; converting links a strong one"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Party = pool.get('party.party')
        crm = CrmSetup()
        acme = create_party("ACME Limited")
        jane = create_party("Jane Doe", phones=["+44 20 7946 0001"])
        with crm.company_context():
            lead = self._lead(crm, company_name="Acme Ltd.",
                contact_name="J. Doe", phone="+44 20 7946 0001")
            self.assertEqual(set(lead.duplicate_parties), {acme, jane})
            count = Party.search_count([])
            Lead.convert([lead])
        self.assertEqual(lead.party, acme)
        self.assertEqual(lead.contact, jane)
        self.assertEqual(Party.search_count([]), count)

    @with_transaction()
    def test_convert_creates_when_only_weak(self):
        "A similar name alone (score below 80) does not link"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        mueller = create_party("Mueller Bau GmbH")
        with crm.company_context():
            lead = self._lead(crm, company_name="Müller Bau")
            self.assertEqual(list(lead.duplicate_parties), [mueller])
            Lead.convert([lead])
        self.assertNotEqual(lead.party, mueller)
        self.assertEqual(lead.party.name, "Müller Bau")

    def _find_wizard(self):
        "The wizard with the groups it shows"
        pool = Pool()
        Find = pool.get('crm.party.duplicate.find', type='wizard')
        Line = pool.get('crm.party.duplicate.line')
        session_id, _, _ = Find.create()
        find = Find(session_id)
        find.groups.lines = [
            Line(**v) for v in find.default_groups(None)['lines']]
        return find

    def _count(self, Model, domain):
        with inactive_records():
            return Model.search_count(domain + [('active', '=', True)])

    @with_transaction()
    def test_find_and_merge_duplicates(self):
        "The wizard groups duplicates and a merge loses nothing"
        pool = Pool()
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        Activity = pool.get('crm.activity')
        Mechanism = pool.get('party.contact_mechanism')
        Address = pool.get('party.address')
        Country = pool.get('country.country')
        Find = pool.get('crm.party.duplicate.find', type='wizard')
        crm = CrmSetup()
        france, germany = Country.create([
                {'name': "France", 'code': 'FR'},
                {'name': "Germany", 'code': 'DE'}])
        kept = create_party("Acme Ltd",
            emails=["info@acme.example", "sales@acme.example"],
            phones=["+33 1 42 68 53 00"], countries=[france])
        merged = create_party("ACME Limited",
            emails=["INFO@acme.example", "billing@acme.example"],
            phones=["+49 30 901820"], countries=[france, germany])
        unrelated = create_party("Initech", emails=["it@initech.example"])
        with crm.company_context():
            for party in [kept, merged, merged]:
                lead = self._lead(crm, party=party.id)
                Activity.create([{
                            'subject': "Call", 'party': party.id,
                            'user': crm.alice.id, 'origin': str(lead),
                            'start': dt.datetime.now()}])
            self._lead(crm, contact=merged.id, party=unrelated.id)

        def counts(party):
            return {
                'leads': Lead.search_count([('party', '=', party.id)]),
                'contacts': Lead.search_count([('contact', '=', party.id)]),
                'activities': Activity.search_count(
                    [('party', '=', party.id)]),
                'mechanisms': self._count(
                    Mechanism, [('party', '=', party.id)]),
                'addresses': self._count(
                    Address, [('party', '=', party.id)]),
                }
        before = {k: counts(kept)[k] + counts(merged)[k]
            for k in counts(kept)}
        self.assertEqual(before, {'leads': 3, 'contacts': 1,
                'activities': 3, 'mechanisms': 6, 'addresses': 3})

        find = self._find_wizard()
        groups = find.groups.lines
        self.assertEqual(
            {(l.party, l.kept) for l in groups},
            {(kept, True), (merged, False)})
        line = [l for l in groups if l.party == merged][0]
        self.assertEqual(line.score, 100)
        self.assertIn('email', line.reasons)
        self.assertIn('name', line.reasons)
        find.transition_merge()

        after = counts(kept)
        # Exact duplicates not kept twice: the email info@ (any case) and
        # the address in France without street
        self.assertEqual(after, {**before, 'mechanisms': 6 - 1,
                'addresses': 3 - 1})
        self.assertEqual(counts(merged), {'leads': 0, 'contacts': 0,
                'activities': 0, 'mechanisms': 0, 'addresses': 0})
        self.assertEqual(
            Activity.search_count([('origin.party', '=', kept.id,
                        'crm.lead')]), 3)
        merged = Party(merged.id)
        self.assertFalse(merged.active)
        self.assertEqual(merged.replaced_by, kept)
        self.assertEqual(
            sorted(m.value_compact.lower() for m in kept.contact_mechanisms),
            ['+33142685300', '+4930901820', 'billing@acme.example',
                'info@acme.example', 'sales@acme.example'])
        self.assertNotIn('duplicate', Party(kept.id).quality_issues)

    @with_transaction()
    def test_find_duplicates_similar_names(self):
        "Similar names are grouped on both backends"
        pool = Pool()
        Find = pool.get('crm.party.duplicate.find', type='wizard')
        mueller = create_party("Mueller Bau GmbH")
        muller = create_party("Müller Bau")
        create_party("Initech")
        find = self._find_wizard()
        self.assertEqual(
            {l.party for l in find.groups.lines}, {mueller, muller})
        self.assertEqual({l.score for l in find.groups.lines}, {51})
        self.assertEqual({l.reasons for l in find.groups.lines},
            {"similar name"})

    @with_transaction()
    def test_find_duplicates_access(self):
        "Only CRM managers run the wizard and see the analysis"
        pool = Pool()
        Analysis = pool.get('crm.party.quality.analysis')
        ActionWizard = pool.get('ir.action.wizard')
        ModelData = pool.get('ir.model.data')
        crm = CrmSetup()
        manager = ModelData.get_id('crm_core', 'group_crm_manager')
        for wiz_name in ['crm.party.duplicate.find',
                'crm.party.quality.analysis.open']:
            action, = ActionWizard.search([('wiz_name', '=', wiz_name)])
            self.assertEqual([g.id for g in action.groups], [manager])
        with crm.as_user(crm.alice):
            with self.assertRaises(AccessError):
                Analysis.search([])
        with crm.as_user(crm.manager):
            Analysis.search([])

    @with_transaction()
    def test_erase_normalised_name(self):
        "Erasing a party erases its normalised name too"
        pool = Pool()
        Party = pool.get('party.party')
        Erase = pool.get('party.erase', type='wizard')
        party = create_party("Jane Doe")
        Party.write([party], {'active': False})
        session_id, _, _ = Erase.create()
        erase = Erase(session_id)
        erase.ask.party = party
        erase.transition_erase()
        table = Party.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(table.name, table.name_normalised,
                where=table.id == party.id))
        self.assertEqual(cursor.fetchone(), (None, None))

