#!/usr/bin/env python3
"""Win probability calibration: naive Bayes trained on the older 80 % of
60,000 closed opportunities, predicting the newer 20 % held out; and the
time of the cron's refresh of 40,000 open opportunities."""
import datetime as dt
import math
import random
from decimal import Decimal

import benchlib
from benchlib import check

# The generator's truth: logit contributions (unknown to the model, which
# sees only the features, not the noise)
STAGES = [
    # crm_core xml id, share, effect on the logit, age factor
    ('stage_new', 25, -1.6, 0.6),
    ('stage_qualified', 30, -0.6, 0.9),
    ('stage_proposition', 25, 0.3, 1.2),
    ('stage_negotiation', 20, 1.1, 1.5),
    ]
SOURCES = [
    # name (None: no source), share, effect
    (None, 20, 0.0),
    ("Web Site", 30, -0.2),
    ("Referral", 12, 0.9),
    ("Trade Fair", 13, 0.3),
    ("Cold Call", 15, -0.8),
    ("Partner", 10, 0.5),
    ]
# Effect of each salesperson (benchlib.SALESPEOPLE) and team (TEAMS)
OWNER_EFFECTS = [0.4, -0.3, 0.1, -0.2]
TEAM_EFFECTS = [0.0, 0.2]
BASE = -0.3
NOISE = 0.7
BANDS = 10


def draw(rnd, choices):
    return rnd.choices(choices, [c[1] for c in choices])[0]


def logit(stage, source, owner, team, amount, age):
    return (BASE + stage[2] + source[2] + OWNER_EFFECTS[owner]
        + TEAM_EFFECTS[team]
        # bigger deals are harder to win, long ones get lost
        - 0.35 * math.log10(amount / 5000)
        - 0.5 * max(0.0, math.log2(age / 60))
        + (0.3 if age < 14 else 0.0))


def populate(name, sales, closed, open_, seed=11):
    """Closed opportunities (created over two years, won or lost by the
    generator's odds, with their stage history) and open ones (created
    in the last six months), all in SQL. Return the win rate."""
    from sql import Table
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    rnd = random.Random(seed)
    lead = Table('crm_lead')
    history = Table('crm_lead_history')
    now = dt.datetime.now().replace(microsecond=0)
    parties = benchlib.insert_parties(name, 2_000, sales['admin'])
    users = [sales['users'][login] for login, _, _ in benchlib.SALESPEOPLE]
    with benchlib.transaction(name, sales['admin']):
        Source = Pool().get('marketing.source')
        sources = {s.name: s.id for s in Source.create([
                    {'name': n} for n, _, _ in SOURCES if n])}
        stages = [(benchlib.ref('crm_core', x), *rest)
            for x, *rest in STAGES]
        probabilities = {s.id: s.probability for s in Pool().get(
                'crm.stage').browse([s[0] for s in stages])}
        won_stage = benchlib.ref('crm_core', 'stage_won')
        lost_stage = benchlib.ref('crm_core', 'stage_lost')
        lost_reason = benchlib.ref('crm_core', 'lost_reason_price')
        cursor = Transaction().connection.cursor()
        columns = ['name', 'type', 'company', 'party', 'team', 'owner',
            'stage', 'priority', 'expected_revenue', 'expected_close',
            'date_closed', 'lost_reason', 'state', 'probability',
            'date_conversion', 'marketing_source', 'create_uid',
            'create_date']
        history_columns = ['lead', 'date', 'user', 'from_stage',
            'from_state', 'to_stage', 'to_state', 'type',
            'expected_revenue', 'probability', 'create_uid', 'create_date']
        won_count = 0
        for start in range(0, closed + open_, benchlib.BATCH):
            rows, paths = [], []
            for i in range(start, min(start + benchlib.BATCH,
                        closed + open_)):
                is_closed = i < closed
                stage = draw(rnd, stages)
                source = draw(rnd, SOURCES)
                owner = rnd.randrange(len(users))
                team = benchlib.SALESPEOPLE[owner][2]
                amount = Decimal(round(10 ** rnd.uniform(2.5, 5.5), -1))
                if is_closed:
                    age = max(1, int(rnd.lognormvariate(
                                math.log(45 * stage[3]), 0.8)))
                    created = now - dt.timedelta(
                        days=rnd.uniform(age + 1, 730))
                    closed_at = created + dt.timedelta(days=age)
                    odds = logit(stage, source, owner, team, float(amount),
                        age) + rnd.gauss(0, NOISE)
                    won = rnd.random() < 1 / (1 + math.exp(-odds))
                    won_count += won
                    state = 'won' if won else 'lost'
                    final = won_stage if won else lost_stage
                    probability = 100 if won else 0
                else:
                    created = now - dt.timedelta(days=rnd.uniform(0, 180))
                    closed_at = None
                    state, final = 'open', stage[0]
                    probability = probabilities[stage[0]]
                rows.append([f"Deal {i:06d}", 'opportunity',
                        sales['company'], rnd.choice(parties),
                        sales['teams'][team], users[owner], final,
                        rnd.choice('0112'), amount,
                        (closed_at or now + dt.timedelta(
                                days=rnd.randint(0, 120))).date(),
                        closed_at,
                        lost_reason if state == 'lost' else None,
                        state, probability, created,
                        sources.get(source[0]), sales['admin'], created])
                paths.append((stage, state, final, created, closed_at,
                        amount))
            cursor.execute(*lead.insert(
                    [getattr(lead, c) for c in columns], rows,
                    returning=[lead.id]))
            ids = [r for r, in cursor]
            # The stage history: created New, moved to the stage reached,
            # closed from it (ids in this order: the last open is the max)
            history_rows = []
            for lead_id, (stage, state, final, created, closed_at,
                    amount) in zip(ids, paths):
                new = stages[0][0]
                steps = [(None, None, new, 'open', created)]
                if stage[0] != new:
                    steps.append((new, 'open', stage[0], 'open',
                            created + (closed_at - created) / 2
                            if closed_at else created))
                if closed_at:
                    steps.append((stage[0], 'open', final, state,
                            closed_at))
                for from_stage, from_state, to_stage, to_state, date in (
                        steps):
                    history_rows.append([lead_id, date, sales['admin'],
                            from_stage, from_state, to_stage, to_state,
                            'opportunity', amount, None, sales['admin'],
                            date])
            for batch in benchlib.batches(history_rows):
                cursor.execute(*history.insert(
                        [getattr(history, c) for c in history_columns],
                        batch))
    benchlib.analyze(name)
    benchlib.log(f"populated {closed} closed opportunities "
        f"({won_count / closed:.1%} won) and {open_} open ones")


def calibration(pairs):
    """[(band, count, mean predicted, actual win rate)] of the predictions
    [(probability, won)] by band of 10 points, the Brier score and the
    expected calibration error in points"""
    bands = [[] for _ in range(BANDS)]
    for probability, won in pairs:
        bands[min(int(probability * BANDS), BANDS - 1)].append(
            (probability, won))
    table = []
    error = 0.0
    for index, rows in enumerate(bands):
        if not rows:
            table.append((index, 0, None, None))
            continue
        predicted = sum(p for p, _ in rows) / len(rows)
        actual = sum(w for _, w in rows) / len(rows)
        table.append((index, len(rows), predicted, actual))
        error += len(rows) / len(pairs) * abs(predicted - actual)
    brier = sum((p - w) ** 2 for p, w in pairs) / len(pairs)
    return table, brier, error * 100


def evaluate(name, sales):
    """Train on the older 80 % of the closed opportunities, predict the
    newer 20 %: [(probability, won)]"""
    from sql import Table
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    from crm_reports import naive_bayes
    lead = Table('crm_lead')
    with benchlib.transaction(name, context={
                'company': sales['company']}, readonly=True):
        cursor = Transaction().connection.cursor()
        cursor.execute(*lead.select(lead.date_closed,
                where=lead.state.in_(['won', 'lost']),
                order_by=[lead.date_closed.asc]))
        dates = [d for d, in cursor]
        cutoff = dates[int(len(dates) * 0.8)]
        Lead = Pool().get('crm.lead')
        model, seconds = benchlib.timed(
            Lead.win_model, sales['company'], closed_before=cutoff)
        benchlib.log(f"trained on {model.won} won and {model.lost} lost "
            f"closed before {cutoff:%Y-%m-%d} in {seconds:.2f} s")
        ratios = model.ratios()
        pairs = []
        for won, features in Lead.win_samples(
                sales['company'], closed_from=cutoff):
            probability, _ = naive_bayes.predict(model, features, ratios)
            pairs.append((probability, won))
    return pairs


def update(name, sales, open_):
    "The cron's refresh of the company's open opportunities, timed"
    from sql import Table
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    lead = Table('crm_lead')
    timings = []
    for run in range(2):
        with benchlib.transaction(name, context={
                    'company': sales['company']}):
            Lead = Pool().get('crm.lead')
            _, seconds = benchlib.timed(Lead.update_win_probabilities)
            timings.append(seconds)
        with benchlib.transaction(name, readonly=True):
            cursor = Transaction().connection.cursor()
            cursor.execute(*lead.select(lead.win_probability,
                    where=(lead.state == 'open')))
            values = [p for p, in cursor]
        check(len(values) == open_, len(values))
        check(all(p is not None and 0 <= p <= 100 for p in values))
        # The second run finds nothing changed: it only reads
        benchlib.log(f"update run {run + 1}: {seconds:.2f} s for "
            f"{len(values)} open opportunities")
    return timings[0]


def main():
    options = benchlib.parse_args(__doc__.splitlines()[0],
        closed=(60_000, 4_000), open_=(40_000, 1_000))
    with benchlib.bench_database(keep=options.keep,
            modules=('crm_reports',)) as name:
        sales = benchlib.setup_sales(name)
        populate(name, sales, options.closed, options.open_)
        pairs = evaluate(name, sales)
        table, brier, error = calibration(pairs)
        base = sum(w for _, w in pairs) / len(pairs)
        benchlib.log(f"held out: {len(pairs)} closed opportunities, "
            f"{base:.1%} won; Brier score {brier:.4f} (always "
            f"predicting the win rate: {base * (1 - base):.4f})")
        benchlib.log("predicted    count  mean predicted  actual win rate")
        for index, count, predicted, actual in table:
            label = f"{index * 10}-{index * 10 + 10} %".ljust(9)
            if count:
                benchlib.log(f"{label}  {count:7d}  {predicted:13.1%}  "
                    f"{actual:15.1%}")
            else:
                benchlib.log(f"{label}  {count:7d}")
        with benchlib.profiled(options.profile):
            seconds = update(name, sales, options.open_)
    benchlib.print_figures([
            ('win_brier_score', brier, 'score'),
            ('win_calibration_error', error, 'points'),
            ('win_update_s', seconds, 's'),
            ])


if __name__ == '__main__':
    main()
