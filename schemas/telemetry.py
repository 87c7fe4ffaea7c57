"""Telemetry window: one message per node per window, the agents' output.

Wire format is JSON. Field names and meanings are the contract between the
agents and the centre; new optional fields may be added, existing ones never
change meaning. Energy is integer millijoules so that every split and sum is
exact.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import WireError

SCHEMA_VERSION = 1
# Shares are floats on the wire; rounding in the agent may overshoot 1 by a hair.
SHARE_TOLERANCE = 1e-6

__all__ = [
    "SCHEMA_VERSION",
    "GpuWindow",
    "ProcessShare",
    "TelemetryWindow",
    "decode_window",
    "decode_window_fast",
    "parse_window",
]

NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]


class ProcessShare(BaseModel):
    """One process seen on a GPU during the window."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pid: int = Field(ge=0)
    job_id: str | None = Field(default=None, max_length=256)
    # Scheduler account or Kubernetes namespace, when the node could resolve it.
    account: str | None = Field(default=None, max_length=256)
    sm_share: float = Field(ge=0.0, le=1.0)
    mem_used_bytes: int | None = Field(default=None, ge=0)
    mig_uuid: str | None = Field(default=None, max_length=256)


class GpuWindow(BaseModel):
    """One GPU (or MIG parent) over one window."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    uuid: NonEmpty
    model: NonEmpty
    energy_mj: int = Field(ge=0, description="energy-counter delta over the window")
    gpu_seconds: float = Field(ge=0.0)
    util_gpu: float = Field(default=0.0, ge=0.0, le=100.0)
    mem_used_bytes: int = Field(default=0, ge=0)
    power_avg_mw: int = Field(default=0, ge=0)
    power_limit_mw: int | None = Field(default=None, ge=0)
    # counter_reset, energy_estimated, agent_restart, gpu_missing, gpu_appeared,
    # mig (a partitioned GPU: unused slices are idle, not the tenants') — agents/windowing.py
    flags: list[str] = Field(default_factory=list)
    processes: list[ProcessShare] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shares_fit(self) -> GpuWindow:
        total = sum(p.sm_share for p in self.processes)
        if total > 1.0 + SHARE_TOLERANCE:
            raise ValueError(f"process sm_share values sum to {total:.6f} > 1")
        return self

    @property
    def gpu_ms(self) -> int:
        return round(self.gpu_seconds * 1000)


class TelemetryWindow(BaseModel):
    """One node over one window: the unit the agents send and the centre dedups."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1]
    agent_id: NonEmpty
    site_id: NonEmpty
    node: NonEmpty
    boot_id: NonEmpty
    seq: int = Field(ge=0)
    window_start_ns: int = Field(ge=0)
    window_end_ns: int = Field(ge=0)
    gpus: list[GpuWindow] = Field(min_length=1)
    key_id: str | None = None
    signature: str | None = None

    @model_validator(mode="after")
    def _window_order(self) -> TelemetryWindow:
        if self.window_end_ns <= self.window_start_ns:
            raise ValueError("window_end_ns must be after window_start_ns")
        return self

    @property
    def window_id(self) -> str:
        """Identity of a window: resends and replays carry the same one."""
        return f"{self.agent_id}/{self.boot_id}/{self.seq}"

    @property
    def window_s(self) -> float:
        return (self.window_end_ns - self.window_start_ns) / 1e9

    def to_json_bytes(self) -> bytes:
        return json.dumps(
            self.model_dump(mode="json", exclude_none=True), separators=(",", ":"), sort_keys=True
        ).encode()


def decode_window(raw: bytes | str) -> TelemetryWindow:
    """Parse wire bytes into a window, or raise :class:`WireError` with a reason code."""
    return parse_window(raw)[1]


def parse_window(raw: bytes | str) -> tuple[dict[str, Any], TelemetryWindow]:
    """Like :func:`decode_window`, also returning the JSON object (for signature checks)."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError("malformed_json", str(exc)) from exc
    if not isinstance(doc, dict):
        raise WireError("schema_invalid", "a telemetry window must be a JSON object")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise WireError(
            "unsupported_version", f"schema_version {version!r}; this build reads {SCHEMA_VERSION}"
        )
    try:
        return doc, TelemetryWindow.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WireError("schema_invalid", f"{where}: {first['msg']}") from exc


# -- fast decoding -----------------------------------------------------------------
# The stream decodes every window; pydantic costs ~100 µs for an 8-GPU window,
# msgspec a tenth of that. These structs mirror the models above field for
# field, with the same constraints, and are only ever *narrower*: whatever they
# refuse (or cannot express, such as pydantic's lax coercions) goes through
# parse_window, which stays the authority on what is accepted and on the
# rejection reason. tests/unit/test_telemetry.py checks the two agree.

_Str256 = Annotated[str, msgspec.Meta(max_length=256)]
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Count = Annotated[int, msgspec.Meta(ge=0)]


class _FastProcess(msgspec.Struct, frozen=True):
    pid: _Count
    sm_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    job_id: _Str256 | None = None
    account: _Str256 | None = None
    mem_used_bytes: _Count | None = None
    mig_uuid: _Str256 | None = None


class _FastGpu(msgspec.Struct, frozen=True):
    uuid: _NonEmpty
    model: _NonEmpty
    energy_mj: _Count
    gpu_seconds: Annotated[float, msgspec.Meta(ge=0.0)]
    util_gpu: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 0.0
    mem_used_bytes: _Count = 0
    power_avg_mw: _Count = 0
    power_limit_mw: _Count | None = None
    flags: list[str] = []
    processes: list[_FastProcess] = []

    def __post_init__(self) -> None:
        if len(self.processes) > 1:  # one share alone is at most 1 by its own constraint
            total = 0.0
            for p in self.processes:
                total += p.sm_share
            if total > 1.0 + SHARE_TOLERANCE:
                raise ValueError("process sm_share values sum to more than 1")

    @property
    def gpu_ms(self) -> int:
        return round(self.gpu_seconds * 1000)


class _FastWindow(msgspec.Struct, frozen=True):
    schema_version: Literal[1]
    agent_id: _NonEmpty
    site_id: _NonEmpty
    node: _NonEmpty
    boot_id: _NonEmpty
    seq: _Count
    window_start_ns: _Count
    window_end_ns: _Count
    gpus: Annotated[list[_FastGpu], msgspec.Meta(min_length=1)]
    key_id: str | None = None
    signature: str | None = None

    def __post_init__(self) -> None:
        if self.window_end_ns <= self.window_start_ns:
            raise ValueError("window_end_ns must be after window_start_ns")

    window_id = TelemetryWindow.window_id
    window_s = TelemetryWindow.window_s


_fast_decoder = msgspec.json.Decoder(_FastWindow)


def decode_window_fast(raw: bytes) -> TelemetryWindow:
    """Same result as :func:`decode_window` (a window with the same fields, or the
    same :class:`WireError`), several times faster on valid input."""
    try:
        return _fast_decoder.decode(raw)  # type: ignore[return-value]
    except (msgspec.ValidationError, msgspec.DecodeError):
        return parse_window(raw)[1]
