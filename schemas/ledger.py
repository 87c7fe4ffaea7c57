"""Ledger entry: the immutable unit of account written by the stream."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ENTRY_ROW_FIELDS", "AccountKind", "AccountSource", "EntryRow", "LedgerEntry", "entry_from_row", "row_from_entry",
]

# job: a project's job; idle: a site's GPU with no job; unresolved: a job whose
# account maps to no project (kept apart so nobody is billed by a guess).
AccountKind = Literal["job", "idle", "unresolved"]
# Where an entry's account came from: job_event (the scheduler's job events),
# job_event_overrode_claim (the window claimed another account; the scheduler
# wins), self_declared (the window's claim, where the config lets the site
# declare and no job event exists), none (idle and unresolved), correction.
AccountSource = Literal["job_event", "job_event_overrode_claim", "self_declared", "none", "correction"]


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    entry_id: str
    window_id: str
    agent_id: str
    boot_id: str
    seq: int
    site_id: str
    node: str
    gpu_uuid: str
    gpu_model: str
    window_start_ns: int
    window_end_ns: int
    job_id: str | None
    account_kind: AccountKind
    account: str
    project: str
    member: str
    energy_mj: int
    gpu_ms: int
    normalised_gpu_hours: Decimal
    cost_eur: Decimal
    carbon_g: Decimal
    config_hash: str
    # A correction names the entry it adjusts; ordinary entries have none.
    corrects: str | None = None
    account_source: AccountSource = "none"

    @property
    def gpu_seconds(self) -> Decimal:
        return Decimal(self.gpu_ms) / 1000

    def chain_line(self) -> bytes:
        """The entry's line in the hash chain (schemas/chain.py)."""
        from schemas.chain import entry_line

        return entry_line(self.entry_id, self.window_id, self.site_id, self.gpu_uuid, self.job_id,
                          self.account_kind, self.account, self.project, self.member, self.energy_mj,
                          self.gpu_ms, self.normalised_gpu_hours, self.cost_eur, self.carbon_g, self.config_hash,
                          self.account_source)

    def to_record(self) -> dict[str, object]:
        """The offline (JSON lines) form, with the documented field names."""
        doc = self.model_dump(mode="json")
        doc["gpu_seconds"] = str(self.gpu_seconds)
        doc["cost"] = doc["cost_eur"]
        return doc


# The hot path's form of an entry: a plain tuple in this order (no object per
# entry between attribution and the ClickHouse insert). ``job_id`` and
# ``corrects`` are "" for none; the three decimals are their chain text (plain
# fixed-point at the stored scale, schemas/chain.py); ``digest`` is the
# entry's chain digest.
ENTRY_ROW_FIELDS = (
    "entry_id", "window_id", "agent_id", "boot_id", "seq", "site_id", "node", "gpu_uuid", "gpu_model",
    "window_start_ns", "window_end_ns", "job_id", "account_kind", "account", "project", "member",
    "energy_mj", "gpu_ms", "normalised_gpu_hours", "cost_eur", "carbon_g", "config_hash", "corrects",
    "account_source", "digest",
)
EntryRow = tuple[Any, ...]
_DECIMALS = ("normalised_gpu_hours", "cost_eur", "carbon_g")


def entry_from_row(row: EntryRow) -> LedgerEntry:
    doc = dict(zip(ENTRY_ROW_FIELDS, row, strict=True))
    del doc["digest"]
    for name in ("job_id", "corrects"):
        doc[name] = doc[name] or None
    for name in _DECIMALS:
        doc[name] = Decimal(doc[name])
    return LedgerEntry.model_construct(**doc)


def row_from_entry(e: LedgerEntry) -> EntryRow:
    from schemas.chain import CARBON_SCALE, COST_SCALE, HOURS_SCALE, decimal_text, entry_digest

    line = e.chain_line()
    return (e.entry_id, e.window_id, e.agent_id, e.boot_id, e.seq, e.site_id, e.node, e.gpu_uuid, e.gpu_model,
            e.window_start_ns, e.window_end_ns, e.job_id or "", e.account_kind, e.account, e.project, e.member,
            e.energy_mj, e.gpu_ms, decimal_text(e.normalised_gpu_hours, HOURS_SCALE),
            decimal_text(e.cost_eur, COST_SCALE), decimal_text(e.carbon_g, CARBON_SCALE),
            e.config_hash, e.corrects or "", e.account_source, entry_digest(line))
