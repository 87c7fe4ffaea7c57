"""Helpers for the tests on the real stack: publish through a recording
publisher, run a simulated fleet or the recorded H100 trace, and compare what
was sent with what the ledger holds."""

from __future__ import annotations

import time
import uuid

from agents.publisher import KafkaPublisher
from agents.runner import FleetClock, NodeAgent, build_sim_fleet, replay_trace, run_fleet
from schemas import decode_window
from schemas.topics import WINDOWS_TOPIC
from tests.conftest import ROOT
from tests.helpers import wait_for

S = 1_000_000_000


class Recorder:
    """Wraps a publisher and keeps what was sent, to compare with the ledger."""

    def __init__(self, inner: KafkaPublisher) -> None:
        self.inner = inner
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self.inner.publish(topic, key, value)
        self.sent.append((topic, value))

    def flush(self, timeout_s: float = 30.0) -> None:
        self.inner.flush(timeout_s)

    def close(self) -> None:
        self.inner.close()

    def windows(self):
        return [decode_window(v) for t, v in self.sent if t == WINDOWS_TOPIC]


def sim_fleet(config, publisher, minutes: int, seed: int) -> None:
    start = (time.time_ns() // S - minutes * 60 - 3600) * S
    clock = FleetClock(start)
    fleet = build_sim_fleet(config, publisher, clock, start_ns=start, horizon_ns=minutes * 60 * S,
                            nodes_per_site=1, gpus_per_node=8, window_s=10, seed=seed)
    run_fleet(fleet, publisher, clock, until_ns=start + minutes * 60 * S)


def ledger_by_window(ch, window_ids) -> dict[str, tuple[int, int]]:
    rows = ch.execute(
        "SELECT window_id, sum(energy_mj), sum(gpu_ms) FROM ledger "
        "WHERE window_id IN %(ids)s GROUP BY window_id", {"ids": tuple(window_ids)})
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def wait_for_windows(ch, windows, timeout_s: float = 120.0) -> dict[str, tuple[int, int]]:
    ids = [w.window_id for w in windows]
    return wait_for(lambda: (got := ledger_by_window(ch, ids)) and len(got) == len(set(ids)) and got,
                    timeout_s, f"{len(ids)} windows in the ledger")


def assert_exact(ch, windows) -> tuple[int, int]:
    """Every window's energy and GPU time in the ledger, exactly; returns (windows booked, residual mJ)."""
    got = wait_for_windows(ch, windows)
    for w in windows:
        assert got[w.window_id] == (sum(g.energy_mj for g in w.gpus), sum(g.gpu_ms for g in w.gpus)), w.window_id
    ids = tuple(w.window_id for w in windows)
    total, distinct = ch.execute(
        "SELECT count(), uniqExact(entry_id) FROM ledger WHERE window_id IN %(ids)s",
        {"ids": ids})[0]
    assert total == distinct
    residual = sum(sum(g.energy_mj for g in w.gpus) for w in windows) - sum(v[0] for v in got.values())
    return len(got), residual


def replay(trace_dir, publisher, node: str) -> NodeAgent:
    return replay_trace(trace_dir, publisher, site_id="kr-daejeon", node=node,
                        accounts=ROOT / "deploy" / "replay-accounts.example.yaml")


def drained(ch, publisher, key: bytes, timeout_s: float = 120.0) -> None:
    """Wait until the worker has handled everything published so far under ``key``:
    a fresh window sent last under the same key (so on the same partition, which one
    worker handles in order) is in the ledger. For checks that something did *not*
    happen (a resend not booked again), instead of a fixed sleep."""
    from tests.builders import window, wire

    tag = f"sentinel-{uuid.uuid4().hex[:8]}"
    now = time.time_ns()
    publisher.publish(WINDOWS_TOPIC, key, wire(window(agent_id=tag, node=tag, window_start_ns=now - 20 * S,
                                                      window_end_ns=now - 10 * S)))
    publisher.flush()
    wait_for(lambda: ch.execute("SELECT count() FROM ledger WHERE agent_id = %(a)s", {"a": tag})[0][0] > 0,
             timeout_s, "a sentinel window sent after the others")
