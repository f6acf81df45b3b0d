#!/usr/bin/env python3
"""CSV import of parties: the bulk path of crm.import (with duplicate
matching) against the plain ORM Party.create in batches of 500.
Target: 500 rows/s for parties with email, phone and address."""
import csv
import io
import random

import benchlib
from benchlib import check

TARGET = 500
# country code, name, national prefix of phone numbers, digits after it,
# city
COUNTRIES = [
    ('DE', "Germany", "030 ", 8, "Berlin"),
    ('FR', "France", "01 4", 7, "Paris"),
    ('GB', "United Kingdom", "020 3", 7, "London"),
    ('US', "United States", "(415) 2", 6, "San Francisco"),
    ('HU', "Hungary", "06 1 ", 7, "Budapest"),
    ]
HEADER = ['Company', 'E-mail Address', 'Business Phone', 'Street', 'ZIP',
    'City', 'Country']


def phone(rnd, code, prefix, digits):
    "A valid phone number in national format and its E.164 form"
    import phonenumbers
    while True:
        text = prefix + ''.join(str(rnd.randrange(10)) for _ in range(digits))
        number = phonenumbers.parse(text, code)
        if phonenumbers.is_valid_number(number):
            return text, phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.E164)


SYLLABLES = ('ka ro mi ne tor vel san dra lu pex bor qui zen fa gol hem '
    'jus lin mar nov ost pra rek sul tam ux vor wil yan zor bri cle dun '
    'eri fro gla hil ist jor kel lom mun nar oli pel ric sto tri una').split()
WORDS = ['Trading', 'Consulting', 'Systems', 'Foods', 'Logistics', 'Design',
    'Partners', 'Industries', 'Media', 'Bakery', 'Garage', 'Studio']
LEGAL = ['GmbH', 'Ltd', 'SA', 'Kft.', 'Inc', 'SARL', '']


def company_name(rnd, i):
    "A company name as varied as real ones (trigram matching depends on it)"
    word = ''.join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 3)))
    return ' '.join(filter(None, [
                word.title(), rnd.choice(WORDS), f"{i:x}",
                rnd.choice(LEGAL)]))


def make_rows(count, prefix, rnd):
    "count distinct parties: (csv row, e164)"
    rows = []
    for i in range(count):
        code, country, national, digits, city = rnd.choice(COUNTRIES)
        text, e164 = phone(rnd, code, national, digits)
        rows.append(([
                    company_name(rnd, i),
                    f"contact.{prefix.lower()}{i:06d}@example.com",
                    text,
                    f"{rnd.randrange(1, 200)} Bench Street",
                    f"{rnd.randrange(10000, 99999)}",
                    city,
                    rnd.choice([code, country]),
                    ], e164))
    return rows


def make_file(existing, count, rnd):
    """The CSV file: count rows, ~2.5% the same party as an existing one
    (email in other case or phone in other format), ~2.5% the same as an
    earlier row of the file. Return (bytes, expected duplicates)."""
    fresh = make_rows(count, 'Import', rnd)
    lines = [r for r, _ in fresh]
    db_dups = file_dups = 0
    for i in range(count):
        draw = rnd.random()
        if draw < 0.025 and existing:
            row, e164 = rnd.choice(existing)
            row = list(row)
            if rnd.random() < 0.5:
                row[1] = row[1].upper()
            else:
                row[1] = ''
                row[2] = e164
            lines[i] = row
            db_dups += 1
        elif draw < 0.05 and i > 0:
            row = list(lines[rnd.randrange(i)])
            if not row[1]:
                continue
            row[1] = row[1].title()
            lines[i] = row
            file_dups += 1
    out = io.StringIO()
    writer = csv.writer(out, delimiter=';', lineterminator='\r\n')
    writer.writerow(HEADER)
    writer.writerows(lines)
    return out.getvalue().encode('cp1252'), db_dups, file_dups


def setup_countries(name):
    from trytond.pool import Pool
    with benchlib.transaction(name):
        Country = Pool().get('country.country')
        countries = Country.create([{'code': c, 'name': n}
                for c, n, *_ in COUNTRIES])
        return {c.code: c.id for c in countries}


def populate(name, sales, rows, countries):
    """The existing parties (not measured), inserted with raw SQL as a
    migration would: party with its normalised name, email, phone and
    address, then VACUUM ANALYZE as autovacuum would do"""
    import datetime as dt

    from sql import Table
    from trytond.transaction import Transaction

    from crm_core.contact import normalise_name
    party = Table('party_party')
    mechanism = Table('party_contact_mechanism')
    address = Table('party_address')
    names = {n: c for c, n, *_ in COUNTRIES}
    admin = sales['admin']
    now = dt.datetime.now()
    for start in range(0, len(rows), 2000):
        batch = rows[start:start + 2000]
        with benchlib.transaction(name):
            cursor = Transaction().connection.cursor()
            cursor.execute(*party.insert(
                    [party.name, party.name_normalised, party.code,
                        party.active, party.lifecycle_status,
                        party.quality_score, party.create_uid,
                        party.create_date],
                    [[row[0], normalise_name(row[0]) or None,
                            f'E{start + i:07d}', True, 'prospect', 0, admin,
                            now] for i, (row, _) in enumerate(batch)],
                    returning=[party.id]))
            ids = [r for r, in cursor]
            mechanisms, addresses = [], []
            for party_id, (row, e164) in zip(ids, batch):
                mechanisms.append([party_id, 'email', row[1], row[1], True,
                        admin, now])
                mechanisms.append([party_id, 'phone', row[2], e164, True,
                        admin, now])
                addresses.append([party_id, row[3], row[4], row[5],
                        countries[names.get(row[6], row[6])], True, admin,
                        now])
            cursor.execute(*mechanism.insert(
                    [mechanism.party, mechanism.type, mechanism.value,
                        mechanism.value_compact, mechanism.active,
                        mechanism.create_uid, mechanism.create_date],
                    mechanisms))
            cursor.execute(*address.insert(
                    [address.party, address.street_unstructured,
                        address.postal_code, address.city, address.country,
                        address.active, address.create_uid,
                        address.create_date],
                    addresses))
    benchlib.vacuum(name)


def run_import(name, sales, content, profile=None):
    "The measured import: read, map, validate, match, write; one commit"
    from trytond.pool import Pool
    with benchlib.profiled(profile):
        with benchlib.transaction(name, sales['admin'],
                {'company': sales['company']}):
            Import = Pool().get('crm.import')
            imp = Import.from_file(content, 'bench.csv', duplicates='update')
            Import.process([imp])
            return {k: getattr(imp, k) for k in [
                    'rows', 'created', 'updated', 'merged', 'skipped',
                    'rejected', 'encoding', 'delimiter']}


def orm_baseline(name, sales, rows, countries):
    """Party.create with contact mechanisms and address, 500 per call, a
    transaction per call"""
    from trytond.pool import Pool
    names = {n: c for c, n, *_ in COUNTRIES}
    vlist = []
    for row, e164 in rows:
        code = names.get(row[6], row[6])
        # E.164: the ORM validates the phone before the address exists
        vlist.append({
                'name': row[0],
                'contact_mechanisms': [('create', [
                            {'type': 'email', 'value': row[1]},
                            {'type': 'phone', 'value': e164}])],
                'addresses': [('create', [{
                                'street': row[3], 'postal_code': row[4],
                                'city': row[5], 'country': countries[code],
                                }])],
                })
    for batch in benchlib.batches(vlist, 500):
        with benchlib.transaction(name, sales['admin'],
                {'company': sales['company']}):
            Pool().get('party.party').create(batch)


def count_parties(name):
    from trytond.transaction import Transaction
    with benchlib.transaction(name, readonly=True):
        cursor = Transaction().connection.cursor()
        cursor.execute('SELECT COUNT(*) FROM party_party')
        return cursor.fetchone()[0]


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        rows=(50_000, 5_000), baseline=(2_000, 500),
        existing=(200_000, 20_000))
    rnd = random.Random(42)
    with benchlib.bench_database(keep=options.keep) as name:
        sales = benchlib.setup_sales(name)
        countries = setup_countries(name)
        existing = make_rows(options.existing, 'Existing', rnd)
        benchlib.log(f"populating {len(existing)} parties")
        _, seconds = benchlib.timed(
            populate, name, sales, existing, countries)
        benchlib.log(f"population: {seconds:.0f} s")
        benchlib.analyze(name)
        content, db_dups, file_dups = make_file(existing, options.rows, rnd)
        benchlib.log(f"importing {options.rows} rows ({len(content):,} "
            f"bytes; {db_dups} duplicates of the database, {file_dups} "
            "inside the file)")
        before = count_parties(name)
        result, import_s = benchlib.timed(
            run_import, name, sales, content, options.profile)
        import_rate = result['rows'] / import_s
        benchlib.log(f"import: {import_s:.1f} s, {import_rate:.0f} rows/s, "
            f"{result}")
        created = count_parties(name) - before
        check(result['rows'] == options.rows, result)
        check((result['created'] + result['updated'] + result['merged']
            + result['skipped'] + result['rejected']) == result['rows'])
        check(result['rejected'] == 0, result)
        check(created == result['created'], (created, result))
        check(result['updated'] >= db_dups * 0.9, (result, db_dups))

        baseline = make_rows(options.baseline, 'Baseline', rnd)
        benchlib.log(f"ORM baseline: creating {len(baseline)} parties")
        _, orm_s = benchlib.timed(
            orm_baseline, name, sales, baseline, countries)
        orm_rate = len(baseline) / orm_s
        benchlib.log(f"ORM: {orm_s:.1f} s, {orm_rate:.0f} parties/s")
        if import_rate < TARGET:
            benchlib.log(f"below the target of {TARGET} rows/s: "
                "profile with --profile FILE")
    benchlib.print_figures([
            ('import_rows_per_s', round(import_rate), 'rows/s'),
            ('import_orm_baseline_per_s', round(orm_rate), 'parties/s'),
            ])


if __name__ == '__main__':
    main()
