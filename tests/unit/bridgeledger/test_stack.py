"""The local stack's Kafka cluster id (bridgeledger/stack.py)."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from bridgeledger.stack import kafka_cluster_id

UUID_BYTES = st.binary(min_size=16, max_size=16)


@given(st.lists(UUID_BYTES, min_size=1, max_size=5).filter(
    lambda draws: any(not base64.urlsafe_b64encode(b).startswith(b"-") for b in draws)))
def test_the_cluster_id_is_the_first_draw_that_does_not_look_like_an_option(draws: list[bytes]) -> None:
    it = iter(draws)
    got = kafka_cluster_id(lambda: next(it))
    first = next(b for b in draws if not base64.urlsafe_b64encode(b).startswith(b"-"))
    assert got == base64.urlsafe_b64encode(first).decode().rstrip("=")
    assert len(got) == 22 and not got.startswith("-")
    assert base64.urlsafe_b64decode(got + "==") == first


def test_a_draw_starting_with_a_dash_is_drawn_again() -> None:
    draws = iter([b"\xf8" + bytes(15), bytes(16)])  # 0xf8: the first six bits are 62, "-"
    assert kafka_cluster_id(lambda: next(draws)) == "AAAAAAAAAAAAAAAAAAAAAA"
