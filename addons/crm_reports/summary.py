"""Totals of finished days kept ahead for the analyses of the largest
tables (calls, agent statuses): an analysis adds the totals of the days
before the horizon to what it counts live from the records after it. The
figures stay those of the records: a record written since the last refresh
moves the horizon back to its day until the next refresh."""
import datetime as dt

from sql import Column, Literal
from sql.aggregate import Min
from sql.conditionals import Coalesce

from trytond.model import Index, ModelSQL, fields
from trytond.pool import Pool
from trytond.transaction import Transaction

from crm_core.sqltools import date_of

from .common import domain_fields

# A transaction may commit records stamped (write_date) up to this long
# before the refresh began; they count as written after it
COMMIT_MARGIN = dt.timedelta(hours=1)


def last_written(table):
    """When a row of table was last written (or created): what tells the
    records written since a refresh"""
    return Coalesce(table.write_date, table.create_date)


def last_written_index(table):
    "The index that finds the rows of table written since a refresh"
    return Index(table, (last_written(table), Index.Range()))


def _date(value):
    "A date from a DATE column (SQLite returns text)"
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value


class Refresh(ModelSQL):
    "The day up to which each summary is kept, and since when"
    __name__ = 'crm.report.summary.refresh'
    __string__ = "CRM Report Summary Refresh"

    summary = fields.Char("Summary", required=True)
    horizon = fields.Date("Horizon", required=True,
        help="The first day not summarized.")
    refreshed_at = fields.DateTime("Refreshed At", required=True,
        help="Records written since then are counted live.")

    @classmethod
    def refresh(cls):
        "Refresh every summary (the cron)"
        pool = Pool()
        for _, Model in pool.iterobject():
            if isinstance(Model, type) and issubclass(Model, Summary):
                Model.refresh()


class Summary(ModelSQL):
    "Figures kept ahead for an analysis, refreshed by the cron"
    __slots__ = ()

    @classmethod
    def _state(cls):
        "(id, horizon, refreshed_at) of the last refresh, or None"
        Refresh = Pool().get('crm.report.summary.refresh')
        refresh = Refresh.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*refresh.select(
                refresh.id, refresh.horizon, refresh.refreshed_at,
                where=refresh.summary == cls.__name__))
        return cursor.fetchone()

    @classmethod
    def _set_state(cls, state, horizon, refreshed_at):
        "Store the refresh (state: what _state() gave before it)"
        Refresh = Pool().get('crm.report.summary.refresh')
        refresh = Refresh.__table__()
        cursor = Transaction().connection.cursor()
        values = [horizon, refreshed_at]
        if state:
            cursor.execute(*refresh.update(
                    [refresh.horizon, refresh.refreshed_at], values,
                    where=refresh.id == state[0]))
        else:
            cursor.execute(*refresh.insert(
                    [refresh.summary, refresh.horizon, refresh.refreshed_at],
                    [[cls.__name__, *values]]))

    @classmethod
    def refresh(cls):
        raise NotImplementedError


class DaySummary(Summary):
    """Totals per day (and other keys) of the records of _source, kept for
    the days before the horizon; its key fields bear the names of the
    source's fields so that the source's rules and domains apply to it"""
    __slots__ = ()
    # The model summarized and its timestamp field that dates a record
    _source = None
    _source_time = None

    day = fields.Date("Day", required=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.day, Index.Range())))

    @classmethod
    def _summarize(cls, source, where):
        """(column names, select) of the totals of the rows of source (the
        source's table) matching where, grouped by the summary's keys"""
        raise NotImplementedError

    @classmethod
    def _stale_from(cls, refreshed_at):
        "The first day of the source's records written since refreshed_at"
        Source = Pool().get(cls._source)
        source = Source.__table__()
        cursor = Transaction().connection.cursor()
        # The minimum of the dates, not of the timestamps: PostgreSQL would
        # walk the index of the timestamps instead of that of the writes
        cursor.execute(*source.select(
                Min(date_of(Column(source, cls._source_time))),
                where=last_written(source) >= refreshed_at))
        day, = cursor.fetchone()
        return _date(day)

    @classmethod
    def live_from(cls, domain):
        """The first day to count from the records (before it: from the
        summary), or None to count all from the records: nothing is
        summarized yet, or the reader's rules or the domain filter on
        fields the summary does not have"""
        Rule = Pool().get('ir.rule')
        names = domain_fields(domain) | domain_fields(
            Rule.domain_get(cls._source, mode='read'))
        if not names <= set(cls._fields):
            return None
        state = cls._state()
        if not state:
            return None
        _, horizon, refreshed_at = state
        horizon = _date(horizon)
        stale = cls._stale_from(refreshed_at)
        return min(horizon, stale) if stale else horizon

    @classmethod
    def refresh(cls):
        """Summarize the days before today that are not yet or that
        changed since the last refresh"""
        pool = Pool()
        Refresh = pool.get('crm.report.summary.refresh')
        Source = pool.get(cls._source)
        table = cls.__table__()
        source = Source.__table__()
        cursor = Transaction().connection.cursor()
        Refresh.lock()
        now = dt.datetime.now()
        horizon = now.date()
        time = Column(source, cls._source_time)
        where = time < dt.datetime.combine(horizon, dt.time())
        state = cls._state()
        if state:
            _, last_horizon, refreshed_at = state
            start = _date(last_horizon)
            stale = cls._stale_from(refreshed_at)
            if stale:
                start = min(start, stale)
            where &= time >= dt.datetime.combine(start, dt.time())
            cursor.execute(*table.delete(where=table.day >= start))
        else:
            cursor.execute(*table.delete())
        columns, query = cls._summarize(source, where)
        cursor.execute(*table.insert(
                [Column(table, c) for c in columns], query))
        cls._set_state(state, horizon, now - COMMIT_MARGIN)


def union_id(table, summary):
    """The id of a row taken from a record's table or (summary) from a
    summary, unique across both"""
    return table.id * 2 + Literal(0 if summary else 1)
