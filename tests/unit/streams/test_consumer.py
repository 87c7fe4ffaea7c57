"""The windows consumer's ordering guarantees, with an in-memory Kafka consumer
behind aiokafka's interface (the real broker runs it in tests/integration)."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from schemas import JobEvent
from schemas.topics import JOBS_TOPIC, WINDOWS_TOPIC
from streams.app import GC_THRESHOLDS, tune_gc
from streams.consumer import WindowConsumer, broker_time_ns
from streams.job_events_reader import JobEventsReader
from streams.processing import WindowProcessor
from streams.settings import StreamSettings
from streams.sink import MemorySink
from streams.worker import LedgerWorker
from tests.builders import raw

P0, P1 = TopicPartition(WINDOWS_TOPIC, 0), TopicPartition(WINDOWS_TOPIC, 1)


WINDOW_END_NS = 10**18 + 10**10  # tests/unit/schemas/test_telemetry.py window()
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
        self.taken = 0  # fetches that returned records

    def subscribe(self, topics: list[str], listener: Any) -> None:
        assert topics == [WINDOWS_TOPIC]
        self.listener = listener

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        if self.fetches:
            self.taken += 1
            return self.fetches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class Harness(WindowConsumer):
    def __init__(self, worker: LedgerWorker, fetches: list[dict[TopicPartition, list[Record]]],
                 write_s: list[float], jobs: Any = None, ahead: int = 1) -> None:
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

        super().__init__(StreamSettings(batch_s=0.01, batches_ahead=ahead), worker, write, forward, jobs=jobs)

    def _make_consumer(self) -> Any:
        return self.fake


@pytest.fixture()
def worker(config_and_hash) -> LedgerWorker:
    # the test windows are from 2001 (tests/unit/schemas/test_telemetry.py): the worker's clock a minute later
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



# -- job events: every partition, read to the end before a window batch is attributed ----------------
J0, J1 = TopicPartition(JOBS_TOPIC, 0), TopicPartition(JOBS_TOPIC, 1)


def job(job_id: str, account: str) -> bytes:
    return JobEvent(event="start", site_id="kr-daejeon", job_id=job_id, account=account, time_ns=1).to_json_bytes()


class MemoryJobsConsumer:
    """aiokafka's consumer as the job events reader uses it: assigned partitions, no group.
    ``log`` is each partition's records; ``arrive`` appends to it (a producer)."""

    def __init__(self) -> None:
        self.log: dict[TopicPartition, list[bytes | None]] = {J0: [], J1: []}
        self.pos: dict[TopicPartition, int] = {}
        self.assigned: list[TopicPartition] = []
        self.known: set[int] | None = None  # no metadata at start, as a fresh aiokafka client
        self._client = self

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def add_topic(self, topic: str) -> None:  # aiokafka's client: fetch the topic's metadata
        assert topic == JOBS_TOPIC
        self.known = {0, 1}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.known

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.pos[tp] = 0

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log[tp]) for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    async def getmany(self, *tps: TopicPartition, timeout_ms: int, max_records: int) -> dict:
        out = {}
        for tp in tps:
            take = self.log[tp][self.pos[tp]:self.pos[tp] + 1]  # one record a fetch: catch_up must loop
            if take:
                out[tp] = [Record(v, self.pos[tp]) for v in take]  # type: ignore[arg-type]
                self.pos[tp] += len(take)
        return out


class MemoryOffsets:
    """The reader's second consumer: asked only for the end offsets of ``fake``'s log."""

    def __init__(self, fake: MemoryJobsConsumer) -> None:
        self.fake, self.asked, self.started, self.stopped = fake, 0, False, False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked += 1
        return {tp: len(self.fake.log[tp]) for tp in tps}


class FetchingJobsConsumer(MemoryJobsConsumer):
    """A consumer whose connection has a fetch waiting at the broker: asking it for the
    end offsets would queue behind that fetch."""

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        raise AssertionError("end offsets asked on the fetching consumer's connection")


def jobs_reader(worker: LedgerWorker, fake: MemoryJobsConsumer, stored: list[Any],
                offsets: MemoryOffsets | None = None) -> JobEventsReader:
    async def store(events: list[Any], rejections: list[Any]) -> None:
        stored.append(([e.job_id for e in events], [r.reason for r in rejections]))

    return JobEventsReader(StreamSettings(), worker, store, consumer=fake, offsets=offsets or MemoryOffsets(fake))


def test_the_job_events_reader_reads_every_partition_to_its_end(worker) -> None:
    fake, stored = MemoryJobsConsumer(), []
    fake.log[J0] += [job("1", "kr-llm"), b"\xff", None]
    fake.log[J1] += [job("2", "gb-protein")]
    reader = jobs_reader(worker, fake, stored)

    async def scenario() -> None:
        await reader.start()
        assert await reader.catch_up() == 4
        fake.log[J1].append(job("3", "fr-speech"))  # arrives later: read at the next catch-up
        assert await reader.catch_up() == 1

    asyncio.run(scenario())
    assert fake.assigned == [J0, J1]
    assert sorted(k[1] for k in worker.jobs) == ["1", "2", "3"]
    assert sorted(j for ids, _ in stored for j in ids) == ["1", "2", "3"]
    assert sorted(r for _, rs in stored for r in rs) == ["empty", "malformed_json"]


def test_the_end_offsets_are_asked_on_a_connection_that_is_not_fetching(worker) -> None:
    fake, stored = FetchingJobsConsumer(), []
    fake.log[J0].append(job("1", "kr-llm"))
    offsets = MemoryOffsets(fake)
    reader = jobs_reader(worker, fake, stored, offsets)

    async def scenario() -> None:
        await reader.start()
        assert await reader.catch_up() == 1
        assert await reader.catch_up() == 0
        await reader.stop()

    asyncio.run(scenario())
    assert offsets.asked == 2 and offsets.started and offsets.stopped


def test_windows_are_attributed_with_the_job_events_that_reached_the_broker_before_them(worker) -> None:
    # the site's prolog published job 7's start a moment before the window naming job 7
    fake, stored = MemoryJobsConsumer(), []
    fake.log[J1].append(job("7", "fr-speech"))
    h = Harness(worker, [records([(P0, [1])])], write_s=[], jobs=jobs_reader(worker, fake, stored))
    asyncio.run(run_until(h, lambda: len(h.fake.commits) == 1))
    members = {(e.job_id, e.member, e.account_source) for e in worker.sink.entries}
    assert members == {("7", "FR", "job_event")}
    assert stored and stored[0][0] == ["7"]


def test_a_rebalance_during_the_job_catch_up_waits_for_that_batch(worker) -> None:
    fake, stored = MemoryJobsConsumer(), []
    reader = jobs_reader(worker, fake, stored)
    gate = asyncio.Event()
    real_catch_up = reader.catch_up

    async def slow_catch_up() -> int:
        await gate.wait()
        return await real_catch_up()

    reader.catch_up = slow_catch_up  # type: ignore[method-assign]
    h = Harness(worker, [records([(P0, [1])])], write_s=[], jobs=reader)

    async def scenario() -> None:
        task = asyncio.ensure_future(h.run())
        while h._taking is None:  # the batch is fetched; job events are being read
            await asyncio.sleep(0.005)
        revoke = asyncio.ensure_future(h.fake.listener.on_partitions_revoked({P0}))
        await asyncio.sleep(0.05)
        assert not revoke.done()  # the partition may not go while its batch is not booked
        gate.set()
        await revoke
        assert [w.seq for w, _ in worker.sink.windows] == [1] and h.fake.commits == [{P0: 1}]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_batch_size_whose_sums_could_overflow_the_commit_record_stops_the_worker_at_start() -> None:
    """The commit record's energy sum is Int64: a batch of MAX_BATCH_SIZE windows of the
    largest the contract allows still fits, one more window might not."""
    from pydantic import ValidationError

    from schemas.telemetry import MAX_ENERGY_MJ, MAX_GPUS
    from streams.settings import MAX_BATCH_SIZE

    assert MAX_BATCH_SIZE * MAX_GPUS * MAX_ENERGY_MJ <= 2**63 - 1 < (MAX_BATCH_SIZE + 1) * MAX_GPUS * MAX_ENERGY_MJ
    assert StreamSettings(batch_size=MAX_BATCH_SIZE).batch_size == MAX_BATCH_SIZE
    with pytest.raises(ValidationError, match="batch_size"):
        StreamSettings(batch_size=MAX_BATCH_SIZE + 1)


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_while_a_batch_is_written_at_most_batches_ahead_more_are_taken(worker, ahead) -> None:
    """Back-pressure (BRIDGELEDGER_BATCHES_AHEAD): while the first batch's write is held up,
    the consumer takes and prepares ``ahead`` more, then waits; afterwards every batch is
    written and committed in order."""
    fetches = [records([(P0, [seq])], first_offset=seq - 1) for seq in range(1, 7)]
    h = Harness(worker, fetches, write_s=[0.3], ahead=ahead)
    taken_during_first_write: list[int] = []
    original = h._write

    async def write(batch: Any) -> list[Any]:
        out = await original(batch)
        if not taken_during_first_write:
            taken_during_first_write.append(h.fake.taken)
        return out

    h._write = write
    asyncio.run(run_until(h, lambda: len(h.fake.commits) == 6))
    # the batch being written, then `ahead` more taken (the one after those waits for the write)
    assert taken_during_first_write == [1 + ahead]
    assert [e for e in h.events if e[0] == "written"] == [("written", [s]) for s in range(1, 7)]
    assert [c[P0] for c in h.fake.commits] == [1, 2, 3, 4, 5, 6]
