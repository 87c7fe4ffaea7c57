"""Ledger entry: the immutable unit of account written by the stream."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["AccountKind", "LedgerEntry"]

# job: a project's job; idle: a site's GPU with no job; unresolved: a job whose
# account maps to no project (kept apart so nobody is billed by a guess).
AccountKind = Literal["job", "idle", "unresolved"]


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

    @property
    def gpu_seconds(self) -> Decimal:
        return Decimal(self.gpu_ms) / 1000

    def chain_line(self) -> bytes:
        """The entry's line in the hash chain (schemas/chain.py)."""
        from schemas.chain import entry_line

        return entry_line(self.entry_id, self.window_id, self.site_id, self.gpu_uuid, self.job_id,
                          self.account_kind, self.account, self.project, self.member, self.energy_mj,
                          self.gpu_ms, self.normalised_gpu_hours, self.cost_eur, self.carbon_g, self.config_hash)

    def to_record(self) -> dict[str, object]:
        """The offline (JSON lines) form, with the documented field names."""
        doc = self.model_dump(mode="json")
        doc["gpu_seconds"] = str(self.gpu_seconds)
        doc["cost"] = doc["cost_eur"]
        return doc
