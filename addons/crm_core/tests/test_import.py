"Import of parties, contacts and leads from CSV files, and export"
import codecs
import csv
import io
import os
import unittest
from decimal import Decimal

from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from .. import importer
from .tools import CrmDatabaseTestCase, CrmSetup, create_user

DATA = os.path.join(os.path.dirname(__file__), 'data')


def data(name):
    with open(os.path.join(DATA, name), 'rb') as file:
        return file.read()


class ReadingTestCase(unittest.TestCase):
    "Reading CSV files: no database"

    TEXT = ('Name;E-mail Address;Notes\r\n'
        'Café Crème;cafe@example.fr;"deux\r\nlignes; et ;"\r\n'
        'Zoë;zoe@example.fr;€ 5\r\n')

    def test_encodings(self):
        "UTF-8, BOMs, UTF-16 and cp1252/latin-1 are detected"
        for encoding, expected in [
                ('utf-8', {'utf-8'}),
                ('utf-8-sig', {'utf-8-sig'}),
                ('utf-16', {'utf-16'}),
                ('utf-16-le', {'utf-16-le'}),
                ('cp1252', {'cp1252'}),
                ]:
            with self.subTest(encoding=encoding):
                table = importer.read(self.TEXT.encode(encoding))
                self.assertIn(table.encoding, expected)
                self.assertEqual(table.header,
                    ['Name', 'E-mail Address', 'Notes'])
                self.assertEqual(table.rows[0],
                    ['Café Crème', 'cafe@example.fr', 'deux\nlignes; et ;'])
                self.assertEqual(table.rows[1][2], '€ 5')
        latin = self.TEXT.replace('€', 'EUR').encode('latin-1')
        table = importer.read(latin)
        self.assertEqual(table.rows[1][0], 'Zoë')

    def test_charset_normalizer(self):
        "A file that is not UTF-8 nor Western is decoded by its guess"
        text = ('Имя;Город\nИван Петров;Москва\nАнна Смирнова;Санкт-Петербург'
            '\nОльга Иванова;Новосибирск\n')
        table = importer.read(text.encode('cp1251'))
        self.assertEqual(table.rows[0], ['Иван Петров', 'Москва'])

    def test_delimiters(self):
        "Comma, semicolon, tab and bar are detected, quotes respected"
        for delimiter in [',', ';', '\t', '|']:
            with self.subTest(delimiter=delimiter):
                out = io.StringIO()
                writer = csv.writer(out, delimiter=delimiter)
                writer.writerow(['Name', 'Street', 'City'])
                writer.writerow(['A, B; C', 'line 1\nline 2', 'Paris'])
                writer.writerow(['D', 'E', 'F'])
                table = importer.read(out.getvalue().encode('utf-8'))
                self.assertEqual(table.delimiter, delimiter)
                self.assertEqual(table.rows[0],
                    ['A, B; C', 'line 1\nline 2', 'Paris'])
                self.assertEqual(len(table.rows), 2)

    def test_header_mapping(self):
        "Header names of other CRMs map to our fields"
        for header, field in [
                ("E-mail Address", 'email'), ("Email", 'email'),
                ("email_work", 'email'), ("Phone 1", 'phone'),
                ("Business Phone", 'phone'), ("Mobile", 'mobile'),
                ("Mobile Phone", 'mobile'), ("Company", 'company_name'),
                ("Account Name", 'company_name'),
                ("First Name", 'first_name'), ("last_name", 'last_name'),
                ("Street", 'street'), ("ZIP", 'postal_code'),
                ("Postal Code", 'postal_code'), ("City", 'city'),
                ("Country", 'country'), ("Business Country/Region", 'country'),
                ("Website", 'website'), ("Title", 'title'),
                ("Notes", 'notes'), ("Prénom", 'first_name'),
                ("ID", None), ("gender", None),
                ]:
            with self.subTest(header=header):
                self.assertEqual(importer.map_header(header), field)
        for header, field in [
                ("Opportunity Name", 'name'), ("Subject", 'name'),
                ("Amount", 'expected_revenue'),
                ("Expected Revenue", 'expected_revenue'),
                ("Stage", 'stage'), ("Close Date", 'expected_close'),
                ("Source", 'source'), ("Lead Source", 'source'),
                ("Campaign", 'campaign'), ("Medium", 'medium'),
                ("Name", 'contact_name'),
                ]:
            with self.subTest(header=header):
                self.assertEqual(importer.map_header(header, 'lead'), field)

    def test_mapping_correction(self):
        "The user corrects the mapping by header"
        header = ['Name', 'Gender', 'Mail']
        fields = importer.parse_mapping_options(
            ['Gender=notes', 'mail='], header)
        self.assertEqual(fields, ['name', 'notes', None])
        with self.assertRaises(ValueError):
            importer.parse_mapping_options(['Nope=name'], header)
        with self.assertRaises(ValueError):
            importer.parse_mapping_options(['Name=nope'], header)

    def lookups(self):
        return importer.Lookups(
            countries=[(1, 'FR', 'FRA', 'France'),
                (2, 'US', 'USA', 'United States')],
            subdivisions=[(10, 2, 'US-CA', 'California')],
            default_country=(2, 'US'))

    def test_clean_party_row(self):
        "A row gets clean emails, E.164 phones and its country's address"
        values = importer.mapped_values(
            ['Jane', 'Doe', 'ACME', 'Jane@Example.COM; j@example.com',
                '01 42 68 53 00', 'France', 'Note'],
            ['first_name', 'last_name', 'company_name', 'email', 'phone',
                'country', 'notes'])
        row = importer.clean_party_row(values, self.lookups())
        self.assertEqual(row['name'], 'Jane Doe')
        self.assertEqual(row['organisation'], 'ACME')
        self.assertEqual(row['emails'],
            ['jane@example.com', 'j@example.com'])
        self.assertEqual(row['phones'],
            [('phone', '+33142685300', '+33 1 42 68 53 00')])
        self.assertEqual(row['address']['country'], 1)
        self.assertEqual(row['note'], 'Note')

    def test_clean_party_row_default_country(self):
        "Without country the default one reads phones and subdivisions"
        values = {'name': ['Globex'], 'phone': ['(415) 293-3313 x12'],
            'subdivision': ['CA']}
        row = importer.clean_party_row(values, self.lookups())
        self.assertEqual(row['phones'],
            [('phone', '+14152933313', '+1 415-293-3313 ext. 12')])
        self.assertEqual(row['address']['subdivision'], 10)

    def test_parse_phone_as_e164(self):
        "Phones are read by the rules of contact.e164"
        from ..contact import e164
        for value, country in [
                ('01 42 68 53 00', 'FR'), ('(415) 293-3313 x371', 'US'),
                ('+36 1 234 5678', None), ('06 30 123 4567', 'HU'),
                ('12', 'DE'), ('1-955-371-0847', 'US'), ('abc', None)]:
            with self.subTest(value=value):
                try:
                    expected = e164(value, country)
                except ValueError:
                    with self.assertRaises(ValueError):
                        importer.parse_phone(value, country)
                else:
                    self.assertEqual(
                        importer.parse_phone(value, country)[0], expected)

    def test_clean_party_row_errors(self):
        "Bad rows are refused with their reason"
        lookups = self.lookups()
        for values, code in [
                ({'email': ['a@example.com']}, 'empty_name'),
                ({'name': ['A'], 'email': ['a@b']}, 'email_invalid'),
                ({'name': ['A'], 'phone': ['12']}, 'phone_invalid'),
                ({'name': ['A'], 'country': ['Atlantis']},
                    'country_unknown'),
                ({'name': ['A'], 'subdivision': ['Texas']},
                    'subdivision_unknown'),
                ]:
            with self.subTest(code=code):
                with self.assertRaises(importer.RowError) as context:
                    importer.clean_party_row(values, lookups)
                self.assertEqual(context.exception.code, code)
                self.assertTrue(str(context.exception))
        lookups.sizes = {'name': 5}
        with self.assertRaises(importer.RowError) as context:
            importer.clean_party_row({'name': ['Too long']}, lookups)
        self.assertEqual(context.exception.code, 'too_long')

    def test_amounts_and_dates(self):
        for text, amount in [
                ('1,234.50', '1234.50'), ('1.234,50', '1234.50'),
                ('$ 1 200', '1200.00'), ('12,5', '12.50'),
                ('12,000', '12000.00'), ('1200 EUR', '1200.00')]:
            self.assertEqual(importer.parse_amount(text), Decimal(amount))
        with self.assertRaises(ValueError):
            importer.parse_amount('lots')
        for text, iso in [
                ('2026-03-04', '2026-03-04'), ('04/03/2026', '2026-03-04'),
                ('12/31/2026', '2026-12-31'), ('31.12.26', '2026-12-31')]:
            self.assertEqual(importer.parse_date(text).isoformat(), iso)
        with self.assertRaises(ValueError):
            importer.parse_date('31/31/2026')

    def test_rejects_csv(self):
        "The rejects file has the row number, the reason and the row"
        content = importer.rejects_csv(['Name', 'Email'],
            [(3, 'bad email', ['A', 'a@b'])])
        self.assertTrue(content.startswith(codecs.BOM_UTF8))
        rows = list(csv.reader(io.StringIO(content.decode('utf-8-sig'))))
        self.assertEqual(rows, [
                ['Row', 'Reason', 'Name', 'Email'],
                ['3', 'bad email', 'A', 'a@b']])

    def test_progress(self):
        out = io.StringIO()
        progress = importer.Progress(10, stream=out)
        progress(10)
        self.assertIn('10/10', out.getvalue())


class ImportTestCase(CrmDatabaseTestCase):
    "Import into the database"

    def setup(self):
        pool = Pool()
        Country = pool.get('country.country')
        Subdivision = pool.get('country.subdivision')
        crm = CrmSetup()
        countries = Country.create([{'name': n, 'code': c, 'code3': c3}
                for n, c, c3 in [
                    ("France", 'FR', 'FRA'), ("Germany", 'DE', 'DEU'),
                    ("Hungary", 'HU', 'HUN'),
                    ("United Kingdom", 'GB', 'GBR'),
                    ("United States", 'US', 'USA'), ("Spain", 'ES', 'ESP'),
                    ("Belgium", 'BE', 'BEL')]])
        self.countries = {c.code: c for c in countries}
        us = self.countries['US']
        Subdivision.create([
                {'name': "New York", 'code': 'US-NY', 'country': us.id,
                    'type': 'state'},
                {'name': "California", 'code': 'US-CA', 'country': us.id,
                    'type': 'state'}])
        return crm

    def do_import(self, crm, name, kind='party', duplicates='update',
            country=None, mapping=None):
        Import = Pool().get('crm.import')
        with crm.company_context():
            imp = Import.from_file(data(name), name, kind=kind,
                duplicates=duplicates, country=country,
                mapping_options=mapping)
            Import.run([imp])
        imp = Import(imp.id)
        self.assertEqual(imp.state, 'done')
        self.assertEqual(
            imp.created + imp.updated + imp.merged + imp.skipped
            + imp.rejected, imp.rows)
        self.assertEqual(imp.rows, len(importer.read(data(name)).rows))
        return imp

    def rejects(self, imp):
        if not imp.rejects:
            return {}
        rows = csv.reader(io.StringIO(bytes(imp.rejects).decode(
                    'utf-8-sig')))
        next(rows)
        return {int(r[0]): r[1] for r in rows}

    def counts(self, imp):
        return (imp.created, imp.updated, imp.merged, imp.skipped,
            imp.rejected)

    def party(self, name):
        Party = Pool().get('party.party')
        party, = Party.search([('name', '=', name)])
        return party

    def mechanisms(self, party):
        return sorted((m.type, m.value_compact)
            for m in party.contact_mechanisms)

    @with_transaction()
    def test_cp1252_semicolon(self):
        "A French cp1252 file: in-file duplicate merged, bad rows rejected"
        pool = Pool()
        Party = pool.get('party.party')
        Note = pool.get('ir.note')
        crm = self.setup()
        before = Party.search_count([])
        imp = self.do_import(crm, 'parties-cp1252-semicolon.csv')
        self.assertEqual(imp.encoding, 'cp1252')
        self.assertEqual(imp.delimiter, ';')
        self.assertEqual(self.counts(imp), (3, 0, 1, 0, 4))
        rejects = self.rejects(imp)
        self.assertEqual(sorted(rejects), [5, 6, 7, 8])
        self.assertIn('zoe.martin@exemple', rejects[5])
        self.assertIn('Belgique-Wallonie', rejects[6])
        self.assertIn('name', rejects[7])
        self.assertIn('Allemagne', rejects[8])
        elodie = self.party('Élodie Dupont')
        self.assertEqual(self.mechanisms(elodie), [
                ('email', 'elodie.dupont@example.fr'),
                ('phone', '+33142685300')])
        address, = elodie.addresses
        self.assertEqual(address.street_unstructured,
            "12, rue de l'Église\nBâtiment B")
        self.assertEqual(address.country.code, 'FR')
        notes = Note.search([('resource', '=', str(elodie))])
        self.assertEqual(sorted(n.message for n in notes), [
                "Cliente fidèle; budget 5 000 €\nDoublon dans le fichier"])
        # the company of the person, with the relation
        cafe = self.party('Café Crème SARL')
        self.assertEqual([r.to for r in cafe.relations], [elodie])
        self.assertEqual(Party.search_count([]), before + 4)
        self.assertEqual(elodie.name_normalised, 'elodie dupont')

        # Importing again creates nothing
        imp = self.do_import(crm, 'parties-cp1252-semicolon.csv')
        self.assertEqual(self.counts(imp), (0, 3, 1, 0, 4))
        self.assertEqual(Party.search_count([]), before + 4)
        self.assertEqual(len(self.party('Élodie Dupont').addresses), 1)
        self.assertEqual(len(cafe.relations), 1)

    @with_transaction()
    def test_utf16_tab_contacts(self):
        "UTF-16 Outlook export: duplicates of the database are updated"
        pool = Pool()
        Party = pool.get('party.party')
        crm = self.setup()
        anna, bob = Party.create([{
                    'name': "Anna Existing",
                    'contact_mechanisms': [('create', [
                                {'type': 'email',
                                    'value': 'anna@existing.example'}])],
                    }, {
                    'name': "Bob P.",
                    'contact_mechanisms': [('create', [
                                {'type': 'phone',
                                    'value': '+4930901822'}])],
                    }])
        imp = self.do_import(crm, 'contacts-utf16-tab.csv', kind='contact')
        self.assertEqual(imp.encoding, 'utf-16')
        self.assertEqual(imp.delimiter, '\t')
        self.assertEqual(self.counts(imp), (2, 2, 1, 0, 1))
        self.assertEqual(list(self.rejects(imp)), [7])
        odon = self.party('Ödön Kovács')
        self.assertEqual(self.mechanisms(odon), [
                ('email', 'odon.kovacs@example.hu'),
                ('mobile', '+36301234567'),
                ('phone', '+3612345678')])
        self.assertEqual(self.party('Példa Kft.').relations[0].to, odon)
        # Bob got the address of the row? no: the row has only a country
        bob = Party(bob.id)
        self.assertEqual(bob.name, "Bob P.")
        self.assertEqual([a.country.code for a in bob.addresses], ['DE'])
        anna = Party(anna.id)
        self.assertEqual(self.mechanisms(anna), [
                ('email', 'anna@existing.example')])
        imp = self.do_import(crm, 'contacts-utf16-tab.csv', kind='contact')
        self.assertEqual(self.counts(imp), (0, 4, 1, 0, 1))

    @with_transaction()
    def test_utf8_bom_comma(self):
        "Quoted newlines; same name without contact data is merged"
        crm = self.setup()
        imp = self.do_import(crm, 'parties-utf8bom-comma.csv')
        self.assertEqual(imp.encoding, 'utf-8-sig')
        self.assertEqual(self.counts(imp), (3, 0, 2, 0, 3))
        self.assertEqual(sorted(self.rejects(imp)), [5, 6, 9])
        acme = self.party('Acme Ltd')
        address, = acme.addresses
        self.assertEqual(address.street_unstructured, "1 Main Street\nSuite 5")
        self.assertEqual(address.subdivision.code, 'US-NY')
        self.assertEqual(self.mechanisms(acme), [
                ('email', 'info@acme.example'), ('phone', '+12125550100'),
                ('website', 'https://acme.example')])
        phone, = [m for m in acme.contact_mechanisms if m.type == 'phone']
        self.assertEqual(phone.value, '+1 212-555-0100')
        self.assertEqual(
            self.party('Globex Corporation').addresses[0].subdivision.code,
            'US-CA')
        imp = self.do_import(crm, 'parties-utf8bom-comma.csv')
        self.assertEqual(self.counts(imp), (0, 3, 2, 0, 3))

    @with_transaction()
    def test_duplicates_options(self):
        "Skip leaves existing parties alone, create anyway creates"
        pool = Pool()
        Party = pool.get('party.party')
        crm = self.setup()
        self.do_import(crm, 'parties-utf8bom-comma.csv')
        count = Party.search_count([])
        imp = self.do_import(crm, 'parties-utf8bom-comma.csv',
            duplicates='skip')
        self.assertEqual(self.counts(imp), (0, 0, 0, 5, 3))
        self.assertEqual(Party.search_count([]), count)
        imp = self.do_import(crm, 'parties-utf8bom-comma.csv',
            duplicates='create')
        self.assertEqual(self.counts(imp), (5, 0, 0, 0, 3))
        self.assertEqual(Party.search_count([]), count + 5)

    @with_transaction()
    def test_latin1_pipe(self):
        "latin-1 with bars; a party without contact data matches by name"
        crm = self.setup()
        imp = self.do_import(crm, 'parties-latin1-pipe.csv')
        self.assertEqual(imp.delimiter, '|')
        self.assertEqual(self.counts(imp), (4, 0, 0, 0, 0))
        self.assertEqual(self.mechanisms(self.party('Øresund ApS')), [
                ('email', 'info@oresund.example'),
                ('phone', '+442079460018')])
        self.assertFalse(self.party('Zoë Ångström').addresses)
        imp = self.do_import(crm, 'parties-latin1-pipe.csv')
        self.assertEqual(self.counts(imp), (0, 4, 0, 0, 0))

    @with_transaction()
    def test_leads(self):
        "Leads with amounts, dates, stages and UTM; re-import updates"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = self.setup()
        with crm.company_context():
            imp = self.do_import(crm, 'leads-semicolon.csv', kind='lead')
        self.assertEqual(self.counts(imp), (2, 0, 1, 0, 4))
        self.assertEqual(sorted(self.rejects(imp)), [5, 6, 7, 8])
        lead, = Lead.search([('name', '=', "Website redesign")])
        self.assertEqual(lead.expected_revenue, Decimal('1234.50'))
        self.assertEqual(lead.stage.name, "Qualified")
        self.assertEqual(lead.expected_close.isoformat(), '2026-03-31')
        self.assertEqual(lead.marketing_source.name, 'web')
        self.assertEqual(lead.marketing_campaign.name, 'spring 2026')
        self.assertEqual(lead.marketing_medium.name, 'email')
        self.assertEqual(lead.contact_name, "Jane Doe")
        self.assertEqual(lead.company_name, "Acme Ltd")
        self.assertEqual(lead.phone, '+12125550101')
        self.assertEqual(lead.description, "first line\nsecond line")
        other, = Lead.search([('name', '=', "Support contract")])
        self.assertEqual(other.expected_revenue, Decimal('12000'))
        self.assertEqual(other.expected_close.isoformat(), '2026-12-31')
        with crm.company_context():
            imp = self.do_import(crm, 'leads-semicolon.csv', kind='lead')
        self.assertEqual(self.counts(imp), (0, 2, 1, 0, 4))
        self.assertEqual(Lead.search_count([]), 2)

    @with_transaction()
    def test_lead_refused_by_model(self):
        "A row the lead model refuses is rejected with its message"
        pool = Pool()
        Stage = pool.get('crm.stage')
        Lead = pool.get('crm.lead')
        Import = pool.get('crm.import')
        crm = self.setup()
        Stage.create([{'name': "South Only", 'kind': 'open',
                    'probability': 10, 'team': crm.south.id}])
        content = ('Subject;Email;Stage\n'
            'Good;good@example.com;Qualified\n'
            'Wrong team;wrong@example.com;South Only\n'
            'Also good;also@example.com;\n').encode()
        with crm.as_user(crm.alice):
            imp = Import.from_file(content, 'leads.csv', kind='lead')
            Import.run([imp])
        self.assertEqual(self.counts(imp), (2, 0, 0, 0, 1))
        self.assertEqual(list(self.rejects(imp)), [3])
        self.assertEqual(sorted(l.name for l in Lead.search([])),
            ["Also good", "Good"])

    @with_transaction()
    def test_lead_links_existing_party(self):
        "A lead row with the email of a party gets that party"
        pool = Pool()
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        crm = self.setup()
        party, = Party.create([{'name': "Acme", 'contact_mechanisms': [
                        ('create', [{'type': 'email',
                                    'value': 'jane@acme.example'}])]}])
        with crm.company_context():
            self.do_import(crm, 'leads-semicolon.csv', kind='lead')
        lead, = Lead.search([('name', '=', "Website redesign")])
        self.assertEqual(lead.party, party)

    @with_transaction()
    def test_atomic_crm_sample(self):
        "Atomic CRM's 500 contacts: every row is accounted for"
        pool = Pool()
        Party = pool.get('party.party')
        crm = self.setup()
        name = 'atomic-crm-contacts.csv'
        imp = self.do_import(crm, name, kind='contact', country='US')
        self.assertEqual(imp.rows, 500)
        self.assertGreater(imp.created, 100)
        rejects = self.rejects(imp)
        self.assertEqual(len(rejects), imp.rejected)
        self.assertTrue(all('phone number' in r for r in rejects.values()))
        table = importer.read(data(name))
        # the rejected rows are those with a phone that is not valid
        self.assertTrue(all(2 <= n <= 501 for n in rejects))
        count = Party.search_count([])
        imp = self.do_import(crm, name, kind='contact', country='US')
        self.assertEqual(imp.created, 0)
        self.assertEqual(Party.search_count([]), count)
        self.assertEqual(len(table.rows), 500)

    @with_transaction()
    def test_odoo_sample(self):
        "Odoo's partner sample: companies, their contacts and addresses"
        pool = Pool()
        Party = pool.get('party.party')
        crm = self.setup()
        name = 'odoo-base_import-res.partner.csv'
        imp = self.do_import(crm, name, country='US')
        rejects = self.rejects(imp)
        # Its phone numbers are not valid US numbers, but Bob's
        self.assertEqual(sorted(rejects), [2, 4, 5, 6, 7])
        self.assertTrue(all('phone number' in r for r in rejects.values()))
        self.assertEqual(self.counts(imp), (1, 0, 0, 0, 5))
        bob = self.party('Bob')
        self.assertEqual(self.mechanisms(bob), [('mobile', '+14157654321')])
        grocery = self.party('Grocery Outlet')
        self.assertEqual([r.to for r in grocery.relations], [bob])

        # The user ignores the phone columns: the rest goes in
        imp = self.do_import(crm, name, country='US',
            mapping=['Phone=', 'Mobile='])
        # Grocery Outlet and Bob are found by their name
        self.assertEqual(self.counts(imp), (4, 2, 0, 0, 0))
        self.assertEqual(self.party('Grocery Outlet'), grocery)
        address, = grocery.addresses
        self.assertEqual(address.street_unstructured,
            "51 Federal Street\n#401")
        self.assertEqual(address.subdivision.name, "California")
        self.assertEqual(
            self.party('Agrolait').addresses[0].subdivision.code, 'US-NY')
        self.assertEqual(
            sorted(r.to.name for r in grocery.relations),
            ['Accounting dep.', 'Bill', 'Bob', 'Warehouse'])
        count = Party.search_count([])
        imp = self.do_import(crm, name, country='US',
            mapping=['Phone=', 'Mobile='])
        self.assertEqual(self.counts(imp), (0, 6, 0, 0, 0))
        self.assertEqual(Party.search_count([]), count)

    @with_transaction()
    def test_mapping_corrected(self):
        "A column mapped by the user is imported, an ignored one is not"
        crm = self.setup()
        imp = self.do_import(crm, 'parties-latin1-pipe.csv',
            mapping=['Comment=', 'Phone='])
        self.assertEqual(imp.created, 4)
        party = self.party('Société Générale Test')
        self.assertEqual(self.mechanisms(party),
            [('email', 'sg@example.fr')])

    @with_transaction()
    def test_bulk_matches_orm(self):
        "The bulk path stores exactly what the ORM stores for the same rows"
        pool = Pool()
        Party = pool.get('party.party')
        Note = pool.get('ir.note')
        crm = self.setup()
        content = (
            'Name,Email,Phone,Mobile,Website,Street,ZIP,City,State,Country,'
            'Notes\n'
            'Bulk One,one@example.com,(415) 293-3313 x7,+1 415 765 4321,'
            'https://one.example,"1 Main St\nFloor 2",94105,'
            'San Francisco,CA,US,a note\n'
            'Bulk Two,two@example.fr,01 42 68 53 00,,,,,,,FR,\n'
            'Bulk Three,,,,,3 High St,,London,,GB,\n'
            'Bulk Four S.A.,,,,,,,,,,\n')
        Import = pool.get('crm.import')
        with crm.company_context():
            imp = Import.from_file(content.encode(), 'bulk.csv',
                duplicates='create')
            Import.run([imp])
        self.assertEqual(imp.created, 4)
        table = imp.read_table()
        lookups = importer.Lookups(
            countries=[(c.id, c.code, c.code3, c.name)
                for c in self.countries.values()],
            subdivisions=[(s.id, s.country.id, s.code, s.name) for s in
                pool.get('country.subdivision').search([])])
        vlist, notes = [], []
        for raw in table.rows:
            values = importer.mapped_values(raw, [l.field
                    for l in imp.mappings])
            row = importer.clean_party_row(values, lookups)
            mechanisms = [{'type': 'email', 'value': e}
                for e in row['emails']]
            mechanisms += [{'type': t, 'value': f}
                for t, _, f in row['phones']]
            if row['website']:
                mechanisms.append({'type': 'website',
                        'value': row['website']})
            values = {'name': 'ORM ' + row['name'],
                'contact_mechanisms': [('create', mechanisms)]}
            if row['address']:
                address = row['address']
                values['addresses'] = [('create', [{
                                'street': address['street'],
                                'postal_code': address['postal_code'],
                                'city': address['city'],
                                'country': address['country'],
                                'subdivision': address['subdivision'],
                                }])]
            vlist.append(values)
            notes.append(row['note'])
        with crm.company_context():
            orm = Party.create(vlist)
        Note.create([{'resource': str(p), 'message': n}
                for p, n in zip(orm, notes) if n])
        bulk = Party.search(
            [('name', 'like', 'Bulk %')], order=[('id', 'ASC')])
        Party.update_quality(orm + bulk)

        cursor = Transaction().connection.cursor()
        skip = {'id', 'create_date', 'write_date', 'write_uid', 'code',
            'code_alnum', 'code_digit', 'name', 'name_normalised',
            'party', 'resource'}

        def rows(table, where_column, ids):
            cursor.execute(
                f'SELECT * FROM "{table}" WHERE "{where_column}" IN '
                f'({",".join(map(str, ids))}) ORDER BY "{where_column}", id')
            names = [d[0] for d in cursor.description]
            result = []
            for row in cursor.fetchall():
                row = dict(zip(names, row))
                result.append((ids.index(row[where_column]),
                    {k: v for k, v in row.items() if k not in skip}))
            return sorted(result, key=lambda r: (r[0], repr(sorted(
                            r[1].items()))))

        orm_ids = [p.id for p in orm]
        bulk_ids = [p.id for p in bulk]
        for table, column in [
                ('party_party', 'id'),
                ('party_contact_mechanism', 'party'),
                ('party_address', 'party'),
                ('party_party_lang', 'party'),
                ('party_contact_mechanism_language', 'contact_mechanism'),
                ]:
            if column == 'contact_mechanism':
                orm_m = [m.id for p in orm for m in p.contact_mechanisms]
                bulk_m = [m.id for p in bulk for m in p.contact_mechanisms]
                self.assertEqual(rows(table, column, orm_m) if orm_m else [],
                    rows(table, column, bulk_m) if bulk_m else [])
                continue
            with self.subTest(table=table):
                expected = rows(table, column, orm_ids)
                self.assertEqual(rows(table, column, bulk_ids), expected)
                if table != 'party_party_lang':
                    self.assertTrue(expected)
        for o, b in zip(orm, bulk):
            self.assertEqual(b.code_alnum, b.code.replace('-', ''))
            self.assertEqual(o.name_normalised, 'orm ' + b.name_normalised)
            self.assertEqual(
                [n.message for n in Note.search(
                        [('resource', '=', str(o))])],
                [n.message for n in Note.search(
                        [('resource', '=', str(b))])])
            computed = Party(code=b.code).compute_fields({'code'})
            self.assertEqual(computed['code_alnum'], b.code_alnum)
            self.assertEqual(computed['code_digit'], b.code_digit)

    @with_transaction()
    def test_export_reimport(self):
        "An export of parties and leads imports back without duplicates"
        pool = Pool()
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        Import = pool.get('crm.import')
        crm = self.setup()
        self.do_import(crm, 'parties-utf8bom-comma.csv')
        self.do_import(crm, 'contacts-utf16-tab.csv', kind='contact')
        with crm.company_context():
            self.do_import(crm, 'leads-semicolon.csv', kind='lead')
        parties = Party.search_count([])
        leads = Lead.search_count([])
        with crm.company_context():
            content = Import.export_csv('party')
            table = importer.read(content)
            self.assertEqual(len(table.rows), parties)
            self.assertEqual(
                [f for f in importer.map_headers(table.header)],
                [f for f, _ in EXPORT_PARTY])
            imp = Import.from_file(content, 'parties.csv')
            Import.run([imp])
            self.assertEqual(imp.created, 0)
            self.assertEqual(imp.rejected, 0)
            self.assertEqual(Party.search_count([]), parties)
            content = Import.export_csv('lead')
            imp = Import.from_file(content, 'leads.csv', kind='lead')
            Import.run([imp])
            self.assertEqual((imp.created, imp.rejected), (0, 0))
            self.assertEqual(Lead.search_count([]), leads)

    @with_transaction()
    def test_queue(self):
        "A big file runs in the queue; the import is done after the task"
        pool = Pool()
        Import = pool.get('crm.import')
        Queue = pool.get('ir.queue')
        from .. import csv_import
        crm = self.setup()
        previous, csv_import.QUEUE_ROWS = csv_import.QUEUE_ROWS, 3
        try:
            with crm.company_context():
                imp = Import.from_file(
                    data('parties-latin1-pipe.csv'), 'big.csv')
                Import.run([imp])
            self.assertEqual(imp.state, 'running')
            task, = Queue.search([('name', '=', 'crm_import')])
            task.run()
        finally:
            csv_import.QUEUE_ROWS = previous
        imp = Import(imp.id)
        self.assertEqual(imp.state, 'done')
        self.assertEqual(imp.created, 4)

    @with_transaction()
    def test_queue_failure(self):
        "A queued import that fails is marked failed with the message"
        pool = Pool()
        Import = pool.get('crm.import')
        crm = self.setup()
        with crm.company_context():
            imp, = Import.create([{
                        'file': b'\xff\xfe\x00', 'file_name': 'bad.csv',
                        'encoding': 'no-such-codec', 'rows': 1,
                        'state': 'running'}])
        Import.process_queued([imp])
        imp = Import(imp.id)
        self.assertEqual(imp.state, 'failed')
        self.assertIn('bad.csv', imp.message)

    @with_transaction()
    def test_wizard(self):
        "Upload, mapping with preview, options, import: the record opens"
        pool = Pool()
        Wizard = pool.get('crm.import.wizard', type='wizard')
        Import = pool.get('crm.import')
        crm = self.setup()
        with crm.as_user(crm.alice):
            session_id, _, _ = Wizard.create()
            wizard = Wizard(session_id)
            wizard.start.kind = 'party'
            wizard.start.file = data('parties-latin1-pipe.csv')
            wizard.start.file_name = 'pipe.csv'
            mapping = wizard.default_mapping(None)
            self.assertEqual(mapping['delimiter'], '|')
            self.assertEqual(mapping['rows'], 4)
            self.assertIn('Société Générale Test', mapping['preview'])
            self.assertEqual([m['field'] for m in mapping['mappings']],
                ['name', 'email', 'phone', 'country', 'notes'])
            Line = pool.get('crm.import.wizard.mapping.line')
            lines = [Line(**m) for m in mapping['mappings']]
            lines[4].field = None
            wizard.mapping.mappings = lines
            wizard.options.duplicates = 'skip'
            wizard.options.country = None
            self.assertEqual(wizard.transition_import_(), 'open_')
            action, values = wizard.do_open_(
                {'views': [(1, 'tree'), (2, 'form')]})
            imp, = Import.browse(values['res_id'])
            self.assertEqual(imp.state, 'done')
            self.assertEqual(imp.created, 4)
            self.assertEqual(imp.duplicates, 'skip')
            self.assertEqual(imp.user, crm.alice)
            self.assertEqual(imp.mappings[4].field, None)

    @with_transaction()
    def test_export_wizard(self):
        pool = Pool()
        Wizard = pool.get('crm.export', type='wizard')
        Party = pool.get('party.party')
        crm = self.setup()
        party, = Party.create([{'name': "Exported"}])
        with crm.as_user(crm.alice), Transaction().set_context(
                active_model='party.party', active_ids=[party.id]):
            session_id, _, _ = Wizard.create()
            wizard = Wizard(session_id)
            self.assertEqual(wizard.default_start(None), {'kind': 'party'})
            wizard.start.kind = 'party'
            result = wizard.default_result(None)
        table = importer.read(result['file'])
        self.assertEqual([r[0] for r in table.rows], ["Exported"])

    @with_transaction()
    def test_access(self):
        "Only CRM users import; the import is limited to their company"
        pool = Pool()
        Import = pool.get('crm.import')
        crm = self.setup()
        outsider = create_user('outsider', crm.company, group=None)
        with crm.company_context():
            imp = Import.from_file(data('parties-latin1-pipe.csv'), 'a.csv')
        with crm.as_user(crm.alice):
            self.assertEqual(Import.search([]), [imp])
        with crm.as_user(outsider):
            with self.assertRaises(AccessError):
                Import.search([])
        with crm.as_user(crm.alice):
            with self.assertRaises(AccessError):
                Import.delete([imp])


EXPORT_PARTY = [
    ('name', "Name"), ('company_name', "Company"), ('email', "Email"),
    ('phone', "Phone"), ('mobile', "Mobile"), ('website', "Website"),
    ('street', "Street"), ('postal_code', "Postal Code"), ('city', "City"),
    ('subdivision', "State"), ('country', "Country")]
