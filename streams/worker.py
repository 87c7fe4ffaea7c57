"""The stream worker's logic, independent of Faust so it can be unit tested.

``LedgerWorker.prepare`` decodes, validates and attributes a batch of raw
messages (CPU only); ``LedgerWorker.write`` writes the accepted windows and
their entries through the sink in one call and returns the rejections for
the dead-letter topic. ``write`` raises :class:`SinkError` when the sink
fails; the caller retries the same batch and commits nothing until it
succeeds. ``handle_windows`` is the two in one call.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from schemas import TelemetryWindow, WireError
from schemas.jobs import JobEvent, decode_job_event
from schemas.ledger import EntryRow
from schemas.prometheus import render_metrics
from streams import SinkError
from streams.attribution import JobBook, book_jobs
from streams.processing import Rejection, WindowProcessor
from streams.sink import LedgerSink

__all__ = ["LedgerWorker", "WindowBatch", "WorkerStats", "dlq_record"]

log = logging.getLogger(__name__)


def dlq_record(rejection: Rejection, source_topic: str, now_ns: int) -> bytes:
    """Dead-letter message: machine-readable reason plus the original bytes."""
    return json.dumps(
        {
            "reason": rejection.reason,
            "detail": rejection.detail,
            "source_topic": source_topic,
            "rejected_at_ns": now_ns,
            "raw_b64": base64.b64encode(rejection.raw).decode(),
        },
        separators=(",", ":"),
    ).encode()


@dataclass
class WorkerStats:
    windows: int = 0
    entries: int = 0
    batches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    sink_failures: int = 0
    sink_seconds: float = 0.0
    process_seconds: float = 0.0
    last_batch_s: float = 0.0

    def render(self) -> str:
        """Prometheus text exposition of the worker's counters."""
        return render_metrics("bridgeledger_stream", (
            ("windows_total", "counter", self.windows, "windows written to the ledger"),
            ("entries_total", "counter", self.entries, "ledger entries written"),
            ("batches_total", "counter", self.batches, "batches accepted by ClickHouse"),
            ("sink_failures_total", "counter", self.sink_failures, "failed batch writes (retried)"),
            ("sink_seconds_total", "counter", round(self.sink_seconds, 6), "time spent writing batches"),
            ("process_seconds_total", "counter", round(self.process_seconds, 6),
             "time spent decoding, validating and attributing windows"),
            ("last_batch_seconds", "gauge", round(self.last_batch_s, 6), "latency of the last batch write"),
        ), [("rejected_total", "counter", "reason", self.rejected,
             "messages sent to the dead-letter topic, by reason")])


@dataclass
class WindowBatch:
    """A batch of messages after :meth:`LedgerWorker.prepare`, ready to commit."""

    accepted: list[tuple[TelemetryWindow, bytes]] = field(default_factory=list)
    entries: list[EntryRow] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


class LedgerWorker:
    def __init__(
        self,
        processor: WindowProcessor,
        sink: LedgerSink,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.processor = processor
        self.sink = sink
        self.clock_ns = clock_ns
        self.jobs = JobBook()
        self.stats = WorkerStats()

    def load_jobs(self, events: Sequence[JobEvent]) -> None:
        """Fold job events into the job book (the thread that calls :meth:`prepare`)."""
        book_jobs(events, self.jobs)

    def prune_jobs(self, before_ns: int) -> int:
        """Forget jobs that ended before ``before_ns`` (bounded state); return how many."""
        old = [k for k, s in self.jobs.items() if s.end_ns is not None and s.end_ns < before_ns]
        for k in old:
            del self.jobs[k]
        return len(old)

    def prepare(self, raws: Sequence[bytes], stamps_ns: Sequence[int | None] | None = None) -> WindowBatch:
        """Decode, validate and attribute a batch (CPU only, no I/O).

        ``stamps_ns``: the broker timestamps of the messages, for the clock-skew
        check. Reads the job book: call it from the thread that updates the
        book (:meth:`load_jobs`), the Faust event loop in the worker."""
        batch = WindowBatch()
        seen: set[str] = set()
        check, attribute = self.processor.check, self.processor.attribute_rows
        t_start = time.monotonic()
        for i, raw in enumerate(raws):
            try:
                window = check(raw, stamps_ns[i] if stamps_ns else None)
            except WireError as exc:
                batch.rejections.append(Rejection(exc.reason, exc.detail, raw))
                continue
            if window.window_id in seen:  # a resend inside one batch
                continue
            seen.add(window.window_id)
            batch.accepted.append((window, raw))
            attribute(window, self.jobs, batch.entries)
        self.stats.process_seconds += time.monotonic() - t_start
        return batch

    def write(self, batch: WindowBatch) -> list[Rejection]:
        """Commit a prepared batch through the sink; returns the rejections for
        the dead-letter topic. :class:`SinkError` if the sink fails (retry the
        same batch; nothing of it is acked meanwhile)."""
        t0 = time.monotonic()
        try:
            self.sink.write(batch.accepted, batch.entries, batch.rejections)
        except Exception as exc:
            self.stats.sink_failures += 1
            raise SinkError(f"ledger write of {len(batch.accepted)} windows failed: {exc}") from exc
        self.stats.last_batch_s = time.monotonic() - t0
        self.stats.sink_seconds += self.stats.last_batch_s
        self.stats.batches += 1
        self.stats.windows += len(batch.accepted)
        self.stats.entries += len(batch.entries)
        rejections = batch.rejections
        if rejections:
            counts = Counter(r.reason for r in rejections)
            self.stats.rejected.update(counts)
            # one line per batch: a flood of garbage must not flood the log
            log.warning("rejected %d message(s) to the dead-letter topic: %s; first: %s",
                        len(rejections), dict(counts), rejections[0].detail)
        return rejections

    def handle_windows(self, raws: Sequence[bytes], stamps_ns: Sequence[int | None] | None = None) -> list[Rejection]:
        """:meth:`prepare` then :meth:`write`, in the calling thread."""
        return self.write(self.prepare(raws, stamps_ns))

    def decode_jobs(self, raws: Sequence[bytes]) -> tuple[list[JobEvent], list[Rejection]]:
        events = []
        rejections = []
        for raw in raws:
            try:
                events.append(decode_job_event(raw))
            except WireError as exc:
                rejections.append(Rejection(exc.reason, exc.detail, raw))
        return events, rejections

    def write_jobs(self, events: Sequence[JobEvent], rejections: Sequence[Rejection]) -> list[Rejection]:
        try:
            self.sink.write_jobs(events)
            if rejections:
                self.sink.write([], [], rejections)
        except Exception as exc:
            self.stats.sink_failures += 1
            raise SinkError(f"job event write failed: {exc}") from exc
        return list(rejections)

    def handle_jobs(self, raws: Sequence[bytes]) -> list[Rejection]:
        events, rejections = self.decode_jobs(raws)
        out = self.write_jobs(events, rejections)
        self.load_jobs(events)
        return out
