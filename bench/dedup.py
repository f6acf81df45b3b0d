"""The duplicate check of one new lead against 200,000 parties.

Population (raw SQL, not measured): parties with realistic, varied names
(people and companies with legal forms), their normalised names, one email
and one phone each. Then, for 200 new leads (half of them matching an
existing party by email, phone or a variant of its name, half new), time
Party.duplicate_candidates(name, emails, phones), each call in its own
read-only transaction like an RPC.

figure: dedup_check_ms  median of the 200 calls (target < 20 ms)
"""
import datetime as dt
import random
import statistics
import sys
import time

import benchlib
from benchlib import batches, log, transaction

FIRST_NAMES = """
    Adam Agnes Ahmed Aiko Alba Albert Alessandro Alice Amelie Ana Anders Andrea
    Anna Antoine Arjun Astrid Aurelie Balazs Beatriz Benedikt Bernadette Bjorn
    Boris Camille Carlos Carmen Chiara Chloe Christoph Clara Daniel Dario David
    Denise Dominik Eduardo Elena Elif Elisa Emil Emma Enrico Erik Esther Eva
    Fabian Fatima Felix Fernando Florian Francesca Francois Frida Gabor Gabriel
    Georg Gianluca Greta Guillaume Hana Hannah Hans Helena Henrik Hugo Ida Ilse
    Imre Ines Ingrid Isabel Ivan Jakob Jan Javier Jean Johanna Jonas Jorge Jose
    Julia Julien Karl Katalin Klara Lars Laura Lea Leon Lina Lorenzo Louis
    Lucia Luis Magnus Maja Manuel Marco Margit Maria Marie Marta Martin Mateo
    Matteo
    Max Mia Miguel Mikael Nadia Nils Noah Nora Olga Oliver Oscar Paolo Pascal
    Paul Pedro Peter Pierre Rafael Rita Robert Rosa Samuel Sara Sebastian Sofia
    Sophie Stefan Susanne Sven Tamas Theo Thomas Tobias Ulla Valentina Victor
    Viktor Walter Yasmin Yusuf Zoe Zoltan
    """.split()
LAST_NAMES = """
    Abbott Albrecht Alvarez Andersson Arnold Bach Baker Balogh Barbieri Bauer
    Becker Berg Bernard Bianchi Blanc Bonnet Brandt Braun Brown Bruno Castro
    Colombo Costa Dahl Dubois Durand Eriksson Esposito Farkas Fernandez Ferrari
    Fischer Fontaine Fournier Frank Fuchs Garcia Gallo Garnier Gomez Gonzalez
    Graf Greco Gustafsson Hahn Hansen Hartmann Hofmann Horvath Huber Jansen
    Jensen Johansson Jones Kaiser Keller Klein Koch Kovacs Kraus Krause Kuhn
    Lambert Lang Larsen Laurent Lehmann Leroy Lopez Lorenz Ludwig Lombardi
    Marchetti Martin Martinez Meier Mercier Meyer Molnar Moreau Moreno Morel
    Muller Nagy Neumann Nielsen Novak Olsen Olsson Ortiz Papp Pedersen Perez
    Peters Petit Pohl Rossi Ramirez Richter Rizzo Roux Ruiz Russo Santos
    Schafer Schmid Schmidt Schneider Scholz Schubert Schulz Schwarz Silva Simon
    Smith Sorensen Svensson Szabo Taylor Thomas Toth Vargas Varga Vincent Vogel
    Wagner Walter Weber Weiss Werner Williams Wilson Wolf Wagner Zimmermann
    """.split()
SYLLABLES = """
    al an ar ba be bel bor bra ca cer cho da del dor dra el en er fa fel fin
    gar gen gla gri ha hel hor il in is ja jor ka kel kor la len lin lor ma
    mar mel min mon na nel nor ol or pa pel por qua ra rel rin ros sa sel sin
    sor ta tel tor tra ul ur va vel vin wal wen xa yor za zel zor
    """.split()
TRADES = [
    'Bau', 'Logistik', 'Systems', 'Consulting', 'Foods', 'Trading',
    'Design', 'Motors', 'Textil', 'Software', 'Immobilien', 'Partners',
    'Electric', 'Medical', 'Transport', 'Studio', 'Energy', 'Pharma',
    'Print', 'Garden', 'Optics', 'Solar', 'Robotics', 'Bakery',
    ]
LEGAL = ['Ltd', 'GmbH', 'Kft.', 'S.A.', 'SARL', 'Inc.', 'LLC', 'BV', 'AG',
    'Oy', 'AB', 'S.p.A.', '']
ACCENTS = str.maketrans('aeiou', 'áéíóü')


def word(rnd, parts):
    return ''.join(rnd.choice(SYLLABLES) for _ in range(parts)).title()


def surname(rnd):
    "A surname from the list, a double one or an invented one"
    draw = rnd.random()
    if draw < 0.5:
        return rnd.choice(LAST_NAMES)
    if draw < 0.65:
        return f'{rnd.choice(LAST_NAMES)}-{rnd.choice(LAST_NAMES)}'
    return word(rnd, rnd.choice([2, 3]))


def party_name(rnd, i):
    "Two thirds people, one third companies"
    if i % 3:
        return f'{rnd.choice(FIRST_NAMES)} {surname(rnd)}'
    brand = surname(rnd) if rnd.random() < 0.5 else word(rnd, 3)
    return f'{brand} {rnd.choice(TRADES)} {rnd.choice(LEGAL)}'.strip()


def populate(name, count, admin):
    """Insert count parties with their normalised name, an email and a
    phone (raw SQL). Return [(id, name, email, phone)]."""
    from sql import Table
    from trytond.transaction import Transaction

    from crm_core.contact import normalise_name
    rnd = random.Random(7)
    party = Table('party_party')
    mechanism = Table('party_contact_mechanism')
    now = dt.datetime.now()
    parties = []
    with transaction(name):
        cursor = Transaction().connection.cursor()
        rows = []
        for i in range(1, count + 1):
            full_name = party_name(rnd, i)
            rows.append([full_name, normalise_name(full_name) or None,
                    f'D{i:07d}', True, 'prospect', 0, admin, now])
        ids = []
        for batch in batches(rows, 1000):
            cursor.execute(*party.insert(
                    [party.name, party.name_normalised, party.code,
                        party.active, party.lifecycle_status,
                        party.quality_score, party.create_uid,
                        party.create_date],
                    batch, returning=[party.id]))
            ids.extend(r for r, in cursor)
        mechanisms = []
        for party_id, row in zip(ids, rows):
            email = f'contact{party_id}@{row[1].split()[0]}.example'
            phone = f'+331{party_id:08d}'
            parties.append((party_id, row[0], email, phone))
            mechanisms.append([party_id, 'email', email, email, True,
                    admin, now])
            mechanisms.append([party_id, 'phone', phone, phone, True,
                    admin, now])
        for batch in batches(mechanisms, 1000):
            cursor.execute(*mechanism.insert(
                    [mechanism.party, mechanism.type, mechanism.value,
                        mechanism.value_compact, mechanism.active,
                        mechanism.create_uid, mechanism.create_date],
                    batch))
    return parties


def variant(name):
    "The same name as people retype it: case, accents, legal form"
    words = name.split()
    if words[-1] in LEGAL:
        words = words[:-1] + [random.choice(['Limited', 'GmbH', 'SA'])]
    return ' '.join(words).upper().translate(ACCENTS) if len(
        words) % 2 else ' '.join(words).lower()


def lead_data(parties, count, seed=11):
    "Half matching (by email, phone or name), half new"
    rnd = random.Random(seed)
    random.seed(seed)
    leads = []
    for i in range(count):
        if i % 2:
            leads.append(({'name': party_name(rnd, i),
                        'emails': [f'new{i}@nowhere.example'],
                        'phones': [f'+4930{i:07d}']}, None))
            continue
        party_id, name, email, phone = rnd.choice(parties)
        kind = (i // 2) % 3
        data = {'name': party_name(rnd, i), 'emails': [],
            'phones': []}
        if kind == 0:
            data['emails'] = [email.upper()]
        elif kind == 1:
            data['phones'] = [phone]
        else:
            data['name'] = variant(name)
        leads.append((data, party_id))
    return leads


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        parties=(200_000, 10_000), leads=(200, 200))
    with benchlib.bench_database('crm_bench_dedup', keep=options.keep) as db:
        from trytond.pool import Pool
        with transaction(db) as tx:
            admin = benchlib.ref('res', 'user_admin')
            cursor = tx.connection.cursor()
            cursor.execute(
                "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'")
            log(f"pg_trgm installed: {bool(cursor.fetchall())}")
        start = time.monotonic()
        parties = populate(db, options.parties, admin)
        log(f"inserted {len(parties)} parties with an email and a phone "
            f"in {time.monotonic() - start:.0f} s")
        benchlib.vacuum(db, ['party_party', 'party_contact_mechanism'])
        leads = lead_data(parties, options.leads)

        durations = []
        found = expected = 0
        with benchlib.profiled(options.profile):
            for data, party_id in leads:
                with transaction(db, readonly=True):
                    Party = Pool().get('party.party')
                    begin = time.perf_counter()
                    candidates = Party.duplicate_candidates(
                        name=data['name'], emails=data['emails'],
                        phones=data['phones'])
                    durations.append((time.perf_counter() - begin) * 1000)
                    if party_id is not None:
                        expected += 1
                        found += any(p.id == party_id
                            for p, _, _ in candidates)
        durations_sorted = sorted(durations)
        log(f"{len(durations)} checks: median "
            f"{statistics.median(durations):.2f} ms, p90 "
            f"{durations_sorted[int(len(durations) * 0.9)]:.2f} ms, max "
            f"{durations_sorted[-1]:.2f} ms; matching leads found "
            f"{found}/{expected}")
        if found < expected * 0.95:
            sys.exit(f"only {found} of {expected} matching leads found")
    benchlib.print_figures([
            ('dedup_check_ms', statistics.median(durations), 'ms')])


if __name__ == '__main__':
    main()
