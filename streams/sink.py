"""The stream's sink: a batch of accepted windows, their entries and the dead
letters, written to the ledger.

:class:`ClickHouseSink` skips windows already committed with the same bytes
(resends, replays; the worker acks Kafka only after a write, so a batch can
come twice), refuses a committed window id with other bytes
(``conflicting_duplicate``), stores the dead letters, and commits the rest
as one batch of its chain through :class:`streams.chain_writer.ChainWriter`
(the commit protocol). Job events, configs and dead letters go to their
tables through streams/ledger_tables.py. :class:`MemorySink` is the same
contract in memory, for unit tests of the worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from schemas import LedgerEntry
from schemas.grid import GridSeries
from schemas.jobs import JobEvent
from schemas.ledger import ENTRY_ROW_FIELDS, entry_from_row
from schemas.telemetry import Window
from streams import ledger_tables
from streams.chain_writer import ChainHead, ChainWriter
from streams.core import EntryRows
from streams.processing import Rejection, conflicting_duplicate

__all__ = ["ClickHouseSink", "ChainHead", "LedgerSink", "MemorySink", "Written"]

_WINDOW = ENTRY_ROW_FIELDS.index("window_id")


@dataclass(frozen=True, slots=True)
class Written:
    """What a sink write booked, and the windows it refused as conflicting duplicates."""

    windows: int = 0
    entries: int = 0
    conflicts: list[Rejection] = field(default_factory=list)


class LedgerSink(Protocol):
    def write(
        self,
        windows: Sequence[tuple[Window, bytes]],
        entries: EntryRows,
        rejections: Sequence[Rejection] = (),
    ) -> Written:
        """``entries``: the batch's entries in the compiled core (streams/core.py), read
        back as schemas/ledger.py ``ENTRY_ROW_FIELDS`` describes them.

        Windows already booked with the same bytes are skipped (resends); with
        other bytes they are not booked and come back as ``conflicts``."""

    def write_jobs(self, events: Sequence[JobEvent]) -> None: ...


class ClickHouseSink(ChainWriter):
    """The chain writer of one chain, plus the stream's other tables."""

    def write(
        self,
        windows: Sequence[tuple[Window, bytes]],
        entries: EntryRows,
        rejections: Sequence[Rejection] = (),
    ) -> Written:
        now = self._now()
        done = self.committed([w for w, _ in windows])
        conflicts: list[Rejection] = []
        if done:
            for w, raw in windows:
                booked = done.get(w.window_id)
                if booked is not None and booked != hashlib.sha256(raw).hexdigest():
                    conflicts.append(conflicting_duplicate(w.window_id, raw, booked))
            windows = [(w, raw) for w, raw in windows if w.window_id not in done]
            entries = entries.without_windows(set(done))
        if rejections or conflicts:
            self.write_dead_letters([*rejections, *conflicts], now)
        if windows:
            self.commit_batch(entries, windows, now)
        return Written(len(windows), len(entries), conflicts)

    def write_dead_letters(self, rejections: Sequence[Rejection], now: datetime) -> None:
        ledger_tables.write_dead_letters(self.client, self.db, rejections, now)

    def write_jobs(self, events: Sequence[JobEvent]) -> None:
        ledger_tables.write_jobs(self.client, self.db, events, self._now())

    def load_jobs(self) -> list[JobEvent]:
        return ledger_tables.load_jobs(self.client, self.db)

    def record_config(self, config_hash: str, version: str, content: bytes,
                      members: Sequence[tuple[str, str, Decimal]] = (), grid: GridSeries | None = None) -> None:
        ledger_tables.record_config(self.client, self.db, config_hash, version, content, members, self._now(), grid)


class MemorySink:
    """In-memory sink with the same interface, for unit tests of the worker logic."""

    def __init__(self) -> None:
        self.windows: list[tuple[Window, bytes]] = []
        self.entries: list[LedgerEntry] = []
        self.rejections: list[Rejection] = []
        self.jobs: list[JobEvent] = []
        self._booked: dict[str, bytes] = {}  # window id -> bytes booked, kept with self.windows

    def write(
        self,
        windows: Sequence[tuple[Window, bytes]],
        entries: EntryRows,
        rejections: Sequence[Rejection] = (),
    ) -> Written:
        """Like the ClickHouse sink: resends skipped, conflicting duplicates refused."""
        booked = self._booked
        conflicts = [conflicting_duplicate(w.window_id, raw, booked[w.window_id])
                     for w, raw in windows if w.window_id in booked and booked[w.window_id] != raw]
        new = [(w, raw) for w, raw in windows if w.window_id not in booked]
        ids = {w.window_id for w, _ in new}
        rows = [e for e in entries if e[_WINDOW] in ids]
        self.windows.extend(new)
        booked.update((w.window_id, raw) for w, raw in new)
        self.entries.extend(entry_from_row(e) for e in rows)
        self.rejections.extend([*rejections, *conflicts])
        return Written(len(new), len(rows), conflicts)

    def write_jobs(self, events: Sequence[JobEvent]) -> None:
        self.jobs.extend(events)
