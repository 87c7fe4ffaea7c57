"""Faust wiring of the stream worker: topics, agents, retry and acks.

Telemetry windows are read in batches by :class:`streams.consumer.WindowConsumer`
(a plain aiokafka consumer, run as an app task: Faust's per-message stream
was the worker's largest cost) and committed after the ledger accepted each
batch. Job events are read by :class:`streams.job_events_reader.JobEventsReader`:
all partitions, by every worker, up to the topic's end before each window
batch is attributed (who pays is the scheduler's word). A failing sink is
retried with backoff (back-pressure: at most ``batches_ahead`` more window
batches are taken and prepared meanwhile, none is committed out of order).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust

from schemas.jobs import JobEvent
from schemas.topics import DLQ_TOPIC, JOBS_TOPIC, WINDOWS_TOPIC
from streams import SinkError
from streams.checkpoints import Checkpointer
from streams.consumer import WindowConsumer
from streams.job_events_reader import JobEventsReader
from streams.lease import LeaseError
from streams.processing import Rejection
from streams.settings import StreamSettings
from streams.worker import LedgerWorker, dlq_record

__all__ = ["GC_THRESHOLDS", "create_app", "tune_gc"]

log = logging.getLogger(__name__)
# Jobs that ended longer ago than this are forgotten (bounded state); a window
# older than that can still be attributed by `ledger recompute` from job_events.
JOB_RETENTION_NS = 7 * 86_400 * 1_000_000_000


# The worker allocates a few tuples per ledger entry, millions an hour, nearly
# all short-lived; with CPython's default thresholds (700, 10, 10) collections
# then cost about 15 % of the worker's CPU (bench/worker.py, docs/benchmarks.md).
# Cycles are still collected, in fewer, larger passes.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Garbage collection for the worker process: call it once, after start-up.

    What exists by then (modules, the config, the app) lives as long as the
    process, so it is frozen out of every later collection; the thresholds
    are raised to :data:`GC_THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _credentials(settings: StreamSettings) -> Any:
    """Faust's form of the credentials the windows consumer gets from ``aiokafka_options``."""
    options: dict[str, Any] = settings.aiokafka_options()
    if not options:
        return None
    return faust.SASLCredentials(username=options["sasl_plain_username"], password=options["sasl_plain_password"],
                                 ssl_context=options["ssl_context"], mechanism=options["sasl_mechanism"])


def create_app(settings: StreamSettings, worker: LedgerWorker, checkpoints: Checkpointer | None = None) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # a killed worker's partitions go to its replacement within seconds, not a minute
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_credentials=_credentials(settings),
    )
    dlq = app.topic(DLQ_TOPIC, partitions=1, value_serializer="raw")

    # One thread for every ClickHouse write: the client is not thread-safe, and
    # the window consumer and the job agent would otherwise write through it at once.
    sink_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sink")

    async def _retrying(fn: Callable[..., list[Rejection]], *args: Any) -> list[Rejection]:
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            try:
                return await loop.run_in_executor(sink_thread, fn, *args)
            except SinkError as exc:
                log.error("%s; retrying in %.1f s (nothing is acked meanwhile)", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.retry_max_s)

    async def _forward(rejections: list[Rejection], topic: str) -> None:
        for r in rejections:
            await dlq.send(value=dlq_record(r, topic, time.time_ns()))

    async def _store_jobs(events: list[JobEvent], rejections: list[Rejection]) -> None:
        await _forward(await _retrying(worker.write_jobs, events, rejections), JOBS_TOPIC)

    # Decoding and attribution run on the event loop (a batch takes well under
    # a second, far inside the session timeout); only the ClickHouse writes go
    # to the thread. The loop is then the only thread that reads or changes
    # the job book, which the job events reader fills before each window batch.
    jobs = JobEventsReader(settings, worker, _store_jobs)
    windows = WindowConsumer(settings, worker, write=lambda batch: _retrying(worker.write, batch),
                             forward=lambda rejections: _forward(rejections, WINDOWS_TOPIC), jobs=jobs)

    @app.task
    async def account_windows() -> None:
        try:
            await windows.run()
        finally:
            if checkpoints is not None:
                # every batch taken is booked by now: the head after the last one, witnessed
                await asyncio.get_running_loop().run_in_executor(sink_thread, checkpoints.stop)

    if checkpoints is not None:
        @app.timer(interval=max(1.0, settings.checkpoint_interval_s / 2))
        async def checkpoint() -> None:
            # a head that moved and was not published at its commit (the broker was away)
            await asyncio.get_running_loop().run_in_executor(sink_thread, checkpoints.tick)

    lease = getattr(worker.sink, "lease", None)
    if lease is not None:
        @app.timer(interval=max(1.0, lease.ttl_s / 3))
        async def keep_lease() -> None:
            # On the sink thread, like every ClickHouse call. LeaseError (another
            # worker holds the chain) ends the worker; an unreachable database
            # does not: the next renewal, or the next batch, tries again.
            try:
                await asyncio.get_running_loop().run_in_executor(sink_thread, lease.renew)
            except LeaseError:
                raise
            except Exception as exc:  # clickhouse-driver's network and server errors
                log.warning("lease renewal of chain %s failed (%s: %s); retrying", lease.chain_id,
                            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")

    @app.timer(interval=30.0)
    async def report() -> None:
        worker.prune_jobs(time.time_ns() - JOB_RETENTION_NS)
        s = worker.stats
        log.info("windows=%d entries=%d batches=%d rejected=%s sink_failures=%d",
                 s.windows, s.entries, s.batches, dict(s.rejected), s.sink_failures)

    return app
