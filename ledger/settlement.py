"""Settlement: who pays whom for a period, to the cent.

A member's balance for a month is the statement's (ledger/balance.py):
(its share of the month's normalised job GPU-hours − its contribution share
in the month's config) × the month's job cost, plus the idle cost it bears
less its contribution share of the idle cost all members bear (zero unless
a site's idle policy bills idle time to members). Positive: it used more than it
contributed and owes; negative: it is owed. Over a period the balances of
its months add up. Computed exactly (fractions), they sum to zero over the
members.

Rounding rule, stated once:

1. Balances. Each member's exact period balance is rounded to the cent by
   the largest-remainder method: every balance is truncated towards zero to
   the cent, then the cents still needed to make the sum zero go, one each, to
   the members whose truncation removed the most (ties: member code order).
   The rounded balances sum to exactly zero. (A member's monthly statements
   round each month on its own, half-even; their sum can differ from the
   settlement's balance by at most a cent a month.)
2. Transfers. Members who owe pay members who are owed in proportion: debtor
   d pays creditor c  B_d × |B_c| / Σ|B_creditors|. Each debtor's row is
   rounded by largest remainder so that it pays exactly its balance; then
   single cents are moved within debtors' rows, from a creditor who would
   receive too much to one who would receive too little, until every creditor
   receives exactly its balance. Every transfer stays within a few cents of
   its exact proportional value; all are positive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ledger.balance import member_balance
from ledger.months import month_bounds, month_range
from ledger.periods import sums_source

__all__ = ["Settlement", "month_balances", "round_balances", "settle", "transfers"]

CENT = Fraction(1, 100)


@dataclass(frozen=True)
class Settlement:
    from_month: str
    to_month: str
    currency: str
    months: list[str]
    # member -> month -> exact balance
    monthly: dict[str, dict[str, Fraction]]
    balances: dict[str, Decimal]  # rounded, summing to 0
    transfers: list[tuple[str, str, Decimal]]  # (payer, payee, amount)
    names: dict[str, str]

    def exact(self, member: str) -> Fraction:
        return sum(self.monthly[member].values(), Fraction(0))


def _cents(x: Fraction) -> int:
    """Truncated towards zero, in cents."""
    c = x / CENT
    return int(c) if c >= 0 else -int(-c)


def _largest_remainder(exact: Mapping[str, Fraction], total_cents: int) -> dict[str, int]:
    """Integers (cents) close to ``exact`` (in cents) summing to ``total_cents``."""
    base = {k: _cents(v) for k, v in exact.items()}
    short = total_cents - sum(base.values())
    # the remainders truncation removed, signed: a positive short adds cents to the largest positive remainders
    rema = {k: v / CENT - base[k] for k, v in exact.items()}
    order = sorted(exact, key=lambda k: (-rema[k] if short > 0 else rema[k], k))
    step = 1 if short > 0 else -1
    for k in order[:abs(short)]:
        base[k] += step
    return base


def round_balances(exact: Mapping[str, Fraction]) -> dict[str, int]:
    """Rule 1: balances in cents, summing to zero. ``exact`` must sum to zero."""
    if sum(exact.values(), Fraction(0)) != 0:
        raise ValueError("balances do not sum to zero")
    return _largest_remainder(exact, 0)


def transfers(cents: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """Rule 2: (payer, payee, cents) settling balances in cents that sum to zero."""
    if sum(cents.values()) != 0:
        raise ValueError("balances do not sum to zero")
    debtors = sorted(k for k, v in cents.items() if v > 0)
    creditors = sorted(k for k, v in cents.items() if v < 0)
    owed = sum(-cents[c] for c in creditors)
    table: dict[tuple[str, str], int] = {}
    for d in debtors:
        row = {c: Fraction(cents[d] * -cents[c], owed) * CENT for c in creditors}
        for c, v in _largest_remainder(row, cents[d]).items():
            table[d, c] = v
    # move single cents within rows until every creditor receives its balance
    def received(c: str) -> int:
        return sum(table[d, c] for d in debtors)

    while True:
        over = [c for c in creditors if received(c) > -cents[c]]
        under = [c for c in creditors if received(c) < -cents[c]]
        if not over:
            break
        src, dst = over[0], under[0]
        d = next(d for d in debtors if table[d, src] > 0)
        table[d, src] -= 1
        table[d, dst] += 1
    return [(d, c, v) for (d, c), v in sorted(table.items()) if v > 0]


def month_balances(client: Any, db: str, months: list[str], source: str | None = None,
                   params: dict[str, Any] | None = None) -> tuple[dict[str, dict[str, Fraction]], dict[str, str], str]:
    """member -> month -> exact balance (the statement's definition), every
    member of each month's config included, usage or not; member names; currency."""
    from ledger.capacity import contributions
    from ledger.configs import config_by_hash, period_config_hashes
    out: dict[str, dict[str, Fraction]] = {}
    names: dict[str, str] = {}
    currency = ""
    for month in months:
        start, end = month_bounds(month)
        p = {**(params or {}), "start": start, "end": end}
        led = source or sums_source(db, start, end)  # the rollup (whole months are whole hours)
        hashes = period_config_hashes(client, db, start, end, led, p)
        if not hashes:
            continue  # nothing booked that month: nothing to settle
        cfg = config_by_hash(client, db, hashes[0])
        if cfg is None:
            raise ValueError(f"config {hashes[0]} used in {month} is not in the ledger")
        currency = cfg.pricing.currency
        rows = client.execute(
            f"SELECT member, sumIf(normalised_gpu_hours, account_kind = 'job'), sumIf(cost_eur, account_kind = 'job'), "
            f"sumIf(cost_eur, account_kind = 'idle' AND member != '') FROM {led} "
            f"WHERE account_kind IN ('job', 'idle') AND window_start >= %(start)s AND window_start < %(end)s "
            f"GROUP BY member", p)
        hours = {m: Fraction(str(h)) for m, h, _, _ in rows}
        idle = {m: Fraction(str(i)) for m, _, _, i in rows if m}
        total_h = sum(hours.values(), Fraction(0))  # the unbilled rows (member '') have no job hours
        total_cost = sum((Fraction(str(c)) for _, _, c, _ in rows), Fraction(0))
        total_idle = sum(idle.values(), Fraction(0))
        shares = contributions(client, db, cfg, start, end, led, p).shares  # the config's balance rule
        for m in cfg.members:
            names[m.code] = m.name
            out.setdefault(m.code, {})[month] = member_balance(
                hours.get(m.code, Fraction(0)), total_h, total_cost, shares[m.code],
                idle.get(m.code, Fraction(0)), total_idle)
    return out, names, currency


def settle(client: Any, db: str, from_month: str, to_month: str, source: str | None = None,
           params: dict[str, Any] | None = None) -> Settlement:
    """``source``/``params``: read the entries from this expression (a statement's
    checkpoint-covered view of the ledger) instead of the whole ledger."""
    months = month_range(from_month, to_month)
    monthly, names, currency = month_balances(client, db, months, source, params)
    for m in monthly:
        for month in months:
            monthly[m].setdefault(month, Fraction(0))
    exact = {m: sum(v.values(), Fraction(0)) for m, v in monthly.items()}
    cents = round_balances(exact) if exact else {}
    return Settlement(from_month, to_month, currency, months, monthly,
                      {m: Decimal(c).scaleb(-2) for m, c in sorted(cents.items())},
                      [(d, c, Decimal(v).scaleb(-2)) for d, c, v in transfers(cents)] if cents else [], names)
