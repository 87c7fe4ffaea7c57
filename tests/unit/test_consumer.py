"""The windows consumer's ordering guarantees, with an in-memory Kafka consumer
behind aiokafka's interface (the real broker runs it in tests/integration)."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from schemas.topics import WINDOWS_TOPIC
from streams.app import GC_THRESHOLDS, tune_gc
from streams.consumer import WindowConsumer, broker_time_ns
from streams.processing import WindowProcessor
from streams.settings import StreamSettings
from streams.sink import MemorySink
from streams.worker import LedgerWorker
from tests.unit.test_worker import raw

P0, P1 = TopicPartition(WINDOWS_TOPIC, 0), TopicPartition(WINDOWS_TOPIC, 1)


WINDOW_END_NS = 10**18 + 10**10  # tests/unit/test_telemetry.py window()
WINDOW_END_MS = WINDOW_END_NS // 10**6
DAY_MS = 86_400_000


@dataclass
class Record:
    value: bytes
    offset: int
    timestamp: int = 0
    timestamp_type: int = 1  # LogAppendTime, as the windows topic is declared


class MemoryConsumer:
    """aiokafka's AIOKafkaConsumer, as far as the windows consumer uses it."""

    def __init__(self, fetches: list[dict[TopicPartition, list[Record]]]) -> None:
        self.fetches = fetches
        self.listener: Any = None
        self.commits: list[dict[TopicPartition, int]] = []
        self.stopped = False

    def subscribe(self, topics: list[str], listener: Any) -> None:
        assert topics == [WINDOWS_TOPIC]
        self.listener = listener

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        if self.fetches:
            return self.fetches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class Harness(WindowConsumer):
    def __init__(self, worker: LedgerWorker, fetches: list[dict[TopicPartition, list[Record]]],
                 write_s: list[float]) -> None:
        self.fake = MemoryConsumer(fetches)
        self.events: list[tuple[str, Any]] = []
        self.write_s = write_s

        async def write(batch: Any) -> list[Any]:
            seqs = [w.seq for w, _ in batch.accepted]
            self.events.append(("write starts", seqs))
            await asyncio.sleep(self.write_s.pop(0) if self.write_s else 0)
            rejections = worker.write(batch)
            self.events.append(("written", seqs))
            return rejections

        async def forward(rejections: list[Any]) -> None:
            self.events.append(("dead letters", [r.reason for r in rejections]))

        super().__init__(StreamSettings(batch_s=0.01), worker, write, forward)

    def _make_consumer(self) -> Any:
        return self.fake


@pytest.fixture()
def worker(config_and_hash) -> LedgerWorker:
    # the test windows are from 2001 (tests/unit/test_telemetry.py): the worker's clock a minute later
    return LedgerWorker(WindowProcessor(*config_and_hash), MemorySink(), clock_ns=lambda: WINDOW_END_NS + 60 * 10**9)


def records(partition_seqs: list[tuple[TopicPartition, list[int]]], first_offset: int = 0) -> dict:
    return {tp: [Record(raw(seq=s) if s >= 0 else b"not json", first_offset + i) for i, s in enumerate(seqs)]
            for tp, seqs in partition_seqs}


async def run_until(h: Harness, done: Any) -> None:
    task = asyncio.ensure_future(h.run())
    for _ in range(500):
        await asyncio.sleep(0.01)
        if done():
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_offsets_are_committed_after_the_write_and_in_order(worker) -> None:
    fetches = [records([(P0, [1, 2]), (P1, [3])]), records([(P0, [4, -1])], first_offset=2)]
    # the first batch writes slowly: the second is prepared meanwhile but written after it
    h = Harness(worker, fetches, write_s=[0.2, 0])
    original_commit = h.fake.commit

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        h.events.append(("commit", {tp.partition: o for tp, o in offsets.items()}))
        await original_commit(offsets)

    h.fake.commit = commit  # type: ignore[method-assign]
    asyncio.run(run_until(h, lambda: len(h.fake.commits) == 2))
    assert h.events == [
        ("write starts", [1, 2, 3]), ("written", [1, 2, 3]), ("dead letters", []), ("commit", {0: 2, 1: 1}),
        ("write starts", [4]), ("written", [4]), ("dead letters", ["malformed_json"]), ("commit", {0: 4}),
    ]
    assert [w.seq for w, _ in worker.sink.windows] == [1, 2, 3, 4]
    assert h.fake.stopped


def test_a_rebalance_waits_until_every_taken_batch_is_booked(worker) -> None:
    h = Harness(worker, [records([(P0, [1])]), records([(P0, [2])], first_offset=1)], write_s=[0.2, 0.2])

    async def scenario() -> None:
        task = asyncio.ensure_future(h.run())
        while len(h.events) < 1:  # the first batch is being written
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the second batch is taken meanwhile
        await h.fake.listener.on_partitions_revoked({P0})
        # both taken batches are in the ledger and their offsets committed before
        # the partition may go to another worker
        assert [w.seq for w, _ in worker.sink.windows] == [1, 2]
        assert h.fake.commits == [{P0: 1}, {P0: 2}]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_failed_write_ends_the_consumer_with_nothing_committed(worker) -> None:
    h = Harness(worker, [records([(P0, [1])]), records([(P0, [2])], first_offset=1)], write_s=[])

    async def broken(batch: Any) -> list[Any]:
        raise RuntimeError("bug in the sink")

    h._write = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="bug in the sink"):
        asyncio.run(h.run())
    assert h.fake.commits == []
    assert h.fake.stopped


def test_tune_gc_raises_the_thresholds_and_freezes_start_up_objects() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_broker_append_time_feeds_the_time_checks(worker) -> None:
    # The test windows end at 10**18 ns (2001). Window 1: the broker appended it at
    # 1 ms after the epoch, so it ends decades in the future: refused. Window 2:
    # appended 8 days after it ended: too old. Window 3: no broker time (0), so
    # the worker's clock (a minute after the window) stands in: accepted.
    # Window 4: a producer's CreateTime of 1 ms is the agent's word, not used: accepted.
    fetch = {P0: [Record(raw(seq=1), 0, timestamp=1), Record(raw(seq=2), 1, timestamp=WINDOW_END_MS + 8 * DAY_MS),
                  Record(raw(seq=3), 2, timestamp=0), Record(raw(seq=4), 3, timestamp=1, timestamp_type=0)]}
    h = Harness(worker, [fetch], write_s=[])
    asyncio.run(run_until(h, lambda: len(h.fake.commits) == 1))
    assert ("dead letters", ["clock_skew", "too_old"]) in h.events
    assert [w.seq for w, _ in worker.sink.windows] == [3, 4]
    assert h.fake.commits == [{P0: 4}]


def test_broker_time_is_read_only_from_log_append_time() -> None:
    assert broker_time_ns(Record(b"", 0, timestamp=5, timestamp_type=1)) == 5_000_000
    assert broker_time_ns(Record(b"", 0, timestamp=5, timestamp_type=0)) is None
    assert broker_time_ns(Record(b"", 0, timestamp=-1, timestamp_type=1)) is None
    assert broker_time_ns(Record(b"", 0, timestamp=0, timestamp_type=1)) is None
