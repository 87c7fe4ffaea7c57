"""Settlement: who pays whom, to the cent, with hand-worked answers and properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.settlement import round_balances, transfers


def cents_of(balances: dict[str, str]) -> dict[str, int]:
    return round_balances({k: Fraction(v) for k, v in balances.items()})


def test_one_debtor_pays_each_creditor_its_balance() -> None:
    c = cents_of({"KR": "100", "GB": "-60", "SG": "-40"})
    assert c == {"KR": 10000, "GB": -6000, "SG": -4000}
    assert transfers(c) == [("KR", "GB", 6000), ("KR", "SG", 4000)]


def test_two_debtors_pay_two_creditors_in_proportion() -> None:
    # owed: C 25, D 15 (40 in all); A pays 30 as 30*25/40 = 18.75 and 30*15/40 = 11.25; B pays 10 as 6.25 and 3.75
    c = cents_of({"A": "30", "B": "10", "C": "-25", "D": "-15"})
    assert transfers(c) == [("A", "C", 1875), ("A", "D", 1125), ("B", "C", 625), ("B", "D", 375)]


def test_thirds_round_by_largest_remainder_and_still_sum_to_zero() -> None:
    # B, C and D are each owed a third of 1.00: truncated to 0.33 each, one cent is missing;
    # the tie goes to the first code, so B is owed 0.34
    c = cents_of({"A": "1", "B": "-1/3", "C": "-1/3", "D": "-1/3"})
    assert c == {"A": 100, "B": -34, "C": -33, "D": -33}
    assert transfers(c) == [("A", "B", 34), ("A", "C", 33), ("A", "D", 33)]


def test_balances_that_do_not_add_up_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to zero"):
        cents_of({"A": "1", "B": "-0.99"})
    with pytest.raises(ValueError, match="sum to zero"):
        transfers({"A": 1, "B": 0})


members = st.sampled_from(["CA", "DE", "FR", "GB", "KR", "SG", "JP", "NL"])


@given(st.dictionaries(members, st.fractions(min_value=-10**7, max_value=10**7, max_denominator=10**6),
                       min_size=1, max_size=7),
       st.sampled_from(["CA", "DE", "FR", "GB", "KR", "SG", "JP", "NL"]))
def test_any_balances_settle_exactly(raw: dict[str, Fraction], last: str) -> None:
    # make them sum to zero, as the statement's balances do
    exact = dict(raw)
    exact[last] = exact.get(last, Fraction(0)) - sum(exact.values(), Fraction(0))
    assert sum(exact.values(), Fraction(0)) == 0
    c = round_balances(exact)
    assert sum(c.values()) == 0
    assert all(abs(Fraction(c[k]) - exact[k] * 100) < 1 for k in exact)  # within a cent of the exact balance
    paid = transfers(c)
    owed = sum(-v for v in c.values() if v < 0)
    for k, v in c.items():
        assert sum(a for p, _, a in paid if p == k) == max(v, 0)  # every debtor pays its balance
        assert sum(a for _, q, a in paid if q == k) == max(-v, 0)  # every creditor receives its balance
    assert all(a > 0 and c[p] > 0 > c[q] for p, q, a in paid)
    n = len(c)
    for p, q, a in paid:  # close to the proportional share
        assert abs(Fraction(a) - Fraction(c[p] * -c[q], owed)) <= n


def test_the_spare_cent_goes_to_the_largest_remainder_not_the_largest_balance() -> None:
    # X 1000.1 cents, Y 0.9, Z -1001: truncated 1000, 0, -1001 sum to -1, so one cent is added, to the largest
    # remainder: Y's 0.9 (not X, the largest balance, whose remainder is 0.1)
    assert cents_of({"X": "10.001", "Y": "0.009", "Z": "-10.01"}) == {"X": 1000, "Y": 1, "Z": -1001}
    # and taken from the most negative remainder when the truncation left too much: U -0.9 cents, V -1000.1
    assert cents_of({"U": "-0.009", "V": "-10.001", "W": "10.01"}) == {"U": -1, "V": -1000, "W": 1001}


def test_a_creditor_owed_too_much_after_rounding_rows_gets_a_cent_moved_from_a_one_cent_cell() -> None:
    # two debtors of 1 cent each, two creditors of 1 cent each: each row rounds to a cent for the first
    # creditor (tie, code order), so A would receive 2 and B 0; one cent moves from a 1-cent cell to B
    assert transfers({"P": 1, "Q": 1, "A": -1, "B": -1}) == [("P", "B", 1), ("Q", "A", 1)]
