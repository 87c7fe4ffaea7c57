"""No message can stop the ledger (issue: poison-proof worker).

Hypothesis drives the worker's real per-message path (decode -> check ->
attribute, ``LedgerWorker.prepare``) and the dead-letter writers (the Kafka
record and the ClickHouse row) with arbitrary bytes and with mutations of
valid windows: never an exception out of them, and every message is either
booked or dead-lettered with a reason and its original bytes.
"""

from __future__ import annotations

import base64
import json
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.telemetry import json_depth
from streams.processing import MAX_DETAIL_CHARS, Rejection
from streams.sink import MemorySink
from streams.worker import MAX_DLQ_RAW_BYTES, LedgerWorker, dlq_record
from tests.builders import NOW_NS, POISON, good, hostile, processor, window, wire


def worker() -> LedgerWorker:
    return LedgerWorker(processor(), MemorySink(), clock_ns=lambda: NOW_NS)


def accounted(w: LedgerWorker, raws: list[bytes | None]) -> tuple[int, list[Rejection]]:
    """Run a batch through prepare and write; every message is booked, a resend,
    or dead-lettered, and each dead letter serialises for both DLQ sinks."""
    batch = w.prepare(raws)
    rejections = w.write(batch)
    for r in rejections:
        assert r.reason and len(r.detail) <= MAX_DETAIL_CHARS
        r.detail.encode("utf-8")  # the ClickHouse row and the log line can always be written
        doc = json.loads(dlq_record(r, "telemetry.gpu.windows", NOW_NS))
        assert doc["raw_len"] == len(r.raw)
        assert base64.b64decode(doc["raw_b64"]) == r.raw[:MAX_DLQ_RAW_BYTES]
    return len(batch.accepted), rejections


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile(), min_size=1, max_size=8), st.randoms())
def test_any_message_is_booked_or_dead_lettered_and_the_worker_goes_on(messages: list[bytes | None],
                                                                      rnd: random.Random) -> None:
    w = worker()
    valid = [good(seq=1000 + i, agent_id=f"v{i}") for i in range(3)]
    batch = [*messages, *valid]
    rnd.shuffle(batch)
    booked, rejections = accounted(w, batch)
    # every message is booked once, a resend of an earlier one, or dead-lettered
    distinct_booked = {x.window_id for x, _ in w.sink.windows}
    assert booked == len(distinct_booked)
    resends = len(batch) - booked - len(rejections)
    assert resends >= 0
    assert all(json.loads(v)["agent_id"] in {x.agent_id for x, _ in w.sink.windows} for v in valid)
    # the worker keeps working after the batch
    after, _ = accounted(w, [good(seq=7, agent_id="after")])
    assert after == 1


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=2048))
def test_arbitrary_bytes_never_raise_out_of_the_processor(data: bytes) -> None:
    out = processor().process(data, None, NOW_NS)
    assert (out.window is None) == (out.rejection is not None)
    if out.rejection is not None:
        assert out.rejection.raw == data


# -- the classes named in the issue, one by one ---------------------------------------------



@pytest.mark.parametrize("name", list(POISON))
def test_each_poison_class_is_dead_lettered_with_its_reason(name: str) -> None:
    raw, reason = POISON[name]
    w = worker()
    booked, rejections = accounted(w, [raw, good(seq=99)])
    assert booked == 1
    assert [r.reason for r in rejections] == [reason], rejections
    assert rejections[0].raw == (raw or b"")


def test_an_unexpected_error_in_attribution_is_an_internal_error_dead_letter(monkeypatch) -> None:
    w = worker()

    def broken(*args: Any) -> None:
        raise ZeroDivisionError("a bug")

    calls = Counter[str]()
    real = w.processor.attribute_rows

    def half_broken(window: Any, jobs: Any, rows: list[Any]) -> None:
        calls["n"] += 1
        real(window, jobs, rows)  # rows appended, then the failure: they must not stay
        if window.seq == 2:
            raise ZeroDivisionError("a bug")

    monkeypatch.setattr(w.processor, "attribute_rows", half_broken)
    booked, rejections = accounted(w, [good(seq=1), good(seq=2), good(seq=3)])
    assert booked == 2
    assert [(r.reason, r.detail) for r in rejections] == [("internal_error", "ZeroDivisionError: a bug")]
    assert {e.seq for e in w.sink.entries} == {1, 3}


def test_the_dead_letter_of_the_largest_message_fits_a_kafka_record() -> None:
    raw = b"{" * (1 << 20)  # what a broker with the default limit may deliver: 1 MiB
    out = processor().process(raw, None, NOW_NS)
    assert out.rejection is not None and out.rejection.reason == "oversized"
    record = dlq_record(out.rejection, "telemetry.gpu.windows", NOW_NS)
    assert len(record) < 1_000_000  # the broker's default max.message.bytes is 1,048,588
    doc = json.loads(record)
    assert doc["raw_truncated"] is True and doc["raw_len"] == 1 << 20


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a":"[[[[{{{{","b":[[1]]}') == 3
    assert json_depth(b'"\\"[["') == 0
    assert json_depth(b"\xff[[\x00]]") == 2


def test_conflicting_duplicate_in_one_batch_and_across_batches() -> None:
    w = worker()
    first = good(seq=5)
    other = wire({**window(seq=5), "gpus": [{**window()["gpus"][0], "energy_mj": 6000}]})
    _, rejections = accounted(w, [first, first, other])  # a resend (skipped) and a conflict
    assert [r.reason for r in rejections] == ["conflicting_duplicate"]
    assert "differs" in rejections[0].detail
    _, again = accounted(w, [first, other])  # next batch: the resend skipped, the conflict refused
    assert [r.reason for r in again] == ["conflicting_duplicate"]
    assert sum(e.energy_mj for e in w.sink.entries) == 5000


def test_an_agent_restarted_without_its_spool_keeps_its_new_windows() -> None:
    # same agent, boot and seq, but a new spool and so a new epoch: not a duplicate
    w = worker()
    before, _ = accounted(w, [good(seq=0, epoch="e1")])
    after, rejections = accounted(w, [good(seq=0, epoch="e2")])
    assert (before, after, rejections) == (1, 1, [])
    ids = sorted(x.window_id for x, _ in w.sink.windows)
    assert ids == ["kr-daejeon/a1/b1/e1/0", "kr-daejeon/a1/b1/e2/0"]


def test_another_site_with_the_same_agent_ids_is_a_different_window() -> None:
    # two sites that both name their agent a1 (and boot b1, epoch e1): two windows
    w = worker()
    booked, rejections = accounted(w, [good(seq=0), good(seq=0, site_id="de-juelich")])
    assert (booked, rejections) == (2, [])
    assert sum(e.energy_mj for e in w.sink.entries) == 2 * 5000


def test_the_window_processor_used_offline_never_raises() -> None:
    p = processor()
    assert p.process(None).rejection.reason == "empty"
    assert p.process(b"\xff").rejection.reason == "malformed_json"
    assert p.process(b"[" * 100_000).rejection.reason == "too_deep"
