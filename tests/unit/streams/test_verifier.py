"""Signatures checked beside the worker (streams/verifier.py) give the same
outcome as checking each message before its attribution.

The reference is the offline path, message by message: ``WindowProcessor.process``
and the batch's duplicate rule. The worker's batch path screens every message,
sends the signatures to its verifier, attributes while they are checked and
decides afterwards; for any batch, hostile or not, both must accept the same
windows with the same entries and refuse the same messages for the same
reasons in the same order, inline and with a pool of verifying processes.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.ledger import entry_from_row
from streams.sink import MemorySink
from streams.verifier import InlineVerifier, PoolVerifier, verify_signed
from streams.worker import LedgerWorker
from tests.builders import NOW_NS, OTHER_KEY, forged, good, hostile, processor, set_field, window, wire

PROCESSOR = processor()


@pytest.fixture(scope="module")
def pool() -> Iterator[PoolVerifier]:
    v = PoolVerifier(1)
    v.start()
    yield v
    v.close()


def reference(raws: list[bytes | None]) -> tuple[list[bytes], list[tuple[str, bytes]], list[object]]:
    """Accepted messages, (reason, bytes) of the refused, and the entries: one message at a time."""
    accepted: list[bytes] = []
    refused: list[tuple[str, bytes]] = []
    entries: list[object] = []
    seen: dict[str, bytes] = {}
    for raw in raws:
        out = PROCESSOR.process(raw, now_ns=NOW_NS)
        if out.rejection is not None:
            refused.append((out.rejection.reason, out.rejection.raw))
            continue
        assert out.window is not None and raw is not None
        first = seen.get(out.window.window_id)
        if first is not None:
            if first != raw:
                refused.append(("conflicting_duplicate", raw))
            continue
        seen[out.window.window_id] = raw
        accepted.append(raw)
        entries.extend(out.entries)
    return accepted, refused, entries


def batch_path(raws: list[bytes | None], verifier: InlineVerifier | PoolVerifier
               ) -> tuple[list[bytes], list[tuple[str, bytes]], list[object]]:
    w = LedgerWorker(PROCESSOR, MemorySink(), clock_ns=lambda: NOW_NS, verifier=verifier)
    b = w.prepare(raws)
    return ([raw for _, raw in b.accepted], [(r.reason, r.raw) for r in b.rejections],
            [entry_from_row(e) for e in b.entries])


@st.composite
def batches(draw: st.DrawFn) -> list[bytes | None]:
    """Hostile messages, valid windows, forgeries of them (also otherwise wrong) and resends."""
    rnd = random.Random(draw(st.integers()))
    out: list[bytes | None] = draw(st.lists(hostile(), max_size=5))
    for i in range(draw(st.integers(1, 4))):
        doc = window(seq=200 + i, agent_id=f"v{i % 2}")
        out.append(wire(doc))
        if rnd.random() < 0.5:  # the same id, forged: must never displace or shadow the real one
            out.append(forged(doc, rnd))
        if rnd.random() < 0.3:  # forged and from the future: the forgery is what is reported
            out.append(forged(set_field(doc, "window_end_ns", NOW_NS + 10**15), rnd))
        if rnd.random() < 0.3:
            out.append(wire(doc))  # a resend
    rnd.shuffle(out)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_the_batch_path_decides_like_the_message_by_message_path(raws: list[bytes | None]) -> None:
    assert batch_path(raws, InlineVerifier()) == reference(raws)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(batches())
def test_a_pool_of_verifying_processes_decides_the_same(pool: PoolVerifier, raws: list[bytes | None]) -> None:
    assert batch_path(raws, pool) == reference(raws)


def test_a_forgery_sent_before_the_real_window_neither_books_nor_blocks_it(pool: PoolVerifier) -> None:
    doc = window(seq=5)
    fake, real = forged(doc, random.Random(1)), wire(doc)
    accepted, refused, entries = batch_path([fake, real], pool)
    assert accepted == [real] and refused == [("bad_signature", fake)] and entries


def test_verdicts_are_per_message_and_in_order() -> None:
    good_raw = good(seq=1)
    key = bytes(PROCESSOR.keys[("kr-daejeon", "kr-daejeon-demo")])
    other = bytes(OTHER_KEY.verify_key)
    bad = forged(window(seq=2), random.Random(0))
    assert verify_signed([(good_raw, key), (bad, key), (good_raw, other), (b"{}", key)]) == [True, False, False, False]


def test_a_killed_verifying_process_costs_no_verdict_and_the_pool_recovers() -> None:
    v = PoolVerifier(1)
    v.start()
    try:
        for pid in v.pids():
            os.kill(pid, signal.SIGKILL)
        raws: list[bytes | None] = [*(good(seq=i) for i in range(3)), forged(window(seq=9), random.Random(2))]
        # the broken pool's batch is checked in the worker: same outcome
        assert batch_path(raws, v) == reference(raws)
        assert v.failures == 1
        # and the next batch runs in a new pool
        assert batch_path(raws, v) == reference(raws)
        assert v.failures == 1 and v.pids()
    finally:
        v.close()


def test_the_worker_checks_signatures_in_its_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing verified in the processor itself on the batch path: the verifier's
    verdicts decide (a verifier answering 'forged' for everything refuses all)."""

    class Refusing(InlineVerifier):
        def submit(self, items):  # type: ignore[no-untyped-def]
            return lambda: [False] * len(items)

    raw = good(seq=3)
    w = LedgerWorker(PROCESSOR, MemorySink(), clock_ns=lambda: NOW_NS, verifier=Refusing())
    b = w.prepare([raw])
    assert not b.accepted and not b.entries and [r.reason for r in b.rejections] == ["bad_signature"]
    assert json.loads(raw)["signature"]


def test_the_wait_for_a_batchs_checks_is_measured_apart() -> None:
    """verify_wait_seconds_total: how long the worker waited for the verdicts after it had
    attributed the batch (part of process_seconds_total), so a verifying stage that is
    slower than attribution shows as such."""
    import time

    class Slow(InlineVerifier):
        def submit(self, items):  # type: ignore[no-untyped-def]
            verdicts = super().submit(items)
            return lambda: (time.sleep(0.3), verdicts())[1]

    w = LedgerWorker(PROCESSOR, MemorySink(), clock_ns=lambda: NOW_NS, verifier=Slow())
    b = w.prepare([good(seq=4)])
    assert len(b.accepted) == 1
    assert 0.3 <= w.stats.verify_wait_seconds <= w.stats.process_seconds
    fast = LedgerWorker(PROCESSOR, MemorySink(), clock_ns=lambda: NOW_NS, verifier=InlineVerifier())
    fast.prepare([good(seq=4)])
    assert fast.stats.verify_wait_seconds < 0.1
    assert "bridgeledger_stream_verify_wait_seconds_total 0.3" in w.stats.render()


def test_a_worker_killed_with_sigkill_leaves_no_verifying_process() -> None:
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    script = "\n".join(("import sys, time", f"sys.path.insert(0, {str(root)!r})",
                         "from streams.verifier import PoolVerifier", "v = PoolVerifier(1)", "v.start()",
                         "print(*v.pids(), flush=True)", "time.sleep(600)"))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        (child,) = (int(x) for x in parent.stdout.readline().split())
        os.kill(child, 0)  # running
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return
            if Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                return  # exited, waiting for init to reap it
            time.sleep(0.2)
        raise AssertionError(f"verifying process {child} outlived its worker")
    finally:
        parent.kill()
