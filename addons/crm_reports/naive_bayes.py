"""The learning of the win probability: a naive Bayes classifier of won
against lost deals on categorical features, the way Odoo's predictive lead
scoring does it. Pure functions without Tryton, so that the tests and the
bench check the math on their own.

A sample is (won, features): won a bool, features a dict {feature: value}
of hashable values (None is a value: "no source" is one). A feature missing
from the dict is unknown for that sample: it is neither counted nor used.
"""
import math
from collections import defaultdict

# Upper bounds of the amount bands (company's currency) and the age bands
# (days open): <1k, 1-5k, 5-20k, 20-100k, >=100k; <2 weeks ... >=6 months
AMOUNT_BANDS = (1_000, 5_000, 20_000, 100_000)
AGE_BANDS = (14, 30, 90, 180)
# Below that many won and that many lost deals the counts say too little
MIN_HISTORY = 20
# The reasons shown: the features that moved the probability most
REASONS = 3


def band(value, bounds):
    "The index of the band of value: the first bound above it, else the last"
    for index, bound in enumerate(bounds):
        if value < bound:
            return index
    return len(bounds)


class Model:
    """What was learnt: the number of won and lost samples, and per feature
    the won and lost count of each value"""
    __slots__ = ('won', 'lost', 'counts', 'totals')

    def __init__(self):
        self.won = self.lost = 0
        # {feature: {value: [won, lost]}}
        self.counts = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        # {feature: [won, lost]} of the samples where the feature is known
        self.totals = defaultdict(lambda: [0, 0])

    def enough(self, minimum=MIN_HISTORY):
        "Whether there are at least minimum won and minimum lost samples"
        return self.won >= minimum and self.lost >= minimum

    def prior_log_odds(self):
        return math.log(self.won / self.lost)

    def log_likelihood_ratio(self, feature, value):
        """log P(value | won) / P(value | lost), with Laplace smoothing over
        the values of the feature seen in training; None when the value was
        never seen (it says nothing: it is ignored)"""
        values = self.counts.get(feature)
        if not values or value not in values:
            return None
        won, lost = values[value]
        total_won, total_lost = self.totals[feature]
        size = len(values)
        return (math.log((won + 1) / (total_won + size))
            - math.log((lost + 1) / (total_lost + size)))

    def ratios(self):
        """{feature: {value: log likelihood ratio}} for every value seen:
        predicting many deals looks them up instead of counting again"""
        return {feature: {value: self.log_likelihood_ratio(feature, value)
                for value in values}
            for feature, values in self.counts.items()}


def train(samples):
    "Count the samples [(won, features)] into a Model"
    model = Model()
    for won, features in samples:
        index = 0 if won else 1
        if won:
            model.won += 1
        else:
            model.lost += 1
        for feature, value in features.items():
            model.counts[feature][value][index] += 1
            model.totals[feature][index] += 1
    return model


def sigmoid(x):
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    z = math.exp(x)
    return z / (1 + z)


def predict(model, features, ratios=None, reasons=REASONS):
    """The probability of winning a deal with these features and the reasons:
    [(feature, value, effect)] of at most `reasons` features, the effect in
    probability (-1 to 1) that the feature's value adds to the probability
    computed without it, largest first; effects that round to less than one
    point are left out.
    ratios: model.ratios(), to spare the counting for many deals."""
    if ratios is None:
        ratios = model.ratios()
    log_odds = model.prior_log_odds()
    known = []
    for feature, value in features.items():
        ratio = ratios.get(feature, {}).get(value)
        if ratio is not None:
            log_odds += ratio
            known.append((feature, value, ratio))
    probability = sigmoid(log_odds)
    effects = []
    for feature, value, ratio in known:
        effect = probability - sigmoid(log_odds - ratio)
        if abs(effect) >= 0.005:
            effects.append((feature, value, effect))
    effects.sort(key=lambda e: (-abs(e[2]), e[0]))
    return probability, effects[:reasons]
