"""The balance rule (ledger/balance.py), hand-worked (idle policies end to end: test_ledger_audit.py)."""

from __future__ import annotations

from fractions import Fraction as F

from hypothesis import given
from hypothesis import strategies as st

from ledger.balance import contributed_shares, member_balance


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


def test_contributed_shares_by_hand() -> None:
    # the budget key: KR 0.6, DE 0.4; this month's cash budget 1000 by that key: KR 600, DE 400.
    # KR's sites delivered 100 normalised GPU-hours at a rate of 2 (in kind 200), DE's none:
    # KR 800 of 1200 = 2/3, DE 400 of 1200 = 1/3 (the budget key alone would say 0.6 / 0.4)
    key = {"KR": F("0.6"), "DE": F("0.4")}
    assert contributed_shares({"KR": F(600), "DE": F(400)}, {"KR": F(200)}, key) == {"KR": F(2, 3), "DE": F(1, 3)}
    # in kind only (no cash budget): shares follow delivered capacity; a member with nothing gets 0
    assert contributed_shares({}, {"KR": F(30), "DE": F(10)}, {**key, "FR": F(0)}) == {
        "KR": F(3, 4), "DE": F(1, 4), "FR": F(0)}
    # nobody contributed anything: the budget key, so the balance stays defined
    assert contributed_shares({}, {}, key) == key
    # a member outside the budget key contributes nothing to the shares
    assert contributed_shares({"XX": F(10**6)}, {}, key) == key


@given(st.dictionaries(st.sampled_from(["KR", "CA", "GB", "DE", "SG", "FR"]), st.tuples(
    st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 100)), min_size=1))
def test_contributed_shares_sum_to_one_and_so_the_balances_to_zero(members) -> None:
    weight = sum(w for _, _, w in members.values())
    key = {m: F(w, weight) for m, (_, _, w) in members.items()}
    shares = contributed_shares({m: F(c) for m, (c, _, _) in members.items()},
                                {m: F(k) for m, (_, k, _) in members.items()}, key)
    assert sum(shares.values()) == 1 and set(shares) == set(key)
    hours = {m: F(i) for i, m in enumerate(members, start=1)}
    assert sum(member_balance(hours[m], sum(hours.values()), F(1000), shares[m]) for m in members) == 0
