"""Job events: a job's start or end on a site, from a scheduler hook."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import WireError
from schemas.telemetry import MAX_GPUS, MAX_TIME_NS, Ident, Text, read_json, require_version

MAX_JOB_EVENT_BYTES = 64 * 1024

__all__ = ["JobEvent", "decode_job_event"]


class JobEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    schema_version: Literal[1] = 1
    event: Literal["start", "end"]
    site_id: Ident
    job_id: Ident
    # Scheduler account (Slurm) or namespace (Kubernetes): maps to a project.
    account: Ident
    node: Text | None = None  # a host, or a Slurm host list (gpu[017-018])
    gpus: list[Ident] = Field(default_factory=list, max_length=MAX_GPUS, description="GPU UUIDs allocated")
    exclusive: bool = False
    time_ns: int = Field(ge=0, le=MAX_TIME_NS)

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), sort_keys=True).encode()


def decode_job_event(raw: bytes | str | None) -> JobEvent:
    """A job event from any bytes, or :class:`WireError` with a reason code."""
    if raw is None:
        raise WireError("empty", "a record without a value (tombstone)")
    if len(raw) > MAX_JOB_EVENT_BYTES:
        raise WireError("oversized", f"{len(raw)} bytes > {MAX_JOB_EVENT_BYTES}")
    doc = read_json(raw)
    if not isinstance(doc, dict):
        raise WireError("schema_invalid", "a job event must be a JSON object")
    require_version(doc.get("schema_version", 1), 1)
    try:
        return JobEvent.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WireError("schema_invalid", f"{where}: {first['msg']}") from exc
