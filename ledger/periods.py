"""Reading one period of the committed ledger, as the audits do.

``FROM ledger WHERE window_start ...`` reads the whole month's partition of
every column it names on ClickHouse 18.16: ``window_start`` is in both
tables' partition key, so the server does not move the condition to PREWHERE
by itself, and it is not a prefix of either sort key, so the index does not
narrow it. On the raw windows that means every payload of the month for an
hour's slice (measured: 1.37 s instead of 0.07 s for one hour of the
read-side bench's ledger; docs/benchmarks.md). The audits therefore read the
base tables with the period as PREWHERE and the committed filter of the
``ledger``/``windows`` views (ledger/migrations/0001_ledger.sql) as WHERE:
the same rows as the views give.

Readers that only sum (statements, settlement, capacity) read the exact
hourly rollup instead (migration 0010) when their period is whole hours:
``sums_source`` gives its committed rows under the entries' column names,
one row per group of entries, with ``entries`` their count.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["committed_in_period", "period_source", "rollup_source", "sums_source", "whole_hours"]

PERIOD = "window_start >= %(start)s AND window_start < %(end)s"
HOURS = "hour >= %(start)s AND hour < %(end)s"
# the rollup's columns under the names of the entries' (its hour is the window_start of its entries' hour)
ROLLUP_COLUMNS = ("hour AS window_start, site_id, gpu_model, member, project, account_kind, account_source, "
                  "config_hash, corrected, entries, energy_mj, gpu_ms, normalised_gpu_hours, cost_eur, carbon_g")


def committed_in_period(db: str | None, table: str, batches: str | None = None, period: str = PERIOD) -> str:
    """A FROM clause: the committed rows of ``table`` (``ledger_entries`` or
    ``raw_windows``) whose window starts in [%(start)s, %(end)s) (``period``:
    another condition on ``window_start``, e.g. Grafana's time filter). More
    conditions follow with ``AND``. ``db``: None for the connection's database
    (the dashboards). ``batches``: a query of the batch ids to count as
    committed (default: every batch in ``ledger_batches``)."""
    qualified = f"{db}." if db else ""
    return (f"{qualified}{table} PREWHERE {period} "
            f"WHERE batch_id IN ({batches or f'SELECT batch_id FROM {qualified}ledger_batches'})")


def period_source(db: str, table: str, batches: str | None = None, where: str | None = None,
                  columns: str = "*", period: str = PERIOD) -> str:
    """The same rows as a subquery, for readers that take a source expression
    (statements, settlement, capacity): every query on it passes start and end.
    ``where``: more conditions inside it (18.16 does not push an outer WHERE
    into a subquery; ``member = %(m)s`` there uses the sort key: a fifth of the
    time of the same filter outside, measured). ``columns``: what it selects;
    ``period``: the PREWHERE (a narrower one than the period reads fewer rows)."""
    more = f" AND {where}" if where else ""
    return f"(SELECT {columns} FROM {committed_in_period(db, table, batches, period)}{more})"


def rollup_source(db: str, batches: str | None = None, where: str | None = None, hours: str = HOURS) -> str:
    """The committed rows of the hourly rollup whose hour is in [%(start)s, %(end)s)
    (``hours``: another condition on ``hour``), as a subquery with the entries'
    column names: any sum over it equals the same sum over the entries of those
    hours (``reconcile`` checks that it does); ``count()`` of entries is
    ``sum(entries)``, ``corrects != ''`` is ``corrected = 1``. ``batches`` and
    ``where`` as for ``period_source``."""
    more = f" AND {where}" if where else ""
    return f"(SELECT {ROLLUP_COLUMNS} FROM {committed_in_period(db, 'ledger_hourly', batches, hours)}{more})"


def whole_hours(*instants: datetime) -> bool:
    return all(t.minute == t.second == t.microsecond == 0 for t in instants)


def sums_source(db: str, start: datetime, end: datetime, batches: str | None = None, where: str | None = None,
                rollup: bool = True) -> str:
    """What a reader that sums the committed entries of [start, end) reads: the
    rollup where ``rollup`` and both ends are whole hours, else the entries,
    each counting 1 in ``entries`` so the same queries run on either."""
    if rollup and whole_hours(start, end):
        return rollup_source(db, batches, where)
    return period_source(db, "ledger_entries", batches, where, "*, toUInt64(1) AS entries")
