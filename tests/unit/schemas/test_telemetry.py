from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import WireError, decode_window
from tests.builders import window


def test_round_trip_keeps_the_contract_names() -> None:
    w = decode_window(json.dumps(window()).encode())
    again = json.loads(w.to_json_bytes())
    for key in ("schema_version", "agent_id", "site_id", "node", "boot_id", "seq",
                "window_start_ns", "window_end_ns", "gpus"):
        assert key in again
    g = again["gpus"][0]
    for key in ("uuid", "model", "energy_mj", "gpu_seconds", "util_gpu", "mem_used_bytes",
                "power_avg_mw", "processes"):
        assert key in g
    assert g["processes"][0] == {"pid": 1, "job_id": "7", "sm_share": 0.5}
    assert w.window_id == "kr-daejeon/a1/b1/e1/3"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1,2]", "schema_invalid"),
        (json.dumps(window(schema_version=2)).encode(), "unsupported_version"),
        (json.dumps(window(seq=-1)).encode(), "schema_invalid"),
        (json.dumps(window(window_end_ns=10**18)).encode(), "schema_invalid"),
        (json.dumps(window(gpus=[{"uuid": "x"}])).encode(), "schema_invalid"),
    ],
)
def test_bad_messages_get_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(WireError) as err:
        decode_window(raw)
    assert err.value.reason == reason


def test_shares_above_one_are_rejected() -> None:
    doc = window()
    doc["gpus"][0]["processes"] = [{"pid": 1, "sm_share": 0.7}, {"pid": 2, "sm_share": 0.4}]
    with pytest.raises(WireError, match="sum to 1.1"):
        decode_window(json.dumps(doc))


def test_energy_must_be_an_integer() -> None:
    doc = window()
    doc["gpus"][0]["energy_mj"] = 12.5
    with pytest.raises(WireError) as err:
        decode_window(json.dumps(doc))
    assert "energy_mj" in err.value.detail


# -- the fast decoder (msgspec) never accepts what the pydantic contract refuses ------

def _same(raw: bytes) -> None:
    """decode_window_fast and decode_window: the same window, or the same WireError."""
    from schemas.telemetry import _fast_decode, decode_window_fast

    try:
        want = decode_window(raw)
    except WireError as exc:
        with pytest.raises(WireError) as err:
            decode_window_fast(raw)
        assert (err.value.reason, err.value.detail) == (exc.reason, exc.detail)
        assert _fast_decode(raw) is None  # refused by the fast path itself, not only by its fallback
        return
    got = decode_window_fast(raw)  # msgspec's window, or pydantic's where msgspec refused
    got_doc = got.model_dump() if hasattr(got, "model_dump") else msgspec.to_builtins(got)
    assert got_doc == want.model_dump(), raw
    assert (got.window_id, got.window_s, [_ms(g) for g in got.gpus]) == (
        want.window_id, want.window_s, [_ms(g) for g in want.gpus])


def _ms(gpu) -> int | str:
    try:
        return gpu.gpu_ms
    except OverflowError:  # 1e308 GPU-seconds: refused later as implausible, by both
        return "overflow"


# "ok\n" and a signature with a final newline: what re.search's '$' (msgspec's Meta(pattern)) took, the contract not
ODD_VALUES = [None, True, False, 0, -1, 1, 2**63, 2**64, 0.5, 1.0, 1.5, 100.5, -0.0, 1e308, "", "1", "x" * 257,
              "ok", "ok\n", "0" * 128 + "\n", [], [1], {}, {"a": 1}]


@pytest.mark.parametrize("path", [
    ("schema_version",), ("agent_id",), ("site_id",), ("node",), ("boot_id",), ("seq",), ("window_start_ns",),
    ("window_end_ns",), ("gpus",), ("key_id",), ("signature",), ("gpus", 0, "uuid"), ("gpus", 0, "model"),
    ("gpus", 0, "energy_mj"), ("gpus", 0, "gpu_seconds"), ("gpus", 0, "util_gpu"), ("gpus", 0, "mem_used_bytes"),
    ("gpus", 0, "power_avg_mw"), ("gpus", 0, "power_limit_mw"), ("gpus", 0, "flags"), ("gpus", 0, "processes"),
    ("gpus", 0, "processes", 0, "pid"), ("gpus", 0, "processes", 0, "job_id"),
    ("gpus", 0, "processes", 0, "account"), ("gpus", 0, "processes", 0, "sm_share"),
    ("gpus", 0, "processes", 0, "mem_used_bytes"), ("gpus", 0, "processes", 0, "mig_uuid"),
])
def test_fast_decoder_agrees_field_by_field(path: tuple) -> None:
    for value in [*ODD_VALUES, "__missing__"]:
        doc = window()
        target = doc
        for step in path[:-1]:
            target = target[step]
        if value == "__missing__":
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
        _same(json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                max_size=3), max_leaves=8),
       st.sampled_from(["seq", "gpus", "window_end_ns", "extra", "site_id"]))
def test_fast_decoder_agrees_on_arbitrary_values(value, key) -> None:
    _same(json.dumps(window(**{key: value})).encode())
    doc = window()
    doc["gpus"][0]["processes"][0][key] = value
    _same(json.dumps(doc).encode())


def test_fast_decoder_agrees_on_the_bad_input_corpus() -> None:
    import random

    from tests.builders import BREAKERS, valid

    rng = random.Random(7)
    for i in range(400):
        reason = rng.choice(sorted(BREAKERS))
        _same(BREAKERS[reason](valid(rng, i), rng))
        _same(json.dumps(valid(rng, i)).encode())
    for raw in (b"", b"null", b"1", b'{"schema_version": 1}', b"\xff", b'{"a": NaN}', json.dumps(window()).encode()
                + b" ", b"  " + json.dumps(window()).encode()):
        _same(raw)


# -- the fast path's pattern checks remember strings, never verdicts of refusal ------

@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12), st.sampled_from([("agent_id",), ("gpus", 0, "uuid"), ("gpus", 0, "model"),
                                               ("gpus", 0, "processes", 0, "job_id"),
                                               ("gpus", 0, "processes", 0, "account"), ("gpus", 0, "flags")]))
def test_a_string_seen_valid_elsewhere_or_refused_before_gets_the_same_verdict(text, path) -> None:
    """The same string twice, in the field under test and after a window that carried
    it elsewhere: each time the fast path and pydantic agree (the memory of matched
    strings is per pattern, so an id's verdict never leaks to a text field)."""
    def placed(value: object) -> bytes:
        doc = window()
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = [value] if path[-1] == "flags" else value
        return json.dumps(doc).encode()

    for _ in range(2):
        _same(placed(text))
        _same(json.dumps(window(node=text)).encode())  # an identifier field elsewhere


def test_the_memory_of_matched_strings_is_bounded_and_still_refuses() -> None:
    from schemas.telemetry import _KnownGood

    good = _KnownGood(r"^[a-z]+$")
    good.LIMIT = 3
    assert [good.ok(s) for s in ("a", "b", "c", "d", "a")] == [True] * 5
    assert len(good.seen) <= 3
    assert not good.ok("A") and "A" not in good.seen
    assert not good.ok("a\n") and "a\n" not in good.seen  # as a whole: re.search's '$' would take it


def test_an_unknown_field_goes_the_slow_way_deep_or_not() -> None:
    from schemas.telemetry import _fast_decode, decode_window_fast

    shallow = json.dumps(window(extra={"a": [1]})).encode()
    assert _fast_decode(shallow) is None  # the fast structs refuse it ...
    assert decode_window_fast(shallow).window_id == decode_window(shallow).window_id  # ... pydantic ignores it
    deep = json.dumps(window(extra=json.loads("[" * 70 + "]" * 70))).encode()
    with pytest.raises(WireError) as err:
        decode_window_fast(deep)
    assert err.value.reason == "too_deep"
