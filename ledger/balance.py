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
"""

from __future__ import annotations

from fractions import Fraction

__all__ = ["member_balance"]


def member_balance(job_hours: Fraction, all_job_hours: Fraction, job_cost: Fraction, share: Fraction,
                   idle_cost: Fraction = Fraction(0), all_idle_cost: Fraction = Fraction(0)) -> Fraction:
    """Exact; the caller rounds (statements: half-even to the cent; the settlement: ledger/settlement.py)."""
    usage = job_hours / all_job_hours if all_job_hours else Fraction(0)
    return (usage - share) * job_cost + idle_cost - share * all_idle_cost
