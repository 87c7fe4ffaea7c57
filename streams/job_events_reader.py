"""Every job event, for every worker: the job book that decides who pays.

Who pays is the scheduler's word (streams/attribution.py rule 1), so a
window must be attributed with every job event published before it. Two
things stood in the way when job events were a Faust agent in the worker's
consumer group: with several workers, each saw only its share of the job
events' partitions (and so billed another worker's jobs to nobody), and a
window could be attributed before the event its site sent first had been
read.

So each worker reads *all* partitions of the job events topic, outside any
consumer group, from the earliest retained event at start (events are
small; older ones come from the ledger's ``job_events`` table; partitions
added to the topic later are read after the worker restarts), and the
windows consumer calls :meth:`JobEventsReader.catch_up` after it fetched a
batch of windows and before it attributes them: the reader reads up to the
end offsets of that moment, so every job event that reached the broker
before the windows did is in the book. Events are written to ``job_events``
(by every worker: the table keeps one row per site, job and event) before
the windows that used them.

The end offsets are asked on a connection of their own (a second consumer
that fetches nothing): the reader's consumer always has a fetch waiting at
the broker (up to ``fetch_max_wait_ms``, 500 ms, on an idle topic), and a
broker answers one connection's requests in order, so on that connection
each catch-up waited for the fetch: 0.2–0.5 s of every batch of windows,
half the worker's time per batch (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.jobs import JobEvent
from schemas.topics import JOBS_TOPIC
from streams import StreamError
from streams.processing import Rejection
from streams.settings import StreamSettings
from streams.worker import LedgerWorker

__all__ = ["JobEventsReader"]

log = logging.getLogger(__name__)


class JobEventsReader:
    """Reads the job events topic to its end on demand, into the worker's job
    book (on the event loop, the book's one thread) and through ``store``
    (the ledger write and the dead letters, retried until they succeed)."""

    def __init__(self, settings: StreamSettings, worker: LedgerWorker,
                 store: Callable[[list[JobEvent], list[Rejection]], Awaitable[None]],
                 consumer: Any = None, offsets: Any = None) -> None:
        self.settings = settings
        self.worker = worker
        self._store = store
        self._consumer = consumer
        # asks the end offsets; never assigned a partition, so never fetching
        self._offsets = offsets
        self.partitions: list[TopicPartition] = []
        self.events = 0

    def _make_consumer(self, client_id: str) -> Any:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=None,  # every partition, for every worker; nothing committed
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **s.aiokafka_options(),
        )

    async def start(self) -> None:
        if self._consumer is None:
            self._consumer = self._make_consumer(self.settings.app_id + "-jobs")
        if self._offsets is None:
            self._offsets = self._make_consumer(self.settings.app_id + "-jobs-offsets")
        await self._consumer.start()
        await self._offsets.start()
        parts = self._consumer.partitions_for_topic(JOBS_TOPIC)
        if not parts:  # no metadata for the topic yet: ask for it (aiokafka's client has no public call)
            await self._consumer._client.add_topic(JOBS_TOPIC)
            parts = self._consumer.partitions_for_topic(JOBS_TOPIC)
        if not parts:
            raise StreamError(f"topic {JOBS_TOPIC} has no partitions the worker can read")
        self.partitions = [TopicPartition(JOBS_TOPIC, p) for p in sorted(parts)]
        self._consumer.assign(self.partitions)
        await self._consumer.seek_to_beginning(*self.partitions)
        log.info("job events: reading all %d partition(s) from the earliest retained event", len(self.partitions))

    async def stop(self) -> None:
        for consumer in (self._consumer, self._offsets):
            if consumer is not None:
                await consumer.stop()

    async def catch_up(self) -> int:
        """Read every job event up to the topic's end as of now; return how many."""
        consumer = self._consumer
        end = await self._offsets.end_offsets(self.partitions)
        read = 0
        while True:
            behind = [tp for tp in self.partitions if await consumer.position(tp) < end[tp]]
            if not behind:
                return read
            records = await consumer.getmany(*behind, timeout_ms=500, max_records=5000)
            raws = [m.value for ms in records.values() for m in ms]
            if not raws:
                continue
            events, rejections = self.worker.decode_jobs(raws)
            self.worker.load_jobs(events)
            await self._store(events, rejections)
            read += len(raws)
            self.events += len(events)
