"""The chain's text forms: what an auditor re-implements byte for byte."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.chain import decimal_text, entry_line, entry_line_fixed, fixed


@pytest.mark.parametrize(("units", "scale", "text"), [
    (0, 9, "0.000000000"), (5, 9, "0.000000005"), (278, 9, "0.000000278"), (1_362_624, 6, "1.362624"),
    (321_860, 3, "321.860"), (-5, 6, "-0.000005"), (-1_500, 3, "-1.500"), (10**12, 3, "1000000000.000"),
])
def test_fixed_point_never_has_an_exponent(units: int, scale: int, text: str) -> None:
    assert fixed(units, scale) == text
    assert decimal_text(Decimal(text), scale) == text


def test_stored_decimals_print_like_the_stream_prints_them() -> None:
    # What ClickHouse hands back for a zero or a tiny Decimal(18, 9): Python would print 0E-9, 5E-9
    assert decimal_text(Decimal(0) / 10**9, 9) == "0.000000000"
    assert decimal_text(Decimal(5) / 10**9, 9) == "0.000000005"
    assert decimal_text(-Decimal("0E-9"), 9) == "0.000000000"  # a reversed zero has no sign


def test_entry_line_from_decimals_equals_the_line_from_text() -> None:
    fields = ("e1", "a/b/1", "kr-daejeon", "GPU-1", "", "idle", "idle:kr", "idle:kr", "", "0", "3")
    from_text = entry_line_fixed(*fields, fixed(0, 9), fixed(1, 6), fixed(0, 3), "cfg")
    from_decimals = entry_line("e1", "a/b/1", "kr-daejeon", "GPU-1", None, "idle", "idle:kr", "idle:kr", "", 0, 3,
                               Decimal("0E-9"), Decimal("0.000001"), Decimal("0.000"), "cfg")
    assert from_text == from_decimals == (
        b"e1|a/b/1|kr-daejeon|GPU-1||idle|idle:kr|idle:kr||0|3|0.000000000|0.000001|0.000|cfg\n")
