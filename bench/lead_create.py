#!/usr/bin/env python3
"""Lead creation throughput: crm.lead through the ORM (Lead.create of
500 leads per transaction) against a raw multi-row SQL INSERT of the same
rows into crm_lead. Target: 1,500 leads/s through the ORM."""
import benchlib
from benchlib import check

TARGET = 1500


def create_orm(name, sales, vlist, profile=None):
    "Lead.create per batch, one transaction per batch, as an import would"
    from trytond.pool import Pool
    context = {'company': sales['company']}
    with benchlib.profiled(profile):
        for batch in benchlib.batches(vlist):
            with benchlib.transaction(name, sales['admin'], context):
                Pool().get('crm.lead').create(batch)


def create_raw(name, rows):
    "The same rows with one INSERT per batch, one transaction per batch"
    from trytond.transaction import Transaction
    for batch in benchlib.batches(rows):
        with benchlib.transaction(name):
            benchlib.insert_leads(Transaction().connection.cursor(), batch)


def count(name, table):
    from trytond.transaction import Transaction
    with benchlib.transaction(name, readonly=True):
        cursor = Transaction().connection.cursor()
        cursor.execute(f'SELECT COUNT(*) FROM {table}')
        return cursor.fetchone()[0]


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        leads=(100_000, 5_000), parties=(20_000, 1_000))
    with benchlib.bench_database(keep=options.keep) as name:
        sales = benchlib.setup_sales(name)
        parties = benchlib.insert_parties(
            name, options.parties, sales['admin'])
        benchlib.analyze(name)
        with benchlib.transaction(name, sales['admin'], readonly=True):
            vlist = benchlib.lead_values(options.leads, sales, parties)
            rows = benchlib.lead_rows(vlist, sales['admin'])
        benchlib.log(f"creating {len(vlist)} leads through the ORM")
        _, orm_s = benchlib.timed(
            create_orm, name, sales, vlist, options.profile)
        orm_rate = len(vlist) / orm_s
        benchlib.log(f"ORM: {orm_s:.1f} s, {orm_rate:.0f} leads/s")
        history = count(name, 'crm_lead_history')

        benchlib.log(f"inserting {len(rows)} rows with raw SQL")
        _, raw_s = benchlib.timed(create_raw, name, rows)
        raw_rate = len(rows) / raw_s
        benchlib.log(f"raw SQL: {raw_s:.1f} s, {raw_rate:.0f} rows/s")
        total = count(name, 'crm_lead')
        check(total == 2 * len(vlist), total)
        check(history == len(vlist), history)
        benchlib.log(f"{total} rows in crm_lead, {history} history rows")
        if orm_rate < TARGET:
            benchlib.log(f"below the target of {TARGET} leads/s: "
                "profile with --profile FILE")
    benchlib.print_figures([
            ('lead_create_per_s', round(orm_rate), 'leads/s'),
            ('lead_create_raw_sql_per_s', round(raw_rate), 'rows/s'),
            ('lead_create_ratio', orm_rate / raw_rate, 'x'),
            ])


if __name__ == '__main__':
    main()
