"""The win probability of open opportunities: learnt per company from its
won and lost opportunities (naive_bayes.py), stored on the lead with the
features that moved it most, refreshed by a cron or by a manager."""
import datetime as dt
import json
from collections import defaultdict

from sql import Null, Values
from sql.aggregate import Max

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Check, ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction
from trytond.wizard import Button, StateTransition, StateView, Wizard

from crm_core.sqltools import forget_cached

from . import naive_bayes

# The records behind the features whose values are ids
FEATURE_MODELS = {
    'stage': 'crm.stage',
    'source': 'marketing.source',
    'team': 'crm.team',
    'owner': 'res.user',
    }
# Leads read (and written) per query
BATCH = 10_000


def batches(values, size):
    for i in range(0, len(values), size):
        yield values[i:i + size]


class Lead(metaclass=PoolMeta):
    __name__ = 'crm.lead'

    win_probability = fields.Integer("Win Probability", readonly=True,
        states={
            'invisible': ((Eval('type') != 'opportunity')
                | (Eval('state') != 'open')),
            },
        help="In %, learnt each day from the company's won and lost "
        "opportunities (stage, source, team, salesperson, amount and "
        "age). Empty for leads not converted yet, and while the company "
        "has fewer than 20 won and 20 lost opportunities: too few to "
        "learn from.")
    # What moved the probability most: JSON [[feature, value, points]],
    # shown as words in the reader's language by win_reasons
    win_factors = fields.Text("Win Factors", readonly=True)
    win_reasons = fields.Function(fields.Text("Win Reasons",
            states={
                'invisible': ((Eval('type') != 'opportunity')
                    | (Eval('state') != 'open')),
                },
            help="The features of the opportunity that raise or lower "
            "its win probability most, in points of probability."),
        'get_win_reasons')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('win_probability_range',
                Check(t, (t.win_probability >= 0)
                    & (t.win_probability <= 100)),
                'crm_reports.msg_lead_win_probability_range'),
            ]

    @classmethod
    def copy(cls, leads, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('win_probability')
        default.setdefault('win_factors')
        return super().copy(leads, default=default)

    @classmethod
    def get_win_reasons(cls, leads, name):
        pool = Pool()
        factors = {l.id: json.loads(l.win_factors) if l.win_factors else []
            for l in leads}
        ids = defaultdict(set)
        for rows in factors.values():
            for feature, value, _ in rows:
                if feature in FEATURE_MODELS and value is not None:
                    ids[feature].add(value)
        names = {}
        for feature, values in ids.items():
            Model = pool.get(FEATURE_MODELS[feature])
            # Records deleted since the prediction are left out
            with Transaction().set_context(active_test=False):
                records = Model.search([('id', 'in', list(values))])
            names[feature] = {r.id: r.rec_name for r in records}
        reasons = {}
        for lead in leads:
            lines = []
            for feature, value, points in factors[lead.id]:
                if value is None:
                    label = gettext('crm_reports.msg_win_value_none')
                elif feature in FEATURE_MODELS:
                    label = names[feature].get(value)
                    if label is None:
                        continue
                else:
                    label = gettext(
                        f'crm_reports.msg_win_{feature}_{value}')
                lines.append(gettext(
                        'crm_reports.msg_win_reason_%s'
                        % ('up' if points > 0 else 'down'),
                        feature=gettext(
                            f'crm_reports.msg_win_feature_{feature}'),
                        value=label, points=abs(points)))
            reasons[lead.id] = '\n'.join(lines) or None
        return reasons

    @classmethod
    def _win_rows(cls, company_id, closed, closed_from=None,
            closed_before=None):
        """The company's opportunities, open or closed, in batches of rows:
        (id, state, stage, source, team, owner, expected revenue,
        create date, close date, win probability, win factors). The stage
        of a closed one is the last open stage of its history."""
        pool = Pool()
        History = pool.get('crm.lead.history')
        lead = cls.__table__()
        cursor = Transaction().connection.cursor()
        where = (lead.company == company_id) & (lead.type == 'opportunity')
        if closed:
            where &= lead.state.in_(['won', 'lost'])
            if closed_from:
                where &= lead.date_closed >= closed_from
            if closed_before:
                where &= lead.date_closed < closed_before
        else:
            where &= lead.state == 'open'
        cursor.execute(*lead.select(lead.id, where=where,
                order_by=[lead.id.asc]))
        ids = [i for i, in cursor]
        # Batches by ranges of ids: no list of ids in the queries
        for sub_ids in batches(ids, BATCH):
            low, high = sub_ids[0], sub_ids[-1]
            batch = where & (lead.id >= low) & (lead.id <= high)
            if closed:
                history = History.__table__()
                last = history.select(
                    history.lead, Max(history.id).as_('id'),
                    where=(history.to_state == 'open')
                    & (history.lead >= low) & (history.lead <= high),
                    group_by=[history.lead])
                row = History.__table__()
                from_ = lead.join(last, 'LEFT',
                    condition=last.lead == lead.id).join(row, 'LEFT',
                    condition=row.id == last.id)
                stage = row.to_stage
            else:
                from_, stage = lead, lead.stage
            cursor.execute(*from_.select(
                    lead.id, lead.state, stage, lead.marketing_source,
                    lead.team, lead.owner, lead.expected_revenue,
                    lead.create_date, lead.date_closed,
                    lead.win_probability, lead.win_factors,
                    where=batch))
            yield cursor.fetchall()

    @staticmethod
    def _win_features(row, now=None):
        """The features of a row of _win_rows: the age is the days from
        creation to the close (closed) or to now (open)"""
        (_, state, stage, source, team, owner, amount, created,
            closed) = row[:9]
        features = {
            'source': source,
            'team': team,
            'owner': owner,
            'amount': naive_bayes.band(
                amount or 0, naive_bayes.AMOUNT_BANDS),
            }
        if stage is not None:
            features['stage'] = stage
        end = now if state == 'open' else closed
        if created and end:
            features['age'] = naive_bayes.band(
                max((end - created).days, 0), naive_bayes.AGE_BANDS)
        return features

    @classmethod
    def win_samples(cls, company_id, closed_from=None, closed_before=None):
        """(won, features) of each closed opportunity of the company
        (closed within the dates when given)"""
        for rows in cls._win_rows(company_id, True,
                closed_from=closed_from, closed_before=closed_before):
            for row in rows:
                yield row[1] == 'won', cls._win_features(row)

    @classmethod
    def win_model(cls, company_id, closed_before=None):
        "What the company's closed opportunities teach"
        return naive_bayes.train(
            cls.win_samples(company_id, closed_before=closed_before))

    @classmethod
    def update_win_probabilities(cls, companies=None, now=None):
        """Learn from each company's closed opportunities, then predict its
        open ones (the context's company when the cron runs for one, else
        every company). Return {company id: (model, opportunities)}."""
        pool = Pool()
        Company = pool.get('company.company')
        if companies is None:
            company = Transaction().context.get('company')
            if company is not None and company >= 0:
                companies = [Company(company)]
            else:
                companies = Company.search([])
        now = now or dt.datetime.now()
        return {c.id: cls._update_win_probabilities(c.id, now)
            for c in companies}

    @classmethod
    def _update_win_probabilities(cls, company_id, now):
        model = cls.win_model(company_id)
        if not model.enough():
            cls._clear_win_probabilities(company_id)
            return model, 0
        ratios = model.ratios()
        count = 0
        for rows in cls._win_rows(company_id, False):
            changes = []
            for row in rows:
                probability, effects = naive_bayes.predict(
                    model, cls._win_features(row, now), ratios)
                # Rounded half up, as the points of the reasons
                value = int(probability * 100 + 0.5)
                factors = json.dumps([
                        [f, v, int(abs(e) * 100 + 0.5) * (1 if e > 0 else -1)]
                        for f, v, e in effects], separators=(',', ':'))
                if (row[9], row[10]) != (value, factors):
                    changes.append((row[0], value, factors))
            cls._write_win_probabilities(changes)
            count += len(rows)
        return model, count

    @classmethod
    def _write_win_probabilities(cls, changes):
        """Store [(id, probability, factors)] in SQL: neither the write
        date nor the history changes, a form open meanwhile is not told
        that its record was modified, and 100,000 leads are one UPDATE per
        thousand"""
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        size = min(1000, backend.MAX_QUERY_PARAMS // 3)
        for sub_changes in batches(changes, size):
            values = Values(sub_changes)
            cursor.execute(*table.update(
                    [table.win_probability, table.win_factors],
                    [values.column2, values.column3],
                    from_=[values], where=table.id == values.column1))
        if changes:
            forget_cached(cls, [c[0] for c in changes])

    @classmethod
    def _clear_win_probabilities(cls, company_id):
        "Too little history: no probability rather than a guess"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update(
                [table.win_probability, table.win_factors], [None, None],
                where=(table.company == company_id)
                & (table.type == 'opportunity') & (table.state == 'open')
                & ((table.win_probability != Null)
                    | (table.win_factors != Null))))
        forget_cached(cls)


class UpdateWinProbabilityStart(ModelView):
    "Update the win probabilities"
    __name__ = 'crm.lead.win_probability.update.start'
    __string__ = "Update Win Probabilities"


class UpdateWinProbabilityDone(ModelView):
    "What the update of the win probabilities learnt"
    __name__ = 'crm.lead.win_probability.update.done'
    __string__ = "Win Probabilities Updated"

    summary = fields.Text("Summary", readonly=True)


class UpdateWinProbability(Wizard):
    """Refresh now the win probability of the open opportunities of the
    user's companies, as the daily cron does"""
    __name__ = 'crm.lead.win_probability.update'
    start = StateView('crm.lead.win_probability.update.start',
        'crm_reports.lead_win_update_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Update", 'update', 'tryton-ok', default=True),
            ])
    update = StateTransition()
    done = StateView('crm.lead.win_probability.update.done',
        'crm_reports.lead_win_update_done_view_form', [
            Button("Close", 'end', 'tryton-close', default=True),
            ])

    def transition_update(self):
        pool = Pool()
        Company = pool.get('company.company')
        Lead = pool.get('crm.lead')
        User = pool.get('res.user')
        companies = Company.browse(User.get_companies())
        lines = []
        for company in companies:
            model, count = Lead._update_win_probabilities(
                company.id, dt.datetime.now())
            if model.enough():
                lines.append(gettext('crm_reports.msg_win_updated',
                        company=company.rec_name, count=count,
                        won=model.won, lost=model.lost))
            else:
                lines.append(gettext('crm_reports.msg_win_not_enough',
                        company=company.rec_name, won=model.won,
                        lost=model.lost,
                        minimum=naive_bayes.MIN_HISTORY))
        self.done.summary = '\n'.join(lines)
        return 'done'

    def default_done(self, fields):
        return {'summary': self.done.summary}
