"""SQL the dashboard needs that the two supported databases spell differently.

Each expression has one meaning and one spelling per backend (Django's `as_<vendor>` hooks), so the
selectors stay one query on both PostgreSQL and the embedded SQLite default (`make run`). SQLite
has no median aggregate: `register_sqlite_functions` adds one to every SQLite connection
(connected to `connection_created` in QualityConfig.ready).
"""

from __future__ import annotations

from django.db.models import Aggregate, FloatField, Func, IntegerField


class Median(Aggregate):
    """The median of the non-null values; the mean of the two middle ones for an even count
    (PostgreSQL's `percentile_cont(0.5)`, and the `MEDIAN` registered on SQLite)."""

    function = "PERCENTILE_CONT"
    name = "median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()
    allow_distinct = False

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="MEDIAN", template="%(function)s(%(expressions)s)", **extra_context)


class EpochDay(Func):
    """Whole UTC days since 1970-01-01 (floor) of a datetime column, as an integer."""

    output_field = IntegerField()
    arity = 1

    def as_postgresql(self, compiler, connection, **extra_context):
        # EXTRACT returns numeric and `::int` would round: floor first, so 23:00 stays on its day.
        return self.as_sql(compiler, connection, template="FLOOR(EXTRACT(EPOCH FROM %(expressions)s) / 86400)::int", **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores aware datetimes as UTC text. julianday() is exact at midnight (a whole
        # number of milliseconds over 86,400,000), so the cast truncates to the right day; it also
        # keeps '%' out of the SQL, which the backend's placeholder rewriting would misread.
        return self.as_sql(compiler, connection, template="CAST(julianday(%(expressions)s) - 2440587.5 AS INTEGER)", **extra_context)


class _MedianAggregate:
    """SQLite aggregate class for MEDIAN (step/finalize protocol of sqlite3.create_aggregate)."""

    def __init__(self):
        self.values = []

    def step(self, value):
        if value is not None:
            self.values.append(value)

    def finalize(self):
        if not self.values:
            return None
        values = sorted(self.values)
        mid = len(values) // 2
        if len(values) % 2:
            return float(values[mid])
        return (values[mid - 1] + values[mid]) / 2


def register_sqlite_functions(sender, connection, **kwargs):
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("MEDIAN", 1, _MedianAggregate)
