"""The poison-proof worker on the real stack (Kafka 4 + ClickHouse 18.16):
poison ahead of real traffic on every partition, a tombstone, a commit whose
acknowledgement is lost, and a second worker on a held chain."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from schemas.topics import WINDOWS_TOPIC
from tests.builders import POISON
from tests.helpers import wait_for
from tests.stack_helpers import Recorder, assert_exact, sim_fleet

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def _poison(marker: str) -> list[tuple[str, bytes | None]]:
    """Every poison class of tests/unit/streams/test_poison.py, made unique (the DLQ table
    keeps one row per reason and content) and findable by the marker."""
    out: list[tuple[str, bytes | None]] = []
    for i, (name, (raw, _)) in enumerate(POISON.items()):
        if raw is None:
            out.append((name, None))
        elif raw.startswith(b"{") and raw.endswith(b"}") and name != "oversized":
            out.append((name, raw[:-1] + f',"poison_marker":"{marker}-{i}"}}'.encode()))
        else:
            out.append((name, f"{marker}-{i}".encode() + raw))
    return out


def test_poison_on_every_partition_ahead_of_real_traffic(stack, worker, ch, config_and_hash, fault_table) -> None:
    from kafka import KafkaProducer

    from agents.publisher import KafkaPublisher

    cfg, _ = config_and_hash
    worker.wait_ready()
    marker = uuid.uuid4().hex[:12]
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, max_request_size=2 << 20)
    partitions = sorted(producer.partitions_for(WINDOWS_TOPIC))
    assert len(partitions) >= 2
    poison = _poison(marker)
    tombstones_before = int(ch.execute("SELECT count() FROM dlq_records WHERE reason = 'empty'")[0][0])
    for p in partitions:
        for _, raw in poison:
            producer.send(WINDOWS_TOPIC, value=raw, key=b"poison", partition=p)
    producer.flush(60)
    producer.close()
    pub = Recorder(KafkaPublisher(stack.kafka_bootstrap))
    sim_fleet(cfg, pub, minutes=2, seed=int(time.time()) % 10_000 + 13)
    windows = pub.windows()
    booked, residual = assert_exact(ch, windows)

    def found() -> int:
        return int(ch.execute("SELECT count() FROM dlq_records WHERE position(raw, %(m)s) > 0",
                              {"m": marker})[0][0])

    marked = sum(1 for _, raw in poison if raw is not None)
    # one row per class: the same bytes on every partition are one dead letter (the table dedups by content)
    wait_for(lambda: found() >= marked, 120, "every poison message in the DLQ")
    reasons = {r[0] for r in ch.execute("SELECT DISTINCT reason FROM dlq_records WHERE position(raw, %(m)s) > 0",
                                        {"m": marker})}
    assert "internal_error" not in reasons, reasons
    assert int(ch.execute("SELECT count() FROM dlq_records WHERE reason = 'empty'")[0][0]) > tombstones_before or \
        tombstones_before > 0
    assert worker.alive()
    fault_table.append((f"{len(poison)} poison classes ahead of traffic on {len(partitions)} partitions",
                        len(windows), booked, residual))


def test_a_lost_commit_acknowledgement_on_the_real_server(ch, ch_settings, config_and_hash) -> None:
    from streams.clickhouse import connect
    from streams.processing import WindowProcessor
    from streams.sink import ClickHouseSink
    from streams.worker import LedgerWorker
    from tests.builders import NOW_NS, LostAck, raw

    marker = uuid.uuid4().hex[:8]
    client = LostAck(connect(ch_settings))
    sink = ClickHouseSink(client, ch_settings.database, chain_id=f"lostack-{marker}")
    w = LedgerWorker(WindowProcessor(*config_and_hash), sink, clock_ns=lambda: NOW_NS)
    agent = f"lostack-{marker}"
    first = w.prepare([raw(1, agent_id=agent), raw(2, agent_id=agent)])
    client.lose_next_commit = True
    with pytest.raises(Exception, match="connection reset"):
        w.write(first)
    w.write(first)
    w.handle_windows([raw(3, agent_id=agent)])
    time.sleep(2)  # mutations on 18.16 are asynchronous: a wrong delete would show by now
    rows = ch.execute("SELECT count(DISTINCT window_id), sum(energy_mj) FROM ledger WHERE agent_id = %(a)s",
                      {"a": agent})
    assert (int(rows[0][0]), int(rows[0][1])) == (3, 15000)


def test_a_second_worker_on_a_live_chain_refuses_to_start(stack, worker, tmp_path) -> None:
    from tests.conftest import WorkerProcess

    worker.wait_ready()
    log = tmp_path / "second.log"
    second = WorkerProcess(stack, log, {"BRIDGELEDGER_LEASE_TTL_S": "5"})  # same chain id: main
    second.start()
    try:
        assert second.proc is not None
        rc = second.proc.wait(90)
    except subprocess.TimeoutExpired:
        second.kill(9)
        raise AssertionError("the second worker on chain main did not refuse to start") from None
    text = log.read_text()
    assert rc == 1, text[-2000:]
    assert "error: chain 'main' is held by another live worker" in text
    assert "BRIDGELEDGER_CHAIN_ID" in text
    assert worker.alive()


def test_the_broker_stamps_the_windows_topic_with_its_own_clock(stack, worker) -> None:
    """The time checks use the broker's append time (LogAppendTime), not the producer's claim."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    worker.wait_ready()  # the worker declared the topics
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    marker = uuid.uuid4().hex.encode()
    meta = producer.send(WINDOWS_TOPIC, value=b"not a window " + marker, key=b"clock", partition=0,
                         timestamp_ms=1000).get(30)  # a producer claiming 1970
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    tp = TopicPartition(WINDOWS_TOPIC, 0)
    consumer.assign([tp])
    consumer.seek(tp, meta.offset)
    record = next(m for m in consumer if marker in (m.value or b""))
    consumer.close()
    assert record.timestamp_type == 1  # LogAppendTime
    assert abs(record.timestamp - time.time() * 1000) < 120_000  # the broker's clock, not the claimed 1970
