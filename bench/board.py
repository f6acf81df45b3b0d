#!/usr/bin/env python3
"""Pipeline board query time: crm.lead.board.get_board(team, {}) for a CRM
user of the team (record rules on), on 100,000 opportunities of 20,000
parties in two teams. Median of 20 calls after 2 warm-up calls."""
import datetime as dt
import random
import sys

import benchlib
from benchlib import check

RUNS = 20
WARMUP = 2


def insert_activities(name, sales, share=0.3, seed=7):
    """A planned activity for a share of the open opportunities (the cards
    show the next one), some overdue. Return how many."""
    from sql import Table
    from trytond.transaction import Transaction
    rnd = random.Random(seed)
    lead = Table('crm_lead')
    activity = Table('crm_activity')
    now = dt.datetime.now().replace(microsecond=0)
    with benchlib.transaction(name):
        cursor = Transaction().connection.cursor()
        cursor.execute(*lead.select(lead.id, lead.party, lead.owner,
                where=lead.state == 'open', order_by=[lead.id]))
        rows = []
        for lead_id, party, owner in cursor.fetchall():
            if rnd.random() >= share:
                continue
            start = now + dt.timedelta(minutes=rnd.randint(
                    -7 * 24 * 60, 21 * 24 * 60))
            rows.append(['call', f"Follow-up {lead_id}",
                    sales['company'], party, f'crm.lead,{lead_id}', start,
                    start + dt.timedelta(minutes=30), owner, 'planned', False,
                    sales['admin'], now])
        columns = ['type', 'subject', 'company', 'party', 'origin', 'start',
            'end', 'user', 'state', 'reminded', 'create_uid', 'create_date']
        for batch in benchlib.batches(rows):
            cursor.execute(*activity.insert(
                    [getattr(activity, c) for c in columns], batch))
    return len(rows)


def populate(name, sales, leads, parties):
    from trytond.transaction import Transaction
    party_ids = benchlib.insert_parties(name, parties, sales['admin'])
    with benchlib.transaction(name, sales['admin']):
        vlist = benchlib.lead_values(leads, sales, party_ids)
        rows = benchlib.lead_rows(vlist, sales['admin'])
        benchlib.insert_leads(Transaction().connection.cursor(), rows)
    activities = insert_activities(name, sales)
    benchlib.analyze(name)
    benchlib.log(f"populated {leads} opportunities, {parties} parties, "
        f"{activities} planned activities")


def board_call(name, user, context, team):
    "A function that calls get_board in its own transaction, as an RPC would"
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    result = {}

    def call():
        with Transaction().start(
                name, user, readonly=True, context=context):
            Board = Pool().get('crm.lead.board')
            result['board'] = Board.get_board(team, {})
    return call, result


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        leads=(100_000, 5_000), parties=(20_000, 1_000))
    with benchlib.bench_database(keep=options.keep) as name:
        from trytond.pool import Pool
        if 'crm.lead.board' not in dict(Pool(name).iterobject()):
            sys.exit("crm.lead.board is missing: crm_core has no board yet")
        sales = benchlib.setup_sales(name)
        populate(name, sales, options.leads, options.parties)
        team = sales['teams'][0]
        user = sales['members'][team][0]
        context = {
            'company': sales['company'],
            'companies': [sales['company']],
            'language': 'en',
            '_check_access': True,
            }
        call, result = board_call(name, user, context, team)
        with benchlib.profiled(options.profile):
            median, durations = benchlib.median_ms(
                call, runs=RUNS, warmup=WARMUP)
        stages = result['board']['stages']
        benchlib.log("board of team {}: {}".format(team, ', '.join(
                    f"{s['name']} {s['count']} ({len(s['cards'])} cards)"
                    for s in stages)))
        benchlib.log("runs (ms): " + ' '.join(f'{d:.0f}' for d in durations))
        check(all(len(s['cards']) <= 50 for s in stages))
        check(sum(s['count'] for s in stages) > 0)
    benchlib.print_figures([('board_query_ms', median, 'ms')])


if __name__ == '__main__':
    main()
