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
"""

from __future__ import annotations

__all__ = ["committed_in_period", "period_source"]

PERIOD = "window_start >= %(start)s AND window_start < %(end)s"


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


def period_source(db: str, table: str, batches: str | None = None, where: str | None = None) -> str:
    """The same rows as a subquery, for readers that take a source expression
    (statements, settlement, capacity): every query on it passes start and end.
    ``where``: more conditions inside it (18.16 does not push an outer WHERE
    into a subquery; ``member = %(m)s`` there uses the sort key: a fifth of the
    time of the same filter outside, measured)."""
    more = f" AND {where}" if where else ""
    return f"(SELECT * FROM {committed_in_period(db, table, batches)}{more})"
