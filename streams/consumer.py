"""The telemetry topic's consumer: whole record batches, straight from aiokafka.

Faust's per-message stream machinery cost about 200 µs of CPU per message on
the benchmark machine, more than decoding, attributing and writing that
message together (docs/benchmarks.md), so the worker reads the windows topic
with a plain aiokafka consumer of its own, inside the Faust worker process
(``streams/app.py`` runs it as an app task; job events stay a Faust agent).

Offsets: auto-commit is off. A batch's offsets are committed only after the
ledger accepted the batch, so the committed offset never passes a window
that is not in ClickHouse. While batch n is written (in the sink thread),
the next ones are decoded and attributed on the event loop, up to
``batches_ahead`` of them (``BRIDGELEDGER_BATCHES_AHEAD``); then the consumer
waits for the write. Writes and offset commits stay in order. More than one
ahead is meant to absorb batches whose write or preparation takes longer
than the others; on the bench machine it was not measurably faster
(docs/benchmarks.md), and each costs a batch's memory.

Rebalancing: before giving up partitions, the consumer finishes every batch
it has taken (written and committed), so a partition's next owner starts
after the last window this one booked. Should an offset commit still fail
(the group moved on), the next owner is sent those windows again and the
sink skips them as already booked (streams/sink.py ``committed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError

from schemas.topics import WINDOWS_TOPIC
from streams.job_events_reader import JobEventsReader
from streams.processing import Rejection
from streams.settings import StreamSettings
from streams.worker import LedgerWorker, WindowBatch

__all__ = ["WINDOWS_GROUP_SUFFIX", "WindowConsumer", "broker_time_ns"]

log = logging.getLogger(__name__)

# The windows consumer's group is the app id plus this; Faust's own group (the
# app id) keeps the job events.
WINDOWS_GROUP_SUFFIX = "-windows"
# Per partition and fetch: a batch of 4,000 windows of 8 GPUs is about 12 MB,
# so one partition alone can fill a batch.
MAX_PARTITION_FETCH_BYTES = 16 << 20


LOG_APPEND_TIME = 1  # a record's timestamp_type when the broker stamped it


def broker_time_ns(record: Any) -> int | None:
    """When the broker appended the record, if the topic says so (LogAppendTime).

    A producer's own timestamp (CreateTime) is the agent's word and is not used
    for the time checks: then the worker's clock stands in."""
    if getattr(record, "timestamp_type", None) != LOG_APPEND_TIME or not record.timestamp or record.timestamp <= 0:
        return None
    return int(record.timestamp) * 1_000_000


class WindowConsumer:
    """Reads the windows topic in batches, prepares them with the worker, and
    hands them to ``write`` (the ledger write, retried until it succeeds) and
    ``forward`` (dead letters), then commits their offsets."""

    def __init__(
        self,
        settings: StreamSettings,
        worker: LedgerWorker,
        write: Callable[[WindowBatch], Awaitable[list[Rejection]]],
        forward: Callable[[list[Rejection]], Awaitable[None]],
        jobs: JobEventsReader | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self._write = write
        self._forward = forward
        self._jobs = jobs
        self._tail: asyncio.Future[None] | None = None  # the last batch handed on; each awaits the one before
        # a batch fetched and not yet handed on (reading job events meanwhile)
        self._taking: asyncio.Future[None] | None = None
        self._consumer: Any = None

    def _make_consumer(self) -> Any:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.app_id + WINDOWS_GROUP_SUFFIX,
            client_id=s.app_id + WINDOWS_GROUP_SUFFIX,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000),
            **s.aiokafka_options(),
        )

    async def run(self) -> None:
        """Consume until cancelled; an unexpected error ends the worker (Faust crashes the app)."""
        consumer = self._consumer = self._make_consumer()
        consumer.subscribe([WINDOWS_TOPIC], listener=_FinishBeforeRevoke(self))
        if self._jobs is not None:
            await self._jobs.start()
        await consumer.start()
        timeout_ms, size = int(self.settings.batch_s * 1000), self.settings.batch_size
        ahead = self.settings.batches_ahead
        in_flight: deque[asyncio.Future[None]] = deque()
        loop = asyncio.get_running_loop()
        try:
            while True:
                records = await consumer.getmany(timeout_ms=timeout_ms, max_records=size)
                if not records:
                    continue
                messages = [m for ms in records.values() for m in ms]
                # A rebalance waits for the batches taken: this one counts from its
                # fetch, so reading job events meanwhile cannot let one slip by.
                self._taking = loop.create_future()
                try:
                    if self._jobs is not None:
                        # every job event that reached the broker before these windows
                        await self._jobs.catch_up()
                    batch = self.worker.prepare([m.value for m in messages], [broker_time_ns(m) for m in messages])
                    offsets = {tp: ms[-1].offset + 1 for tp, ms in records.items()}
                    self._tail = asyncio.ensure_future(self._commit(self._tail, batch, offsets))
                    in_flight.append(self._tail)
                finally:
                    self._taking.set_result(None)
                if len(in_flight) > ahead:
                    await in_flight.popleft()  # back-pressure: the one being written and `ahead` more at most
        finally:
            await self.drain()
            await consumer.stop()
            if self._jobs is not None:
                await self._jobs.stop()

    async def drain(self) -> None:
        """Wait until every batch taken so far is written and its offsets committed."""
        if self._taking is not None:
            await asyncio.wait([self._taking])
        if self._tail is not None:
            await asyncio.wait([self._tail])

    async def _commit(self, previous: asyncio.Future[None] | None, batch: WindowBatch,
                      offsets: dict[Any, int]) -> None:
        if previous is not None:
            await previous  # in order; a failure there has already ended the worker
        rejections = await self._write(batch)
        await self._forward(rejections)
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            log.warning("offset commit of a booked batch failed (%s); its windows will be skipped as already "
                        "booked when they come again", exc)


class _FinishBeforeRevoke(ConsumerRebalanceListener):
    """Partitions go to another worker only after every batch taken from them is booked."""

    def __init__(self, consumer: WindowConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.consumer.drain()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("windows partitions assigned: %s", sorted(tp.partition for tp in assigned))
