"""Faults on the real stack: ClickHouse down while the worker runs, windows
duplicated and out of order, and no password in process lists or logs."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from agents.publisher import KafkaPublisher
from schemas.topics import WINDOWS_TOPIC
from tests.integration.test_pipeline import Recorder, assert_exact, sim_fleet

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def test_clickhouse_down_for_a_minute_loses_and_doubles_nothing(stack, worker, ch, config_and_hash,
                                                                fault_table) -> None:
    cfg, _ = config_and_hash
    worker.wait_ready()
    stack.stop("clickhouse")
    t_down = time.monotonic()
    try:
        pub = Recorder(KafkaPublisher(stack.kafka_bootstrap))
        sim_fleet(cfg, pub, minutes=4, seed=int(time.time()) % 10_000 + 7)
        time.sleep(max(0.0, 60 - (time.monotonic() - t_down)))
        assert worker.alive(), "the worker must wait for ClickHouse, not die"
    finally:
        stack.up(timeout_s=180)
    windows = pub.windows()
    booked, residual = assert_exact(ch, windows)
    fault_table.append(("ClickHouse stopped for 60 s while the worker runs", len(windows), booked, residual))


def test_duplicated_reordered_and_late_windows_count_once(stack, worker, ch, config_and_hash,
                                                          fault_table) -> None:
    cfg, _ = config_and_hash
    rec = Recorder(_Holding())
    sim_fleet(cfg, rec, minutes=3, seed=int(time.time()) % 10_000 + 9)
    sent = [v for t, v in rec.sent if t == WINDOWS_TOPIC]
    rng = random.Random(5)
    mixed = sent + rng.sample(sent, len(sent) // 3)  # a third resent
    rng.shuffle(mixed)  # and out of order
    late = mixed[: len(mixed) // 10]  # a tenth arrives again, minutes later
    pub = KafkaPublisher(stack.kafka_bootstrap)
    for raw in mixed:
        pub.publish(WINDOWS_TOPIC, b"k", raw)
    pub.flush()
    windows = rec.windows()
    assert_exact(ch, windows)
    for raw in late:
        pub.publish(WINDOWS_TOPIC, b"k", raw)
    pub.flush()
    time.sleep(3)
    booked, residual = assert_exact(ch, windows)
    fault_table.append((f"{len(mixed) - len(sent)} windows resent, all shuffled, {len(late)} again later",
                        len(windows), booked, residual))


class _Holding:
    """A publisher that only holds what it is given (the test sends it itself)."""

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        pass

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    def close(self) -> None:
        pass


def test_passwords_never_in_process_lists_or_logs(stack, worker) -> None:
    secrets = [stack.password(u).encode() for u in ("writer", "auditor", "default")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            assert not any(s in cmdline for s in secrets), f"a password in the command line of pid {proc.name}"
    logs = [worker.log_path, *stack.state.glob("*/*.out"), *stack.state.glob("*/*.log")]
    for log in logs:
        data = log.read_bytes()
        assert not any(s in data for s in secrets), f"a password in {log}"
    users = (stack.ch_dir / "users.xml").read_bytes()
    assert not any(s in users for s in secrets) and b"password_sha256_hex" in users
