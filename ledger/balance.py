"""A member's balance for a month: the one definition statements, the settlement and the dashboard share.

    balance = (its share of the month's normalised job GPU-hours − its contribution share) × the month's job cost
            + (the idle cost it bears − its contribution share × the idle cost all members bear)

Positive: the member used more than it contributed and owes. The first term
is the statement's balance since the start. The second is zero unless a site's
``idle_policy`` bills its idle GPU time to members (``host``: the hosting
member; ``shared``: every member by contribution share, which makes the term
zero up to the split's rounding): idle cost that members bear is paid for by
everyone's contributions like the jobs are, so a member who bears more than
its share of it is owed the difference. Over all members both terms sum to
zero.

The contribution share is the config's budget key (``contribution_share``),
or under ``balance_rule: contributed_value`` the member's share of what all
members contributed in the month (:func:`contributed_shares`): its cash (the
month's budget by its budget key) plus the in-kind value its sites delivered.
Those shares sum to one as the budget key does, so the balances still sum to
zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

__all__ = ["contributed_shares", "member_balance"]


def member_balance(job_hours: Fraction, all_job_hours: Fraction, job_cost: Fraction, share: Fraction,
                   idle_cost: Fraction = Fraction(0), all_idle_cost: Fraction = Fraction(0)) -> Fraction:
    """Exact; the caller rounds (statements: half-even to the cent; the settlement: ledger/settlement.py)."""
    usage = job_hours / all_job_hours if all_job_hours else Fraction(0)
    return (usage - share) * job_cost + idle_cost - share * all_idle_cost


def contributed_shares(cash: Mapping[str, Fraction], in_kind: Mapping[str, Fraction],
                       budget_key: Mapping[str, Fraction]) -> dict[str, Fraction]:
    """Each member's (of ``budget_key``) share of the month's contributions, cash plus in kind.

    Exact; the shares sum to one. A month in which nobody contributed anything falls back
    to the budget key, so the balance is never undefined."""
    value = {m: cash.get(m, Fraction(0)) + in_kind.get(m, Fraction(0)) for m in budget_key}
    total = sum(value.values(), Fraction(0))
    if not total:
        return dict(budget_key)
    return {m: v / total for m, v in value.items()}
