"""Writes accepted windows, ledger entries and rejections to ClickHouse.

Batches come whole from the worker; the worker acks the Kafka offsets of a
batch only after :meth:`ClickHouseSink.write` returned, so a crash at any
point means the batch is read and written again. That is harmless: every
table deduplicates on a deterministic identity (see ledger/migrations).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas import LedgerEntry, TelemetryWindow
from schemas.jobs import JobEvent
from streams.processing import Rejection

__all__ = ["ClickHouseSink", "LedgerSink", "MemorySink"]

WINDOW_COLUMNS = (
    "window_id, agent_id, site_id, node, boot_id, seq, window_start, window_start_ns, "
    "window_end_ns, gpu_count, energy_mj, gpu_ms, payload, received_at"
)
ENTRY_COLUMNS = (
    "entry_id, window_id, agent_id, boot_id, seq, site_id, node, gpu_uuid, gpu_model, "
    "window_start, window_start_ns, window_end_ns, job_id, account_kind, account, project, "
    "member, energy_mj, gpu_ms, normalised_gpu_hours, cost_eur, carbon_g, config_hash, written_at"
)
JOB_COLUMNS = "site_id, job_id, event, account, node, gpus, exclusive, time_ns, received_at"
DLQ_COLUMNS = "received_at, reason, detail, site_id, agent_id, raw_sha256, raw"


def _ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(tzinfo=None)


class LedgerSink(Protocol):
    def write(
        self,
        windows: Sequence[tuple[TelemetryWindow, bytes]],
        entries: Sequence[LedgerEntry],
        rejections: Sequence[Rejection] = (),
    ) -> None: ...

    def write_jobs(self, events: Sequence[JobEvent]) -> None: ...


class ClickHouseSink:
    def __init__(self, client: Any, database: str, now: Callable[[], datetime] | None = None) -> None:
        self.client = client
        self.db = database
        self._now = now or (lambda: datetime.now(UTC).replace(tzinfo=None))

    def write(
        self,
        windows: Sequence[tuple[TelemetryWindow, bytes]],
        entries: Sequence[LedgerEntry],
        rejections: Sequence[Rejection] = (),
    ) -> None:
        now = self._now()
        if windows:
            self.client.execute(
                f"INSERT INTO {self.db}.raw_windows ({WINDOW_COLUMNS}) VALUES",
                [
                    (w.window_id, w.agent_id, w.site_id, w.node, w.boot_id, w.seq,
                     _ts(w.window_start_ns), w.window_start_ns, w.window_end_ns, len(w.gpus),
                     sum(g.energy_mj for g in w.gpus), sum(g.gpu_ms for g in w.gpus),
                     raw.decode("utf-8", "replace"), now)
                    for w, raw in windows
                ],
            )
        if entries:
            self.client.execute(
                f"INSERT INTO {self.db}.ledger_entries ({ENTRY_COLUMNS}) VALUES",
                [
                    (e.entry_id, e.window_id, e.agent_id, e.boot_id, e.seq, e.site_id, e.node,
                     e.gpu_uuid, e.gpu_model, _ts(e.window_start_ns), e.window_start_ns,
                     e.window_end_ns, e.job_id or "", e.account_kind, e.account, e.project,
                     e.member, e.energy_mj, e.gpu_ms, e.normalised_gpu_hours, e.cost_eur,
                     e.carbon_g, e.config_hash, now)
                    for e in entries
                ],
            )
        if rejections:
            self.client.execute(
                f"INSERT INTO {self.db}.dlq_records ({DLQ_COLUMNS}) VALUES",
                [
                    (now, r.reason, r.detail[:2000], _field(r.raw, "site_id"), _field(r.raw, "agent_id"),
                     hashlib.sha256(r.raw).hexdigest(), r.raw.decode("utf-8", "replace")[:1_000_000])
                    for r in rejections
                ],
            )

    def write_jobs(self, events: Sequence[JobEvent]) -> None:
        if not events:
            return
        now = self._now()
        self.client.execute(
            f"INSERT INTO {self.db}.job_events ({JOB_COLUMNS}) VALUES",
            [
                (e.site_id, e.job_id, e.event, e.account, e.node or "", list(e.gpus),
                 int(e.exclusive), e.time_ns, now)
                for e in events
            ],
        )

    def record_config(self, config_hash: str, version: str, content: bytes) -> None:
        self.client.execute(
            f"INSERT INTO {self.db}.config_versions (config_hash, version, content, first_seen) VALUES",
            [(config_hash, version, content.decode(), self._now())],
        )

    def load_jobs(self) -> list[JobEvent]:
        rows = self.client.execute(
            f"SELECT site_id, job_id, event, account, node, gpus, exclusive, time_ns "
            f"FROM {self.db}.job_events FINAL ORDER BY time_ns"
        )
        return [
            JobEvent(event=r[2], site_id=r[0], job_id=r[1], account=r[3], node=r[4] or None,
                     gpus=list(r[5]), exclusive=bool(r[6]), time_ns=r[7])
            for r in rows
        ]


def _field(raw: bytes, name: str) -> str:
    """Best effort: which site/agent sent a rejected message, for per-site DLQ counts."""
    try:
        doc = json.loads(raw)
        value = doc.get(name) if isinstance(doc, dict) else None
        return value[:256] if isinstance(value, str) else ""
    except (ValueError, UnicodeDecodeError):
        return ""


class MemorySink:
    """In-memory sink with the same interface, for unit tests of the worker logic."""

    def __init__(self) -> None:
        self.windows: list[tuple[TelemetryWindow, bytes]] = []
        self.entries: list[LedgerEntry] = []
        self.rejections: list[Rejection] = []
        self.jobs: list[JobEvent] = []

    def write(
        self,
        windows: Sequence[tuple[TelemetryWindow, bytes]],
        entries: Sequence[LedgerEntry],
        rejections: Sequence[Rejection] = (),
    ) -> None:
        self.windows.extend(windows)
        self.entries.extend(entries)
        self.rejections.extend(rejections)

    def write_jobs(self, events: Sequence[JobEvent]) -> None:
        self.jobs.extend(events)
