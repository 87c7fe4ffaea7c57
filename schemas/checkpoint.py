"""Checkpoints: the stream's signed word on a chain's head, kept by the members.

The stream signs a checkpoint with the ledger's own Ed25519 key and publishes
it to the ``ledger.checkpoints`` topic (one partition, kept forever). Members
copy every checkpoint with ``bridgeledger ledger witness``; whoever later
rewrites, truncates or replaces a chain in the database cannot make it match
what they hold (``bridgeledger ledger verify --witness``).

Message (a JSON object, signed like a window, schemas/signing.py: the
signature is the last member, over the bytes before it)::

    {"schema_version": 1, "kind": "register" | "checkpoint", "chain_id": ...,
     "seq": <last batch covered, -1 before the first>, "batch_hash": <its hash,
     64 zeros before the first>, "entries": n, "windows": n, "energy_mj": n,
     "gpu_ms": n (running totals of the chain up to seq), "prev": <SHA-256 of
     the previous checkpoint message of this chain; 64 zeros for a
     registration>, "time_ns": n, "reason": "start" | "interval" | "stop" |
     "correction", "key_id": <the ledger key's id in the consortium config>,
     "signature": <128 hex>}

A chain's first checkpoint is its registration; every later one names the
one before it (``prev``), so the checkpoints of a chain form a chain of their
own: a witness that sees two checkpoints with the same ``prev``, a ``seq``
going back, or a registration of a chain it knows, has seen a fork.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Literal

import msgspec

from schemas.chain import GENESIS
from schemas.errors import SchemaError
from schemas.signing import SigningKey, VerifyKey, sign_window, split_signature
from schemas.telemetry import ID_PATTERN, MAX_TIME_NS, MIN_TIME_NS

__all__ = [
    "CHECKPOINT_VERSION", "MAX_CHECKPOINT_BYTES", "ChainHead", "Checkpoint", "CheckpointError", "checkpoint_id",
    "decode_checkpoint", "encode_checkpoint",
]

CHECKPOINT_VERSION = 1
MAX_CHECKPOINT_BYTES = 4096
_HEX64 = r"^[0-9a-f]{64}$"
_ID, _HEX = re.compile(ID_PATTERN).fullmatch, re.compile(_HEX64).fullmatch
_BIG = 2**62


class CheckpointError(SchemaError):
    """A message on the checkpoints topic that is not a checkpoint signed by a ledger key."""


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    schema_version: Literal[1]
    kind: Literal["register", "checkpoint"]
    chain_id: str  # ID_PATTERN, as a whole (__post_init__)
    seq: Annotated[int, msgspec.Meta(ge=-1, le=_BIG)]
    batch_hash: str  # _HEX64, likewise
    entries: Annotated[int, msgspec.Meta(ge=0, le=_BIG)]
    windows: Annotated[int, msgspec.Meta(ge=0, le=_BIG)]
    energy_mj: Annotated[int, msgspec.Meta(ge=-_BIG, le=_BIG)]
    gpu_ms: Annotated[int, msgspec.Meta(ge=-_BIG, le=_BIG)]
    prev: str  # _HEX64
    time_ns: Annotated[int, msgspec.Meta(ge=MIN_TIME_NS, le=MAX_TIME_NS)]
    reason: Literal["start", "interval", "stop", "correction"]
    key_id: str  # ID_PATTERN

    def __post_init__(self) -> None:
        # whole matches: msgspec's Meta(pattern) is re.search, whose '$' also matches before a final newline
        for name, whole in (("chain_id", _ID), ("key_id", _ID), ("batch_hash", _HEX), ("prev", _HEX)):
            if whole(getattr(self, name)) is None:
                raise ValueError(f"{name} does not match its pattern as a whole")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """A chain after a batch: its seq and hash and the running totals. What the
    chain writer reports for each commit and what a checkpoint signs."""

    chain_id: str
    seq: int
    batch_hash: str
    entries: int
    windows: int
    energy_mj: int
    gpu_ms: int

    def totals(self) -> tuple[int, int, int, int]:
        return (self.entries, self.windows, self.energy_mj, self.gpu_ms)

    def where(self) -> str:
        return f"chain {self.chain_id} seq {self.seq}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint(ChainHead):
    """A chain head signed by the ledger key: ``kind`` register or checkpoint, the
    previous checkpoint's id (``prev``), when, why and with which key."""

    kind: str
    prev: str
    time_ns: int
    reason: str
    key_id: str


def encode_checkpoint(cp: Checkpoint, key: SigningKey) -> bytes:
    """The signed message for ``cp`` (refuses one that would not decode)."""
    doc = {"schema_version": CHECKPOINT_VERSION, **asdict(cp)}
    try:
        msgspec.convert(doc, _Wire)  # the same contract as decoding
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a valid checkpoint: {exc}") from exc
    if cp.kind == "register" and cp.prev != GENESIS:
        raise ValueError("a registration has no previous checkpoint")
    return sign_window(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), key)


def decode_checkpoint(raw: bytes | None, keys: Mapping[str, VerifyKey] | None) -> Checkpoint:
    """A checkpoint from the topic, its signature checked against the ledger keys
    the consortium config lists (``keys=None``: not checked, for a witness's own
    store of checkpoints it checked when it took them). CheckpointError says
    what is wrong."""
    if raw is None:
        raise CheckpointError("empty message")
    if len(raw) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{len(raw)} bytes, more than a checkpoint's {MAX_CHECKPOINT_BYTES}")
    parts = split_signature(raw)
    if parts is None:
        raise CheckpointError("not signed (no trailing signature member)")
    body, signature = parts
    try:
        wire = msgspec.json.decode(body, type=_Wire)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"not a checkpoint: {str(exc)[:200]}") from exc
    if keys is not None:
        key = keys.get(wire.key_id)
        if key is None:
            raise CheckpointError(f"signed with key {wire.key_id!r}, which is not a ledger key of the config")
        try:
            key.verify(body, signature)
        except Exception as exc:  # nacl's BadSignatureError, or a malformed signature
            raise CheckpointError(f"bad signature for ledger key {wire.key_id!r}") from exc
    if wire.kind == "register" and wire.prev != GENESIS:
        raise CheckpointError("a registration names a previous checkpoint")
    return Checkpoint(**{f.name: getattr(wire, f.name) for f in fields(Checkpoint)})


def checkpoint_id(raw: bytes) -> str:
    """What the next checkpoint of the chain names as ``prev``: SHA-256 of the message bytes."""
    return hashlib.sha256(raw).hexdigest()
