"""The balance rule (ledger/balance.py), hand-worked (idle policies end to end: test_ledger_audit.py)."""

from __future__ import annotations

from fractions import Fraction as F

from hypothesis import given
from hypothesis import strategies as st

from ledger.balance import member_balance


def test_the_balance_by_hand() -> None:
    # KR ran 30 of the month's 100 normalised job GPU-hours, which cost 1000; it contributes 24 %:
    # (0.30 - 0.24) x 1000 = 60 owed
    assert member_balance(F(30), F(100), F(1000), F("0.24")) == 60
    # it also bears 50 of the 80 of idle cost that members bear (its site's idle, policy host):
    # + 50 - 0.24 x 80 = + 30.8, so 90.8 in all
    assert member_balance(F(30), F(100), F(1000), F("0.24"), F(50), F(80)) == F("90.8")
    # a member that ran nothing and bears no idle is owed its share of both
    assert member_balance(F(0), F(100), F(1000), F("0.10"), F(0), F(80)) == F(-108)
    # no job usage at all in the month: only the idle term
    assert member_balance(F(0), F(0), F(0), F("0.5"), F(10), F(10)) == 5


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 100), st.integers(0, 10**5)), min_size=1,
                max_size=8), st.integers(0, 10**7))
def test_balances_of_all_members_sum_to_zero(members: list[tuple[int, int, int]], cost: int) -> None:
    hours = [F(h) for h, _, _ in members]
    weight = sum(w for _, w, _ in members)
    shares = [F(w, weight) for _, w, _ in members]
    idle = [F(i) for _, _, i in members]
    total = sum(member_balance(h, sum(hours), F(cost), s, i, sum(idle)) for h, s, i in zip(hours, shares, idle,
                                                                                       strict=True))
    # with no job hours at all the job term is -share x cost for everyone: -cost in all, which no month has
    # (a month with job cost has job hours); otherwise exactly zero
    assert total == (-cost if sum(hours) == 0 else 0)
