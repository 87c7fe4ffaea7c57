"""Telemetry window: one message per node per window, the agents' output.

Wire format is JSON. Field names and meanings are the contract between the
agents and the centre; new optional fields may be added, existing ones never
change meaning. Energy is integer millijoules so that every split and sum is
exact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import WireError

SCHEMA_VERSION: Literal[1] = 1
# Shares are floats on the wire; rounding in the agent may overshoot 1 by a hair.
SHARE_TOLERANCE = 1e-6

# Bounds of the contract (docs/attribution.md "What a window may carry"). Every
# number fits its ClickHouse column, and so do the sums of a whole batch
# (streams/settings.py MAX_BATCH_SIZE windows x 64 GPUs x MAX_ENERGY_MJ < 2^63); the consortium config's
# power limits then bound energy far more tightly (streams/processing.py).
MAX_GPUS = 64
MAX_PROCESSES = 1024
MAX_FLAGS = 16
MAX_SEQ = 2**63 - 1
MIN_TIME_NS = 946_684_800 * 10**9  # 2000-01-01
MAX_TIME_NS = 4_102_444_800 * 10**9  # 2100-01-01 (DateTime columns end in 2106)
MAX_ENERGY_MJ = 10**13
MAX_GPU_SECONDS = 3700.0
MAX_POWER_MW = 10**9
MAX_MEM_BYTES = 2**50
MAX_PID = 2**32
# A message nested deeper than this is refused (an honest window nests 4 deep).
MAX_DEPTH = 64
# Identifiers (agent, node, site, boot, epoch, GPU uuid, job, account, flags):
# ASCII letters and digits first, then also . _ : @ + = -; at most 128
# characters. No spaces, no control characters, no '/' (the window id joins
# identifiers with '/', so it can always be split back).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$"
SIGNATURE_PATTERN = r"^[0-9a-f]{128}$"
# Free text (a GPU model's NVML name, a MIG instance id): 1-256 characters,
# no control characters, no surrounding white space.
TEXT_PATTERN = r"^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]{0,254}[^\x00-\x20\x7f])?$"

__all__ = [
    "ID_PATTERN",
    "MAX_DEPTH",
    "MAX_GPUS",
    "SCHEMA_VERSION",
    "GpuWindow",
    "ProcessShare",
    "TelemetryWindow",
    "decode_window",
    "GpuReading",
    "ProcessReading",
    "Window",
    "decode_window_fast",
    "json_depth",
    "parse_window",
    "read_json",
    "require_version",
]

Ident = Annotated[str, Field(pattern=ID_PATTERN)]
Text = Annotated[str, Field(pattern=TEXT_PATTERN)]
_STRICT = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)


class ProcessShare(BaseModel):
    """One process seen on a GPU during the window."""

    model_config = _STRICT

    pid: int = Field(ge=0, le=MAX_PID)
    job_id: Ident | None = None
    # Scheduler account or Kubernetes namespace, when the node could resolve it.
    account: Ident | None = None
    sm_share: float = Field(ge=0.0, le=1.0)
    mem_used_bytes: int | None = Field(default=None, ge=0, le=MAX_MEM_BYTES)
    mig_uuid: Text | None = None


class GpuWindow(BaseModel):
    """One GPU (or MIG parent) over one window."""

    model_config = _STRICT

    uuid: Ident
    model: Text
    energy_mj: int = Field(ge=0, le=MAX_ENERGY_MJ, description="energy-counter delta over the window")
    gpu_seconds: float = Field(ge=0.0, le=MAX_GPU_SECONDS)
    util_gpu: float = Field(default=0.0, ge=0.0, le=100.0)
    mem_used_bytes: int = Field(default=0, ge=0, le=MAX_MEM_BYTES)
    power_avg_mw: int = Field(default=0, ge=0, le=MAX_POWER_MW)
    power_limit_mw: int | None = Field(default=None, ge=0, le=MAX_POWER_MW)
    # counter_reset, energy_estimated, agent_restart, gpu_missing, gpu_appeared,
    # counter_frozen, clock_step, mig (a partitioned GPU: unused slices are idle,
    # not the tenants'), mig_unreadable (the instances' processes could not be
    # listed) — agents/windowing.py, agents/readers/nvml.py
    flags: list[Ident] = Field(default_factory=list, max_length=MAX_FLAGS)
    processes: list[ProcessShare] = Field(default_factory=list, max_length=MAX_PROCESSES)

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

    model_config = _STRICT

    schema_version: Literal[1]
    agent_id: Ident
    site_id: Ident
    node: Ident
    boot_id: Ident
    # Made at random when the agent's spool is created: an agent that restarts
    # without its spool (seq from 0 again on the same boot) never reuses an id.
    epoch: Ident
    seq: int = Field(ge=0, le=MAX_SEQ)
    window_start_ns: int = Field(ge=MIN_TIME_NS, le=MAX_TIME_NS)
    window_end_ns: int = Field(ge=MIN_TIME_NS, le=MAX_TIME_NS)
    gpus: list[GpuWindow] = Field(min_length=1, max_length=MAX_GPUS)
    key_id: Ident | None = None
    # Ed25519 over the message's bytes up to this member (schemas/signing.py)
    signature: Annotated[str, Field(pattern=SIGNATURE_PATTERN)] | None = None

    @model_validator(mode="after")
    def _window_order(self) -> TelemetryWindow:
        if self.window_end_ns <= self.window_start_ns:
            raise ValueError("window_end_ns must be after window_start_ns")
        return self

    @property
    def window_id(self) -> str:
        """Identity of a window: resends and replays carry the same one.

        ``site/agent/boot/epoch/seq``; no identifier contains '/'."""
        return f"{self.site_id}/{self.agent_id}/{self.boot_id}/{self.epoch}/{self.seq}"

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


_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(raw: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (brackets inside strings
    do not count), without building anything: safe on any bytes."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(raw):
        c = m.group()
        if c in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


def read_json(raw: bytes | str) -> Any:
    """Any bytes to a JSON value, or WireError: bounded depth, strict UTF-8, no
    lone surrogate escapes, no NaN or Infinity (msgspec's decoder refuses both)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if not data.strip():
        raise WireError("malformed_json", "empty message")
    if json_depth(data) > MAX_DEPTH:
        raise WireError("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("malformed_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        detail = str(exc)
        if b"\\u" in data and "truncated" in detail:
            detail = "malformed \\u escape or lone surrogate (a string must be valid Unicode)"
        raise WireError("malformed_json", detail) from exc


def require_version(version: Any, expected: int) -> None:
    """WireError unless ``version`` is the integer ``expected`` (1.0 and true equal 1
    in Python but are not the integer 1)."""
    if type(version) is not int or version != expected:
        raise WireError("unsupported_version", f"schema_version {version!r}; this build reads the integer {expected}")


def parse_window(raw: bytes | str) -> tuple[dict[str, Any], TelemetryWindow]:
    """Like :func:`decode_window`, also returning the JSON object (for signature checks)."""
    doc = read_json(raw)
    if not isinstance(doc, dict):
        raise WireError("schema_invalid", "a telemetry window must be a JSON object")
    require_version(doc.get("schema_version"), SCHEMA_VERSION)
    try:
        return doc, TelemetryWindow.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        # too many GPUs, processes or flags: a message larger than any honest one
        reason = "oversized" if first["type"] == "too_long" and isinstance(first["loc"][-1], str) else "schema_invalid"
        raise WireError(reason, f"{where}: {first['msg']}") from exc


# -- fast decoding -----------------------------------------------------------------
# The stream decodes every window; pydantic costs ~100 µs for an 8-GPU window,
# msgspec a tenth of that. These structs mirror the models above field for
# field, with the same constraints, and are only ever *narrower*: whatever they
# refuse (or cannot express) goes through parse_window, which stays the
# authority on what is accepted and on the rejection reason.
# tests/unit/schemas/test_telemetry.py checks the two agree.
#
# The identifier and text patterns are checked after msgspec, by _KnownGood:
# msgspec runs a regex on every string (~50 a window, 3/4 of its time), while
# the strings of a stream repeat (a GPU's uuid and model every window, a job's
# id for hours), so each distinct string is matched once and then looked up.
# Each string must match its pattern as a whole (re.fullmatch), as pydantic's
# pattern does: msgspec's Meta(pattern) is re.search, whose '$' also matches
# before a final newline, so it accepted "n1\n" where the contract refuses it.

_Id = str  # ID_PATTERN, checked by _strings_ok
_Text = str  # TEXT_PATTERN, likewise


class _KnownGood:
    """The strings already matched against one pattern; bounded (emptied when full)."""

    LIMIT = 100_000

    def __init__(self, pattern: str) -> None:
        self.match = re.compile(pattern).fullmatch
        self.seen: set[str] = set()

    def ok(self, s: str) -> bool:
        if s in self.seen:
            return True
        if self.match(s) is None:
            return False
        if len(self.seen) >= self.LIMIT:
            self.seen.clear()
        self.seen.add(s)
        return True


_ids, _texts = _KnownGood(ID_PATTERN), _KnownGood(TEXT_PATTERN)
_signature = re.compile(SIGNATURE_PATTERN).fullmatch


def _strings_ok(w: _FastWindow) -> bool:
    """Every identifier and text of a decoded window matches its pattern."""
    id_ok, text_ok = _ids.ok, _texts.ok
    if not all(map(id_ok, (w.agent_id, w.site_id, w.node, w.boot_id, w.epoch))):
        return False
    if w.key_id is not None and not id_ok(w.key_id):
        return False
    if w.signature is not None and _signature(w.signature) is None:  # each message's own: not remembered
        return False
    for g in w.gpus:
        if not (id_ok(g.uuid) and text_ok(g.model) and all(map(id_ok, g.flags))):
            return False
        for p in g.processes:
            if ((p.job_id is not None and not id_ok(p.job_id)) or (p.account is not None and not id_ok(p.account))
                    or (p.mig_uuid is not None and not text_ok(p.mig_uuid))):
                return False
    return True


def _count(high: int) -> Any:
    return Annotated[int, msgspec.Meta(ge=0, le=high)]


class _FastProcess(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pid: _count(MAX_PID)  # type: ignore[valid-type]
    sm_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    job_id: _Id | None = None
    account: _Id | None = None
    mem_used_bytes: _count(MAX_MEM_BYTES) | None = None  # type: ignore[valid-type]
    mig_uuid: _Text | None = None


class _FastGpu(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    uuid: _Id
    model: _Text
    energy_mj: _count(MAX_ENERGY_MJ)  # type: ignore[valid-type]
    gpu_seconds: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_GPU_SECONDS)]
    util_gpu: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 0.0
    mem_used_bytes: _count(MAX_MEM_BYTES) = 0  # type: ignore[valid-type]
    power_avg_mw: _count(MAX_POWER_MW) = 0  # type: ignore[valid-type]
    power_limit_mw: _count(MAX_POWER_MW) | None = None  # type: ignore[valid-type]
    flags: Annotated[list[_Id], msgspec.Meta(max_length=MAX_FLAGS)] = []
    processes: Annotated[list[_FastProcess], msgspec.Meta(max_length=MAX_PROCESSES)] = []

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


_Time = Annotated[int, msgspec.Meta(ge=MIN_TIME_NS, le=MAX_TIME_NS)]


class _FastWindow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    schema_version: Literal[1]
    agent_id: _Id
    site_id: _Id
    node: _Id
    boot_id: _Id
    epoch: _Id
    seq: _count(MAX_SEQ)  # type: ignore[valid-type]
    window_start_ns: _Time
    window_end_ns: _Time
    gpus: Annotated[list[_FastGpu], msgspec.Meta(min_length=1, max_length=MAX_GPUS)]
    key_id: _Id | None = None
    signature: str | None = None  # SIGNATURE_PATTERN, checked by _strings_ok

    def __post_init__(self) -> None:
        if self.window_end_ns <= self.window_start_ns:
            raise ValueError("window_end_ns must be after window_start_ns")

    window_id = TelemetryWindow.window_id
    window_s = TelemetryWindow.window_s


_fast_decoder = msgspec.json.Decoder(_FastWindow)


class ProcessReading(Protocol):
    """What the centre reads of a process: :class:`ProcessShare`, or the fast decoder's struct."""

    @property
    def pid(self) -> int: ...
    @property
    def job_id(self) -> str | None: ...
    @property
    def account(self) -> str | None: ...
    @property
    def sm_share(self) -> float: ...
    @property
    def mem_used_bytes(self) -> int | None: ...
    @property
    def mig_uuid(self) -> str | None: ...


class GpuReading(Protocol):
    """What the centre reads of a GPU window: :class:`GpuWindow`, or the fast decoder's struct."""

    @property
    def uuid(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def energy_mj(self) -> int: ...
    @property
    def gpu_seconds(self) -> float: ...
    @property
    def gpu_ms(self) -> int: ...
    @property
    def power_limit_mw(self) -> int | None: ...
    @property
    def flags(self) -> Sequence[str]: ...
    @property
    def processes(self) -> Sequence[ProcessReading]: ...


class Window(Protocol):
    """A decoded window as the centre reads it (streams/, ledger/): a
    :class:`TelemetryWindow`, or the fast decoder's struct with the same fields."""

    @property
    def agent_id(self) -> str: ...
    @property
    def site_id(self) -> str: ...
    @property
    def node(self) -> str: ...
    @property
    def boot_id(self) -> str: ...
    @property
    def epoch(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def window_start_ns(self) -> int: ...
    @property
    def window_end_ns(self) -> int: ...
    @property
    def gpus(self) -> Sequence[GpuReading]: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def signature(self) -> str | None: ...
    @property
    def window_id(self) -> str: ...
    @property
    def window_s(self) -> float: ...


def decode_window_fast(raw: bytes) -> Window:
    """Same result as :func:`decode_window` (a window with the same fields, or the
    same :class:`WireError`), several times faster on valid input.

    Safe on any bytes: whatever the fast decoder does not accept (including what
    makes it raise: invalid UTF-8 in a string, nesting past its recursion
    limit) is decided by :func:`parse_window`."""
    # Bounded depth on every path: the fast structs refuse unknown fields, so what
    # they accept nests as deep as they do (4); a message with a field this build
    # does not know (its contents could nest to msgspec's recursion limit, which
    # later readers of the payload may not survive) goes through parse_window,
    # which measures the depth first.
    # Anything beyond ASCII (rare: the agents' identifiers are ASCII) is left to
    # parse_window too, which checks the whole message is UTF-8.
    fast = _fast_decode(raw) if raw.isascii() else None
    return fast if fast is not None else parse_window(raw)[1]


def _fast_decode(raw: bytes) -> _FastWindow | None:
    """The window, or None where the fast path does not accept it (parse_window decides)."""
    try:
        fast: _FastWindow = _fast_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    return fast if _strings_ok(fast) else None
