#!/usr/bin/env python3
"""Load a demo data set a salesperson recognises into a CRM database.

    source scripts/env.sh
    python scripts/demo_data.py -d crm_demo

The database must exist with crm_core activated. Works on SQLite and
PostgreSQL (whatever TRYTOND_DATABASE__URI points to).

Idempotent: every record the script makes is remembered under a stable key
in the table crm_demo_registry (key, model, record_id), a small registry
like ir.model.data. A second run finds every key and creates nothing (a
record deleted since is made again). Currencies, countries, the company,
users, teams and products are also found by their natural key (code, name,
login) when someone else made them first.

Deterministic: all values come from a seeded random generator; only the
dates move, relative to the day of the run.
"""
import argparse
import datetime as dt
import os
import random
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

PASSWORD = 'crm-demo-2026'
COMPANY_NAME = "Harbour Trading Ltd"
TIMEZONE = 'Europe/Berlin'
REGISTRY = 'crm_demo_registry'

CURRENCIES = [
    # code, name, symbol, numeric code, rate against EUR
    ('EUR', "Euro", '€', '978', Decimal('1')),
    ('USD', "US Dollar", '$', '840', Decimal('1.0850')),
    ('GBP', "Pound Sterling", '£', '826', Decimal('0.8420')),
    ]

COUNTRIES = {
    # code: (name, code3, numeric)
    'AT': ("Austria", 'AUT', '040'),
    'DE': ("Germany", 'DEU', '276'),
    'ES': ("Spain", 'ESP', '724'),
    'FR': ("France", 'FRA', '250'),
    'GB': ("United Kingdom", 'GBR', '826'),
    'IT': ("Italy", 'ITA', '380'),
    'NL': ("Netherlands", 'NLD', '528'),
    'PL': ("Poland", 'POL', '616'),
    'SE': ("Sweden", 'SWE', '752'),
    'US': ("United States", 'USA', '840'),
    }

USERS = [
    # login, name, group
    ('manager', "Maria Becker", 'group_crm_manager'),
    ('alice', "Alice Martin", 'group_crm_user'),
    ('bob', "Bob Novak", 'group_crm_user'),
    ('carol', "Carol Svensson", 'group_crm_user'),
    ]

TEAMS = [
    # name, leader, members, round robin
    ("Direct Sales", 'manager', ['alice', 'bob'], True),
    ("Key Accounts", 'manager', ['carol'], False),
    ]
TEAM_OF = {'alice': "Direct Sales", 'bob': "Direct Sales",
    'carol': "Key Accounts"}

# name, country, street, postal code, city, area code (national, no trunk
# prefix), domain, owner, lifecycle status
COMPANIES = [
    ("Rheinland Maschinenbau GmbH", 'DE', "Kaiserswerther Straße 115",
        '40474', "Düsseldorf", '211', 'rheinland-maschinenbau.de',
        'carol', 'customer'),
    ("Nordwind Logistik GmbH", 'DE', "Am Speicher XI 8", '28217', "Bremen",
        '421', 'nordwind-logistik.de', 'alice', 'customer'),
    ("Alpenblick Hotels AG", 'DE', "Maximilianstraße 17", '80539',
        "München", '89', 'alpenblick-hotels.de', 'bob', 'prospect'),
    ("Donau Bau GmbH", 'AT', "Handelskai 92", '1200', "Wien", '1',
        'donaubau.at', 'bob', 'former'),
    ("Atelier Lumière SAS", 'FR', "12 rue de la République", '69002',
        "Lyon", '4', 'atelier-lumiere.fr', 'alice', 'prospect'),
    ("Boulangeries Dupont SA", 'FR', "45 avenue de Wagram", '75017',
        "Paris", '1', 'boulangeries-dupont.fr', 'carol', 'customer'),
    ("Thames Valley Engineering Ltd", 'GB', "3 Forbury Road", 'RG1 3JH',
        "Reading", '118', 'tv-engineering.co.uk', 'carol', 'customer'),
    ("Pennine Foods plc", 'GB', "21 Wellington Street", 'LS1 4DL', "Leeds",
        '113', 'penninefoods.co.uk', 'bob', 'prospect'),
    ("Van der Berg Installaties B.V.", 'NL', "Vredenburg 40", '3511 BD',
        "Utrecht", '30', 'vanderberg-installaties.nl', 'alice', 'customer'),
    ("Delta Tuinbouw B.V.", 'NL', "Wilhelminakade 91", '3072 AP',
        "Rotterdam", '10', 'deltatuinbouw.nl', 'bob', 'prospect'),
    ("Construcciones Levante S.L.", 'ES', "Calle de Colón 22", '46004',
        "Valencia", '96', 'construccioneslevante.es', 'alice', 'former'),
    ("Vinos del Duero S.A.", 'ES', "Calle Santiago 14", '47001',
        "Valladolid", '983', 'vinosdelduero.es', 'bob', 'customer'),
    ("Officine Moretti S.p.A.", 'IT', "Corso Vittorio Emanuele II 76",
        '10121', "Torino", '011', 'officinemoretti.it', 'carol', 'prospect'),
    ("Ceramiche Toscane S.r.l.", 'IT', "Via dei Calzaiuoli 7", '50122',
        "Firenze", '055', 'ceramichetoscane.it', 'alice', 'prospect'),
    ("Lakeshore Medical Supplies Inc.", 'US', "233 S Wacker Dr", '60606',
        "Chicago", '312', 'lakeshoremedical.com', 'carol', 'customer'),
    ("Bayview Software LLC", 'US', "500 Howard St", '94105',
        "San Francisco", '415', 'bayviewsoftware.com', 'bob', 'prospect'),
    ("Nordkust Energi AB", 'SE', "Lilla Bommen 1", '411 04', "Göteborg",
        '31', 'nordkustenergi.se', 'carol', 'prospect'),
    ("Fjällbacka Design AB", 'SE', "Birger Jarlsgatan 57", '113 56',
        "Stockholm", '8', 'fjallbackadesign.se', 'alice', 'customer'),
    ("Wisła Transport Sp. z o.o.", 'PL', "ul. Kalwaryjska 69", '30-504',
        "Kraków", '12', 'wisla-transport.pl', 'bob', 'prospect'),
    ("Baltic Amber Trade S.A.", 'PL', "ul. Długa 45", '80-827', "Gdańsk",
        '58', 'balticambertrade.pl', 'alice', 'customer'),
    ]

COMPETITORS = [
    ("Quantix Software GmbH", 'DE', "Friedrichstraße 68", '10117', "Berlin",
        '30', 'quantix-software.de'),
    ("Salesforge Ltd", 'GB', "14 Piccadilly", 'M1 1LY', "Manchester", '161',
        'salesforge.co.uk'),
    ("CloudPipe SAS", 'FR', "8 quai de la Fosse", '44000', "Nantes", '2',
        'cloudpipe.fr'),
    ]

FIRST_NAMES = {
    'DE': ["Jonas", "Laura", "Felix", "Anna", "Lukas", "Sophie", "Tobias"],
    'AT': ["Stefan", "Katharina", "Florian"],
    'FR': ["Camille", "Julien", "Chloé", "Nicolas", "Manon"],
    'GB': ["Oliver", "Emily", "James", "Charlotte", "Harry"],
    'NL': ["Sanne", "Daan", "Lotte", "Bram"],
    'ES': ["Lucía", "Javier", "Carmen", "Pablo"],
    'IT': ["Giulia", "Marco", "Francesca", "Luca"],
    'US': ["Jennifer", "Michael", "Ashley", "David"],
    'SE': ["Erik", "Sofia", "Johan", "Elin"],
    'PL': ["Katarzyna", "Piotr", "Agnieszka", "Tomasz"],
    }
LAST_NAMES = {
    'DE': ["Weber", "Schmidt", "Wagner", "Hoffmann", "Schäfer", "Koch",
        "Richter"],
    'AT': ["Gruber", "Huber", "Steiner"],
    'FR': ["Laurent", "Moreau", "Bernard", "Girard", "Lefèvre"],
    'GB': ["Hughes", "Clarke", "Whitaker", "Patel", "Thompson"],
    'NL': ["de Vries", "Jansen", "Bakker", "Visser"],
    'ES': ["García", "Romero", "Navarro", "Ortega"],
    'IT': ["Rossi", "Bianchi", "Ferrari", "Esposito"],
    'US': ["Walsh", "Reyes", "Carter", "Nguyen"],
    'SE': ["Lindqvist", "Nyström", "Berg", "Holm"],
    'PL': ["Nowak", "Zieliński", "Wójcik", "Kamiński"],
    }

# Prospects that are still raw leads: company name, country, domain
PROSPECTS = [
    ("Kowalski Meble", 'PL', 'kowalski-meble.pl'),
    ("Brightwater Dental Group", 'GB', 'brightwaterdental.co.uk'),
    ("Hafenkontor Kiel", 'DE', 'hafenkontor-kiel.de'),
    ("Bodega Ribera Alta", 'ES', 'riberaalta.es'),
    ("Studio Architetti Conti", 'IT', 'architetticonti.it'),
    ("Maison Perrin Traiteur", 'FR', 'perrin-traiteur.fr'),
    ("Groene Hart Zorg", 'NL', 'groenehartzorg.nl'),
    ("Midwest Tool & Die", 'US', 'midwesttooldie.com'),
    ("Skärgård Marin AB", 'SE', 'skargardmarin.se'),
    ("Salzach Energie", 'AT', 'salzach-energie.at'),
    ("Elbe Fahrradwerk", 'DE', 'elbe-fahrradwerk.de'),
    ("Cotswold Estates", 'GB', 'cotswoldestates.co.uk'),
    ("Lechner Druck", 'DE', 'lechner-druck.de'),
    ("Farmacia Sole", 'IT', 'farmaciasole.it'),
    ("Transports Garnier", 'FR', 'transports-garnier.fr'),
    ("Pacific Rim Imports", 'US', 'pacificrimimports.com'),
    ("Zuidas Legal", 'NL', 'zuidaslegal.nl'),
    ("Mazury Hotele", 'PL', 'mazuryhotele.pl'),
    ]

# code, name, type, unit (xml id in product), list price, consumable
PRODUCTS = [
    ('LIC-PRO', "CRM Cloud Licence Professional (user/month)", 'service',
        'uom_unit', '49.00', False),
    ('LIC-ENT', "CRM Cloud Licence Enterprise (user/month)", 'service',
        'uom_unit', '89.00', False),
    ('LIC-SRV', "On-Premise Server Licence", 'service', 'uom_unit',
        '4800.00', False),
    ('SUP-STD', "Standard Support Contract (annual)", 'service', 'uom_unit',
        '1200.00', False),
    ('SUP-PRM', "Premium Support Contract (annual)", 'service', 'uom_unit',
        '2400.00', False),
    ('SUP-HR', "Remote Support Hour", 'service', 'uom_hour', '120.00',
        False),
    ('CON-SEN', "Consulting Day, Senior Consultant", 'service', 'uom_day',
        '1250.00', False),
    ('CON-JUN', "Consulting Day, Junior Consultant", 'service', 'uom_day',
        '850.00', False),
    ('WS-ONB', "Onboarding Workshop (2 days)", 'service', 'uom_unit',
        '2900.00', False),
    ('MIG-PKG', "Data Migration Package", 'service', 'uom_unit', '3500.00',
        False),
    ('INT-HR', "Custom Integration (hour)", 'service', 'uom_hour', '140.00',
        False),
    ('HW-TAB10', "Rugged Tablet T10", 'goods', 'uom_unit', '690.00', False),
    ('HW-BS200', "Barcode Scanner BS-200", 'goods', 'uom_unit', '249.00',
        False),
    ('HW-LP4', "Thermal Label Printer LP-4", 'goods', 'uom_unit', '429.00',
        False),
    ('HW-DS3', "Docking Station DS-3", 'goods', 'uom_unit', '159.00', False),
    ('CS-LBL', "Label Rolls 100x150 (box of 12)", 'goods', 'uom_unit',
        '36.00', True),
    ]

# Deals: title, lines as (product code, low quantity, high quantity)
DEALS = [
    ("CRM rollout", [('LIC-ENT', 120, 600), ('WS-ONB', 1, 1),
            ('CON-SEN', 2, 6)]),
    ("Sales team licences", [('LIC-PRO', 60, 360)]),
    ("Support contract renewal", [('SUP-PRM', 1, 1)]),
    ("Standard support", [('SUP-STD', 1, 2)]),
    ("Warehouse scanning hardware", [('HW-TAB10', 5, 30),
            ('HW-BS200', 5, 30), ('HW-LP4', 1, 4), ('CS-LBL', 5, 20)]),
    ("Data migration from legacy CRM", [('MIG-PKG', 1, 1),
            ('CON-JUN', 2, 8)]),
    ("ERP integration", [('INT-HR', 40, 160), ('CON-SEN', 1, 4)]),
    ("Remote support bundle", [('SUP-HR', 20, 100)]),
    ("On-premise installation", [('LIC-SRV', 1, 2), ('SUP-PRM', 1, 1),
            ('CON-SEN', 2, 5)]),
    ("Field service tablets", [('HW-TAB10', 10, 50), ('HW-DS3', 10, 50)]),
    ]
LEAD_TITLES = [
    "Asked for a demo", "Pricing request", "Interested in CRM licences",
    "Downloaded the buyer's guide", "Webinar attendee", "Met at the fair",
    "Wants a callback", "Request for quotation", "Newsletter sign-up",
    "Hardware enquiry",
    ]

# campaign, medium, source
UTM = [
    ('spring-webinar', 'email', 'newsletter'),
    ('spring-webinar', 'social', 'linkedin'),
    ('trade-fair-hannover', 'event', 'trade-fair'),
    (None, 'organic', 'website'),
    ('partner-referral', 'referral', 'partner'),
    ('google-ads', 'cpc', 'google'),
    ]

ACTIVITY_SUBJECTS = {
    'call': ["Discovery call", "Follow-up call on the proposal",
        "Check budget approval", "Qualification call",
        "Call about the delivery date"],
    'meeting': ["Product demo", "On-site workshop",
        "Contract negotiation meeting", "Quarterly business review",
        "Kick-off meeting"],
    'email': ["Send proposal", "Send pricing", "Send case study",
        "Answer RFP questions", "Send contract draft"],
    'task': ["Prepare quote", "Update forecast",
        "Prepare demo environment", "Check references",
        "Ask legal to review the terms"],
    }
OUTCOMES = [
    "Interested, wants a quote by the end of the month.",
    "Budget approved for next quarter.",
    "No answer, left a voicemail.",
    "Asked for a 10% discount on the licences.",
    "Decision postponed, call again in two weeks.",
    "Demo went well, the IT lead joined.",
    "Sent the documents as promised.",
    "They compare us with two other vendors.",
    "Needs approval from the managing director.",
    "Agreed on the next steps and the timeline.",
    ]
ACCOUNT_ACTIVITIES = [
    ('call', "Customer satisfaction call"),
    ('meeting', "Quarterly account review"),
    ('email', "Send the renewal reminder"),
    ('task', "Update the account plan"),
    ]
LOST_NOTES = {
    'lost_reason_price': "Our offer was about 15% above their budget.",
    'lost_reason_competitor': "Chose a cheaper local vendor.",
    'lost_reason_no_budget': "Project frozen until next year.",
    'lost_reason_no_answer': "No reply after three follow-ups.",
    'lost_reason_not_fit': "They need a manufacturing ERP, not a CRM.",
    }

N_LEADS = 50
# Companies of COMPANIES typed in a second time (suspected duplicates)
DUPLICATES = 3
N_OPPORTUNITIES = 160


def slug(text):
    text = unicodedata.normalize('NFKD', text)
    text = ''.join(c for c in text if not unicodedata.combining(c))
    text = text.replace('ł', 'l').replace('Ł', 'L')
    return ''.join(c if c.isalnum() else '-' for c in text.lower()).strip('-')


def make_phone(rnd, region, prefix, types, used):
    "A random valid number of the region starting with prefix, in E.164"
    code = phonenumbers.country_code_for_region(region)
    example = phonenumbers.example_number_for_type(region, types[0])
    size = len(phonenumbers.national_significant_number(example))
    for attempt in range(2000):
        length = size + rnd.choice([0, 0, -1, 1])
        if attempt > 1000:
            # fall back on the example's own prefix
            prefix = phonenumbers.national_significant_number(example)[:3]
        digits = prefix + ''.join(
            rnd.choice('0123456789') for _ in range(length - len(prefix)))
        try:
            number = phonenumbers.parse(f'+{code}{digits}')
        except phonenumbers.NumberParseException:
            continue
        if (phonenumbers.is_valid_number(number)
                and phonenumbers.number_type(number) in types):
            value = phonenumbers.format_number(
                number, PhoneNumberFormat.E164)
            if value not in used:
                used.add(value)
                return value
    raise ValueError(f"no valid number for {region} {prefix}")


def fixed_line(rnd, region, area, used):
    return make_phone(rnd, region, area, [
            PhoneNumberType.FIXED_LINE,
            PhoneNumberType.FIXED_LINE_OR_MOBILE], used)


def mobile(rnd, region, used):
    example = phonenumbers.example_number_for_type(
        region, PhoneNumberType.MOBILE)
    prefix = phonenumbers.national_significant_number(example)[:2]
    if region == 'US':
        prefix = rnd.choice(['312', '415', '646', '617'])
    return make_phone(rnd, region, prefix, [
            PhoneNumberType.MOBILE,
            PhoneNumberType.FIXED_LINE_OR_MOBILE], used)


class Registry:
    "Remember which record the script made for each stable key"

    def __init__(self):
        from sql import Table
        from trytond.pool import Pool
        from trytond.transaction import Transaction
        self.pool = Pool()
        self.table = Table(REGISTRY)
        self.cursor = Transaction().connection.cursor()
        self.cursor.execute(
            f'CREATE TABLE IF NOT EXISTS {REGISTRY} ('
            'key VARCHAR(200) PRIMARY KEY, '
            'model VARCHAR(100) NOT NULL, '
            'record_id INTEGER NOT NULL)')
        self.cursor.execute(*self.table.select(
                self.table.key, self.table.model, self.table.record_id))
        by_model = defaultdict(dict)
        for key, model, record_id in self.cursor:
            by_model[model][key] = record_id
        # Forget keys whose record was deleted since: they are made again
        self.ids = {}
        for model, keys in by_model.items():
            Model = self.pool.get(model)
            with Transaction().set_context(active_test=False):
                existing = {r.id for r in Model.search(
                        [('id', 'in', list(keys.values()))])}
            for key, record_id in keys.items():
                if record_id in existing:
                    self.ids[key] = record_id
                else:
                    self.cursor.execute(*self.table.delete(
                            where=self.table.key == key))
        self.created = Counter()

    def __getitem__(self, key):
        return self.ids[key]

    def __contains__(self, key):
        return key in self.ids

    def register(self, key, model, record_id):
        self.cursor.execute(*self.table.insert(
                [self.table.key, self.table.model, self.table.record_id],
                [[key, model, record_id]]))
        self.ids[key] = record_id

    def ensure(self, model, items, match=None):
        """Create the records of items [(key, values)] that have no record
        yet, in one batch. match names a field whose value finds a record
        made by someone else. Return the ids of all keys."""
        from trytond.transaction import Transaction
        Model = self.pool.get(model)
        missing = [(k, v) for k, v in items if k not in self.ids]
        if missing and match:
            with Transaction().set_context(active_test=False):
                found = Model.search(
                    [(match, 'in', [v[match] for _, v in missing])])
            by_value = {}
            for record in found:
                value = getattr(record, match)
                by_value[getattr(value, 'id', value)] = record.id
            still = []
            for key, values in missing:
                if values[match] in by_value:
                    self.register(key, model, by_value[values[match]])
                else:
                    still.append((key, values))
            missing = still
        if missing:
            records = Model.create([v for _, v in missing])
            for (key, _), record in zip(missing, records):
                self.register(key, model, record.id)
            self.created[model] += len(records)
        return [self.ids[k] for k, _ in items]


def local_to_utc(day, hour, minute=0):
    "Naive UTC datetime of a local time of the company"
    local = dt.datetime.combine(day, dt.time(hour, minute),
        tzinfo=ZoneInfo(TIMEZONE))
    return local.astimezone(dt.timezone.utc).replace(tzinfo=None)


def workday(day, direction=1):
    while day.weekday() >= 5:
        day += dt.timedelta(days=direction)
    return day


class DemoData:

    def __init__(self, seed):
        self.rnd = random.Random(seed)
        self.today = dt.date.today()
        self.now = dt.datetime.now().replace(microsecond=0)
        self.phones = set()

    def run(self):
        from trytond.pool import Pool
        from trytond.transaction import Transaction
        pool = Pool()
        self.pool = pool
        ModelData = pool.get('ir.model.data')
        self.ref = lambda module, fs_id: ModelData.get_id(module, fs_id)
        self.reg = Registry()
        self.currencies()
        self.countries()
        self.company()
        with Transaction().set_context(
                company=self.company_id, companies=[self.company_id],
                language='en'):
            self.users()
            self.teams()
            self.parties()
            self.products()
            self.utm()
            self.leads()
            self.activities()
            self.data_quality()
            self.web_form()
            if 'bpm.process' in dict(pool.iterobject()):
                self.processes()
            self.config_wizard()
        return self.reg.created

    # Master data
    def currencies(self):
        items = [(f'currency:{code}', {
                    'code': code, 'name': name, 'symbol': symbol,
                    'numeric_code': numeric, 'rounding': Decimal('0.01'),
                    'digits': 2,
                    }) for code, name, symbol, numeric, _ in CURRENCIES]
        ids = self.reg.ensure('currency.currency', items, match='code')
        self.currency = dict(zip([c[0] for c in CURRENCIES], ids))
        start = self.today.replace(month=1, day=1)
        self.reg.ensure('currency.currency.rate', [
                (f'rate:{code}:{start.year}', {
                        'currency': self.currency[code], 'date': start,
                        'rate': rate})
                for code, _, _, _, rate in CURRENCIES])

    def countries(self):
        items = [(f'country:{code}', {
                    'code': code, 'name': name, 'code3': code3,
                    'code_numeric': numeric,
                    }) for code, (name, code3, numeric) in COUNTRIES.items()]
        ids = self.reg.ensure('country.country', items, match='code')
        self.country = dict(zip(COUNTRIES, ids))

    def address(self, country, street, postal_code, city):
        return {'street': street, 'postal_code': postal_code, 'city': city,
            'country': self.country[country]}

    def company(self):
        phone = fixed_line(self.rnd, 'DE', '40', self.phones)
        party, = self.reg.ensure('party.party', [('party:company', {
                        'name': COMPANY_NAME,
                        'addresses': [('create', [self.address(
                                        'DE', "Am Sandtorkai 50", '20457',
                                        "Hamburg")])],
                        'contact_mechanisms': [('create', [
                                    {'type': 'phone', 'value': phone},
                                    {'type': 'email',
                                        'value': 'sales@harbour-trading.de'},
                                    {'type': 'website',
                                        'value': 'https://harbour-trading.de'},
                                    ])],
                        })], match='name')
        self.company_id, = self.reg.ensure('company.company', [
                ('company', {
                        'party': party, 'currency': self.currency['EUR'],
                        'timezone': TIMEZONE,
                        })], match='party')

    def users(self):
        pool = self.pool
        User = pool.get('res.user')
        lang = pool.get('ir.lang').search([('code', '=', 'en')])[0].id
        items = []
        for login, name, group in USERS:
            groups = [self.ref('crm_core', 'group_crm_user')]
            if group == 'group_crm_manager':
                groups.append(self.ref('crm_core', 'group_crm_manager'))
            items.append((f'user:{login}', {
                        'login': login, 'name': name, 'password': PASSWORD,
                        'email': f'{login}@harbour-trading.de',
                        'company': self.company_id,
                        'companies': [('add', [self.company_id])],
                        'language': lang,
                        'groups': [('add', groups)],
                        }))
        ids = self.reg.ensure('res.user', items, match='login')
        self.user = dict(zip([u[0] for u in USERS], ids))
        admin = User(self.ref('res', 'user_admin'))
        if self.company_id not in [c.id for c in admin.companies]:
            User.write([admin], {
                    'companies': [('add', [self.company_id])],
                    'company': self.company_id,
                    })
        elif not admin.company:
            User.write([admin], {'company': self.company_id})

    def teams(self):
        items = [(f'team:{slug(name)}', {
                    'name': name, 'company': self.company_id,
                    'leader': self.user[leader],
                    'members': [('add', [self.user[m] for m in members])],
                    'round_robin': round_robin,
                    }) for name, leader, members, round_robin in TEAMS]
        ids = self.reg.ensure('crm.team', items, match='name')
        self.team = dict(zip([t[0] for t in TEAMS], ids))

    def parties(self):
        rnd = self.rnd
        companies, persons, relations = [], [], []
        self.accounts = []
        used_names = set()
        for (name, country, street, postal_code, city, area, domain, owner,
                status) in COMPANIES:
            key = f'party:{slug(name)}'
            companies.append((key, {
                        'name': name,
                        'owner': self.user[owner],
                        'lifecycle_status': status,
                        'addresses': [('create', [self.address(
                                        country, street, postal_code,
                                        city)])],
                        'contact_mechanisms': [('create', [
                                    {'type': 'phone', 'value': fixed_line(
                                            rnd, country, area, self.phones)},
                                    {'type': 'email',
                                        'value': f'info@{domain}'},
                                    {'type': 'website',
                                        'value': f'https://www.{domain}'},
                                    ])],
                        }))
            contacts = []
            for _ in range(2):
                while True:
                    first = rnd.choice(FIRST_NAMES[country])
                    last = rnd.choice(LAST_NAMES[country])
                    if (first, last) not in used_names:
                        used_names.add((first, last))
                        break
                pkey = f'party:{slug(first)}-{slug(last)}'
                email = f'{slug(first)}.{slug(last)}@{domain}'.replace(
                    '-', '')
                persons.append((pkey, {
                            'name': f'{first} {last}',
                            'owner': self.user[owner],
                            'lifecycle_status': status,
                            'addresses': [('create', [
                                        {'country': self.country[country]}])],
                            'contact_mechanisms': [('create', [
                                        {'type': 'email', 'value': email},
                                        {'type': 'mobile', 'value': mobile(
                                                rnd, country, self.phones)},
                                        ])],
                            }))
                contacts.append(pkey)
            self.accounts.append({
                    'key': key, 'contacts': contacts, 'owner': owner,
                    'status': status, 'country': country})
        for name, country, street, postal_code, city, area, domain in (
                COMPETITORS):
            companies.append((f'party:{slug(name)}', {
                        'name': name,
                        'addresses': [('create', [self.address(
                                        country, street, postal_code,
                                        city)])],
                        'contact_mechanisms': [('create', [
                                    {'type': 'phone', 'value': fixed_line(
                                            rnd, country, area, self.phones)},
                                    {'type': 'website',
                                        'value': f'https://www.{domain}'},
                                    ])],
                        }))
        self.competitors = [f'party:{slug(c[0])}' for c in COMPETITORS]
        self.reg.ensure('party.party', companies)
        self.reg.ensure('party.party', persons)
        employs = self.ref('crm_core', 'relation_type_employs')
        for account in self.accounts:
            for pkey in account['contacts']:
                relations.append((f'relation:{pkey}', {
                            'from_': self.reg[account['key']],
                            'to': self.reg[pkey],
                            'type': employs,
                            }))
        self.reg.ensure('party.relation', relations)

    def products(self):
        items = []
        for code, name, type_, unit, price, consumable in PRODUCTS:
            uom = self.ref('product', unit)
            items.append((f'product:{code}', {
                        'name': name, 'code': code, 'type': type_,
                        'default_uom': uom, 'list_price': Decimal(price),
                        'consumable': consumable,
                        'products': [('create', [{}])],
                        }))
        ids = self.reg.ensure('product.template', items, match='code')
        Template = self.pool.get('product.template')
        self.product = {}
        for template in Template.browse(ids):
            product = template.products[0]
            self.product[template.code] = {
                'id': product.id, 'unit': template.default_uom.id,
                'price': template.list_price,
                'name': template.name}

    def utm(self):
        pool = self.pool
        self.utm_ids = []
        for campaign, medium, source in UTM:
            ids = []
            for model, name in [('marketing.campaign', campaign),
                    ('marketing.medium', medium),
                    ('marketing.source', source)]:
                if name is None:
                    ids.append(None)
                    continue
                Model = pool.get(model)
                if not Model.from_name(name, create=False):
                    self.reg.created[model] += 1
                ids.append(Model.from_name(name).id)
            self.utm_ids.append(ids)

    # Pipeline
    def lead_plan(self):
        "The leads and opportunities, independent of what already exists"
        rnd = self.rnd
        today = self.today
        stages = {n: self.ref('crm_core', f'stage_{n}') for n in [
                'new', 'qualified', 'proposition', 'negotiation', 'won',
                'lost']}
        self.stages = stages
        open_path = ['new', 'qualified', 'proposition', 'negotiation']
        reasons = ['lost_reason_price', 'lost_reason_competitor',
            'lost_reason_no_budget', 'lost_reason_no_answer',
            'lost_reason_not_fit']
        plans = []
        for i in range(N_LEADS + N_OPPORTUNITIES):
            is_lead = i < N_LEADS
            plan = {'key': f'lead:{i:04d}', 'activities': []}
            values = {
                'company': self.company_id,
                'priority': rnd.choices('0123', [2, 5, 2, 1])[0],
                'stage': stages['new'],
                }
            utm = rnd.random() < 0.75 and rnd.choice(self.utm_ids)
            if utm:
                (values['marketing_campaign'], values['marketing_medium'],
                    values['marketing_source']) = utm
            if is_lead:
                company, country, domain = rnd.choice(PROSPECTS)
                first = rnd.choice(FIRST_NAMES[country])
                last = rnd.choice(LAST_NAMES[country])
                owner = rnd.choice(['alice', 'bob', 'carol'])
                values.update({
                        'type': 'lead',
                        'name': rnd.choice(LEAD_TITLES),
                        'contact_name': f'{first} {last}',
                        'company_name': company,
                        'email': f'{slug(first)}.{slug(last)}@{domain}'
                        .replace('-', ''),
                        'phone': rnd.choice([
                                fixed_line(rnd, country, '', self.phones),
                                mobile(rnd, country, self.phones)]),
                        'country': self.country[country],
                        'expected_revenue': Decimal(
                            rnd.choice([0, 0, 2500, 5000, 12000])),
                        })
                outcome = rnd.choices(
                    ['new', 'qualified', 'lost'], [5, 3, 2])[0]
                path = ['new'] if outcome == 'new' else (
                    ['new', 'qualified'] if outcome == 'qualified'
                    else ['new', 'lost'])
                if outcome == 'lost':
                    reason = rnd.choice(
                        ['lost_reason_no_answer', 'lost_reason_not_fit'])
                    plan['closed'] = self.closed_on()
                    values['expected_close'] = plan['closed'].date()
                else:
                    values['expected_close'] = today + dt.timedelta(
                        days=rnd.randint(14, 90))
            else:
                # customers buy more often than prospects
                account = rnd.choices(self.accounts, [
                        2 if a['status'] == 'customer' else 1
                        for a in self.accounts])[0]
                owner = account['owner']
                if rnd.random() < 0.12:
                    owner = 'manager'
                deal, lines = rnd.choice(DEALS)
                suffix = rnd.choice(
                    ['', '', str(today.year), "phase 2", "EU sites", "pilot"])
                values.update({
                        'type': 'opportunity',
                        'name': f'{deal} {suffix}'.strip(),
                        'party': self.reg[account['key']],
                        'contact': self.reg[rnd.choice(account['contacts'])],
                        })
                if rnd.random() < 0.5:
                    values['lines'] = [('create', [
                                self.line(code, rnd.randint(low, high), n)
                                for n, (code, low, high) in enumerate(lines)
                                ])]
                else:
                    values['expected_revenue'] = Decimal(rnd.choice([
                                3500, 6000, 8500, 12000, 18000, 24000, 36000,
                                48000, 75000, 120000]))
                weights = {
                    # a won deal would make a prospect a customer
                    'customer': [1, 2, 2, 2, 10, 2],
                    'prospect': [3, 4, 3, 2, 0, 4],
                    'former': [1, 1, 1, 1, 0, 4],
                    }[account['status']]
                outcome = rnd.choices(
                    ['new', 'qualified', 'proposition', 'negotiation', 'won',
                        'lost'], weights)[0]
                if outcome in open_path:
                    path = open_path[:open_path.index(outcome) + 1]
                    values['expected_close'] = today + dt.timedelta(
                        days=rnd.randint(-20, 120))
                else:
                    reached = rnd.randint(
                        2 if outcome == 'won' else 1, 4)
                    path = open_path[:reached] + [outcome]
                    plan['closed'] = self.closed_on()
                    values['expected_close'] = (
                        plan['closed'].date()
                        + dt.timedelta(days=rnd.randint(-10, 30)))
                    if outcome == 'lost':
                        reason = rnd.choice(reasons)
            team = 'Key Accounts' if owner == 'carol' else (
                TEAM_OF.get(owner) or rnd.choice(list(self.team)))
            values['team'] = self.team[team]
            values['owner'] = self.user[owner]
            plan['owner'] = owner
            plan['values'] = values
            plan['path'] = path
            last = path[-1]
            final = {}
            if last in open_path and last != 'new' and rnd.random() < 0.3:
                final['probability'] = min(95, max(5, rnd.choice(
                            [-10, -5, 5, 10]) + {
                            'qualified': 30, 'proposition': 60,
                            'negotiation': 80}[last]))
            if last in {'won', 'lost'}:
                final['date_closed'] = plan['closed']
            if last == 'lost':
                final['lost_reason'] = self.ref('crm_core', reason)
                final['lost_note'] = LOST_NOTES[reason]
                if reason == 'lost_reason_competitor':
                    final['competitor'] = self.reg[
                        rnd.choice(self.competitors)]
            plan['final'] = final
            plans.append(plan)
        return plans

    def closed_on(self):
        day = workday(self.today - dt.timedelta(
                days=self.rnd.randint(3, 330)), -1)
        return local_to_utc(day, self.rnd.randint(9, 17),
            self.rnd.choice([0, 15, 30, 45]))

    def line(self, code, quantity, sequence):
        product = self.product[code]
        return {
            'sequence': sequence,
            'product': product['id'],
            'description': product['name'],
            'quantity': float(quantity),
            'unit': product['unit'],
            'unit_price': product['price'],
            }

    def leads(self):
        from trytond.transaction import Transaction
        Lead = self.pool.get('crm.lead')
        self.plans = self.lead_plan()
        todo = [p for p in self.plans if p['key'] not in self.reg]
        # Each salesperson enters and moves their own deals, so that the
        # stage history shows who did it.
        by_owner = defaultdict(list)
        for plan in todo:
            by_owner[plan['owner']].append(plan)
        for owner, plans in by_owner.items():
            with Transaction().set_user(self.user[owner]):
                self.reg.ensure(
                    'crm.lead', [(p['key'], p['values']) for p in plans])
                for step in range(1, 6):
                    args = []
                    for plan in plans:
                        path = plan['path']
                        if step >= len(path):
                            continue
                        values = {'stage': self.stages[path[step]]}
                        if step == len(path) - 1:
                            values.update(plan['final'])
                        args.extend(([Lead(self.reg[plan['key']])], values))
                    if args:
                        Lead.write(*args)

    def activities(self):
        rnd = self.rnd
        today = self.today
        items = []

        def when(day):
            day = workday(day, 1 if day >= today else -1)
            return local_to_utc(
                day, rnd.randint(8, 16), rnd.choice([0, 0, 15, 30, 45]))

        def activity(key, type_, subject, origin, party, owner, start,
                state):
            values = {
                'type': type_, 'subject': subject,
                'company': self.company_id,
                'origin': origin, 'party': party, 'user': self.user[owner],
                'start': start,
                'end': start + dt.timedelta(
                    minutes=60 if type_ == 'meeting' else 30),
                'state': state,
                }
            if state == 'done':
                values['outcome'] = rnd.choice(OUTCOMES)
                values['date_done'] = values['end']
            items.append((key, values))

        for plan in self.plans:
            values = plan['values']
            origin = f"crm.lead,{self.reg[plan['key']]}"
            party = values.get('party')
            closed = plan.get('closed')
            is_open = plan['path'][-1] not in {'won', 'lost'}
            done = rnd.choice([0, 1, 1, 1, 2]) if is_open else rnd.choice(
                [1, 1, 2])
            for n in range(done):
                type_ = rnd.choices(
                    ['call', 'meeting', 'email', 'task'], [4, 2, 3, 1])[0]
                if closed:
                    day = closed.date() - dt.timedelta(
                        days=rnd.randint(2, 40))
                else:
                    day = today - dt.timedelta(days=rnd.randint(1, 60))
                state = 'cancelled' if rnd.random() < 0.06 else 'done'
                activity(f"activity:{plan['key']}:{n}", type_,
                    rnd.choice(ACTIVITY_SUBJECTS[type_]), origin, party,
                    plan['owner'], when(day), state)
            if is_open:
                chance = rnd.random()
                if chance < 0.6:
                    day = today + dt.timedelta(days=rnd.randint(0, 20))
                elif chance < 0.68:
                    # overdue: planned in the last days, still not done
                    day = today - dt.timedelta(days=rnd.randint(1, 6))
                else:
                    continue
                type_ = rnd.choices(
                    ['call', 'meeting', 'email', 'task'], [4, 3, 2, 2])[0]
                activity(f"activity:{plan['key']}:next", type_,
                    rnd.choice(ACTIVITY_SUBJECTS[type_]), origin, party,
                    plan['owner'], when(day), 'planned')
        for account in self.accounts:
            party = self.reg[account['key']]
            origin = f'party.party,{party}'
            for n in range(rnd.choice([0, 1, 1, 2])):
                type_, subject = rnd.choice(ACCOUNT_ACTIVITIES)
                past = rnd.random() < 0.5
                day = today + dt.timedelta(
                    days=-rnd.randint(5, 90) if past else rnd.randint(0, 20))
                activity(f"activity:{account['key']}:{n}", type_, subject,
                    origin, party, account['owner'], when(day),
                    'done' if past else 'planned')
        self.reg.ensure('crm.activity', items)

    def data_quality(self):
        """Parties typed in twice, as they are in every real database: the
        "Find Duplicate Parties" wizard and the quality score show them"""
        items = []
        for (name, country, _, _, city, _, domain, owner, _) in (
                COMPANIES[:DUPLICATES]):
            items.append((f'duplicate:{slug(name)}', {
                        # Retyped: other case and legal form, same email
                        'name': name.upper().replace(' GmbH', '').replace(
                            ' Ltd', ' Limited'),
                        'addresses': [('create', [{
                                        'city': city,
                                        'country': self.country[country],
                                        }])],
                        'contact_mechanisms': [('create', [
                                    {'type': 'email',
                                        'value': f'INFO@{domain.upper()}'},
                                    ])],
                        }))
        self.reg.ensure('party.party', items)

    def web_form(self):
        """The key of the company's web site contact form (lead capture);
        its user has no password: nobody signs in as the web site"""
        website, = self.reg.ensure('res.user', [('user:website', {
                        'login': 'website', 'name': "Web Site Contact Form",
                        'company': self.company_id,
                        'companies': [('add', [self.company_id])],
                        })], match='login')
        self.reg.ensure('res.user.application', [('application:website', {
                        'user': website, 'application': 'crm_lead_capture',
                        'state': 'validated',
                        'crm_team': self.team["Direct Sales"],
                        'crm_origins': 'https://www.harbour-trading.de',
                        })])

    def processes(self):
        """The processes shipped with crm_bpm, active, with instances
        running on new leads and on recently won deals (crm_bpm only)"""
        from pathlib import Path
        import crm_bpm
        pool = self.pool
        IrModel = pool.get('ir.model')
        Version = pool.get('bpm.process.version')
        Instance = pool.get('bpm.instance')
        Lead = pool.get('crm.lead')
        User = pool.get('res.user')
        folder = Path(crm_bpm.__file__).parent / 'processes'
        lead_model, = IrModel.search([('name', '=', 'crm.lead')])
        shipped = [
            ('lead_qualification', "Lead qualification", 'create',
                "Eval('self', {}).get('type') == 'lead'"),
            ('follow_up_call', "Follow-up call after a won deal", 'write',
                "Eval('self', {}).get('state') == 'won'"),
            ]
        processes = {}
        for key, name, start, condition in shipped:
            process_id, = self.reg.ensure('bpm.process', [(f'process:{key}', {
                            'name': name, 'model': lead_model.id,
                            'start': start, 'condition': condition,
                            })])
            version_id, = self.reg.ensure('bpm.process.version', [(
                        f'process:{key}:v1', {
                            'process': process_id,
                            'xml': (folder / f'{key}.bpmn').read_text(),
                            'note': "Shipped with crm_bpm.",
                            })])
            version = Version(version_id)
            if version.state == 'draft':
                Version.activate([version])
            processes[key] = Version(version_id)
        manager = User(self.reg['user:manager'])
        group = self.ref('crm_bpm', 'group_bpm_manager')
        if group not in [g.id for g in manager.groups]:
            User.write([manager], {'groups': [('add', [group])]})

        def start(key, leads):
            version = processes[key]
            running = {str(i.record) for i in Instance.search([
                        ('process', '=', version.process.id)])}
            todo = [l for l in leads if str(l) not in running]
            if todo:
                Instance.start(version, todo)
                self.reg.created['bpm.instance'] += len(todo)
        start('lead_qualification', Lead.search([
                    ('type', '=', 'lead'), ('state', '=', 'open'),
                    ('stage.name', '=', "New"),
                    ], order=[('id', 'ASC')], limit=6))
        start('follow_up_call', Lead.search([
                    ('state', '=', 'won'),
                    ], order=[('date_closed', 'DESC'), ('id', 'ASC')],
                limit=4))

    def config_wizard(self):
        Item = self.pool.get('ir.module.config_wizard.item')
        items = Item.search([('state', '!=', 'done')])
        if items:
            Item.write(items, {'state': 'done'})


def summary(created, elapsed):
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    pool = Pool()
    company = Pool().get('company.company').search(
        [('party.name', '=', COMPANY_NAME)])[0]
    with Transaction().set_context(active_test=False):
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        Activity = pool.get('crm.activity')
        rows = [
            ("users", pool.get('res.user').search_count(
                    [('login', 'in', [u[0] for u in USERS])])),
            ("teams", pool.get('crm.team').search_count([])),
            ("parties", Party.search_count([])),
            ("party relations", pool.get('party.relation').search_count([])),
            ("products", pool.get('product.product').search_count([])),
            ("campaigns", pool.get('marketing.campaign').search_count([])),
            ("leads", Lead.search_count([('type', '=', 'lead')])),
            ("opportunities", Lead.search_count(
                    [('type', '=', 'opportunity')])),
            ("  open", Lead.search_count([('state', '=', 'open')])),
            ("  won", Lead.search_count([('state', '=', 'won')])),
            ("  lost", Lead.search_count([('state', '=', 'lost')])),
            ("lead lines", pool.get('crm.lead.line').search_count([])),
            ("stage history rows",
                pool.get('crm.lead.history').search_count([])),
            ("suspected duplicates", Party.search_count(
                    [('quality_issues', 'in', ['duplicate'])])),
            ("lead capture keys", pool.get('res.user.application')
                .search_count([('application', '=', 'crm_lead_capture')])),
            ("activities", Activity.search_count([])),
            ("  planned", Activity.search_count([('state', '=', 'planned')])),
            ("  overdue", Activity.search_count([('overdue', '=', True)])),
            ("  done", Activity.search_count([('state', '=', 'done')])),
            ]
        if 'bpm.instance' in dict(pool.iterobject()):
            Instance = pool.get('bpm.instance')
            rows += [
                ("processes", pool.get('bpm.process').search_count([])),
                ("process instances", Instance.search_count(
                        [('state', '=', 'running')])),
                ]
    print(f"Demo data in company {company.rec_name} "
        f"({sum(created.values())} records created, {elapsed:.1f} s):")
    for label, count in rows:
        print(f"  {label:<20} {count:>6}")
    print(f"Log in as manager, alice, bob or carol with password {PASSWORD}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-d', '--database',
        default=os.environ.get('CRM_DB_NAME', 'crm_demo'))
    parser.add_argument('--seed', type=int, default=2026)
    options = parser.parse_args()

    from trytond.pool import Pool
    from trytond.transaction import Transaction

    start = time.monotonic()
    Pool(options.database).init()
    with Transaction().start(options.database, 0, context={'language': 'en'}):
        created = DemoData(options.seed).run()
    with Transaction().start(options.database, 0, readonly=True):
        summary(created, time.monotonic() - start)


if __name__ == '__main__':
    sys.exit(main())
