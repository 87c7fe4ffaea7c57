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
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from schemas import WireError
from schemas.jobs import JobEvent, decode_job_event
from schemas.prometheus import render_metrics
from schemas.telemetry import Window
from streams import SinkError
from streams.core import EntryRows
from streams.job_book import JobBook, book_jobs
from streams.lease import LeaseError
from streams.processing import Rejection, Screened, WindowProcessor, bad_signature, conflicting_duplicate
from streams.sink import LedgerSink
from streams.verifier import InlineVerifier, SignatureVerifier

__all__ = ["LedgerWorker", "WindowBatch", "WorkerStats", "dlq_record"]

log = logging.getLogger(__name__)


# The dead-letter topic's records carry the original bytes up to this size
# (base64 makes them a third larger; the broker's default record limit is
# 1 MiB). A larger original keeps its length and SHA-256 there, and its whole
# bytes in the ledger's dlq_records table.
MAX_DLQ_RAW_BYTES = 512 * 1024


def dlq_record(rejection: Rejection, source_topic: str, now_ns: int) -> bytes:
    """Dead-letter message: machine-readable reason plus the original bytes.

    Cannot fail on content: the detail is already bounded and encodable
    (:meth:`Rejection.of`), the bytes travel as base64, the size is bounded."""
    raw = rejection.raw
    doc: dict[str, object] = {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "source_topic": source_topic,
        "rejected_at_ns": now_ns,
        "raw_len": len(raw),
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "raw_b64": base64.b64encode(raw[:MAX_DLQ_RAW_BYTES]).decode(),
    }
    if len(raw) > MAX_DLQ_RAW_BYTES:
        doc["raw_truncated"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class WorkerStats:
    windows: int = 0
    entries: int = 0
    batches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    sink_failures: int = 0
    sink_seconds: float = 0.0
    process_seconds: float = 0.0
    verify_cpu_seconds: float = 0.0  # of signature checks on threads beside the worker (streams/verifier.py)
    verify_wait_seconds: float = 0.0  # of process_seconds: waiting for the checks after the batch was attributed
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
            ("verify_cpu_seconds_total", "counter", round(self.verify_cpu_seconds, 6),
             "CPU time of the signature checks on threads beside the worker"),
            ("verify_wait_seconds_total", "counter", round(self.verify_wait_seconds, 6),
             "time the worker waited for a batch's signature checks after attributing it"),
            ("last_batch_seconds", "gauge", round(self.last_batch_s, 6), "latency of the last batch write"),
        ), [("rejected_total", "counter", "reason", self.rejected,
             "messages sent to the dead-letter topic, by reason")])


@dataclass
class WindowBatch:
    """A batch of messages after :meth:`LedgerWorker.prepare`, ready to commit."""

    accepted: list[tuple[Window, bytes]] = field(default_factory=list)
    entries: EntryRows = field(default_factory=EntryRows)
    rejections: list[Rejection] = field(default_factory=list)


class LedgerWorker:
    def __init__(
        self,
        processor: WindowProcessor,
        sink: LedgerSink,
        clock_ns: Callable[[], int] = time.time_ns,
        verifier: SignatureVerifier | None = None,
    ) -> None:
        self.processor = processor
        self.sink = sink
        self.clock_ns = clock_ns
        # where the batch's signatures are checked (streams/verifier.py): here, or beside the worker
        self.verifier = verifier or InlineVerifier()
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

    def prepare(self, raws: Sequence[bytes | None],
                stamps_ns: Sequence[int | None] | None = None) -> WindowBatch:
        """Decode, validate and attribute a batch (CPU only, no I/O).

        Never raises on a message's content: each message is accepted or
        becomes a rejection (``internal_error`` for anything unexpected).
        ``stamps_ns``: the broker's append times of the messages, for the time
        checks; where one is missing the worker's own clock stands in. A
        window id seen twice in the batch is a resend if the bytes are the
        same (skipped) and ``conflicting_duplicate`` if they differ. Reads the
        job book: call it from the thread that updates the book
        (:meth:`load_jobs`), the Faust event loop in the worker.

        The batch's signatures are checked by the worker's verifier
        (streams/verifier.py) while its windows are attributed; only then, in
        message order, is each window accepted or refused, so the outcome is
        the same as :meth:`WindowProcessor.check` then ``attribute_rows``
        message by message (a forged window is ``bad_signature`` whatever
        else is wrong with it, and never becomes the "first" of a window id)."""
        t_start = time.monotonic()
        clock_now = self.clock_ns()
        screen = self.processor.screen
        screened: list[Screened | Rejection] = []
        signed: list[tuple[bytes, bytes]] = []
        for i, raw in enumerate(raws):
            stamp = stamps_ns[i] if stamps_ns else None
            try:
                s = screen(raw, clock_now if stamp is None else stamp)
                if s.key is not None:
                    assert raw is not None  # screen refuses a missing value
                    signed.append((raw, bytes(s.key)))
                screened.append(s)
            except WireError as exc:
                screened.append(Rejection.of(exc.reason, exc.detail, raw))
            except Exception as exc:  # a bug costs this message, never the worker
                screened.append(Rejection.internal(exc, raw))
                log.exception("internal error on one message (dead-lettered)")
        verdicts = self.verifier.submit(signed)
        # attributed while the signatures are checked; kept only once they verify
        rows = EntryRows()
        spans: list[tuple[int, int] | Rejection | None] = []
        attribute, jobs = self.processor.attribute_rows, self.jobs
        for raw, sc in zip(raws, screened, strict=True):
            if isinstance(sc, Rejection) or sc.refusal is not None:
                spans.append(None)
                continue
            n = len(rows)
            try:
                attribute(sc.window, jobs, rows)
                spans.append((n, len(rows)))
            except Exception as exc:
                rows.truncate(n)
                spans.append(Rejection.internal(exc, raw))
                log.exception("internal error on one message (dead-lettered)")
        t_wait = time.monotonic()
        checked = verdicts()
        self.stats.verify_wait_seconds += time.monotonic() - t_wait
        batch = self._decide(raws, screened, spans, rows, checked)
        self.stats.process_seconds += time.monotonic() - t_start
        self.stats.verify_cpu_seconds = getattr(self.verifier, "cpu_seconds", 0.0)
        return batch

    @staticmethod
    def _decide(raws: Sequence[bytes | None], screened: list[Screened | Rejection],
                spans: list[tuple[int, int] | Rejection | None], rows: EntryRows,
                verdicts: list[bool]) -> WindowBatch:
        """Accept or refuse each message in order, with its signature's verdict."""
        batch = WindowBatch()
        rejections, accepted = batch.rejections, batch.accepted
        kept: list[tuple[int, int]] = []
        seen: dict[str, bytes] = {}
        signed = iter(verdicts)
        for raw, s, span in zip(raws, screened, spans, strict=True):
            if isinstance(s, Rejection):
                rejections.append(s)
                continue
            assert raw is not None
            w = s.window
            # a forgery is bad_signature, whatever else is wrong with it
            refusal = bad_signature(w) if s.key is not None and not next(signed) else s.refusal
            if refusal is not None:
                rejections.append(Rejection.of(refusal.reason, refusal.detail, raw))
            elif isinstance(span, Rejection):
                rejections.append(span)
            elif (first := seen.get(w.window_id)) is not None:
                if first != raw:
                    rejections.append(conflicting_duplicate(w.window_id, raw, first))
            else:
                assert span is not None
                seen[w.window_id] = raw
                accepted.append((w, raw))
                kept.append(span)
        if sum(b - a for a, b in kept) == len(rows):
            batch.entries = rows  # every attributed window kept
        else:
            batch.entries = rows.select(kept)
        return batch

    def write(self, batch: WindowBatch) -> list[Rejection]:
        """Commit a prepared batch through the sink; returns the rejections for
        the dead-letter topic. :class:`SinkError` if the sink fails (retry the
        same batch; nothing of it is acked meanwhile)."""
        t0 = time.monotonic()
        try:
            written = self.sink.write(batch.accepted, batch.entries, batch.rejections)
        except LeaseError:
            raise  # another worker holds the chain: stop, never retry into a fork
        except Exception as exc:
            self.stats.sink_failures += 1
            raise SinkError(f"ledger write of {len(batch.accepted)} windows failed: {exc}") from exc
        self.stats.last_batch_s = time.monotonic() - t0
        self.stats.sink_seconds += self.stats.last_batch_s
        self.stats.batches += 1
        self.stats.windows += written.windows
        self.stats.entries += written.entries
        # windows whose identity the ledger already holds with other content
        rejections = batch.rejections + written.conflicts
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

    def decode_jobs(self, raws: Sequence[bytes | None]) -> tuple[list[JobEvent], list[Rejection]]:
        """Job events, and a rejection for every message that is not one (never raises on content)."""
        events = []
        rejections = []
        for raw in raws:
            try:
                events.append(decode_job_event(raw))
            except WireError as exc:
                rejections.append(Rejection.of(exc.reason, exc.detail, raw))
            except Exception as exc:
                rejections.append(Rejection.internal(exc, raw))
                log.exception("internal error on one job event (dead-lettered)")
        return events, rejections

    def write_jobs(self, events: Sequence[JobEvent], rejections: Sequence[Rejection]) -> list[Rejection]:
        try:
            self.sink.write_jobs(events)
            if rejections:
                self.sink.write([], EntryRows(), rejections)
        except Exception as exc:
            self.stats.sink_failures += 1
            raise SinkError(f"job event write failed: {exc}") from exc
        return list(rejections)

    def handle_jobs(self, raws: Sequence[bytes]) -> list[Rejection]:
        events, rejections = self.decode_jobs(raws)
        out = self.write_jobs(events, rejections)
        self.load_jobs(events)
        return out
