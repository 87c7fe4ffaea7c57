"""Job events: a job's start or end on a site, from a scheduler hook."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import WireError

__all__ = ["JobEvent", "decode_job_event"]


class JobEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    event: Literal["start", "end"]
    site_id: str = Field(min_length=1)
    job_id: str = Field(min_length=1)
    # Scheduler account (Slurm) or namespace (Kubernetes): maps to a project.
    account: str = Field(min_length=1)
    node: str | None = None
    gpus: list[str] = Field(default_factory=list, description="GPU UUIDs allocated")
    exclusive: bool = False
    time_ns: int = Field(ge=0)

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), sort_keys=True).encode()


def decode_job_event(raw: bytes | str) -> JobEvent:
    try:
        return JobEvent.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        reason = "malformed_json" if first["type"] == "json_invalid" else "schema_invalid"
        raise WireError(reason, f"{where}: {first['msg']}") from exc
