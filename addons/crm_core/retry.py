"""Retries of what failed and is tried again from the queue (a webhook's
delivery, a scheduled report's sending): when the next attempt comes, when
to give up, the queue tasks of the retries and the cron's domain of the due
ones.  Each user keeps its own delays."""
import datetime as dt
from collections import defaultdict

from trytond.transaction import Transaction


class RetrySchedule:
    """The delays (timedelta) before each retry of a failed attempt; after
    the last one it is not tried again"""

    def __init__(self, delays):
        self.delays = tuple(delays)
        if not self.delays or any(
                d <= dt.timedelta() for d in self.delays):
            raise ValueError("retry delays must be positive")

    @property
    def max_attempts(self):
        "The attempts in all: the first one and a retry after each delay"
        return len(self.delays) + 1

    def delay(self, attempts):
        "The wait after the failure of attempt number attempts (from 1)"
        return self.delays[attempts - 1]

    def next_attempt(self, attempts, now):
        """When to try again after the failure of attempt number attempts
        at now; None when it was the last one"""
        if attempts >= self.max_attempts:
            return None
        return now + self.delay(attempts)

    def queue(self, Model, method, records, each=False):
        """Queue Model's method (a classmethod taking records) for the
        records that failed, after the delay of their last attempt: one
        task per delay, or one per record with each"""
        groups = defaultdict(list)
        for record in records:
            delay = self.delay(record.attempts)
            groups[(delay, record.id if each else None)].append(record)
        for (delay, _), group in groups.items():
            with Transaction().set_context(queue_scheduled_at=delay):
                getattr(Model.__queue__, method)(group)

    @staticmethod
    def due(now, field='next_attempt', unset=False):
        """The domain of the records whose next attempt has come at now
        (and those without a time with unset)"""
        clause = (field, '<=', now)
        if unset:
            return [['OR', (field, '=', None), clause]]
        return [clause]
