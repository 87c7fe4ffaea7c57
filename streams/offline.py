"""``bridgeledger attribute``: the stream's own rules over JSON-lines files, no Kafka, no database.

Each window line goes through :meth:`streams.processing.WindowProcessor.process`
(the same validation, signature check, attribution and pricing as the stream),
with the job events of the jobs file; a resent line (same id, same bytes) is
booked once and the same id with other bytes is ``conflicting_duplicate``, as
in the ledger. A bad line is reported and skipped, never fatal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from schemas import WireError
from schemas.jobs import JobEvent, decode_job_event
from streams.job_book import book_jobs
from streams.processing import WindowProcessor, conflicting_duplicate

__all__ = ["OfflineCounts", "attribute_lines", "read_job_lines"]


@dataclass
class OfflineCounts:
    windows: int = 0
    rejected: int = 0
    entries: int = 0


def read_job_lines(lines: Iterable[bytes], report: Callable[[int, str, str], None]) -> list[JobEvent]:
    """Job events from JSON lines; ``report(line number, reason, detail)`` for each bad one."""
    events = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(decode_job_event(line))
        except WireError as exc:
            report(n, exc.reason, exc.detail)
    return events


def attribute_lines(processor: WindowProcessor, windows: Iterable[bytes], events: list[JobEvent], out: IO[str],
                    report: Callable[[int, str, str], None]) -> OfflineCounts:
    """Entries of every accepted window line as JSON lines on ``out``."""
    jobs = book_jobs(events)
    counts = OfflineCounts()
    first: dict[str, bytes] = {}
    for n, line in enumerate(windows, 1):
        if not line.strip():
            continue
        counts.windows += 1
        res = processor.process(line, jobs)
        rejection = res.rejection
        if rejection is None and res.window is not None and res.window.window_id in first:
            if first[res.window.window_id] == line:
                continue  # a resend: the same bytes, booked once
            rejection = conflicting_duplicate(res.window.window_id, line, first[res.window.window_id])
        if rejection is not None or res.window is None:
            counts.rejected += 1
            if rejection is not None:
                report(n, rejection.reason, rejection.detail)
            continue
        first[res.window.window_id] = line
        for e in res.entries:
            out.write(json.dumps(e.to_record(), separators=(",", ":")) + "\n")
            counts.entries += 1
    return counts
