"""Faults on the real stack: ClickHouse down while the worker runs, windows
duplicated and out of order, and no password in process lists or logs."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from pathlib import Path

import pytest

from agents.publisher import KafkaPublisher
from schemas.topics import WINDOWS_TOPIC
from tests.stack_helpers import Recorder, assert_exact, drained, sim_fleet

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
S = 1_000_000_000


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
    drained(ch, pub, b"k")
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


def test_ten_thousand_bad_messages_through_the_real_worker(stack, worker, ch) -> None:
    """Every broken message ends in the DLQ with its reason; valid ones among them are all booked."""
    import uuid
    from collections import Counter

    from tests.builders import BREAKERS, valid, wire

    marker = uuid.uuid4().hex[:10]
    rng = random.Random(7)
    pub = KafkaPublisher(stack.kafka_bootstrap)
    expected: Counter[str] = Counter()
    good = []
    start_ns = (time.time_ns() // 10**9 - 120) * 10**9  # recent: the broker's append time checks the age
    for i in range(10_400):
        doc = valid(rng, i)
        doc["agent_id"] = f"fuzz-{marker}-{i % 7}"
        doc["window_start_ns"], doc["window_end_ns"] = start_ns, start_ns + 10 * 10**9
        if i % 26 == 0:
            good.append(doc)
            pub.publish(WINDOWS_TOPIC, b"fuzz", wire(doc))
            continue
        # every class, signature ones included: the stack's config asks every site to sign
        kind = rng.choice(list(BREAKERS))
        raw = BREAKERS[kind](doc, rng)
        if kind == "malformed_json":
            raw = f"#{marker}-{i}#".encode() + raw  # unique bytes: the DLQ table dedups identical ones
        pub.publish(WINDOWS_TOPIC, b"fuzz", raw)
        expected[kind] += 1
    pub.flush(120)
    assert sum(expected.values()) >= 10_000

    def reasons() -> Counter[str]:
        rows = ch.execute("SELECT reason, count() FROM dlq_records FINAL WHERE position(raw, %(m)s) > 0 "
                          "GROUP BY reason", {"m": marker})
        return Counter({r: int(n) for r, n in rows})

    from tests.helpers import wait_for

    wait_for(lambda: sum(reasons().values()) >= sum(expected.values()), 300, "every bad message in the DLQ")
    assert reasons() == expected
    booked = ch.execute("SELECT count(DISTINCT window_id), sum(energy_mj) FROM ledger WHERE agent_id LIKE %(p)s",
                        {"p": f"fuzz-{marker}-%"})[0]
    assert booked == (len(good), sum(d["gpus"][0]["energy_mj"] for d in good))
    assert worker.alive()


def test_an_agent_down_for_two_minutes_costs_its_site_exactly_that_availability(stack, worker, ch, ch_settings,
                                                                               config_and_hash, fault_table) -> None:
    """In-kind capacity (ledger/capacity.py) on the real stack: a node whose agent is down for a known
    span (its windows never reach the centre, as with a node powered off) loses exactly that span."""
    from datetime import UTC, datetime

    from agents.runner import FleetClock, build_sim_fleet, run_fleet
    from ledger.capacity import capacity
    from schemas import decode_window

    cfg, _ = config_and_hash
    site = next(s for s in cfg.sites if s.id == "de-juelich")
    # the site declares 2 GPUs: the base of availability (only capacity reads it, not the stream)
    declared = cfg.model_copy(update={"sites": [s.model_copy(update={"gpus": 2}) if s is site else s
                                                for s in cfg.sites]})
    worker.wait_ready()
    start = (time.time_ns() // S // 86400 - 2) * 86400 * S + random.randrange(0, 86000) // 10 * 10 * S
    rec = Recorder(_Holding())
    clock = FleetClock(start)
    fleet = build_sim_fleet(cfg, rec, clock, start_ns=start, horizon_ns=600 * S, nodes_per_site=1, gpus_per_node=2,
                            window_s=10, seed=int(time.time()) % 10_000 + 21, sites=["de-juelich"])
    run_fleet(fleet, rec, clock, until_ns=start + 600 * S)
    # down from the third minute to the fifth: windows 12..23 never arrive
    down = {v for t, v in rec.sent if t == WINDOWS_TOPIC and 12 <= decode_window(v).seq <= 23}
    assert len(down) == 12
    pub = KafkaPublisher(stack.kafka_bootstrap)
    for topic, value in rec.sent:
        if value not in down:
            pub.publish(topic, b"de-juelich", value)
    pub.flush()
    kept = [w for w in rec.windows() if w.seq < 12 or w.seq > 23]
    assert len(kept) == 48
    booked, residual = assert_exact(ch, kept)
    t0, t1 = (datetime.fromtimestamp(t // S, UTC).replace(tzinfo=None) for t in (start, start + 600 * S))
    (de,) = [m for m in capacity(ch, ch_settings.database, declared, t0, t1) if m.member == "DE"]
    (cap,) = de.sites
    # 48 of 60 windows × 10 s × 2 GPUs reported, of 2 GPUs × 600 s: 80 %, the two minutes down missing
    assert (cap.reported_gpu_s, cap.calendar_gpu_s) == (960, 1200) and cap.availability == Decimal("0.8")
    hours = ch.execute("SELECT sum(normalised_gpu_hours) FROM ledger WHERE site_id = 'de-juelich' "
                       "AND window_start >= %(a)s AND window_start < %(b)s", {"a": t0, "b": t1})[0][0]
    assert cap.delivered_h == Decimal(str(hours)) > 0  # what it delivered is the ledger's GPU time there
    fault_table.append(("an agent down for 2 of 10 minutes: its site's availability 80 %", len(kept), booked,
                        residual))
