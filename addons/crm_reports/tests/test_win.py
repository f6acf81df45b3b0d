"""The win probability: the naive Bayes math on a history small enough to
compute by hand, the reasons, and the cron that predicts each company's
open opportunities from that company's closed ones."""
import json
import unittest
from decimal import Decimal
from fractions import Fraction

from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction

from crm_core.tests.tools import (
    CrmDatabaseTestCase, CrmSetup, count_queries, create_party)

from .. import naive_bayes


def posterior(prior_won, won_likelihoods, lost_likelihoods):
    """P(won | features) by Bayes' rule on the products of the
    likelihoods of the features used"""
    won = prior_won
    lost = 1 - prior_won
    for likelihood in won_likelihoods:
        won *= likelihood
    for likelihood in lost_likelihoods:
        lost *= likelihood
    return won / (won + lost)


def percent(fraction):
    "Rounded half up, as stored"
    return int(fraction * 100 + Fraction(1, 2))


def points(probability, without):
    "The effect of a feature in points, rounded half up, as stored"
    return percent(abs(probability - without))


class NaiveBayesTestCase(unittest.TestCase):
    "The learning math, without Tryton"

    def test_band(self):
        "Amount and age bands"
        bands = naive_bayes.AMOUNT_BANDS
        self.assertEqual([naive_bayes.band(v, bands)
                for v in [0, 999, 1000, 4999, 5000, 20000, 99999, 10**6]],
            [0, 0, 1, 1, 2, 3, 3, 4])
        self.assertEqual(naive_bayes.band(Decimal('999.99'), bands), 0)

    def test_probability_by_hand(self):
        "Laplace-smoothed naive Bayes on a history counted by hand"
        samples = [
            (True, {'stage': 'a', 'source': 'x'}),
            (True, {'stage': 'a', 'source': 'x'}),
            (True, {'stage': 'a', 'source': 'y'}),
            (True, {'stage': 'b'}),  # source unknown
            (False, {'stage': 'b', 'source': 'y'}),
            (False, {'stage': 'b', 'source': 'y'}),
            (False, {'stage': 'a', 'source': 'z'}),
            ]
        model = naive_bayes.train(samples)
        self.assertEqual((model.won, model.lost), (4, 3))
        self.assertFalse(model.enough())
        self.assertTrue(model.enough(minimum=3))

        # stage: 2 values; won a 3/4, b 1/4; lost a 1/3, b 2/3
        # source: 3 values, known for 3 won (x 2, y 1) and 3 lost (y 2, z 1)
        probability, effects = naive_bayes.predict(
            model, {'stage': 'a', 'source': 'x'})
        p_stage = (Fraction(3 + 1, 4 + 2), Fraction(1 + 1, 3 + 2))
        p_source = (Fraction(2 + 1, 3 + 3), Fraction(0 + 1, 3 + 3))
        expected = posterior(Fraction(4, 7),
            [p_stage[0], p_source[0]], [p_stage[1], p_source[1]])
        self.assertAlmostEqual(probability, float(expected), places=12)
        # Without the source: stage alone; without the stage: source alone
        without_source = posterior(Fraction(4, 7), [p_stage[0]],
            [p_stage[1]])
        without_stage = posterior(Fraction(4, 7), [p_source[0]],
            [p_source[1]])
        self.assertEqual([(f, v) for f, v, _ in effects],
            [('source', 'x'), ('stage', 'a')])
        self.assertAlmostEqual(effects[0][2],
            float(expected - without_source), places=12)
        self.assertAlmostEqual(effects[1][2],
            float(expected - without_stage), places=12)

        # An unseen value (and an unknown feature) says nothing
        probability, effects = naive_bayes.predict(
            model, {'stage': 'b', 'source': 'new', 'colour': 'red'})
        expected = posterior(Fraction(4, 7),
            [Fraction(1 + 1, 4 + 2)], [Fraction(2 + 1, 3 + 2)])
        self.assertAlmostEqual(probability, float(expected), places=12)
        self.assertEqual([(f, v) for f, v, _ in effects], [('stage', 'b')])
        self.assertLess(effects[0][2], 0)

        # Nothing known: the prior
        probability, effects = naive_bayes.predict(model, {})
        self.assertAlmostEqual(probability, 4 / 7, places=12)
        self.assertEqual(effects, [])

    def test_reasons_limit(self):
        "At most three reasons, the largest effects, none below a point"
        samples = []
        for i in range(40):
            won = i < 20
            samples.append((won, {
                        'a': won if i % 10 else not won,  # strong
                        'b': won if i % 4 else not won,  # medium
                        'c': won if i % 3 else not won,  # weaker
                        'd': won if i % 2 else not won,  # none
                        'e': won if i % 5 else not won,
                        }))
        model = naive_bayes.train(samples)
        _, effects = naive_bayes.predict(
            model, {'a': True, 'b': True, 'c': True, 'd': True, 'e': True})
        self.assertEqual(len(effects), 3)
        self.assertEqual([f for f, _, _ in effects], ['a', 'e', 'b'])
        self.assertNotIn('d', [f for f, _, _ in effects])


class WinProbabilityTestCase(CrmDatabaseTestCase):
    "Win probability of open opportunities"
    modules = ['crm_reports']

    def opportunity(self, crm, stage, revenue, state='open', **values):
        pool = Pool()
        Lead = pool.get('crm.lead')
        Reason = pool.get('crm.lost_reason')
        if not hasattr(self, '_party'):
            self._party = create_party("Acme")
        lead, = Lead.create([{
                    'name': f"{stage} {revenue} {state}",
                    'type': 'opportunity', 'party': self._party.id,
                    'owner': crm.alice.id, 'team': crm.north.id,
                    'stage': crm.stage(stage).id,
                    'expected_revenue': Decimal(revenue),
                    **values,
                    }])
        if state == 'won':
            Lead.won([lead])
        elif state == 'lost':
            Lead.mark_lost([lead], Reason.search([])[0])
        return lead

    def history(self, crm):
        """20 won and 20 lost opportunities of alice in North without
        source, all created and closed now: only their last open stage
        and their amount differ.
        won:  Proposition 15, Qualified 5;  2,000: 10, 50,000: 10
        lost: Proposition 5, Qualified 15;  2,000: 16, 50,000: 4"""
        spec = (
            [('won', 'Proposition', 2000)] * 5
            + [('won', 'Proposition', 50000)] * 10
            + [('won', 'Qualified', 2000)] * 5
            + [('lost', 'Proposition', 2000)] * 1
            + [('lost', 'Proposition', 50000)] * 4
            + [('lost', 'Qualified', 2000)] * 15)
        for state, stage, revenue in spec:
            self.opportunity(crm, stage, revenue, state)

    # The hand computation of history(): P(value | won), P(value | lost),
    # Laplace smoothing over the 2 values seen of each feature
    PROPOSITION = (Fraction(15 + 1, 20 + 2), Fraction(5 + 1, 20 + 2))
    QUALIFIED = (Fraction(5 + 1, 20 + 2), Fraction(15 + 1, 20 + 2))
    AMOUNT_20K = (Fraction(10 + 1, 20 + 2), Fraction(4 + 1, 20 + 2))
    AMOUNT_1K = (Fraction(10 + 1, 20 + 2), Fraction(16 + 1, 20 + 2))

    def by_hand(self, *likelihoods):
        return posterior(Fraction(1, 2), [l[0] for l in likelihoods],
            [l[1] for l in likelihoods])

    @with_transaction()
    def test_known_history(self):
        "The stored probabilities and reasons of a history known by hand"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        with crm.company_context():
            self.history(crm)
            good = self.opportunity(crm, 'Proposition', 50000)
            poor = self.opportunity(crm, 'Qualified', 2000)
            # New is no closed deal's last open stage, bob never closed
            # one: neither says anything
            unknown = self.opportunity(crm, 'New', 3000, owner=crm.bob.id)
            lead, = Lead.create([{'name': "Not converted",
                        'contact_name': "Someone"}])
            Lead.update_win_probabilities()

            good, poor, unknown, lead = Lead.browse(
                [good, poor, unknown, lead])
            expected = self.by_hand(self.PROPOSITION, self.AMOUNT_20K)
            self.assertEqual(expected, Fraction(176, 206))
            self.assertEqual(good.win_probability, percent(expected))
            self.assertEqual(good.win_probability, 85)
            self.assertEqual(poor.win_probability,
                percent(self.by_hand(self.QUALIFIED, self.AMOUNT_1K)))
            self.assertEqual(poor.win_probability, 20)
            self.assertEqual(unknown.win_probability,
                percent(self.by_hand(self.AMOUNT_1K)))
            self.assertEqual(unknown.win_probability, 39)
            self.assertIsNone(lead.win_probability)

            # The reasons: what each feature adds to the probability
            # computed without it, in points, largest first
            stage_points = points(expected, self.by_hand(self.AMOUNT_20K))
            amount_points = points(expected, self.by_hand(self.PROPOSITION))
            self.assertEqual((stage_points, amount_points), (17, 13))
            self.assertEqual(json.loads(good.win_factors), [
                    ['stage', crm.stage('Proposition').id, 17],
                    ['amount', 3, 13]])
            self.assertEqual(good.win_reasons.splitlines(), [
                    "Stage Proposition: raises the chance by 17 points",
                    "Amount 20,000 to 100,000: raises the chance by "
                    "13 points"])
            poor_expected = self.by_hand(self.QUALIFIED, self.AMOUNT_1K)
            self.assertEqual(points(poor_expected,
                    self.by_hand(self.AMOUNT_1K)), 20)
            self.assertEqual(points(poor_expected,
                    self.by_hand(self.QUALIFIED)), 8)
            self.assertEqual(poor.win_reasons.splitlines(), [
                    "Stage Qualified: lowers the chance by 20 points",
                    "Amount 1,000 to 5,000: lowers the chance by 8 points"])
            self.assertEqual(unknown.win_reasons,
                "Amount 1,000 to 5,000: lowers the chance by 11 points")
            # A salesperson reads them in words too
            with crm.as_user(crm.alice):
                self.assertEqual(Lead(good.id).win_reasons,
                    good.win_reasons)
            # Unchanged: the closed ones keep what they had (nothing)
            self.assertEqual(Lead.search([
                        ('state', '!=', 'open'),
                        ('win_probability', '!=', None)]), [])

    @with_transaction()
    def test_each_company_its_history(self):
        """The cron predicts only the open opportunities of each company,
        each from that company's history, none below the minimum"""
        pool = Pool()
        Lead = pool.get('crm.lead')
        Cron = pool.get('ir.cron')
        ModelData = pool.get('ir.model.data')
        crm = CrmSetup()
        with crm.company_context():
            self.history(crm)
            first = self.opportunity(crm, 'Proposition', 50000)
        other = create_company("Other", currency=crm.company.currency)
        other_crm = CrmSetup.__new__(CrmSetup)
        other_crm.__dict__.update(crm.__dict__, company=other)
        with set_company(other):
            # The opposite story, one lost short of the minimum
            for _ in range(20):
                self.opportunity(other_crm, 'Qualified', 50000, 'won',
                    team=None)
            for _ in range(19):
                self.opportunity(other_crm, 'Proposition', 50000, 'lost',
                    team=None)
            second = self.opportunity(other_crm, 'Proposition', 50000,
                team=None)

        # The daily cron runs for each of its companies
        cron = Cron(ModelData.get_id(
                'crm_reports', 'cron_lead_win_probabilities'))
        self.assertEqual(cron.method, 'crm.lead|update_win_probabilities')
        Cron.write([cron], {'companies': [
                    ('add', [crm.company.id, other.id])]})
        Cron.run_once([cron])
        first, second = Lead.browse([first, second])
        self.assertEqual(first.win_probability, 85)
        self.assertIsNone(second.win_probability)
        self.assertIn("fewer than 20 won and 20 lost",
            Lead.fields_get(['win_probability'])['win_probability']['help'])

        # One more lost deal: the other company learns its own story
        with set_company(other):
            self.opportunity(other_crm, 'Proposition', 50000, 'lost',
                team=None)
            Lead.update_win_probabilities()
        first, second = Lead.browse([first, second])
        self.assertEqual(first.win_probability, 85)
        # Proposition: won 0 of 20, lost 20 of 20; the amount is the same
        # for all: it says nothing
        self.assertEqual(second.win_probability, percent(self.by_hand(
                    (Fraction(0 + 1, 20 + 2), Fraction(20 + 1, 20 + 2)))))
        self.assertEqual(second.win_probability, 5)
        # A lead closed meanwhile keeps the probability it had
        Lead.won([first])
        Lead.update_win_probabilities()
        self.assertEqual(Lead(first).win_probability, 85)

    @with_transaction()
    def test_update_in_bulk(self):
        "The update reads and writes in a few queries whatever the count"
        pool = Pool()
        Lead = pool.get('crm.lead')
        crm = CrmSetup()
        with crm.company_context():
            self.history(crm)
            for i in range(30):
                self.opportunity(crm, ('Proposition', 'Qualified')[i % 2],
                    1000 + 2000 * i)
            with count_queries() as queries:
                Lead.update_win_probabilities()
            updates = [q for q in queries
                if q.lstrip().upper().startswith('UPDATE')]
            self.assertLessEqual(len(queries), 10)
            self.assertEqual(len(updates), 1)
            self.assertEqual(len(Lead.search([
                            ('win_probability', '!=', None)])), 30)
            # Nothing changed: nothing written
            with count_queries() as queries:
                Lead.update_win_probabilities()
            self.assertFalse([q for q in queries
                    if q.lstrip().upper().startswith('UPDATE')])

    @with_transaction()
    def test_wizard(self):
        "A manager refreshes now and reads what was learnt"
        pool = Pool()
        Lead = pool.get('crm.lead')
        Update = pool.get('crm.lead.win_probability.update', type='wizard')
        crm = CrmSetup()
        with crm.company_context():
            self.history(crm)
            lead = self.opportunity(crm, 'Proposition', 50000)
        with crm.as_user(crm.manager):
            session_id, _, _ = Update.create()
            update = Update(session_id)
            self.assertEqual(update.transition_update(), 'done')
            summary = update.default_done(None)['summary']
        self.assertIn("1 open opportunities predicted", summary)
        self.assertIn("20 won and 20 lost", summary)
        self.assertEqual(Lead(lead).win_probability, 85)
