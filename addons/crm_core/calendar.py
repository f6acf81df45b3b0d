import datetime as dt
from collections import defaultdict

from trytond.cache import Cache
from trytond.i18n import gettext
from trytond.model import DeactivableMixin, ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.tools import timezone as tz
from trytond.transaction import Transaction

from . import working_time
from .exceptions import WorkingCalendarError, WorkingCalendarValidationError

TIMEZONES = sorted((z, z) for z in tz.available_timezones())
WEEKDAYS = [
    ('0', "Monday"),
    ('1', "Tuesday"),
    ('2', "Wednesday"),
    ('3', "Thursday"),
    ('4', "Friday"),
    ('5', "Saturday"),
    ('6', "Sunday"),
    ]

# Schedules by calendar id: every deadline of every ticket reads one; the
# cache is cleared (in every worker) when a calendar, its hours or holidays
# change
_schedules = Cache('crm.working_calendar.schedule', context=False)


class WorkingCalendar(DeactivableMixin, ModelSQL, ModelView):
    __name__ = 'crm.working_calendar'
    __string__ = "CRM Working Calendar"

    name = fields.Char("Name", required=True, translate=True)
    company = fields.Many2One('company.company', "Company", required=True)
    timezone = fields.Selection(
        TIMEZONES, "Time Zone", required=True, translate=False,
        help="The time zone of the working hours and holidays.")
    hours = fields.One2Many(
        'crm.working_calendar.hours', 'calendar', "Working Hours")
    holidays = fields.One2Many(
        'crm.working_calendar.holiday', 'calendar', "Holidays")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('name', 'ASC'))

    @classmethod
    def default_company(cls):
        return Transaction().context.get('company')

    @classmethod
    def default_timezone(cls):
        pool = Pool()
        Company = pool.get('company.company')
        company_id = cls.default_company()
        if company_id is not None and company_id >= 0:
            company = Company(company_id)
            if company.timezone:
                return company.timezone
        return 'UTC'

    @classmethod
    def on_modification(cls, mode, calendars, field_names=None):
        super().on_modification(mode, calendars, field_names=field_names)
        clear_schedules()

    def get_working_schedule(self):
        "The working_time.Schedule of the calendar"
        if self.id is not None and self.id >= 0:
            schedule = _schedules.get(self.id)
            if schedule is not None:
                return schedule
        try:
            schedule = working_time.Schedule(
                [(h.weekday, h.start, h.end) for h in self.hours
                    if None not in (h.weekday, h.start, h.end)],
                holidays=[h.date for h in self.holidays
                    if h.date and not h.yearly],
                yearly_holidays=[h.date for h in self.holidays
                    if h.date and h.yearly],
                tzinfo=tz.get_tzinfo(self.timezone or 'UTC'))
        except working_time.NoWorkingHours:
            raise WorkingCalendarError(gettext(
                    'crm_core.msg_working_calendar_no_hours',
                    calendar=self.rec_name))
        if self.id is not None and self.id >= 0:
            _schedules.set(self.id, schedule)
        return schedule

    def add_working_time(self, start, duration):
        """The naive UTC moment when duration (a timedelta) of working time
        has passed after start (naive UTC)"""
        schedule = self.get_working_schedule()
        try:
            return schedule.add(start, duration)
        except working_time.NoWorkingDay as exception:
            self._raise_no_working_day(exception.date)

    def working_time(self, start, end):
        "The working time (a timedelta) between naive UTC start and end"
        schedule = self.get_working_schedule()
        try:
            return schedule.between(start, end)
        except working_time.NoWorkingDay as exception:
            self._raise_no_working_day(exception.date)

    def _raise_no_working_day(self, date):
        pool = Pool()
        Lang = pool.get('ir.lang')
        lang = Lang.get()
        raise WorkingCalendarError(gettext(
                'crm_core.msg_working_calendar_no_working_day',
                calendar=self.rec_name, date=lang.strftime(date)))


class WorkingClock:
    """How a module counts working time: by the calendar, or every moment
    when there is none (24x7)"""

    def __init__(self, calendar=None):
        self.calendar = calendar

    def add(self, start, duration):
        if self.calendar:
            return self.calendar.add_working_time(start, duration)
        return working_time.add_working_time(None, start, duration)

    def between(self, start, end):
        if self.calendar:
            return self.calendar.working_time(start, end)
        return working_time.working_time(None, start, end)

    def is_working(self, moment):
        "Whether moment (naive UTC) is in working time"
        return bool(self.between(moment, moment + dt.timedelta(seconds=1)))


def clear_schedules():
    _schedules.clear()


class WorkingCalendarHours(ModelSQL, ModelView):
    __name__ = 'crm.working_calendar.hours'
    __string__ = "CRM Working Calendar Hours"

    calendar = fields.Many2One(
        'crm.working_calendar', "Calendar", required=True,
        ondelete='CASCADE')
    weekday = fields.Selection(WEEKDAYS, "Day", required=True, sort=False)
    weekday_string = weekday.translated('weekday')
    start = fields.Time("Start", required=True, format='%H:%M')
    end = fields.Time(
        "End", required=True, format='%H:%M',
        help="00:00 is the midnight that ends the day.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('calendar')
        cls._order[:0] = [
            ('calendar', 'ASC'), ('weekday', 'ASC'), ('start', 'ASC')]

    def get_rec_name(self, name):
        return '%s %s' % (self.weekday_string, self._interval_string())

    def _interval_string(self):
        return '%s-%s' % (
            self.start.strftime('%H:%M') if self.start else '',
            self.end.strftime('%H:%M') if self.end else '')

    @classmethod
    def on_modification(cls, mode, hours, field_names=None):
        super().on_modification(mode, hours, field_names=field_names)
        clear_schedules()

    @classmethod
    def validate_fields(cls, hours, field_names):
        super().validate_fields(hours, field_names)
        if field_names is None or (
                field_names & {'calendar', 'weekday', 'start', 'end'}):
            cls.check_intervals(hours)

    @classmethod
    def check_intervals(cls, hours):
        "Each interval ends after it starts and none overlaps another"
        for hour in hours:
            start, end = working_time.interval(hour.start, hour.end)
            if end <= start:
                raise WorkingCalendarValidationError(gettext(
                        'crm_core.msg_working_calendar_hours_end_before_start',
                        calendar=hour.calendar.rec_name,
                        day=hour.weekday_string,
                        hours=hour._interval_string()))
        days = {(h.calendar.id, h.weekday) for h in hours}
        by_day = defaultdict(list)
        for other in cls.search([
                    ('calendar', 'in', list({c for c, _ in days})),
                    ]):
            key = (other.calendar.id, other.weekday)
            if key in days:
                by_day[key].append(other)
        for others in by_day.values():
            overlap = working_time.find_overlap(
                others, key=lambda h: (h.start, h.end))
            if overlap:
                first, second = overlap
                raise WorkingCalendarValidationError(gettext(
                        'crm_core.msg_working_calendar_hours_overlap',
                        calendar=first.calendar.rec_name,
                        day=first.weekday_string,
                        first=first._interval_string(),
                        second=second._interval_string()))


class WorkingCalendarHoliday(ModelSQL, ModelView):
    __name__ = 'crm.working_calendar.holiday'
    __string__ = "CRM Working Calendar Holiday"

    calendar = fields.Many2One(
        'crm.working_calendar', "Calendar", required=True,
        ondelete='CASCADE')
    date = fields.Date("Date", required=True)
    name = fields.Char("Name", translate=True)
    yearly = fields.Boolean(
        "Yearly",
        help="Every year on the same day, like Christmas on 25 December.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('calendar')
        cls._order[:0] = [('calendar', 'ASC'), ('date', 'ASC')]

    @classmethod
    def default_yearly(cls):
        return False

    @classmethod
    def on_modification(cls, mode, holidays, field_names=None):
        super().on_modification(mode, holidays, field_names=field_names)
        clear_schedules()
