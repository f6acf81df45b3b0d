"Tests of the working calendar: the pure computation and the models"
import datetime as dt
import time
import unittest
from zoneinfo import ZoneInfo

from trytond.exceptions import UserError
from trytond.model.exceptions import (
    AccessError, DomainValidationError, ValidationError)
from trytond.modules.company.tests import create_company, set_company
from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction

from ..working_time import (
    NoWorkingDay, NoWorkingHours, Schedule, add_working_time, find_overlap,
    interval, working_time)
from .tools import CrmDatabaseTestCase, CrmSetup

BERLIN = ZoneInfo('Europe/Berlin')
T = dt.time
H = dt.timedelta(hours=1)


def office_hours():
    "Monday to Friday 9:00-12:00 and 13:00-17:00"
    return [(d, T(9), T(12)) for d in range(5)] + [
        (d, T(13), T(17)) for d in range(5)]


def berlin(*args):
    "The naive UTC moment of a Berlin clock time"
    return dt.datetime(*args, tzinfo=BERLIN).astimezone(
        dt.timezone.utc).replace(tzinfo=None)


def local(moment):
    "The Berlin clock time of a naive UTC moment, naive"
    return moment.replace(tzinfo=dt.timezone.utc).astimezone(
        BERLIN).replace(tzinfo=None)


class WorkingTimeTestCase(unittest.TestCase):
    "Working time computed without database"

    def setUp(self):
        self.office = Schedule(office_hours(), tzinfo=BERLIN)

    def test_friday_afternoon_to_monday(self):
        "Friday 16:00 + 2h is Monday 10:00"
        end = self.office.add(berlin(2026, 3, 20, 16), 2 * H)
        self.assertEqual(local(end), dt.datetime(2026, 3, 23, 10))

    def test_across_spring_dst_change(self):
        "The clock change of 29 March 2026 does not move working hours"
        start = berlin(2026, 3, 27, 16)
        end = self.office.add(start, 2 * H)
        self.assertEqual(local(end), dt.datetime(2026, 3, 30, 10))
        # 15:00 UTC on Friday (CET), 8:00 UTC on Monday (CEST)
        self.assertEqual(start, dt.datetime(2026, 3, 27, 15))
        self.assertEqual(end, dt.datetime(2026, 3, 30, 8))
        self.assertEqual(self.office.between(start, end), 2 * H)
        # A working day keeps its 7 hours after the change
        self.assertEqual(self.office.between(
                berlin(2026, 3, 30, 0), berlin(2026, 3, 31, 0)), 7 * H)
        self.assertEqual(local(self.office.add(
                    berlin(2026, 3, 27, 9), 14 * H)),
            dt.datetime(2026, 3, 30, 17))

    def test_across_autumn_dst_change(self):
        "The clock change of 25 October 2026 does not move working hours"
        end = self.office.add(berlin(2026, 10, 23, 16), 2 * H)
        self.assertEqual(local(end), dt.datetime(2026, 10, 26, 10))
        self.assertEqual(end, dt.datetime(2026, 10, 26, 9))

    def test_round_the_clock_counts_elapsed_time(self):
        "Hours spanning the clock change count the time that really passes"
        always = Schedule(
            [(d, T(0), T(0)) for d in range(7)], tzinfo=BERLIN)
        start = berlin(2026, 3, 28, 22)
        end = always.add(start, 8 * H)
        self.assertEqual(end - start, 8 * H)
        self.assertEqual(local(end), dt.datetime(2026, 3, 29, 7))
        self.assertEqual(always.between(
                berlin(2026, 3, 29, 0), berlin(2026, 3, 30, 0)), 23 * H)
        self.assertEqual(always.between(
                berlin(2026, 10, 25, 0), berlin(2026, 10, 26, 0)), 25 * H)

    def test_holiday_skipped(self):
        "Good Friday and Easter Monday are not worked"
        schedule = Schedule(office_hours(),
            holidays=[dt.date(2026, 4, 3), dt.date(2026, 4, 6)],
            tzinfo=BERLIN)
        start = berlin(2026, 4, 2, 16)
        end = schedule.add(start, 2 * H)
        self.assertEqual(local(end), dt.datetime(2026, 4, 7, 10))
        self.assertEqual(schedule.between(start, end), 2 * H)

    def test_yearly_holiday(self):
        "A yearly holiday recurs on the same day, a dated one does not"
        yearly = Schedule(office_hours(),
            yearly_holidays=[dt.date(2020, 12, 25)], tzinfo=BERLIN)
        once = Schedule(office_hours(),
            holidays=[dt.date(2020, 12, 25)], tzinfo=BERLIN)
        start = berlin(2026, 12, 24, 16)
        self.assertEqual(local(yearly.add(start, 2 * H)),
            dt.datetime(2026, 12, 28, 10))
        self.assertEqual(local(once.add(start, 2 * H)),
            dt.datetime(2026, 12, 25, 10))
        by_month_day = Schedule(office_hours(),
            yearly_holidays=[(12, 25)], tzinfo=BERLIN)
        self.assertEqual(by_month_day.add(start, 2 * H),
            yearly.add(start, 2 * H))

    def test_working_time_over_weekend(self):
        "Only the working hours of Friday and Monday count"
        self.assertEqual(self.office.between(
                berlin(2026, 3, 20, 16), berlin(2026, 3, 23, 10)), 2 * H)
        self.assertEqual(self.office.between(
                berlin(2026, 3, 21, 8), berlin(2026, 3, 22, 20)),
            dt.timedelta())
        self.assertEqual(self.office.between(
                berlin(2026, 3, 23, 10), berlin(2026, 3, 20, 16)),
            dt.timedelta())
        # a whole week
        self.assertEqual(self.office.between(
                berlin(2026, 3, 16), berlin(2026, 3, 23)), 35 * H)

    def test_start_in_lunch_break(self):
        "Time starts to count when the afternoon starts"
        self.assertEqual(local(self.office.add(
                    berlin(2026, 3, 23, 12, 30), H)),
            dt.datetime(2026, 3, 23, 14))
        self.assertEqual(self.office.between(
                berlin(2026, 3, 23, 11, 30), berlin(2026, 3, 23, 13, 30)),
            H)

    def test_start_outside_hours(self):
        "Before opening, after closing and at the weekend"
        self.assertEqual(local(self.office.add(berlin(2026, 3, 23, 7), H)),
            dt.datetime(2026, 3, 23, 10))
        self.assertEqual(local(self.office.add(berlin(2026, 3, 23, 18), H)),
            dt.datetime(2026, 3, 24, 10))
        self.assertEqual(local(self.office.add(berlin(2026, 3, 21, 11), H)),
            dt.datetime(2026, 3, 23, 10))

    def test_ends_at_closing(self):
        "A deadline that uses the last working minute is the closing time"
        self.assertEqual(local(self.office.add(berlin(2026, 3, 23, 16), H)),
            dt.datetime(2026, 3, 23, 17))
        self.assertEqual(local(self.office.add(
                    berlin(2026, 3, 23, 9), 7 * H)),
            dt.datetime(2026, 3, 23, 17))

    def test_zero_duration(self):
        "No working time to add leaves the moment as it is, even at night"
        saturday = berlin(2026, 3, 21, 23)
        self.assertEqual(self.office.add(saturday, dt.timedelta()), saturday)
        with self.assertRaises(ValueError):
            self.office.add(saturday, -H)

    def test_long_durations(self):
        "Months of working time, counted by day"
        start = berlin(2026, 1, 5, 9)
        end = self.office.add(start, 700 * H)
        # 20 weeks of 35 hours
        self.assertEqual(local(end), dt.datetime(2026, 5, 22, 17))
        self.assertEqual(self.office.between(start, end), 700 * H)
        year = self.office.between(berlin(2026, 1, 1), berlin(2027, 1, 1))
        self.assertEqual(year, 261 * 7 * H)

    def test_add_and_between_agree(self):
        "Working time up to the deadline is the duration added"
        # Sunday hours span the clock changes
        schedule = Schedule(
            office_hours() + [(5, T(10), T(14)), (6, T(0), T(4))],
            holidays=[dt.date(2026, 3, 31)],
            yearly_holidays=[dt.date(2000, 10, 26)], tzinfo=BERLIN)
        durations = [dt.timedelta(minutes=m)
            for m in (1, 59, 61, 180, 420, 1000, 2400, 10000)]
        self.assertEqual(schedule.between(
                berlin(2026, 3, 29), berlin(2026, 3, 30)), 3 * H)
        self.assertEqual(schedule.between(
                berlin(2026, 10, 25), berlin(2026, 10, 26)), 5 * H)
        for start in [berlin(2026, 3, 26, 8, 17), berlin(2026, 3, 28, 13),
                berlin(2026, 3, 29, 1, 30), berlin(2026, 10, 25, 2, 30),
                berlin(2026, 10, 23, 12, 5), berlin(2026, 10, 24, 23, 59)]:
            for duration in durations:
                with self.subTest(start=start, duration=duration):
                    end = schedule.add(start, duration)
                    self.assertEqual(schedule.between(start, end), duration)

    def test_speed(self):
        "Typical SLA durations cost well under a millisecond"
        start = berlin(2026, 3, 20, 10, 17)
        durations = [4 * H, 8 * H, 2 * 24 * H, 5 * 24 * H]
        count = 2000
        begin = time.perf_counter()
        for i in range(count):
            self.office.add(start, durations[i % len(durations)])
        elapsed = time.perf_counter() - begin
        self.assertLess(elapsed / count, 0.001)

    def test_aware_moments(self):
        "Aware datetimes are taken for the moment they are"
        start = dt.datetime(2026, 3, 20, 16, tzinfo=BERLIN)
        self.assertEqual(local(self.office.add(start, 2 * H)),
            dt.datetime(2026, 3, 23, 10))

    def test_no_hours(self):
        "A calendar without hours would never end"
        with self.assertRaises(NoWorkingHours):
            Schedule([], tzinfo=BERLIN)
        with self.assertRaises(NoWorkingHours):
            Schedule([(0, T(9), T(9))], tzinfo=BERLIN)

    def test_holidays_cover_every_working_day(self):
        "Holidays on every working day raise instead of looping"
        mondays = Schedule([(0, T(9), T(17))],
            yearly_holidays=[(m, d) for m in range(1, 13)
                for d in range(1, 32)], tzinfo=BERLIN)
        with self.assertRaises(NoWorkingDay):
            mondays.add(berlin(2026, 3, 23, 8), H)
        self.assertEqual(mondays.between(
                berlin(2026, 1, 1), berlin(2036, 1, 1)), dt.timedelta())

    def test_without_schedule(self):
        "Without calendar every moment is working time"
        start = dt.datetime(2026, 3, 21, 23)
        self.assertEqual(add_working_time(None, start, 5 * H),
            start + 5 * H)
        self.assertEqual(working_time(None, start, start + 5 * H), 5 * H)
        self.assertEqual(working_time(None, start + H, start),
            dt.timedelta())
        self.assertEqual(add_working_time(self.office, start, H),
            self.office.add(start, H))
        self.assertEqual(working_time(self.office, start, start + 48 * H),
            self.office.between(start, start + 48 * H))

    def test_intervals(self):
        "Midnight as end is the end of the day; touching is no overlap"
        self.assertEqual(interval(T(22), T(0)),
            (22 * H, 24 * H))
        self.assertIsNone(find_overlap(
                [(T(13), T(17)), (T(9), T(12)), (T(12), T(13))]))
        self.assertEqual(find_overlap(
                [(T(13), T(17)), (T(9), T(13, 30))]),
            ((T(9), T(13, 30)), (T(13), T(17))))
        self.assertIsNotNone(find_overlap([(T(20), T(0)), (T(23), T(23, 30))]))

    def test_adjacent_and_overlapping_hours_are_joined(self):
        "The computation tolerates intervals that touch or overlap"
        schedule = Schedule(
            [(0, T(9), T(12)), (0, T(12), T(15)), (0, T(11), T(13))],
            tzinfo=BERLIN)
        self.assertEqual(schedule.between(
                berlin(2026, 3, 23), berlin(2026, 3, 24)), 6 * H)


class WorkingCalendarTestCase(CrmDatabaseTestCase):
    "Working calendars stored in the database"

    def _calendar(self, crm, **values):
        pool = Pool()
        Calendar = pool.get('crm.working_calendar')
        values.setdefault('name', "Berlin Office")
        values.setdefault('timezone', 'Europe/Berlin')
        values.setdefault('hours', [('create', [
                        {'weekday': str(d), 'start': s, 'end': e}
                        for d, s, e in office_hours()])])
        with crm.company_context():
            calendar, = Calendar.create([values])
        return calendar

    @with_transaction()
    def test_calendar_through_orm(self):
        "A calendar made in the client counts working time"
        pool = Pool()
        Company = pool.get('company.company')
        Calendar = pool.get('crm.working_calendar')
        crm = CrmSetup()
        Company.write([crm.company], {'timezone': 'Europe/Berlin'})
        with crm.company_context():
            calendar, = Calendar.create([{
                        'name': "Berlin Office",
                        'hours': [('create', [
                                    {'weekday': str(d), 'start': s, 'end': e}
                                    for d, s, e in office_hours()])],
                        'holidays': [('create', [{
                                        'date': dt.date(2026, 4, 3),
                                        'name': "Good Friday",
                                        }, {
                                        'date': dt.date(2000, 12, 25),
                                        'name': "Christmas",
                                        'yearly': True,
                                        }])],
                        }])
        self.assertEqual(calendar.company, crm.company)
        self.assertEqual(calendar.timezone, 'Europe/Berlin')
        self.assertEqual(len(calendar.hours), 10)

        self.assertEqual(local(calendar.add_working_time(
                    berlin(2026, 3, 27, 16), 2 * H)),
            dt.datetime(2026, 3, 30, 10))
        self.assertEqual(local(calendar.add_working_time(
                    berlin(2026, 4, 2, 16), 2 * H)),
            dt.datetime(2026, 4, 6, 10))
        self.assertEqual(local(calendar.add_working_time(
                    berlin(2026, 12, 24, 16), 2 * H)),
            dt.datetime(2026, 12, 28, 10))
        self.assertEqual(calendar.working_time(
                berlin(2026, 3, 20, 16), berlin(2026, 3, 23, 10)), 2 * H)
        start = berlin(2026, 3, 27, 16)
        self.assertEqual(calendar.add_working_time(start, dt.timedelta()),
            start)

    @with_transaction()
    def test_default_timezone(self):
        "A new calendar takes the time zone of the company, else UTC"
        pool = Pool()
        Calendar = pool.get('crm.working_calendar')
        Company = pool.get('company.company')
        crm = CrmSetup()
        with crm.company_context():
            self.assertEqual(Calendar.default_timezone(), 'UTC')
            Company.write([crm.company], {'timezone': 'Europe/Paris'})
            self.assertEqual(Calendar.default_timezone(), 'Europe/Paris')
            self.assertEqual(Calendar.default_company(), crm.company.id)

    @with_transaction()
    def test_changes_seen_in_same_transaction(self):
        "A holiday added after a computation counts at once"
        pool = Pool()
        Holiday = pool.get('crm.working_calendar.holiday')
        crm = CrmSetup()
        calendar = self._calendar(crm)
        start = berlin(2026, 4, 2, 16)
        self.assertEqual(local(calendar.add_working_time(start, 2 * H)),
            dt.datetime(2026, 4, 3, 10))
        Holiday.create([{
                    'calendar': calendar.id, 'date': dt.date(2026, 4, 3)}])
        self.assertEqual(local(calendar.add_working_time(start, 2 * H)),
            dt.datetime(2026, 4, 6, 10))

    @with_transaction()
    def test_end_before_start_refused(self):
        "Hours that end before they start are refused, naming the day"
        pool = Pool()
        Hours = pool.get('crm.working_calendar.hours')
        crm = CrmSetup()
        calendar = self._calendar(crm, hours=[])
        with self.assertRaisesRegex(ValidationError,
                r'Berlin Office.*17:00-09:00.*Tuesday'):
            Hours.create([{'calendar': calendar.id, 'weekday': '1',
                        'start': T(17), 'end': T(9)}])
        with self.assertRaises(ValidationError):
            Hours.create([{'calendar': calendar.id, 'weekday': '1',
                        'start': T(9), 'end': T(9)}])
        # ending at midnight is the end of the day
        Hours.create([{'calendar': calendar.id, 'weekday': '2',
                    'start': T(18), 'end': T(0)}])

    @with_transaction()
    def test_overlapping_hours_refused(self):
        "Two intervals of one day may touch but not overlap"
        pool = Pool()
        Hours = pool.get('crm.working_calendar.hours')
        crm = CrmSetup()
        calendar = self._calendar(crm)
        with self.assertRaisesRegex(ValidationError,
                r'Berlin Office.*09:00-12:00.*11:00-14:00.*Monday'):
            Hours.create([{'calendar': calendar.id, 'weekday': '0',
                        'start': T(11), 'end': T(14)}])
        # A refused record stays in the rolled back test transaction: go on
        # with another day
        tuesday_morning, = Hours.search([
                ('calendar', '=', calendar.id), ('weekday', '=', '1'),
                ('start', '=', T(9))])
        with self.assertRaises(ValidationError):
            Hours.write([tuesday_morning], {'end': T(13, 30)})
        Hours.write([tuesday_morning], {'end': T(13)})
        Hours.create([{'calendar': calendar.id, 'weekday': '5',
                    'start': T(11), 'end': T(14)}])
        with self.assertRaises(ValidationError):
            self._calendar(crm, name="Double", hours=[('create', [
                            {'weekday': '2', 'start': T(8), 'end': T(12)},
                            {'weekday': '2', 'start': T(10), 'end': T(16)},
                            ])])

    @with_transaction()
    def test_no_hours_error(self):
        "Counting with a calendar without hours is a user error"
        crm = CrmSetup()
        calendar = self._calendar(crm, name="Empty", hours=[])
        with self.assertRaisesRegex(UserError, "Empty"):
            calendar.add_working_time(dt.datetime(2026, 3, 23, 8), H)
        with self.assertRaisesRegex(UserError, "Empty"):
            calendar.working_time(
                dt.datetime(2026, 3, 23, 8), dt.datetime(2026, 3, 24, 8))

    @with_transaction()
    def test_access(self):
        "CRM users read calendars, CRM managers change them"
        pool = Pool()
        Calendar = pool.get('crm.working_calendar')
        Hours = pool.get('crm.working_calendar.hours')
        Holiday = pool.get('crm.working_calendar.holiday')
        crm = CrmSetup()
        calendar = self._calendar(crm)
        with crm.as_user(crm.alice):
            self.assertEqual(Calendar.search([]), [calendar])
            self.assertEqual(len(Calendar(calendar.id).hours), 10)
            with self.assertRaises(AccessError):
                Calendar.write([Calendar(calendar.id)], {'name': "Mine"})
            with self.assertRaises(AccessError):
                Calendar.create([{'name': "Mine"}])
            with self.assertRaises(AccessError):
                Hours.create([{'calendar': calendar.id, 'weekday': '5',
                            'start': T(9), 'end': T(12)}])
            with self.assertRaises(AccessError):
                Holiday.create([{'calendar': calendar.id,
                            'date': dt.date(2026, 5, 1)}])
        with crm.as_user(crm.manager):
            Calendar.write([Calendar(calendar.id)], {'name': "Berlin HQ"})
            Hours.create([{'calendar': calendar.id, 'weekday': '5',
                        'start': T(9), 'end': T(12)}])
            Holiday.create([{'calendar': calendar.id,
                        'date': dt.date(2026, 5, 1)}])
            Calendar.create([{'name': "Paris"}])
        self.assertEqual(Calendar(calendar.id).name, "Berlin HQ")

    @with_transaction()
    def test_other_company_hidden(self):
        "Calendars of another company are not seen"
        pool = Pool()
        Calendar = pool.get('crm.working_calendar')
        crm = CrmSetup()
        other = create_company(name="Other Co", currency=crm.company.currency)
        with set_company(other):
            Calendar.create([{'name': "Elsewhere", 'timezone': 'UTC'}])
        self._calendar(crm)
        with crm.as_user(crm.manager):
            self.assertEqual(
                [c.name for c in Calendar.search([])], ["Berlin Office"])

    @with_transaction()
    def test_team_calendar_of_its_company(self):
        "A team counts with a calendar of its own company only"
        pool = Pool()
        Calendar = pool.get('crm.working_calendar')
        Team = pool.get('crm.team')
        crm = CrmSetup()
        calendar = self._calendar(crm)
        other = create_company(name="Other Co", currency=crm.company.currency)
        with set_company(other):
            foreign, = Calendar.create([{'name': "Elsewhere"}])
        Team.write([crm.north], {'calendar': calendar.id})
        self.assertEqual(Team(crm.north.id).calendar, calendar)
        with self.assertRaises(DomainValidationError):
            Team.write([crm.south], {'calendar': foreign.id})
        # deleting the calendar leaves the team without business hours
        Calendar.delete([calendar])
        self.assertIsNone(Team(crm.north.id).calendar)
