"""Agents -> real Kafka -> the real Faust worker -> real ClickHouse."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from agents.publisher import KafkaPublisher
from agents.runner import FleetClock, build_sim_fleet, run_fleet
from schemas.topics import DLQ_TOPIC, WINDOWS_TOPIC
from tests.conftest import ROOT
from tests.helpers import wait_for
from tests.stack_helpers import Recorder, assert_exact, drained, ledger_by_window, replay, sim_fleet

pytestmark = pytest.mark.integration
S = 1_000_000_000


def test_sim_fleet_energy_lands_in_the_ledger_to_the_millijoule(stack, worker, ch, config_and_hash) -> None:
    cfg, digest = config_and_hash
    pub = Recorder(KafkaPublisher(stack.kafka_bootstrap))
    sim_fleet(cfg, pub, minutes=5, seed=int(time.time()) % 10_000)
    windows = pub.windows()
    assert len(windows) >= 3 * 30
    assert_exact(ch, windows)
    hashes = ch.execute("SELECT DISTINCT config_hash FROM ledger WHERE window_id IN %(ids)s",
                        {"ids": tuple(w.window_id for w in windows)})
    assert hashes == [(digest,)]
    members = {r[0] for r in ch.execute(
        "SELECT DISTINCT member FROM ledger WHERE window_id IN %(ids)s",
        {"ids": tuple(w.window_id for w in windows)})}
    assert len(members - {""}) >= 5
    # who pays is the scheduler's word: every job window is billed from the job events the
    # simulated sites sent just before (each worker reads them all before attributing windows)
    sources = dict(ch.execute(
        "SELECT concat(account_kind, '/', account_source), count() FROM ledger WHERE window_id IN %(ids)s "
        "GROUP BY account_kind, account_source", {"ids": tuple(w.window_id for w in windows)}))
    assert set(sources) <= {"job/job_event", "idle/none"} and sources.get("job/job_event", 0) > 0, sources


def test_real_h100_trace_replayed_twice_counts_once(stack, worker, ch, trace_dir) -> None:
    node = f"replay-{uuid.uuid4().hex[:8]}"
    pub = Recorder(KafkaPublisher(stack.kafka_bootstrap))
    agent = replay(trace_dir, pub, node)
    windows = pub.windows()
    assert_exact(ch, windows)
    before = ch.execute("SELECT sum(energy_mj), count() FROM ledger WHERE agent_id = %(a)s",
                        {"a": node})[0]
    assert before[0] == agent.totals.energy_mj
    replay(trace_dir, pub, node)  # the same windows again: a resend after an outage
    drained(ch, pub.inner, node.encode())
    after = ch.execute("SELECT sum(energy_mj), count() FROM ledger WHERE agent_id = %(a)s",
                       {"a": node})[0]
    assert after == before


def test_bad_messages_go_to_the_dead_letter_topic(stack, worker, ch) -> None:
    from kafka import KafkaConsumer, TopicPartition

    marker = uuid.uuid4().hex
    # read the DLQ from where it ends now: other tests (and earlier runs on a
    # kept stack) leave it large, and reading all of it is minutes of CRC checks
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, consumer_timeout_ms=5000)
    tp = TopicPartition(DLQ_TOPIC, 0)
    consumer.assign([tp])
    start = consumer.end_offsets([tp])[tp]
    pub = KafkaPublisher(stack.kafka_bootstrap)
    bad = [f"not json {marker}".encode(),
           json.dumps({"schema_version": 9, "agent_id": marker}).encode()]
    for raw in bad:
        pub.publish(WINDOWS_TOPIC, b"x", raw)
    pub.flush()
    def dlq_reasons() -> list[str]:
        rows = ch.execute("SELECT reason FROM dlq_records FINAL WHERE position(raw, %(m)s) > 0 "
                          "ORDER BY reason", {"m": marker})
        return [r[0] for r in rows]

    wait_for(lambda: len(dlq_reasons()) == 2, 60, "both DLQ rows")
    assert dlq_reasons() == ["malformed_json", "unsupported_version"]
    consumer.seek(tp, start)
    records = [json.loads(m.value) for m in consumer]
    consumer.close()
    ours = [r for r in records if marker.encode() in base64.b64decode(r["raw_b64"])]
    assert sorted(r["reason"] for r in ours) == ["malformed_json", "unsupported_version"]
    assert {base64.b64decode(r["raw_b64"]) for r in ours} == set(bad)
    assert worker.alive()


@pytest.mark.chaos
def test_worker_killed_mid_stream_loses_and_doubles_nothing(stack, worker, ch, config_and_hash,
                                                            fault_table) -> None:
    cfg, _ = config_and_hash
    pub = Recorder(KafkaPublisher(stack.kafka_bootstrap))
    worker.kill(9)
    sim_fleet(cfg, pub, minutes=10, seed=int(time.time()) % 10_000 + 1)
    windows = pub.windows()
    ids = [w.window_id for w in windows]
    for _ in range(2):
        worker.start()
        wait_for(lambda: 0 < len(ledger_by_window(ch, ids)), 90, "the worker to start writing")
        worker.kill(9)
    worker.start()
    booked, residual = assert_exact(ch, windows)
    fault_table.append(("stream worker SIGKILLed 3 times mid-stream", len(windows), booked, residual))


def test_two_workers_split_the_partitions_and_the_ledger_stays_exact(stack, worker, ch, config_and_hash,
                                                                      tmp_path) -> None:
    """Scale-out: a second worker joins the group with its own chain; both book, nothing twice."""
    from tests.conftest import WorkerProcess

    cfg, _ = config_and_hash
    worker.wait_ready()
    second = WorkerProcess(stack, tmp_path / "second.log", {"BRIDGELEDGER_CHAIN_ID": "second"})
    second.start()
    try:
        second.wait_ready()
        time.sleep(12)  # the group settles: each worker owns two of the four partitions
        pub = Recorder(KafkaPublisher(stack.kafka_bootstrap))
        start = (time.time_ns() // S - 3 * 3600) * S
        clock = FleetClock(start)
        fleet = build_sim_fleet(cfg, pub, clock, start_ns=start, horizon_ns=300 * S, nodes_per_site=4,
                                gpus_per_node=2, window_s=10, seed=int(time.time()) % 10_000 + 11)
        run_fleet(fleet, pub, clock, until_ns=start + 240 * S, job_events=False)
        windows = pub.windows()
        assert_exact(ch, windows)
        chains = {r[0] for r in ch.execute(
            "SELECT DISTINCT chain_id FROM ledger_batches WHERE batch_id IN "
            "(SELECT batch_id FROM windows WHERE window_id IN %(ids)s)",
            {"ids": tuple(w.window_id for w in windows)})}
        assert chains == {"main", "second"}, chains
    finally:
        second.kill(15)


def test_audit_tools_are_clean_on_the_pipeline_output(stack, worker, ch) -> None:
    """Runs last in this module: everything the tests above put through the worker."""
    import subprocess
    import sys

    env = worker.env()
    for cmd, words in ((["ledger", "verify"], "chain verified"),
                       (["ledger", "reconcile"], "residual: +0 mJ, +0 GPU-ms"),
                       (["ledger", "recompute"], "identical to the stored ledger")):
        res = subprocess.run([sys.executable, "-m", "bridgeledger.cli", *cmd], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        assert words in res.stdout
    batches = ch.execute("SELECT count() FROM ledger_batches")[0][0]
    assert batches > 0


def test_audits_in_two_processes_report_what_one_process_does(stack, worker, ch, ch_settings,
                                                              monkeypatch) -> None:
    """verify, reconcile and recompute cut into many small chunks (a few batches, a few
    windows each) and run in two processes, each on its own connection to 18.16: the
    same reports as in one process, and as uncut."""
    from ledger import audit, verify
    from ledger.audit import recompute, reconcile
    from ledger.chunk_pool import ChunkPool
    from ledger.verify import verify_ledger
    from tests.builders import ALL

    db = ch_settings.database
    whole = (verify_ledger(ch, db, *ALL), reconcile(ch, db, *ALL), recompute(ch, db, *ALL))
    assert whole[0].ok and whole[1].ok and whole[2].ok
    monkeypatch.setattr(verify, "CHUNK_BATCHES", 3)
    monkeypatch.setattr(audit, "SLICE_WINDOWS", 40)
    assert len(audit.time_slices(ch, db, *ALL)) > 2
    pool = ChunkPool(ch_settings, 2)
    for one, two in ((verify_ledger(ch, db, *ALL), verify_ledger(ch, db, *ALL, pool=pool)),
                     (reconcile(ch, db, *ALL), reconcile(ch, db, *ALL, pool=pool)),
                     (recompute(ch, db, *ALL), recompute(ch, db, *ALL, pool=pool))):
        assert one == two
    assert (verify_ledger(ch, db, *ALL, pool=pool), reconcile(ch, db, *ALL, pool=pool),
            recompute(ch, db, *ALL, pool=pool)) == whole
