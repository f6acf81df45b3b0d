"""Helpers for the work done in plain SQL (bulk inserts and updates)."""
from sql import Cast, Literal
from sql.operators import Concat
from sql.functions import DateTrunc, Extract, Function

from trytond import backend
from trytond.model.modelsql import convert_from
from trytond.pool import Pool
from trytond.transaction import Transaction


def forget_cached(Model, ids=None):
    """Forget the transaction's cached values of these records of Model
    (None: all of them), after an UPDATE in SQL (as ModelStorage.write
    does after its own)"""
    transaction = Transaction()
    transaction.counter += 1
    for cache in transaction.cache.values():
        if Model.__name__ in cache:
            if ids is None:
                cache[Model.__name__].clear()
            else:
                for id_ in ids:
                    cache[Model.__name__].pop(int(id_), None)


def readable_table(model, domain=None, on=None):
    """(table, from, where): the rows of model's table that the user may
    read (access, ir.rule: the company, an agent's team...) and that match
    the domain, as conditions on that table itself (no id IN of the same
    table): a figure computed in SQL counts no more than its reader could
    open. on: another model (a summary of model's records) whose fields
    bear the same names, to which the same rules and domain apply.
    Only for models whose search adds nothing to ir.rule."""
    pool = Pool()
    On = pool.get(on or model)
    ModelAccess = pool.get('ir.model.access')
    Rule = pool.get('ir.rule')
    ModelAccess.check(model, 'read')
    tables, where = On.search_domain(domain or [])
    rule = Rule.domain_get(model, mode='read')
    if rule:
        tables, rule_where = On.search_domain(
            rule, active_test=False, tables=tables)
        where &= rule_where
    return tables[None][0], convert_from(None, tables), where


def typed(value, field):
    """A constant for the column of field in INSERT ... SELECT: PostgreSQL
    cannot infer the type of a parameter in a sub-select"""
    if backend.name == 'postgresql':
        return Cast(Literal(value), field.sql_type().base)
    return Literal(value)


class _SQLiteDate(Function):
    __slots__ = ()
    _function = 'DATE'


def date_of(column):
    "The date of a timestamp column, on both backends"
    if backend.name == 'sqlite':
        return _SQLiteDate(column)
    return Cast(column, 'DATE')


def month_start(column):
    """The first day (a date) of the month of a timestamp column, on both
    backends: SQLite has no DATE cast"""
    return period_start(column, 'month')


class _SQLiteStrftime(Function):
    __slots__ = ()
    _function = 'STRFTIME'


PERIODS = {'month', 'quarter', 'year'}


def period_start(column, period):
    """The first day (a date) of the month, quarter or year of a date or
    timestamp column, on both backends"""
    assert period in PERIODS, period
    if backend.name != 'sqlite':
        return DateTrunc(period, column).cast('DATE')
    if period == 'year':
        return _SQLiteDate(column, 'start of year')
    if period == 'month':
        return _SQLiteDate(column, 'start of month')
    # The month's start less (month - 1) % 3 months
    month = Cast(_SQLiteStrftime('%m', column), 'INTEGER')
    back = Concat(Literal('-'), Concat(
            Cast((month - 1) % 3, 'TEXT'), Literal(' months')))
    return _SQLiteDate(column, 'start of month', back)


def week_start(column):
    """The Monday (a date) of the ISO week of a date or timestamp column,
    on both backends"""
    if backend.name != 'sqlite':
        return DateTrunc('week', column).cast('DATE')
    # The next Sunday (the day itself on a Sunday) less six days
    return _SQLiteDate(column, 'weekday 0', '-6 days')


def hour_of(column):
    "The hour of the day (0 to 23, an integer) of a timestamp column"
    if backend.name == 'sqlite':
        return Cast(_SQLiteStrftime('%H', column), 'INTEGER')
    return Cast(Extract('HOUR', column), 'INTEGER')


class _SQLiteJulianDay(Function):
    __slots__ = ()
    _function = 'JULIANDAY'


def seconds_between(start, end):
    "The seconds from start to end (timestamp columns), a float"
    if backend.name == 'sqlite':
        return (_SQLiteJulianDay(end) - _SQLiteJulianDay(start)) * 86400
    return Extract('EPOCH', end - start)


def hours_between(start, end):
    """The hours from start to end (timestamp columns), a float; NULL when
    one of them is"""
    return seconds_between(start, end) / 3600
