"""Working time of a weekly calendar, without Tryton.

Moments given and returned are naive UTC datetimes, as Tryton stores them
(aware ones are converted).  Working hours are local clock times in the time
zone of the calendar, so a 9:00-17:00 day stays 9:00-17:00 on both sides of a
daylight saving change; the working time counted is the time that really
elapses, which differs from the clock only for hours that span the change.

The computations step by day and by interval, never by minute.
"""
import datetime as dt

__all__ = ['Schedule', 'NoWorkingHours', 'NoWorkingDay',
    'add_working_time', 'working_time', 'interval', 'find_overlap']

UTC = dt.timezone.utc
ZERO = dt.timedelta()
DAY = dt.timedelta(days=1)
MIDNIGHT = dt.time()
# Consecutive days off after which holidays are taken for covering every
# working day: a year and a leap day
MAX_DAYS_OFF = 367


class NoWorkingHours(ValueError):
    "The calendar has no working hours on any day"


class NoWorkingDay(ValueError):
    "Holidays leave no working day after the date"

    def __init__(self, date):
        super().__init__(date)
        self.date = date


def interval(start, end):
    """The offsets from midnight of local times start and end
    (end 00:00 is the midnight that ends the day)"""
    start = dt.timedelta(hours=start.hour, minutes=start.minute,
        seconds=start.second, microseconds=start.microsecond)
    end = dt.timedelta(hours=end.hour, minutes=end.minute,
        seconds=end.second, microseconds=end.microsecond) or DAY
    return start, end


def find_overlap(intervals, key=None):
    """The first two intervals of one day that overlap, as given, or None;
    key gives the (start, end) times of an item (default: the item itself).
    Intervals that only touch do not overlap."""
    def bounds(item):
        return interval(*(key(item) if key else item))
    ordered = sorted(intervals, key=bounds)
    for first, second in zip(ordered, ordered[1:]):
        if bounds(second)[0] < bounds(first)[1]:
            return first, second
    return None


def _naive_utc(moment):
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


class Schedule:
    """The working hours of a calendar: hours are (weekday, start, end) with
    weekday 0 for Monday and local datetime.time bounds, holidays are dates,
    yearly holidays are dates whose year is ignored (or (month, day))"""
    __slots__ = ('tzinfo', '_days', '_totals', '_holidays', '_yearly')

    def __init__(self, hours, holidays=(), yearly_holidays=(), tzinfo=UTC):
        days = [[] for _ in range(7)]
        for weekday, start, end in hours:
            start, end = interval(start, end)
            if end > start:
                days[int(weekday)].append((start, end))
        if not any(days):
            raise NoWorkingHours()
        self._days = tuple(_merge(d) for d in days)
        self._totals = tuple(
            sum((e - s for s, e in d), ZERO) for d in self._days)
        self._holidays = frozenset(holidays)
        self._yearly = frozenset(
            d if isinstance(d, tuple) else (d.month, d.day)
            for d in yearly_holidays)
        self.tzinfo = tzinfo or UTC

    def is_holiday(self, date):
        return (date in self._holidays
            or (date.month, date.day) in self._yearly)

    def add(self, start, duration):
        "The moment when duration of working time has passed after start"
        if duration < ZERO:
            raise ValueError("negative duration")
        start = _naive_utc(start)
        if not duration:
            return start
        remaining = duration
        for date, midnight, next_midnight in self._working_days(start):
            if (midnight >= start and remaining > self._totals[date.weekday()]
                    and next_midnight - midnight == DAY):
                # Whole day without clock change: no need of its intervals
                remaining -= self._totals[date.weekday()]
                continue
            for begin, end in self._intervals(date, midnight, next_midnight):
                if end <= start:
                    continue
                if begin < start:
                    begin = start
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin

    def between(self, start, end):
        "The working time from start to end (zero when end is not after)"
        start, end = _naive_utc(start), _naive_utc(end)
        total = ZERO
        if end <= start:
            return total
        for date, midnight, next_midnight in self._working_days(start, end):
            if (midnight >= start and next_midnight <= end
                    and next_midnight - midnight == DAY):
                total += self._totals[date.weekday()]
                continue
            for begin, finish in self._intervals(
                    date, midnight, next_midnight):
                begin, finish = max(begin, start), min(finish, end)
                if finish > begin:
                    total += finish - begin
        return total

    def _to_utc(self, local):
        # fold=0: an ambiguous or skipped clock time takes the offset in
        # force before the change
        return local.replace(tzinfo=self.tzinfo).astimezone(UTC).replace(
            tzinfo=None)

    def _working_days(self, start, until=None):
        """(local date, UTC of its midnight, UTC of the next midnight) of each
        working day from the local day of start, until the UTC moment"""
        date = start.replace(tzinfo=UTC).astimezone(self.tzinfo).date()
        days, is_holiday = self._days, self.is_holiday
        midnight = self._to_utc(dt.datetime.combine(date, MIDNIGHT))
        days_off = 0
        while until is None or midnight < until:
            next_date = date + DAY
            next_midnight = self._to_utc(
                dt.datetime.combine(next_date, MIDNIGHT))
            if days[date.weekday()] and not is_holiday(date):
                days_off = 0
                yield date, midnight, next_midnight
            else:
                days_off += 1
                if until is None and days_off > MAX_DAYS_OFF:
                    raise NoWorkingDay(date - MAX_DAYS_OFF * DAY)
            date, midnight = next_date, next_midnight

    def _intervals(self, date, midnight, next_midnight):
        "The working intervals of the day in UTC"
        intervals = self._days[date.weekday()]
        if next_midnight - midnight == DAY:
            return [(midnight + s, midnight + e) for s, e in intervals]
        # The clock changes this day: convert each bound on its own and keep
        # the intervals in order where skipped clock times would overlap
        local_midnight = dt.datetime.combine(date, MIDNIGHT)
        result = []
        last = midnight
        for s, e in intervals:
            begin = max(self._to_utc(local_midnight + s), last)
            end = (next_midnight if e == DAY
                else self._to_utc(local_midnight + e))
            if end > begin:
                result.append((begin, end))
                last = end
        return result


def _merge(intervals):
    "Sorted intervals with the overlapping and touching ones joined"
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def add_working_time(schedule, start, duration):
    """The moment when duration of working time has passed after start;
    without schedule every moment is working time (24x7)"""
    if schedule is None:
        return _naive_utc(start) + duration
    return schedule.add(start, duration)


def working_time(schedule, start, end):
    """The working time from start to end; without schedule every moment is
    working time (24x7)"""
    if schedule is None:
        return max(_naive_utc(end) - _naive_utc(start), ZERO)
    return schedule.between(start, end)
