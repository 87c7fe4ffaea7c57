"""Calendar months as the ledger reports them: ``YYYY-MM``, in UTC."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from ledger import LedgerError

__all__ = ["month_bounds", "month_range", "period_bounds", "prorated"]

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


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """A config period, ``YYYY`` or ``YYYY-MM``: its first instant and the next period's."""
    if len(period) == 4:
        y = int(period)
        return datetime(y, 1, 1), datetime(y + 1, 1, 1)
    return month_bounds(period)


def prorated(amounts: Iterable[tuple[str, Decimal]], start: datetime, end: datetime) -> Fraction:
    """The part of per-period amounts that falls in [start, end): each by the share of its own
    period covered, by the second (a year's 87,600 in a 30-day November: 7,200)."""
    total = Fraction(0)
    for period, amount in amounts:
        p0, p1 = period_bounds(period)
        overlap = (min(end, p1) - max(start, p0)).total_seconds()
        if overlap > 0:
            total += Fraction(amount) * Fraction(int(overlap), int((p1 - p0).total_seconds()))
    return total
