"The retry schedule shared by webhook deliveries and scheduled reports"
import datetime as dt
import unittest

from crm_core.retry import RetrySchedule

M = dt.timedelta(minutes=1)


class RetryScheduleTestCase(unittest.TestCase):
    "Retry schedules, without the database"

    def test_next_attempt(self):
        "A retry after each delay, then none"
        schedule = RetrySchedule([5 * M, 15 * M])
        now = dt.datetime(2026, 3, 1, 12, 0)
        self.assertEqual(schedule.max_attempts, 3)
        self.assertEqual(schedule.next_attempt(1, now), now + 5 * M)
        self.assertEqual(schedule.next_attempt(2, now), now + 15 * M)
        self.assertIsNone(schedule.next_attempt(3, now))
        self.assertIsNone(schedule.next_attempt(4, now))

    def test_delays_positive(self):
        "A schedule needs delays, all of them positive"
        for delays in [[], [M, dt.timedelta()], [-M]]:
            with self.assertRaises(ValueError):
                RetrySchedule(delays)

    def test_due(self):
        "The cron's domain of the due records"
        now = dt.datetime(2026, 3, 1, 12, 0)
        self.assertEqual(RetrySchedule.due(now),
            [('next_attempt', '<=', now)])
        self.assertEqual(RetrySchedule.due(now, unset=True),
            [['OR', ('next_attempt', '=', None),
                    ('next_attempt', '<=', now)]])
