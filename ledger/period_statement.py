"""A member's statement over several months: a line per month, the period's
total, the year to date, then each month's statement in full.

Each month is the monthly statement (ledger/statement.py), with its own
config and balance; the period's balance is the sum of its months' balances
(as the settlement adds them, ledger/settlement.py) and the year-to-date line
adds the months from January of the last month's year up to that month,
including months before the period. A month without entries has no
statement and counts nothing. Rendered by ledger/statement_render.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger import LedgerError
from ledger.months import month_range
from ledger.statement import Statement, build_statement

__all__ = ["PeriodStatement", "build_period_statement"]


@dataclass
class PeriodStatement:
    member: str
    member_name: str
    from_month: str
    to_month: str
    currency: str
    statements: list[Statement]  # the months with entries, in order
    empty_months: list[str]
    ytd_months: list[str]
    ytd_balance: Decimal

    @property
    def balance(self) -> Decimal:
        return sum((s.balance for s in self.statements), Decimal(0))

    @property
    def normalised_gpu_hours(self) -> Decimal:
        return sum((s.total.normalised_gpu_hours for s in self.statements), Decimal(0))

    @property
    def cost(self) -> Decimal:
        return sum((s.total.cost_eur for s in self.statements), Decimal(0))


def _month_statement(client: Any, db: str, member: str, month: str, cover: Mapping[str, int] | None,
                     from_rollup: bool, received_before: datetime | None) -> Statement | None:
    try:
        return build_statement(client, db, member, month, cover, from_rollup, received_before)
    except LedgerError as exc:
        if "has no entries" in str(exc):
            return None
        raise


def build_period_statement(client: Any, db: str, member: str, from_month: str, to_month: str,
                           cover: Mapping[str, int] | None = None, from_rollup: bool = True,
                           received_before: datetime | None = None) -> PeriodStatement:
    """Each month as ``build_statement`` draws it (``cover``, ``from_rollup``, ``received_before`` alike)."""
    months = month_range(from_month, to_month)
    statements, empty = [], []
    for month in months:
        st = _month_statement(client, db, member, month, cover, from_rollup, received_before)
        if st is None:
            empty.append(month)
        else:
            statements.append(st)
    if not statements:
        raise LedgerError(f"the ledger has no entries from {from_month} to {to_month}")
    ytd = month_range(f"{to_month[:4]}-01", to_month)
    by_month = {s.month: s for s in statements}
    ytd_balance = Decimal(0)
    for month in ytd:
        st = by_month.get(month) or _month_statement(client, db, member, month, cover, from_rollup, received_before)
        if st is not None:
            ytd_balance += st.balance
    last = statements[-1]
    return PeriodStatement(member, last.member_name, from_month, to_month, last.currency, statements, empty, ytd,
                           ytd_balance)
