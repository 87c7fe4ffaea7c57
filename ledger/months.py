"""Calendar months as the ledger reports them: ``YYYY-MM``, in UTC."""

from __future__ import annotations

from datetime import datetime

from ledger import LedgerError

__all__ = ["month_bounds", "month_range"]

MAX_MONTHS = 120


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instant of the month and of the next (naive datetimes, UTC)."""
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError as exc:
        raise LedgerError(f"month {month!r}: expected YYYY-MM") from exc
    end = datetime(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


def month_range(from_month: str, to_month: str) -> list[str]:
    """The months from one to the other, both included (at most ten years)."""
    start, _ = month_bounds(from_month)
    end, _ = month_bounds(to_month)
    if end < start:
        raise LedgerError(f"--to-month {to_month} is before --from-month {from_month}")
    out = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    if len(out) > MAX_MONTHS:
        raise LedgerError("a settlement covers at most ten years")
    return out
