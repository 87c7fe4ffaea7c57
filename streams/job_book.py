"""The job book: what the scheduler's job events say about each job (pure, no I/O).

The stream folds every job event into one :class:`JobBook` (streams/worker.py),
``ledger recompute`` builds one from the ledger's job events; attribution
(streams/attribution.py) reads it to know who pays for a job and which job
holds a GPU exclusively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from schemas import JobEvent

__all__ = ["JobBook", "JobSpan", "Jobs", "book_jobs"]


@dataclass(frozen=True, slots=True)
class JobSpan:
    """A job as job events describe it: its start event and, once known, its end."""

    start: JobEvent
    end_ns: int | None = None

    def overlaps(self, t0_ns: int, t1_ns: int) -> bool:
        return self.start.time_ns < t1_ns and (self.end_ns is None or self.end_ns > t0_ns)


# What the pure functions accept: a JobBook, or any mapping of the same shape (tests).
Jobs = Mapping[tuple[str, str], JobSpan]


class JobBook(dict[tuple[str, str], JobSpan]):
    """(site_id, job_id) -> the job's span; the stream keeps it from jobs.events.

    Also indexes exclusive allocations by (site, GPU), so that a GPU window
    with no process finds its holder without scanning every job. Change it
    only by item assignment and ``del`` (what :func:`book_jobs` and the
    worker's pruning do): those keep the index right, and count the changes
    in ``generation`` (the compiled rules forget what they worked out from
    the book when it moves)."""

    def __init__(self, spans: Jobs | None = None) -> None:
        super().__init__()
        self.generation = 0
        self._exclusive: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for key, span in (spans or {}).items():
            self[key] = span

    def __setitem__(self, key: tuple[str, str], span: JobSpan) -> None:
        self.generation += 1
        if key in self:
            self._unindex(key)
        super().__setitem__(key, span)
        if span.start.exclusive:
            for gpu in span.start.gpus:
                self._exclusive.setdefault((key[0], gpu), set()).add(key)

    def __delitem__(self, key: tuple[str, str]) -> None:
        self.generation += 1
        self._unindex(key)
        super().__delitem__(key)

    def _unindex(self, key: tuple[str, str]) -> None:
        old = self[key]
        for gpu in old.start.gpus if old.start.exclusive else ():
            keys = self._exclusive.get((key[0], gpu))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._exclusive[(key[0], gpu)]

    def exclusive_on(self, site_id: str, gpu_uuid: str) -> list[JobSpan]:
        return [self[k] for k in sorted(self._exclusive.get((site_id, gpu_uuid), ()))]


def book_jobs(events: Iterable[JobEvent], book: JobBook | None = None) -> JobBook:
    """Fold job events into a book, in any order: a late start keeps a known end."""
    out = book if book is not None else JobBook()
    for e in events:
        key = (e.site_id, e.job_id)
        prev = out.get(key)
        if e.event == "start":
            out[key] = JobSpan(e, prev.end_ns if prev else None)
        elif prev is not None:
            out[key] = replace(prev, end_ns=e.time_ns)
        else:  # an end whose start was never seen still names the account
            out[key] = JobSpan(e.model_copy(update={"event": "start", "time_ns": 0}), e.time_ns)
    return out
