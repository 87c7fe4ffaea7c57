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

    @property
    def gpu_seconds(self) -> Decimal:
        return Decimal(self.gpu_ms) / 1000

    def to_record(self) -> dict[str, object]:
        """The offline (JSON lines) form, with the documented field names."""
        doc = self.model_dump(mode="json")
        doc["gpu_seconds"] = str(self.gpu_seconds)
        doc["cost"] = doc["cost_eur"]
        return doc
