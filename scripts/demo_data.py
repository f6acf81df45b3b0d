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

With crm_helpdesk activated: the agent dora, support teams on office
hours, SLA policies, canned responses, the support mailbox and about 40
tickets, each replayed at the moments of its story. Loading sends no email.

With crm_callcenter activated: agents alice, bob and carol, the hotline
(5000) and sales (6000) queues, dispositions, an IVR menu (7000) and
about 300 calls of the last month, replayed through the CTI events the telephony would send.

With crm_marketing activated: the marketing user mia, segments (German
customers, dormant prospects, VIP customers, all customers, and the
static list of the spring webinar's invitees), newsletter consents, lead
scoring rules with the hand-over threshold, and campaigns: the spring
webinar (email) and the trade fair done, with members, costs, leads and
won deals (funnel and ROI), the T12 launch email running, a win-back A/B
email planned. The emails are made by marketing_automation's scenario as
the queue would, then taken back before the commit: loading mails nobody,
and no email is left waiting for trytond-cron.

With crm_reports activated: this quarter's targets of the salespeople
(monthly) and of the teams (quarterly), the win probabilities of the open
opportunities, and the manager's monthly PDF of the Direct Sales pipeline
(first sent on the 1st of next month).
"""
import argparse
import datetime as dt
import importlib
import os
import random
import re
import sys
import time
import unicodedata
import uuid
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

# login, extension of the call center's agents
CALL_AGENTS = [('alice', '1001'), ('bob', '1002'), ('carol', '1003')]
CALL_QUEUES = [
    # number, name, strategy, members
    ('5000', "Customer Hotline", 'longest_idle', ['bob', 'carol']),
    ('6000', "Sales Line", 'sticky', ['alice', 'bob']),
    ]
DISPOSITIONS = [
    # code, name, success
    ('solved', "Question answered", True),
    ('sale', "Sale", True),
    ('callback', "Call back later", False),
    ('wrong_number', "Wrong number", False),
    ]
# Calls of the last month (weekends dropped)
CALLS = 400

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
# login or team, monthly / quarterly target (EUR)
REPORT_TARGETS = [('alice', 40000), ('bob', 35000), ('carol', 60000)]
TEAM_TARGETS = [("Direct Sales", 220000), ("Key Accounts", 180000)]
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

# Helpdesk (crm_helpdesk only) ----------------------------------------------
# login, name: the support agent who only works tickets
AGENT = ('dora', "Dora Support")
# Office hours of the support teams (local time of the company)
OFFICE_HOURS = (8, 18)
HOLIDAYS = [
    # month, day, name: every year
    (1, 1, "New Year's Day"),
    (5, 1, "Labour Day"),
    (10, 3, "Day of German Unity"),
    ]
# name, key, leader, members, assignment
SUPPORT_TEAMS = [
    ("Support", 'support', 'manager', ['dora', 'bob'], 'least_open'),
    ("Key Accounts Support", 'key', 'manager', ['carol'], 'round_robin'),
    ]
# key, name, parent key
TICKET_TYPES = [
    ('hardware', "Hardware", None),
    ('printer', "Printer", 'hardware'),
    ('software', "Software", None),
    ('login', "Login", 'software'),
    ('billing', "Billing", None),
    ]
TICKET_TAGS = ["Warranty", "On-Site Visit", "Feature Request", "Training",
    "Firmware"]
# team key, name, priority, first response, resolution (working hours),
# at risk %, raise priority, reassign
SLA_POLICIES = [
    ('support', "Support urgent", '3', 1, 8, 75, False, 'leader'),
    ('support', "Support standard", None, 4, 30, 80, True, None),
    ('key', "Key account urgent", '3', 0.5, 4, 75, False, 'leader'),
    ('key', "Key account standard", None, 2, 16, 80, False, None),
    ]
# key, name, body
CANNED_RESPONSES = [
    ('restart', "Restart the device",
        "Hello ${contact},\n\nthank you for your message about ${number}. "
        "Please switch the device off, wait ten seconds and switch it on "
        "again: most connection problems are gone after that. Tell us if it "
        "happens again.\n\nBest regards,\n${agent}"),
    ('password', "Password reset link",
        "Hello ${contact},\n\nwe have sent a password reset link to your "
        "email address (${number}). The link works for 24 hours; your old "
        "password stops working once you set the new one.\n\n"
        "Best regards,\n${agent}"),
    ('details', "Ask for details",
        "Hello ${contact},\n\nto look into ${number} we need a little more "
        "information: the serial number of the device and a photo of the "
        "error message. Simply reply to this email.\n\nThank you,\n${agent}"),
    ('solved', "Problem solved",
        "Hello ${contact},\n\nwe have solved ${number} (${subject}). If "
        "anything is still not right, reply to this email and the ticket "
        "opens again.\n\nBest regards,\n${agent}, ${team}"),
    ]
ACKNOWLEDGEMENT = (
    "Hello ${contact},\n\nwe have received your request and filed it as "
    "${number}: ${subject}. We answer within our office hours, Monday to "
    "Friday 8:00-18:00. You can follow it here: ${status_url}\n\n"
    "Harbour Trading Support")
SOLVED_NOTICE = (
    "Hello ${contact},\n\nyour request ${number} is solved. How did we do? "
    "Rate our answer here: ${status_url}\n\nHarbour Trading Support")
SUPPORT_ADDRESS = 'support@example.com'
INBOUND_ACTION = 'helpdesk.ticket|from_inbound_email'

# The tickets, each with its story. account: a company of COMPANIES;
# contact: which of its two contacts asks; kind: the stage it ends in;
# sla: where it stands (new, in progress) or how it went (solved); ask:
# the customer's request; answer: the agent's first public answer; more:
# a customer's reply and the agent's answer to it
TICKETS = [
    # Support: new
    dict(key='van-der-berg-login', account="Van der Berg Installaties B.V.",
        team='support', agent='dora', kind='new', sla='on_time',
        priority='1', channel='web', type='login',
        subject="Cannot log in after changing my password",
        ask="I changed my password this morning and now the CRM app on my "
        "tablet says the password is wrong. On the laptop it works."),
    dict(key='vinos-vat', account="Vinos del Duero S.A.", team='support',
        agent='bob', kind='new', sla='at_risk', priority='1',
        channel='email', type='billing',
        subject="Invoice shows the wrong VAT number",
        ask="Our last invoice shows the VAT number of our old company. "
        "Could you send a corrected invoice? Our accountant needs it for "
        "the quarterly return."),
    dict(key='fjallbacka-pairing', account="Fjällbacka Design AB",
        team='support', agent=None, kind='new', sla='breached',
        priority='2', channel='phone', type='hardware',
        subject="Barcode scanner BS-200 does not pair with the tablet",
        ask="Called: the new BS-200 scanners do not show up in the "
        "Bluetooth list of the T10 tablets. Wants a call back."),
    dict(key='donau-copies', account="Donau Bau GmbH", team='support',
        agent='dora', kind='new', sla='on_time', priority='0',
        channel='email', type='billing',
        subject="Copies of our invoices of last year",
        ask="For our audit we need copies of all invoices of last year. "
        "PDF is fine."),
    dict(key='baltic-outage', account="Baltic Amber Trade S.A.",
        team='support', agent='dora', kind='new', sla='at_risk',
        priority='3', channel='phone', type='login',
        subject="Nobody can log in to the CRM since this morning",
        ask="Called: none of the 12 users of the Gdańsk office can log in, "
        "the login page loads and then shows an error."),
    dict(key='levante-migration', account="Construcciones Levante S.L.",
        team='support', agent=None, kind='new', sla='on_time',
        priority='0', channel='web', type='software',
        subject="Question about the data migration package",
        ask="Does the data migration package also move the attachments of "
        "our old CRM, or only the contacts and deals?"),
    # Support: in progress
    dict(key='nordwind-labels', account="Nordwind Logistik GmbH",
        team='support', agent='dora', kind='in_progress', sla='on_time',
        priority='2', channel='email', type='printer',
        subject="Label printer LP-4 prints blank labels",
        ask="Since this morning our LP-4 in the Bremen warehouse only "
        "prints blank labels. The display shows no error.",
        answer="Could you check that the rolls are direct thermal labels "
        "(CS-LBL) and that the shiny side faces the print head? Blank "
        "labels nearly always mean the roll is the wrong way round."),
    dict(key='nordwind-labels-again', account="Nordwind Logistik GmbH",
        team='support', agent='dora', kind='cancelled', priority='2',
        channel='web', type='printer', merge='nordwind-labels',
        subject="LP-4 still prints empty labels",
        ask="Our label printer still prints empty labels, we cannot ship "
        "anything. Please call us!"),
    dict(key='baltic-rollout', account="Baltic Amber Trade S.A.",
        team='support', agent='bob', kind='in_progress', sla='on_time',
        priority='1', channel='manual', type='hardware',
        tags=["On-Site Visit"],
        subject="Roll-out of 20 rugged tablets T10 in the Gdańsk warehouse",
        ask="Set up 20 T10 tablets with docking stations for the "
        "warehouse team; on-site day agreed with the customer.",
        answer="The tablets are set up and tested; we come on site on "
        "Thursday at 9:00 to install the docking stations."),
    dict(key='baltic-docking', account="Baltic Amber Trade S.A.",
        team='support', agent='dora', kind='in_progress', sla='on_time',
        priority='1', channel='email', type='hardware',
        parent='baltic-rollout',
        subject="Docking stations DS-3 do not charge the new tablets",
        ask="The new docking stations only charge two of the five tablets "
        "we tried. The LED stays orange.",
        answer="The DS-3 needs firmware 2.4 for the new T10 series. We send "
        "you the update with a short guide today."),
    dict(key='nordwind-sync', account="Nordwind Logistik GmbH",
        team='support', agent='bob', kind='in_progress', sla='at_risk',
        priority='1', channel='email', type='software',
        subject="Sync between the tablets and the CRM stops every night",
        ask="Every morning the tablets show yesterday's orders: the sync "
        "seems to stop during the night.",
        answer="Thank you, we can see the sync stopping at 2:00 in the logs "
        "and are looking into it with our developers."),
    dict(key='van-der-berg-battery', account="Van der Berg Installaties B.V.",
        team='support', agent='dora', kind='in_progress', sla='breached',
        priority='1', channel='email', type='hardware', tags=["Warranty"],
        subject="Scanner BS-200 battery lasts only two hours",
        ask="The batteries of our BS-200 scanners last only two hours "
        "instead of a full shift. They are six months old.",
        answer="That is far below normal: the scanners are under "
        "warranty. Please send us the serial numbers and we replace the "
        "batteries."),
    dict(key='levante-export', account="Construcciones Levante S.L.",
        team='support', agent='bob', kind='in_progress', sla='on_time',
        priority='0', channel='web', type='software',
        subject="Export of the customer list to Excel is empty",
        ask="When I export the customer list to Excel, the file only has "
        "the column titles.",
        answer="The export takes the filter of the list: could you try "
        "again with the filter \"All\" selected?"),
    dict(key='vinos-codes', account="Vinos del Duero S.A.", team='support',
        agent='dora', kind='in_progress', sla='on_time', priority='1',
        channel='email', type='login',
        subject="Two-factor login codes arrive late",
        ask="The login codes by SMS often arrive after they expired.",
        answer="Which mobile network are the users on? Some networks delay "
        "messages from abroad; the authenticator app avoids that.",
        more=("All of us are on the same network. How do we switch to the "
            "app?", "In the user preferences choose \"Authenticator app\" "
            "and scan the code; we can do it together by phone if you "
            "like.")),
    dict(key='fjallbacka-jam', account="Fjällbacka Design AB", team='support',
        agent='bob', kind='in_progress', sla='breached', priority='3',
        channel='phone', type='printer',
        subject="Thermal printer LP-4 jams on every second label",
        ask="Called: the LP-4 at the packing station jams every second "
        "label, shipping is blocked.",
        answer="We are sending a replacement LP-4 by express today; "
        "tracking number follows."),
    dict(key='baltic-address', account="Baltic Amber Trade S.A.",
        team='support', agent='bob', kind='in_progress', sla='on_time',
        priority='0', channel='email', type='billing',
        subject="New invoice address from next month",
        ask="We moved our accounting to the Warsaw office: please send the "
        "invoices there from next month on.",
        answer="Thank you, could you send us the full address and the "
        "email address of your accounting team?"),
    # Support: waiting on the customer
    dict(key='baltic-flicker', account="Baltic Amber Trade S.A.",
        team='support', agent='dora', kind='waiting', priority='1',
        channel='email', type='hardware', tags=["Warranty"],
        subject="Tablet T10 screen flickers",
        ask="The screen of one of our T10 tablets flickers when it is "
        "tilted.",
        answer="That sounds like a loose display cable. Could you send us "
        "the serial number on the back of the tablet and a short video?"),
    dict(key='donau-credit', account="Donau Bau GmbH", team='support',
        agent='bob', kind='waiting', priority='1', channel='email',
        type='billing',
        subject="Credit note for the cancelled support contract",
        ask="We cancelled our support contract in March but were invoiced "
        "for the whole year.",
        answer="You are right, we will credit April to December. Could you "
        "confirm the cancellation date of your letter?"),
    dict(key='nordwind-layout', account="Nordwind Logistik GmbH",
        team='support', agent='dora', kind='waiting', priority='0',
        channel='web', type='printer', tags=["Feature Request"],
        subject="Label layout for the new pallet labels",
        ask="Can the LP-4 print our new pallet label layout (100x150 with a "
        "QR code)?",
        answer="Yes, it can. Please send us the layout as a PDF and we "
        "prepare the template for you."),
    # Support: solved
    dict(key='van-der-berg-reset', account="Van der Berg Installaties B.V.",
        team='support', agent='dora', kind='solved', sla='on_time',
        priority='1', channel='web', type='login', rating='5',
        rating_comment="Quick and friendly, thank you!",
        subject="Password reset link expired",
        ask="The password reset link says it expired, although I clicked "
        "it right away.",
        answer="The link was sent twice and only the last one works: we "
        "have sent you a new one.",
        more=("Thank you, it works now.", "Great, thank you for letting "
            "us know!")),
    dict(key='vinos-driver', account="Vinos del Duero S.A.", team='support',
        agent='bob', kind='solved', sla='on_time', priority='1',
        channel='email', type='printer', rating='4',
        subject="Printer LP-4 driver for Windows 11",
        ask="Where can I find a Windows 11 driver for the LP-4?",
        answer="You find the driver under Downloads on our support site; "
        "version 3.2 supports Windows 11.",
        more=("Installed, it prints. Thanks.", "Glad to hear it!")),
    dict(key='fjallbacka-licences', account="Fjällbacka Design AB",
        team='support', agent='bob', kind='solved', sla='breached',
        priority='1', channel='email', type='billing', rating='2',
        rating_comment="Took too long to get an answer.",
        subject="Wrong number of licences on the invoice",
        ask="We have 12 users but were invoiced for 15 licences.",
        answer="Sorry for the wait: the three users you deactivated in "
        "May were still counted. A credit note is on its way.",
        more=("Received the credit note, thank you.", "Thank you for your "
            "patience.")),
    dict(key='baltic-beep', account="Baltic Amber Trade S.A.",
        team='support', agent='dora', kind='solved', sla='on_time',
        priority='1', channel='phone', type='hardware',
        subject="Scanner beeps but does not send the code",
        ask="Called: the scanner beeps but nothing appears in the CRM "
        "app.",
        answer="As discussed on the phone: the scanner was in batch mode; "
        "we switched it back to direct mode."),
    dict(key='nordwind-users', account="Nordwind Logistik GmbH",
        team='support', agent='dora', kind='solved', sla='on_time',
        priority='1', channel='email', type='software', tags=["Training"],
        rating='5', subject="Add three new users to the CRM",
        ask="Please create accounts for our three new dispatchers; names "
        "and emails below.",
        answer="The three accounts are ready; each of them got an "
        "invitation by email. We also booked them in Friday's online "
        "training."),
    dict(key='levante-wipe', account="Construcciones Levante S.L.",
        team='support', agent='bob', kind='solved', sla='on_time',
        priority='0', channel='email', type='hardware', rating='3',
        subject="Data wipe of the old tablets before their return",
        ask="We return our old tablets at the end of the lease. How do we "
        "wipe them?",
        answer="Settings > System > Reset, then \"Erase all data\". We "
        "also send you a certificate of erasure when they arrive."),
    dict(key='donau-blocked', account="Donau Bau GmbH", team='support',
        agent='dora', kind='solved', sla='on_time', priority='2',
        channel='phone', type='login', rating='4',
        subject="Login blocked after too many attempts",
        ask="Called: the user account of the site manager is blocked after "
        "too many wrong passwords.",
        answer="We unlocked the account and sent a password reset link, as "
        "agreed on the phone."),
    dict(key='vinos-language', account="Vinos del Duero S.A.",
        team='support', agent='bob', kind='solved', sla='on_time',
        priority='0', channel='web', type='hardware', rating='5',
        subject="Tablet T10: how to change the language",
        ask="How do I switch the tablets from English to Spanish?",
        answer="Settings > Language & Input > Language, then choose "
        "Español; the CRM app follows the tablet."),
    # Support: cancelled
    dict(key='vinos-mistake', account="Vinos del Duero S.A.", team='support',
        agent='dora', kind='cancelled', priority='1', channel='email',
        subject="Please ignore: sent by mistake",
        ask="Sorry, this email was meant for our accountant. Please ignore "
        "it."),
    # Key Accounts Support: new
    dict(key='rheinland-site', account="Rheinland Maschinenbau GmbH",
        team='key', agent='carol', kind='new', sla='on_time',
        priority='1', channel='email', type='billing',
        subject="Add our new site in Krefeld to the contract",
        ask="We opened a site in Krefeld with 8 users: please add it to our "
        "contract from next month."),
    dict(key='thames-vpn', account="Thames Valley Engineering Ltd",
        team='key', agent='carol', kind='new', sla='at_risk', priority='1',
        channel='email', type='software',
        subject="VPN access for the CRM app on the tablets",
        ask="Our IT wants the tablets to reach the CRM only through our "
        "VPN. Which addresses and ports do we need to open?"),
    dict(key='lakeshore-update', account="Lakeshore Medical Supplies Inc.",
        team='key', agent=None, kind='new', sla='breached', priority='3',
        channel='phone', type='hardware',
        subject="Scanners stopped working after the update",
        ask="Called: after last night's update none of the 30 scanners of "
        "the Chicago warehouse reads barcodes."),
    # Key Accounts Support: in progress
    dict(key='dupont-offset', account="Boulangeries Dupont SA", team='key',
        agent='carol', kind='in_progress', sla='on_time', priority='1',
        channel='email', type='printer',
        subject="LP-4 labels are printed off-centre",
        ask="Since we use the new label rolls the text is printed 5 mm too "
        "far to the left.",
        answer="The new rolls are 2 mm narrower: run the calibration "
        "(hold the feed button 5 seconds) and tell us if it is better."),
    dict(key='rheinland-sso', account="Rheinland Maschinenbau GmbH",
        team='key', agent='carol', kind='in_progress', sla='at_risk',
        priority='2', channel='email', type='login',
        subject="Single sign-on with our company directory",
        ask="Can our users log in with their company accounts (single "
        "sign-on) instead of a separate password?",
        answer="Yes: we need the metadata of your identity provider. Our "
        "technician will call your IT this week to set it up."),
    dict(key='thames-currency', account="Thames Valley Engineering Ltd",
        team='key', agent='carol', kind='in_progress', sla='breached',
        priority='1', channel='email', type='billing',
        subject="Invoice in EUR instead of GBP",
        ask="Our contract is in pounds but the last invoice is in euros.",
        answer="Sorry about that: we are correcting the invoice and check "
        "why the currency changed."),
    # Key Accounts Support: waiting on the customer
    dict(key='lakeshore-delivery', account="Lakeshore Medical Supplies Inc.",
        team='key', agent='carol', kind='waiting', priority='1',
        channel='email', type='hardware',
        subject="Tablets T10 for the new clinic: delivery address",
        ask="We need 15 more tablets for our new clinic in Evanston.",
        answer="Happy to help: could you confirm the delivery address and "
        "the name of the person receiving them?"),
    dict(key='dupont-training', account="Boulangeries Dupont SA", team='key',
        agent='carol', kind='waiting', priority='0', channel='web',
        type='software', tags=["Training"],
        subject="Training for the new sales assistants",
        ask="We would like a training for our four new sales assistants.",
        answer="We can offer Tuesday or Thursday next week, 10:00-12:00 "
        "online. Which day suits you?"),
    # Key Accounts Support: solved
    dict(key='rheinland-docking', account="Rheinland Maschinenbau GmbH",
        team='key', agent='carol', kind='solved', sla='on_time',
        priority='1', channel='email', type='hardware', tags=["Warranty"],
        rating='5', rating_comment="Replacement arrived the next day.",
        subject="Docking station DS-3 replacement",
        ask="One DS-3 docking station no longer charges.",
        answer="We have shipped a replacement under warranty; please send "
        "the broken one back with the enclosed label.",
        more=("The new one works, thank you!", "You are welcome!")),
    dict(key='thames-admin', account="Thames Valley Engineering Ltd",
        team='key', agent='carol', kind='solved', sla='on_time',
        priority='2', channel='phone', type='login', rating='4',
        subject="Reset the administrator password",
        ask="Called: their administrator left the company; they need the "
        "admin password reset for his successor.",
        answer="We have reset the administrator account for the new IT "
        "manager after checking the request with your director."),
    dict(key='lakeshore-firmware', account="Lakeshore Medical Supplies Inc.",
        team='key', agent='carol', kind='solved', sla='breached',
        priority='1', channel='email', type='hardware', tags=["Firmware"],
        rating='1', rating_comment="Two days without scanners.",
        subject="Barcode scanner BS-200 firmware update failed",
        ask="The firmware update stopped half way on five scanners and "
        "now they do not start.",
        answer="We are sorry: the update needs a full battery. We have sent "
        "you five replacement scanners and repair the others.",
        more=("The replacements are in use.", "Thank you, the repaired ones "
            "are on their way back.")),
    dict(key='dupont-duplicate-invoice', account="Boulangeries Dupont SA",
        team='key', agent='carol', kind='solved', sla='on_time',
        priority='1', channel='email', type='billing', rating='5',
        subject="Invoice for March received twice",
        ask="We received the March invoice twice, with two numbers.",
        answer="The second one was sent by mistake: we have cancelled it, "
        "you only need to pay the first one."),
    dict(key='rheinland-network', account="Rheinland Maschinenbau GmbH",
        team='key', agent='carol', kind='solved', sla='on_time',
        priority='0', channel='email', type='printer',
        subject="Printer LP-4 on the new network",
        ask="We moved the printers to a new network; the LP-4 no longer "
        "shows up.",
        answer="Set the printer to DHCP in its network menu, then add it "
        "again with its new address."),
    # Key Accounts Support: cancelled
    dict(key='thames-phone', account="Thames Valley Engineering Ltd",
        team='key', agent='carol', kind='cancelled', priority='1',
        channel='email',
        subject="Scanner question (solved on the phone)",
        ask="Never mind, we sorted it out with your colleague on the "
        "phone."),
    ]

# Marketing (crm_marketing only) --------------------------------------------
# login, name: the marketing user who plans and runs the campaigns
MARKETER = ('mia', "Mia Lindner")
# key, name, description, criteria (countries by code, teams by name)
SEGMENTS = [
    ('german-customers', "German customers",
        "Customers with an address in Germany.",
        {'lifecycle_statuses': ['customer'], 'countries': ['DE']}),
    ('dormant-prospects', "Prospects without activity for 60 days",
        "Prospects nobody called, met or wrote to in the last two months.",
        {'lifecycle_statuses': ['prospect'], 'inactive_days': 60}),
    ('vip', "VIP customers",
        "Key account customers who bought from us.",
        {'lifecycle_statuses': ['customer'], 'won_opportunities': 'with',
            'teams': ["Key Accounts"]}),
    ('customers', "All customers", None,
        {'lifecycle_statuses': ['customer']}),
    ]
# The static list of the spring webinar: the accounts (but former
# customers) and their contacts
INVITEES = ('webinar-invitees', "Spring webinar invitees",
    "Invited by email to the spring webinar on mobile CRM.")
# Genshi templates of the campaigns' emails ('record' is the member)
WEBINAR_EMAIL = (
    "You are invited: mobile CRM for field teams (live webinar)",
    '<html><body><p>Hello ${record.party.name},</p>'
    '<p>join our live webinar: how field teams log visits, scan and quote '
    'from a rugged tablet, in 45 minutes with questions.</p>'
    '<p><a href="https://www.harbour-trading.de/webinar">Save your '
    'seat</a></p>'
    '<p>Harbour Trading</p>'
    '<p><small><a href="unsubscribe">Unsubscribe</a></small></p>'
    '</body></html>')
LAUNCH_EMAIL = (
    "New: the Rugged Tablet T12 for ${record.party.name}",
    '<html><body><p>Hello ${record.party.name},</p>'
    '<p>the Rugged Tablet T12 is here: a full shift of battery, a scanner '
    'built in, and it fits the DS-3 docking stations you already have.</p>'
    '<p><a href="https://www.harbour-trading.de/t12">See the T12</a></p>'
    '<p>Harbour Trading</p>'
    '<p><small><a href="unsubscribe">Unsubscribe</a></small></p>'
    '</body></html>')
WIN_BACK_EMAILS = [
    ('a', "Still looking for a CRM, ${record.party.name}?",
        '<html><body><p>Hello ${record.party.name},</p>'
        '<p>it has been a while: here is what is new in our CRM, and a '
        'free onboarding workshop if you start this quarter.</p>'
        '<p><a href="https://www.harbour-trading.de/news">What is new</a>'
        '</p><p><small><a href="unsubscribe">Unsubscribe</a></small></p>'
        '</body></html>'),
    ('b', "A free onboarding workshop for ${record.party.name}",
        '<html><body><p>Hello ${record.party.name},</p>'
        '<p>start this quarter and your team gets the two-day onboarding '
        'workshop for free.</p>'
        '<p><a href="https://www.harbour-trading.de/workshop">Book the '
        'workshop</a></p>'
        '<p><small><a href="unsubscribe">Unsubscribe</a></small></p>'
        '</body></html>'),
    ]
NEWS_FROM = "Harbour Trading <news@harbour-trading.de>"
# The campaigns. The first four are the UTM campaigns the leads of the
# demo carry (made by utm()); the others are made here. name (lower case:
# marketing_campaign's), type, status, start and end (days from today),
# segment key, budget, costs (description, amount, days from today,
# medium), goal in leads, expected revenue, goals, emails (A or A and B)
CAMPAIGNS = [
    dict(name='spring-webinar', type='email', status='done',
        start=-150, end=-120, segment='webinar-invitees', budget=15000,
        costs=[("Webinar platform, annual licence", 2400, -160, 'email'),
            ("Speaker and moderation", 3500, -150, 'email'),
            ("LinkedIn sponsored posts", 4800, -140, 'social'),
            ("Invitation design", 1300, -158, 'email')],
        goal_leads=40, expected_revenue=200000,
        goals="Fill the pipeline of mobile CRM deals before the summer.",
        email=WEBINAR_EMAIL),
    dict(name='trade-fair-hannover', type='event', status='done',
        start=-200, end=-196, budget=25000,
        costs=[("Booth, hall 6", 18000, -230, 'event'),
            ("Travel and hotel", 4500, -196, 'event'),
            ("Giveaways", 1200, -210, 'event')],
        goal_leads=25, expected_revenue=250000,
        goals="Meet the logistics and manufacturing prospects of the fair."),
    dict(name='google-ads', type='advertising', status='running',
        start=-90, budget=9000,
        costs=[("Google Ads, month 1", 1500, -60, 'cpc'),
            ("Google Ads, month 2", 1500, -30, 'cpc')],
        goal_leads=30),
    dict(name='partner-referral', type='other', status='running',
        start=-300, goals="Leads our resellers pass to us."),
    dict(name='tablet-t12-launch', type='email', status='running',
        start=-4, end=24, segment='customers', budget=3000,
        costs=[("Product photos and copy", 900, -10, 'email')],
        goal_leads=8, expected_revenue=60000,
        goals="Sell the T12 to the customers who bought T10 tablets.",
        email=LAUNCH_EMAIL),
    dict(name='win-back-prospects', type='email', status='planned',
        start=21, end=49, segment='dormant-prospects', budget=2000,
        goal_leads=10, ab_test=True, ab_sample=30,
        goals="Talk again to the prospects we lost sight of.",
        emails=WIN_BACK_EMAILS),
    ]
# name, criterion, value (country code, source name), points
SCORING_RULES = [
    ("Germany", 'country', 'DE', 10),
    ("Met us at the trade fair", 'source', 'trade-fair', 20),
    ("Came from the web site", 'source', 'website', 10),
    ("Opened a campaign email", 'opened', None, 10),
    ("Clicked a campaign link", 'clicked', None, 25),
    ]
MQL_THRESHOLD = 50
MQL_TEAM = "Direct Sales"
# How the invitees answered the webinar email (the rest did not open it)
OPEN_RATE = 0.55
CLICK_RATE = 0.45  # of those who opened
# A bounce report of the mail server, for the suppressed address
BOUNCE_DETAIL = (
    "Reporting-MTA: dns; mx.harbour-trading.de\n\n"
    "Final-Recipient: rfc822; {address}\nAction: failed\nStatus: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 User unknown")


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
        self.seed = seed
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
        if 'crm.segment' in dict(pool.iterobject()):
            self.marketing_settings()
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
            if 'helpdesk.ticket' in dict(pool.iterobject()):
                self.helpdesk()
            if 'callcenter.call' in dict(pool.iterobject()):
                self.callcenter()
            if 'crm.segment' in dict(pool.iterobject()):
                self.marketing()
            if 'crm.target' in dict(pool.iterobject()):
                self.reports()
            self.config_wizard()
        self.check_no_mail()
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

    def helpdesk(self):
        """Support teams on office hours, their SLA policies and canned
        responses, the support mailbox, and tickets in every stage, each
        replayed through its story (crm_helpdesk only)"""
        self.helpdesk_users()
        calendar = self.office_hours()
        self.support_teams(calendar)
        self.helpdesk_setup()
        self.tickets(calendar)

    def helpdesk_users(self):
        "The agent dora; bob and carol also answer tickets"
        agent = self.ref('crm_helpdesk', 'group_helpdesk_user')
        manager = self.ref('crm_helpdesk', 'group_helpdesk_manager')
        self.area_user(AGENT, agent, {'bob': agent, 'carol': agent,
                'manager': manager})

    def area_user(self, person, group, others):
        """The user of person (login, name) in CRM User and group; others
        ({login: group}) get their group too"""
        pool = self.pool
        User = pool.get('res.user')
        lang = pool.get('ir.lang').search([('code', '=', 'en')])[0].id
        login, name = person
        self.user[login], = self.reg.ensure('res.user', [(f'user:{login}', {
                        'login': login, 'name': name, 'password': PASSWORD,
                        'email': f'{login}@harbour-trading.de',
                        'company': self.company_id,
                        'companies': [('add', [self.company_id])],
                        'language': lang,
                        'groups': [('add', [
                                    self.ref('crm_core', 'group_crm_user'),
                                    group])],
                        })], match='login')
        for login, group in others.items():
            user = User(self.user[login])
            if group not in [g.id for g in user.groups]:
                User.write([user], {'groups': [('add', [group])]})

    def office_hours(self):
        Calendar = self.pool.get('crm.working_calendar')
        timezone = self.pool.get('company.company')(
            self.company_id).timezone or TIMEZONE
        start, end = OFFICE_HOURS
        calendar_id, = self.reg.ensure('crm.working_calendar', [
                ('calendar:office-hours', {
                        'name': "Office hours", 'company': self.company_id,
                        'timezone': timezone,
                        'hours': [('create', [{
                                        'weekday': str(day),
                                        'start': dt.time(start),
                                        'end': dt.time(end),
                                        } for day in range(5)])],
                        'holidays': [('create', [{
                                        'date': dt.date(
                                            self.today.year, month, day),
                                        'name': name, 'yearly': True,
                                        } for month, day, name in HOLIDAYS])],
                        })], match='name')
        return Calendar(calendar_id)

    def support_teams(self, calendar):
        items = [(f'team:{slug(name)}', {
                    'name': name, 'company': self.company_id,
                    'leader': self.user[leader],
                    'members': [('add', [self.user[m] for m in members])],
                    'calendar': calendar.id,
                    'helpdesk_assignment': assignment,
                    }) for name, _, leader, members, assignment
            in SUPPORT_TEAMS]
        ids = self.reg.ensure('crm.team', items, match='name')
        self.support_team = dict(zip([t[1] for t in SUPPORT_TEAMS], ids))

    def helpdesk_setup(self):
        "Ticket types, tags, SLA policies, canned responses, the mailbox"
        pool = self.pool
        Configuration = pool.get('helpdesk.configuration')
        self.ticket_type = {}
        for key, name, parent in TICKET_TYPES:
            self.ticket_type[key], = self.reg.ensure('helpdesk.type', [(
                        f'ticket-type:{key}', {
                            'name': name,
                            'parent': self.ticket_type.get(parent),
                            })])
        ids = self.reg.ensure('helpdesk.tag', [
                (f'ticket-tag:{slug(n)}', {'name': n}) for n in TICKET_TAGS],
            match='name')
        self.ticket_tag = dict(zip(TICKET_TAGS, ids))
        for sequence, (team, name, priority, response, resolution, at_risk,
                raise_priority, reassign) in enumerate(SLA_POLICIES):
            self.reg.ensure('helpdesk.sla', [(
                        f'sla:{slug(name)}', {
                            'name': name, 'sequence': sequence * 10,
                            'team': self.support_team[team],
                            'priority': priority,
                            'first_response_time': dt.timedelta(
                                hours=response),
                            'resolution_time': dt.timedelta(
                                hours=resolution),
                            'at_risk': at_risk,
                            'raise_priority': raise_priority,
                            'reassign': reassign,
                            })])
        templates = CANNED_RESPONSES + [
            ('acknowledgement', "Acknowledgement", ACKNOWLEDGEMENT),
            ('solved-notice', "Solved notice", SOLVED_NOTICE)]
        ids = self.reg.ensure('helpdesk.template', [
                (f'template:{key}', {'name': name, 'body': body})
                for key, name, body in templates])
        self.template = dict(zip([t[0] for t in templates], ids))
        # Only what nobody has set yet: the demo does not undo changes
        config_ = Configuration(1)
        values = {}
        for name, value in [
                ('support_address', SUPPORT_ADDRESS),
                ('support_name', "Harbour Trading Support"),
                ('template_created', self.template['acknowledgement']),
                ('template_solved', self.template['solved-notice'])]:
            if not getattr(config_, name):
                values[name] = value
        if values:
            Configuration.write([config_], values)
        # Mail of the key accounts goes to their own team
        domains = '|'.join(re.escape(c[6]) for c in COMPANIES
            if c[7] == 'carol' and c[8] == 'customer')
        destination = r'support(\+[^@]*)?@example\.com'
        self.reg.ensure('inbound.email.inbox', [('inbox:support', {
                        'name': "Support mailbox",
                        # the secret part of the webhook address
                        'identifier': uuid.uuid4().hex,
                        'rules': [('create', [{
                                        'sequence': 10,
                                        'origin': f'@({domains})$',
                                        'destination': destination,
                                        'action': INBOUND_ACTION,
                                        'helpdesk_team':
                                        self.support_team['key'],
                                        }, {
                                        'sequence': 20,
                                        'destination': destination,
                                        'action': INBOUND_ACTION,
                                        'helpdesk_team':
                                        self.support_team['support'],
                                        }])],
                        })])

    def tickets(self, calendar):
        """Each new ticket lives its story at the moments it happened:
        the ticket module's clock is set to each moment, so that first
        response, pauses, solved dates, SLA and the party's activities are
        those a real day would have given. No customer has an email while
        the stories run: nothing is mailed."""
        from unittest import mock
        from sql import Table
        from trytond.transaction import Transaction
        pool = self.pool
        Ticket = pool.get('helpdesk.ticket')
        Message = pool.get('ir.chat.message')
        # the module whose _now() dates what happens to a ticket
        clock = importlib.import_module('crm_helpdesk.ticket')
        rnd = random.Random(f'{self.seed}:helpdesk')
        now = dt.datetime.now().replace(microsecond=0)
        todo = [t for t in TICKETS if f"ticket:{t['key']}" not in self.reg]
        stories = {}
        for spec in TICKETS:
            # the random draws of every ticket, also those made before
            stories[spec['key']] = self.ticket_story(spec, rnd)
        if not todo:
            return
        # Messages are dated when they happened (create_date is the
        # timestamp the conversation shows; the ORM always sets it to now)
        message_table = Table(Message._table)
        cursor = Transaction().connection.cursor()
        messages_before = Message.search_count([])

        def last_message():
            return max([m.id for m in Message.search(
                        [], order=[('id', 'DESC')], limit=1)] or [0])
        dated = last_message()
        opened = {}
        created = []
        for spec in todo:
            story = stories[spec['key']]
            if spec.get('merge'):
                start = opened[spec['merge']] if spec['merge'] in opened \
                    else Ticket(self.reg[f"ticket:{spec['merge']}"]).opened
                start = calendar.add_working_time(
                    start, dt.timedelta(hours=1))
            else:
                start = self.working_back(calendar, now, story['age'])
            opened[spec['key']] = start
            with mock.patch.object(clock, '_now', return_value=start):
                ticket_id = self.create_ticket(spec, story, start)
            created.append((ticket_id, story['email']))
            for offset, action, *args in story['events']:
                when = calendar.add_working_time(
                    start, dt.timedelta(hours=offset)).replace(
                    second=0, microsecond=0)
                assert when <= now, (spec['key'], when)
                with mock.patch.object(clock, '_now', return_value=when):
                    self.ticket_event(Ticket(ticket_id), spec, story,
                        action, args)
                cursor.execute(*message_table.update(
                        [message_table.create_date], [when],
                        where=message_table.id > dated))
                dated = last_message()
        # The customers get their email address only now: from here on an
        # agent's answer is mailed, as it should
        to_write = []
        for ticket_id, email in created:
            if email:
                to_write.extend(([Ticket(ticket_id)], {'email': email}))
        if to_write:
            Ticket.write(*to_write)
        # Where each stands today; the escalations the SLA cron would have
        # made on the way
        tickets = Ticket.browse([i for i, _ in created])
        escalate = Ticket.update_sla(tickets)
        if escalate:
            Ticket.escalate(escalate)
        self.reg.created['ir.chat.message'] += (
            Message.search_count([]) - messages_before)

    def ticket_story(self, spec, rnd):
        """The events of a ticket: (working hours after it was opened,
        action, arguments), its age in working hours and who asks"""
        team = spec['team']
        policy = next(p for p in SLA_POLICIES if p[0] == team
            and p[2] in {None, spec['priority']})
        response, resolution = policy[3], policy[4]
        account = next(a for a in self.accounts
            if a['key'] == f"party:{slug(spec['account'])}")
        contact = rnd.choice(account['contacts'])
        agent = spec['agent']
        kind, sla = spec['kind'], spec.get('sla')
        events = []
        if spec['channel'] in {'email', 'web'}:
            events.append((0, 'customer', spec['ask']))
        elif agent:
            events.append((0, 'note', agent, spec['ask']))
        if spec['channel'] != 'phone':
            events.append((0, 'notify', 'acknowledgement'))
        age = None
        # Fractions of the policy's targets that give the status wanted:
        # at risk from 80 % (75 % when urgent), breached past 100 %
        if kind == 'new':
            age = response * rnd.uniform(*{
                    'on_time': (0.1, 0.5), 'at_risk': (0.85, 0.95),
                    'breached': (2, 4)}[sla])
        elif kind in {'in_progress', 'waiting', 'solved'}:
            # a late first answer breaches a solved ticket
            answered = response * (rnd.uniform(1.3, 2)
                if sla == 'breached' and kind == 'solved'
                else rnd.uniform(0.2, 0.7))
            events += [
                (answered, 'stage', agent, 'in_progress'),
                (answered, 'answer', agent, spec['answer']),
                ]
            last = answered
            if spec.get('more'):
                asked, answer = spec['more']
                last = answered + rnd.uniform(1, 3)
                events += [(last, 'customer', asked),
                    (last + 0.5, 'answer', agent, answer)]
                last += 0.5
            if kind == 'in_progress':
                age = max(last + 1, resolution * rnd.uniform(*{
                            'on_time': (0.2, 0.6), 'at_risk': (0.85, 0.95),
                            'breached': (1.2, 1.8)}[sla]))
            elif kind == 'waiting':
                events.append((last, 'stage', agent, 'waiting'))
                age = last + rnd.uniform(2, 20)
            else:
                solved = last + rnd.uniform(0.2, 1)
                events.append((solved, 'solve', agent))
                if spec.get('rating'):
                    events.append((solved + rnd.uniform(1, 8), 'rate',
                            spec['rating'], spec.get('rating_comment')))
                age = solved + rnd.uniform(10, 200)
        elif spec.get('merge'):
            events.append((0.5, 'merge', agent, spec['merge']))
        else:
            events += [
                (0.5, 'note', agent, "Closed: the customer withdrew the "
                    "request."),
                (0.5, 'stage', agent, 'cancelled'),
                ]
            age = rnd.uniform(5, 100)
        return {
            'age': age, 'events': events, 'account': account,
            'contact': contact, 'email': self.email_of(contact),
            }

    def email_of(self, key):
        Party = self.pool.get('party.party')
        for mechanism in Party(self.reg[key]).contact_mechanisms:
            if mechanism.type == 'email':
                return mechanism.value

    @staticmethod
    def working_back(calendar, end, hours):
        """The latest moment from which hours of working time have passed
        at end, to the minute"""
        target = dt.timedelta(hours=hours)
        low = end - dt.timedelta(days=max(14, hours))
        high = end
        while high - low > dt.timedelta(minutes=1):
            middle = low + (high - low) / 2
            if calendar.working_time(middle, end) >= target:
                low = middle
            else:
                high = middle
        return low.replace(second=0, microsecond=0)

    def create_ticket(self, spec, story, opened):
        from trytond.transaction import Transaction
        agent = spec['agent']
        values = {
            'company': self.company_id,
            'subject': spec['subject'], 'description': spec['ask'],
            'party': self.reg[story['account']['key']],
            'contact': self.reg[story['contact']],
            'team': self.support_team[spec['team']],
            'user': self.user[agent] if agent else None,
            'type': self.ticket_type.get(spec.get('type')),
            'priority': spec['priority'], 'channel': spec['channel'],
            'opened': opened,
            'tags': [('add', [self.ticket_tag[t]
                        for t in spec.get('tags', [])])],
            }
        if spec.get('parent'):
            values['parent'] = self.reg[f"ticket:{spec['parent']}"]
        # The agent types in the phone calls; the mailbox makes the others
        creator = self.user[agent] if agent and spec['channel'] in {
            'phone', 'manual'} else 0
        with Transaction().set_user(creator):
            ticket_id, = self.reg.ensure('helpdesk.ticket', [
                    (f"ticket:{spec['key']}", values)])
        return ticket_id

    def ticket_event(self, ticket, spec, story, action, args):
        from trytond.transaction import Transaction
        pool = self.pool
        Ticket = pool.get('helpdesk.ticket')
        Stage = pool.get('helpdesk.stage')
        Channel = pool.get('ir.chat.channel')
        Message = pool.get('ir.chat.message')
        Template = pool.get('helpdesk.template')
        if action == 'customer':
            # as the mailbox or the status page post a customer's message
            content, = args
            message = Message(channel=Channel._get_channel(ticket),
                email=story['email'], audience='public', content=content)
            message.save()
            ticket.on_message(message)
        elif action == 'notify':
            template, = args
            ticket.post_answer(
                ticket.render(Template(self.template[template])),
                system=True)
        elif action == 'rate':
            rating, comment = args
            Ticket.write([ticket], {
                    'rating': rating, 'rating_comment': comment})
        else:
            agent, *args = args
            with Transaction().set_user(self.user[agent]):
                if action in {'answer', 'note'}:
                    content, = args
                    ticket.post_answer(content, audience=(
                            'public' if action == 'answer' else 'internal'))
                elif action == 'stage':
                    kind, = args
                    stage = Stage.for_team(ticket.team, kind)[0]
                    Ticket.write([ticket], {'stage': stage.id})
                elif action == 'solve':
                    Ticket.solve([ticket])
                    if spec['channel'] != 'phone':
                        self.ticket_event(Ticket(ticket.id), spec, story,
                            'notify', ['solved-notice'])
                elif action == 'merge':
                    target, = args
                    ticket.merge_into(Ticket(self.reg[f'ticket:{target}']))

    def check_no_mail(self):
        """Loading the demo mails nobody: mail waiting for the commit
        would make trytond connect to the SMTP server ([email] uri,
        localhost by default)"""
        from trytond.sendmail import SMTPDataManager
        from trytond.transaction import Transaction
        # even an empty one connects at the commit
        managers = [m for m in getattr(Transaction(), '_datamanagers', [])
            if isinstance(m, SMTPDataManager)]
        if managers:
            queued = [msg for m in managers for _, _, msg in m.queue]
            first = (queued[0]['To'] or queued[0]['Bcc']) if queued else None
            raise RuntimeError(
                f"the demo data would send {len(queued)} emails "
                f"(the first to {first})")

    def callcenter(self):
        """Agents bob and carol (and alice for sales), the hotline and
        sales queues, dispositions, and a month of calls replayed as the
        telephony would have sent their CTI events (crm_callcenter only)"""
        pool = self.pool
        User = pool.get('res.user')
        Agent = pool.get('callcenter.agent')
        Event = pool.get('callcenter.event')
        Mechanism = pool.get('party.contact_mechanism')
        agent_group = self.ref('crm_callcenter', 'group_callcenter_agent')
        supervisor = self.ref('crm_callcenter', 'group_callcenter_supervisor')
        for login, group in [('alice', agent_group), ('bob', agent_group),
                ('carol', agent_group), ('manager', supervisor)]:
            user = User(self.user[login])
            if group not in [g.id for g in user.groups]:
                User.write([user], {'groups': [('add', [group])]})
        agents = dict(zip(['alice', 'bob', 'carol'], self.reg.ensure(
                    'callcenter.agent', [(f'agent:{login}', {
                                'user': self.user[login],
                                'extension': extension,
                                'company': self.company_id,
                                }) for login, extension in CALL_AGENTS],
                    match='extension')))
        self.reg.ensure('callcenter.disposition', [
                (f'disposition:{code}', {'name': name, 'code': code,
                        'success': success, 'sequence': i})
                for i, (code, name, success) in enumerate(DISPOSITIONS)],
            match='code')
        queues = {}
        for number, name, strategy, members in CALL_QUEUES:
            queues[number], = self.reg.ensure('callcenter.queue', [
                    (f'queue:{number}', {
                            'name': name, 'number': number,
                            'company': self.company_id,
                            'strategy': strategy,
                            'members': [('add', [agents[m]
                                        for m in members])],
                            'overflow': 'callback',
                            'overflow_seconds': 60,
                            })], match='number')
        phones = [m.value_compact for m in Mechanism.search([
                    ('type', 'in', ['phone', 'mobile'])],
                order=[('id', 'ASC')])]
        rnd = random.Random(self.seed + 7)
        events = []
        start = self.today - dt.timedelta(days=30)
        for n in range(CALLS):
            day = start + dt.timedelta(days=rnd.randrange(30))
            if day.weekday() >= 5:
                continue
            number, _, _, members = rnd.choice(CALL_QUEUES)
            at = local_to_utc(day, rnd.randint(8, 17), rnd.randrange(60))
            at += dt.timedelta(seconds=rnd.randrange(60))
            caller = (rnd.choice(phones) if rnd.random() < 0.8
                else f'+4915{rnd.randrange(10**8, 10**9)}')
            extension = dict(CALL_AGENTS)[rnd.choice(members)]
            events.extend(demo_call(f'demo-{n}', caller, number, extension,
                    at, rnd))
        Event.ingest(self.company_id, events)
        Event.apply_pending(drain=True)
        # The month is over: its calls are wrapped up, the agents offline
        Call = pool.get('callcenter.call')
        Call.write(Call.search([('wrapped_up', '=', False),
                    ('state', 'in', ['ended', 'missed', 'abandoned'])]),
            {'wrapped_up': True})
        Agent.set_status(Agent.browse(list(agents.values())), 'offline',
            call=False)
        self.reg.ensure('callcenter.ivr', [('ivr:7000', {
                        'name': "Main Menu", 'number': '7000',
                        'extension': 'ivr-7000',
                        'company': self.company_id,
                        'nodes': [('create', [{
                                        'name': "Welcome", 'kind': 'menu',
                                        'prompt': "Welcome to Harbour "
                                        "Trading. For support, press 1. "
                                        "For sales, press 2.",
                                        'timeout': 5, 'retries': 2,
                                        'children': [('create', [{
                                                        'name': "Support",
                                                        'digit': '1',
                                                        'kind': 'queue',
                                                        'queue': queues['5000'],
                                                        }, {
                                                        'name': "Sales",
                                                        'digit': '2',
                                                        'kind': 'queue',
                                                        'queue': queues['6000'],
                                                        }, {
                                                        'name': "Goodbye",
                                                        'kind': 'hangup',
                                                        'prompt': "Goodbye.",
                                                        }])],
                                        }])],
                        })], match='number')

    def marketing(self):
        """The marketing user mia, segments, newsletter consents, lead
        scoring rules, and the campaigns: the spring webinar and the trade
        fair done with their results, the T12 launch email running, a
        win-back email planned; then every open lead scored
        (crm_marketing only). Nobody is mailed: see send_quietly"""
        Lead = self.pool.get('crm.lead')
        self.marketing_users()
        self.segments()
        self.scoring()
        self.consents()
        self.campaigns()
        # Attribute points need no event: every open lead, as the cron does
        Lead.update_scores(Lead.search([('state', '=', 'open')],
                order=[('id', 'ASC')]))

    def marketing_settings(self):
        """crm_marketing keeps its settings in crm_core's configuration,
        whose first record locks its table: trytond then starts the
        transaction again (main), so that happens first, not after all the
        rest"""
        Configuration = self.pool.get('crm.configuration')
        if not Configuration.get_singleton():
            Configuration.create([{}])

    def marketing_users(self):
        "mia in Marketing User; the manager also manages marketing"
        self.area_user(MARKETER,
            self.ref('crm_marketing', 'group_marketing_user'),
            {'manager': self.ref('crm_marketing', 'group_marketing_manager')})

    def segments(self):
        """Dynamic segments on their criteria, and the static list of the
        webinar's invitees"""
        from trytond.transaction import Transaction
        Segment = self.pool.get('crm.segment')
        items = []
        for key, name, description, criteria in SEGMENTS:
            values = {'name': name, 'company': self.company_id,
                'kind': 'dynamic', 'description': description}
            for field, value in criteria.items():
                if field == 'countries':
                    value = [('add', [self.country[c] for c in value])]
                elif field == 'teams':
                    value = [('add', [self.team[t] for t in value])]
                values[field] = value
            items.append((f'segment:{key}', values))
        key, name, description = INVITEES
        invitees = []
        for account in self.accounts:
            if account['status'] != 'former':
                invitees += [account['key']] + account['contacts']
        items.append((f'segment:{key}', {
                    'name': name, 'company': self.company_id,
                    'kind': 'static', 'description': description,
                    'members': [('create', [{'party': self.reg[k]}
                                for k in invitees])],
                    }))
        with Transaction().set_user(self.user['mia']):
            ids = self.reg.ensure('crm.segment', items, match='name')
        self.segment = dict(zip([i[0].split(':', 1)[1] for i in items], ids))
        # Their members as of today, as the cron keeps them
        Segment.refresh(Segment.browse(ids))

    def scoring(self):
        """Points for the country, the source and the clicks and opens of
        campaign emails; leads from the threshold go to Direct Sales"""
        pool = self.pool
        Source = pool.get('marketing.source')
        Configuration = pool.get('crm.configuration')
        items = []
        for sequence, (name, criterion, value, points) in enumerate(
                SCORING_RULES):
            values = {'name': name, 'company': self.company_id,
                'criterion': criterion, 'points': points,
                'sequence': sequence * 10}
            if criterion == 'country':
                values['country'] = self.country[value]
            elif criterion == 'source':
                values['source'] = Source.from_name(value).id
            items.append((f'scoring-rule:{slug(name)}', values))
        self.reg.ensure('crm.lead.scoring.rule', items)
        # Only what nobody has set yet: the demo does not undo changes
        config_ = Configuration(1)
        if not config_.mql_team:
            Configuration.write([config_], {
                    'mql_threshold': MQL_THRESHOLD,
                    'mql_team': self.team[MQL_TEAM],
                    })

    def consents(self):
        """Contacts who subscribed to the newsletter on the web site, two
        of them confirmed by double opt-in"""
        rnd = random.Random(f'{self.seed}:consents')
        contacts = [k for a in self.accounts for k in a['contacts']]
        items = []
        for n, key in enumerate(rnd.sample(contacts, 6)):
            day = self.today - dt.timedelta(days=rnd.randint(20, 400))
            items.append((f'consent:{key}', {
                        'party': self.reg[key], 'email': self.email_of(key),
                        'status': 'opted_in',
                        'method': 'double_opt_in' if n < 2 else 'form',
                        'source': "Newsletter form on harbour-trading.de",
                        'date': local_to_utc(day, rnd.randint(7, 21),
                            rnd.randrange(60)),
                        }))
        self.reg.ensure('marketing.consent', items, match='email')

    def campaigns(self):
        """Each campaign planned by mia; those done or running started
        (and finished) as she would, with their results"""
        from trytond.transaction import Transaction
        Campaign = self.pool.get('marketing.campaign')
        rnd = random.Random(f'{self.seed}:marketing')
        # The UTM campaigns of the leads (utm()) are found by name
        ids = self.reg.ensure('marketing.campaign', [
                (f"campaign:{spec['name']}", {'name': spec['name']})
                for spec in CAMPAIGNS], match='name')
        for spec, campaign in zip(CAMPAIGNS, Campaign.browse(ids)):
            with Transaction().set_user(self.user['mia']):
                if not campaign.owner:
                    Campaign.write([campaign], self.campaign_plan(spec))
                campaign = Campaign(campaign.id)
                if spec['status'] == 'planned' or (
                        campaign.status != 'planned'):
                    continue
                Campaign.run([campaign])
            campaign = Campaign(campaign.id)
            if campaign.type == 'email':
                self.campaign_results(campaign, rnd)
            if spec['status'] == 'done':
                with Transaction().set_user(self.user['mia']):
                    Campaign.finish([campaign])

    def campaign_plan(self, spec):
        pool = self.pool
        Cost = pool.get('marketing.campaign.cost')
        Medium = pool.get('marketing.medium')
        today = self.today
        costs = []
        for description, amount, days, medium in spec.get('costs', []):
            cost = {'description': description, 'amount': Decimal(amount),
                'date': today + dt.timedelta(days=days)}
            # what the money paid for (the ROI by medium), where known
            if 'medium' in Cost._fields:
                cost['medium'] = Medium.from_name(medium).id
            costs.append(cost)
        values = {
            'type': spec['type'],
            'owner': self.user['mia'],
            'currency': self.currency['EUR'],
            'start_date': today + dt.timedelta(days=spec['start']),
            'end_date': (today + dt.timedelta(days=spec['end'])
                if 'end' in spec else None),
            'segment': self.segment.get(spec.get('segment')),
            'budget': Decimal(spec['budget']) if 'budget' in spec else None,
            'expected_revenue': (Decimal(spec['expected_revenue'])
                if 'expected_revenue' in spec else None),
            'goal_leads': spec.get('goal_leads'),
            'goals': spec.get('goals'),
            'costs': [('create', costs)],
            }
        emails = spec.get('emails') or (
            [('a', *spec['email'])] if spec.get('email') else [])
        if emails:
            values['variants'] = [('create', [{
                            'name': name, 'from_': NEWS_FROM,
                            'subject': subject, 'body': body,
                            } for name, subject, body in emails])]
        if spec.get('ab_test'):
            values.update(ab_test=True, ab_sample=spec['ab_sample'])
        return values

    def campaign_results(self, campaign, rnd):
        """The emails of a started campaign leave on its start day; who
        opened and clicked them in the days after (events of the scoring
        rules), who answered with a lead, unsubscribed or bounced"""
        pool = self.pool
        Member = pool.get('marketing.campaign.member')
        RecordActivity = pool.get('marketing.automation.record.activity')
        members = Member.search([('campaign', '=', campaign.id)],
            order=[('id', 'ASC')])
        sent = local_to_utc(campaign.start_date, 9, 30)
        # Dated first: the queue's own mark keeps that date
        Member.mark(members, 'sent', when=sent)
        outbox = self.send_quietly(campaign)
        assert len(outbox) == len(members), (len(outbox), len(members))
        activities = {ra.record.record.id: ra for ra in RecordActivity.search(
                [('record.scenario', '=', campaign.scenario.id)])}
        now = dt.datetime.now()
        opened, clicked = [], []
        for member in members:
            if rnd.random() >= OPEN_RATE:
                continue
            when = sent + dt.timedelta(minutes=rnd.randint(5, 3 * 24 * 60))
            if when > now:
                continue
            Member.mark([member], 'opened', when=when)
            opened.append(activities[member.id])
            if rnd.random() < CLICK_RATE:
                Member.mark([member], 'clicked',
                    when=when + dt.timedelta(minutes=rnd.randint(1, 20)))
                clicked.append(activities[member.id])
        # marketing_automation's own counts (its reporting)
        RecordActivity.on_email_opened(opened)
        RecordActivity.on_email_clicked(clicked)
        members = Member.browse([m.id for m in members])
        if campaign.name == 'spring-webinar':
            self.webinar_results(campaign, members, sent, rnd)
        else:
            self.launch_results(campaign, members, rnd)

    def send_quietly(self, campaign):
        """What trytond-cron and the queue do for the campaign's scenario
        (do of its due record activities): the emails are made, stored as
        ir.email and their members marked sent; the messages trytond keeps
        for the commit are then taken back, so that nothing connects to a
        mail server. The messages taken back"""
        from trytond.sendmail import SMTPDataManager
        from trytond.transaction import Transaction
        RecordActivity = self.pool.get('marketing.automation.record.activity')
        transaction = Transaction()

        def managers():
            return [m for m in transaction._datamanagers
                if isinstance(m, SMTPDataManager)]
        before = {id(m): len(m.queue) for m in managers()}
        RecordActivity.do(RecordActivity.search([
                    ('state', '=', 'waiting'),
                    ('record.scenario', '=', campaign.scenario.id),
                    ], order=[('id', 'ASC')]))
        outbox = []
        for manager in managers():
            start = before.get(id(manager), 0)
            outbox += [msg for _, _, msg in manager.queue[start:]]
            del manager.queue[start:]
            if id(manager) not in before:
                transaction._datamanagers.remove(manager)
        return outbox

    def webinar_results(self, campaign, members, sent, rnd):
        """The invitees whose company has a lead of the webinar responded
        (converted when won); one contact unsubscribed through the link of
        the email, the address of another one bounced"""
        pool = self.pool
        Lead = pool.get('crm.lead')
        Member = pool.get('marketing.campaign.member')
        Record = pool.get('marketing.automation.record')
        Consent = pool.get('marketing.consent')
        by_party = {m.party.id: m for m in members}
        leads = Lead.search([
                ('marketing_campaign', '=', campaign.id),
                ('party', 'in', list(by_party)),
                ], order=[('id', 'ASC')])
        for lead in leads:
            member = by_party[lead.party.id]
            when = sent + dt.timedelta(days=rnd.randint(1, 20),
                hours=rnd.randint(0, 6))
            Member.mark([member], 'clicked',
                when=when - dt.timedelta(hours=1))
            Member.mark([member], 'responded', when=when)
            if lead.state == 'won':
                closed = lead.date_closed
                if not closed or closed <= when:
                    closed = when + dt.timedelta(days=rnd.randint(14, 60))
                Member.mark([member], 'converted', when=closed)
        consented = {c.email for c in Consent.search([])}
        contacts = {self.reg[k] for a in self.accounts for k in a['contacts']}
        quiet = [m for m in Member.browse([m.id for m in members])
            if m.party.id in contacts and m.status == 'sent'
            and m.email not in consented]
        unsubscribed, bounced = rnd.sample(quiet, 2)
        # The unsubscribe link: marketing_automation blocks the record,
        # crm_marketing opts the address out of all marketing
        Record.block(Record.search([('record', '=', str(unsubscribed))]))
        Consent.write(Consent.search([('email', '=', unsubscribed.email)]),
            {'date': sent + dt.timedelta(days=2, hours=3)})
        # The mail server's report suppresses the address, marks it
        # undeliverable on the party and the member bounced
        self.reg.ensure('marketing.suppression', [
                (f'suppression:{bounced.email}', {
                        'email': bounced.email, 'reason': 'bounce',
                        'date': sent + dt.timedelta(minutes=4),
                        'detail': BOUNCE_DETAIL.format(
                            address=bounced.email),
                        })], match='email')

    def launch_results(self, campaign, members, rnd):
        """Two customers who clicked ask for the new tablet: their leads
        carry the campaign (the members respond)"""
        from trytond.transaction import Transaction
        pool = self.pool
        Member = pool.get('marketing.campaign.member')
        Medium = pool.get('marketing.medium')
        Source = pool.get('marketing.source')
        by_party = {self.reg[a['key']]: a for a in self.accounts}
        companies = [m for m in members if m.party.id in by_party]
        companies.sort(key=lambda m: (m.status != 'clicked', m.id))
        for member in companies[:2]:
            account = by_party[member.party.id]
            owner = account['owner']
            if member.status != 'clicked':
                Member.mark([member], 'clicked')
            with Transaction().set_user(self.user[owner]):
                self.reg.ensure('crm.lead', [(
                            f"lead:tablet-t12:{account['key']}", {
                                'type': 'opportunity',
                                'name': "Rugged Tablet T12 for the field "
                                "team",
                                'company': self.company_id,
                                'party': member.party.id,
                                'contact': self.reg[account['contacts'][0]],
                                'owner': self.user[owner],
                                'team': self.team[
                                    'Key Accounts' if owner == 'carol'
                                    else TEAM_OF[owner]],
                                'stage': self.ref('crm_core', 'stage_new'),
                                'priority': '2',
                                'expected_revenue': Decimal(
                                    rnd.choice([12000, 18000, 24000])),
                                'expected_close': self.today
                                + dt.timedelta(days=rnd.randint(20, 45)),
                                'marketing_campaign': campaign.id,
                                'marketing_medium':
                                Medium.from_name('email').id,
                                'marketing_source':
                                Source.from_name('newsletter').id,
                                })])

    def reports(self):
        """Targets of this quarter, win probabilities, a scheduled report
        (crm_reports only)"""
        from trytond.transaction import Transaction
        Lead = self.pool.get('crm.lead')
        quarter = self.today.replace(
            month=(self.today.month - 1) // 3 * 3 + 1, day=1)
        months = [quarter.replace(month=quarter.month + i) for i in range(3)]
        items = [(f'target:{login}:{month}', {
                    'company': self.company_id, 'user': self.user[login],
                    'period_type': 'month', 'period_start': month,
                    'amount': Decimal(amount),
                    }) for login, amount in REPORT_TARGETS
            for month in months]
        items += [(f'target:{team}:{quarter}', {
                    'company': self.company_id, 'team': self.team[team],
                    'period_type': 'quarter', 'period_start': quarter,
                    'amount': Decimal(amount),
                    }) for team, amount in TEAM_TARGETS]
        self.reg.ensure('crm.target', items)
        Lead.update_win_probabilities()
        # Its owner is who sets it up: the manager
        with Transaction().set_user(self.user['manager']):
            self.reg.ensure('crm.report.subscription', [
                    ('subscription:pipeline', {
                            'name': "Direct Sales pipeline",
                            'company': self.company_id,
                            'analysis': 'crm.report.pipeline',
                            'date_range': 'month_to_date',
                            'period': 'month',
                            'team': self.team["Direct Sales"],
                            'format': 'pdf',
                            'users': [('add', [self.user['manager']])],
                            'frequency': 'monthly',
                            'day': 1,
                            'time': dt.time(7, 0),
                            'timezone': 'Europe/Berlin',
                            })])

    def config_wizard(self):
        Item = self.pool.get('ir.module.config_wizard.item')
        items = Item.search([('state', '!=', 'done')])
        if items:
            Item.write(items, {'state': 'done'})


def demo_call(call_id, caller, queue, extension, at, rnd):
    """The CTI events of one call: answered (80 %), abandoned in the
    queue or missed"""
    def event(type_, seconds, **values):
        return {
            'event_id': f'{call_id}:{type_}', 'call_id': call_id,
            'type': type_, 'direction': 'inbound',
            'timestamp': at + dt.timedelta(seconds=seconds),
            'from_number': caller, 'to_number': queue,
            'queue_number': queue, 'extension': extension,
            'digits': None, 'target': None, 'reason': None,
            'recording_url': None, **values}
    ring = rnd.randint(3, 40)
    luck = rnd.random()
    if luck < 0.8:
        talk = int(rnd.expovariate(1 / 240)) + 20
        return [event('ringing', 0), event('answered', ring),
            event('ended', ring + talk)]
    reason = 'abandoned' if luck < 0.93 else 'no_answer'
    return [event('ringing', 0), event('missed', ring, reason=reason)]


def summary(created, elapsed):
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    pool = Pool()
    company = Pool().get('company.company').search(
        [('party.name', '=', COMPANY_NAME)])[0]
    ModelData = pool.get('ir.model.data')
    with Transaction().set_context(active_test=False):
        Party = pool.get('party.party')
        Lead = pool.get('crm.lead')
        Activity = pool.get('crm.activity')
        rows = [
            ("users", pool.get('res.user').search_count(
                    [('login', 'in', [u[0] for u in USERS])])),
            # sales teams; the support teams have their own line
            ("teams", pool.get('crm.team').search_count(
                    [('name', 'in', [t[0] for t in TEAMS])])),
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
        helpdesk = 'helpdesk.ticket' in dict(pool.iterobject())
        if helpdesk:
            Ticket = pool.get('helpdesk.ticket')
            Message = pool.get('ir.chat.message')
            tickets = ('channel.resource', 'like', 'helpdesk.ticket,%')
            rows += [
                ("support agents", pool.get('res.user').search_count([
                            ('groups', '=', ModelData.get_id(
                                    'crm_helpdesk', 'group_helpdesk_user')),
                            ('login', '!=', 'admin'),
                            ])),
                ("support teams", pool.get('crm.team').search_count(
                        [('name', 'in', [t[0] for t in SUPPORT_TEAMS])])),
                ("SLA policies", pool.get('helpdesk.sla').search_count([])),
                ("canned responses",
                    pool.get('helpdesk.template').search_count([])),
                ("tickets", Ticket.search_count([])),
                ]
            rows += [(f"  {label.lower()}", Ticket.search_count(
                        [('stage.kind', '=', kind)]))
                for kind, label in Ticket.fields_get(['kind'])[
                    'kind']['selection']]
            rows += [
                ("  at risk", Ticket.search_count(
                        [('sla_status', '=', 'at_risk')])),
                ("  breached", Ticket.search_count(
                        [('sla_status', '=', 'breached')])),
                ("  rated", Ticket.search_count([('rating', '!=', None)])),
                ("  merged", Ticket.search_count(
                        [('merged_into', '!=', None)])),
                ("ticket messages", Message.search_count(
                        [tickets, ('audience', '=', 'public')])),
                ("internal notes", Message.search_count(
                        [tickets, ('audience', '=', 'internal')])),
                ]
    if 'callcenter.call' in dict(pool.iterobject()):
        Call = pool.get('callcenter.call')
        rows += [
            ("call queues", pool.get('callcenter.queue').search_count([])),
            ("call agents", pool.get('callcenter.agent').search_count([])),
            ("calls", Call.search_count([])),
            ("  answered", Call.search_count([('state', '=', 'ended')])),
            ("  not answered", Call.search_count(
                    [('state', 'in', ['missed', 'abandoned'])])),
            ]
    if 'crm.segment' in dict(pool.iterobject()):
        Segment = pool.get('crm.segment')
        Campaign = pool.get('marketing.campaign')
        Member = pool.get('marketing.campaign.member')
        Lead = pool.get('crm.lead')
        rows += [
            ("marketing users", pool.get('res.user').search_count([
                        ('groups', '=', ModelData.get_id(
                                'crm_marketing', 'group_marketing_user')),
                        ('login', '!=', 'admin'),
                        ])),
            ("segments", Segment.search_count([])),
            ("  static lists", Segment.search_count(
                    [('kind', '=', 'static')])),
            ]
        rows += [(f"campaigns {status}", Campaign.search_count(
                    [('status', '=', status)]))
            for status in ['planned', 'running', 'done']]
        rows += [
            ("campaign members", Member.search_count([])),
            ("  reached", Member.search_count([('sent', '!=', None)])),
            ("  clicked", Member.search_count([('clicked', '!=', None)])),
            ("  unsubscribed", Member.search_count(
                    [('status', '=', 'unsubscribed')])),
            ("  bounced", Member.search_count([('status', '=', 'bounced')])),
            ("consents", pool.get('marketing.consent').search_count([])),
            ("suppressed addresses",
                pool.get('marketing.suppression').search_count([])),
            ("scoring rules",
                pool.get('crm.lead.scoring.rule').search_count([])),
            ("scored leads", Lead.search_count(
                    [('marketing_score', '>', 0)])),
            ("qualified leads", Lead.search_count(
                    [('marketing_qualified', '!=', None)])),
            # (won revenue - cost) / cost of the best finished campaign
            ("best ROI %", max([round(c.roi * 100) for c in Campaign.search(
                            [('status', '=', 'done')]) if c.roi] or [0])),
            ]
    print(f"Demo data in company {company.rec_name} "
        f"({sum(created.values())} records created, {elapsed:.1f} s):")
    for label, count in rows:
        print(f"  {label:<20} {count:>6}")
    logins = ["manager", "alice", "bob", "carol"]
    if helpdesk:
        logins.append("dora (support agent)")
    if 'crm.segment' in dict(pool.iterobject()):
        logins.append("mia (marketing)")
    logins = ', '.join(logins[:-1]) + ' or ' + logins[-1]
    print(f"Log in as {logins} with password {PASSWORD}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-d', '--database',
        default=os.environ.get('CRM_DB_NAME', 'crm_demo'))
    parser.add_argument('--seed', type=int, default=2026)
    options = parser.parse_args()

    from trytond.pool import Pool
    from trytond.transaction import Transaction, TransactionError

    start = time.monotonic()
    Pool(options.database).init()
    # A singleton's first record (the helpdesk configuration) locks its
    # table: trytond asks to start again with the lock taken first
    extras = {}
    while True:
        with Transaction().start(options.database, 0,
                context={'language': 'en'}, **extras) as transaction:
            try:
                created = DemoData(options.seed).run()
            except TransactionError as error:
                transaction.rollback()
                error.fix(extras)
                continue
        break
    with Transaction().start(options.database, 0, readonly=True):
        summary(created, time.monotonic() - start)


if __name__ == '__main__':
    sys.exit(main())
