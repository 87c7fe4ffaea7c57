"""The stream's checkpoints: the chain's head, signed and published for witnesses.

A :class:`Checkpointer` follows one chain's commits (the sink's ``on_commit``)
and publishes a signed checkpoint (schemas/checkpoint.py) to the
``ledger.checkpoints`` topic: when it starts (a registration for a chain the
topic has never seen), at least every ``interval_s`` while batches are
committed, and when it stops. Each checkpoint names the one before it.

At start it also checks the database against the topic: a chain whose last
checkpoint lies beyond the database's head (batches deleted, a database
dropped and re-created) or whose batch at that seq has another hash (a
rewrite) stops the writer before it writes anything on top of it.

Publishing is synchronous and acknowledged by the broker (the sink thread
calls it right after a commit); a failure is logged and retried at the next
commit or tick: the batches stay committed, the witnesses see them later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from schemas.chain import GENESIS
from schemas.checkpoint import (
    ChainHead,
    Checkpoint,
    CheckpointError,
    checkpoint_id,
    decode_checkpoint,
    encode_checkpoint,
)
from schemas.consortium import ConsortiumConfig
from schemas.signing import SigningKey, VerifyKey, demo_key, public_key_hex, read_signing_key, verifier
from streams import StreamError

__all__ = [
    "CheckpointLog", "Checkpointer", "ChainMismatch", "MemoryCheckpointLog", "ledger_signer", "ledger_verifiers",
]

log = logging.getLogger(__name__)


class ChainMismatch(StreamError):
    """The database no longer holds what the checkpoints say was written."""


class CheckpointLog(Protocol):
    """Where checkpoints go: the topic (streams/checkpoint_topic.py) or memory."""

    def publish(self, chain_id: str, message: bytes) -> None:
        """Append, acknowledged; raise on failure."""

    def last(self, chain_id: str) -> bytes | None:
        """The newest checkpoint message of this chain, if any."""


class MemoryCheckpointLog:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def publish(self, chain_id: str, message: bytes) -> None:
        self.messages.append((chain_id, message))

    def last(self, chain_id: str) -> bytes | None:
        return next((m for c, m in reversed(self.messages) if c == chain_id), None)


def ledger_verifiers(cfg: ConsortiumConfig) -> dict[str, VerifyKey]:
    """The config's ledger keys by id: what checks checkpoints and statements."""
    return {k.id: verifier(k.ed25519) for k in cfg.ledger_keys}


def ledger_signer(cfg: ConsortiumConfig, key_file: Path | None) -> tuple[str, SigningKey, bool]:
    """(key id, key, is the public demo key) the ledger signs with.

    ``key_file`` (BRIDGELEDGER_LEDGER_KEY_FILE): its public half must be one of
    the config's ``ledger_keys``. Without one, only a config that lists the
    public demo ledger key (the demo, the tests) lets the stream run.
    Raises StreamError naming the setting and the fix."""
    if not cfg.ledger_keys:
        raise StreamError(f"config {cfg.version} lists no ledger_keys: the stream signs its checkpoints with the "
                          f"ledger's key and the members' witnesses check them; add the public key "
                          f"(bridgeledger agent keygen) under ledger_keys")
    by_public = {k.ed25519: k.id for k in cfg.ledger_keys}
    if key_file is None:
        demo_id, demo = demo_key("ledger")
        if public_key_hex(demo) in by_public:
            return by_public[public_key_hex(demo)], demo, True
        raise StreamError("BRIDGELEDGER_LEDGER_KEY_FILE is not set: the stream needs the ledger's private key "
                          f"to sign checkpoints (its public key is one of ledger_keys: "
                          f"{', '.join(k.id for k in cfg.ledger_keys)})")
    try:
        key = read_signing_key(key_file)
    except ValueError as exc:
        raise StreamError(f"BRIDGELEDGER_LEDGER_KEY_FILE: {exc}") from exc
    key_id = by_public.get(public_key_hex(key))
    if key_id is None:
        raise StreamError(f"BRIDGELEDGER_LEDGER_KEY_FILE {key_file}: its public key {public_key_hex(key)} is not "
                          f"one of the config's ledger_keys ({', '.join(k.id for k in cfg.ledger_keys)})")
    return key_id, key, False


class Checkpointer:
    def __init__(self, chain_id: str, key_id: str, key: SigningKey, verifiers: dict[str, VerifyKey],
                 log_: CheckpointLog, interval_s: float = 60.0, clock_ns: Callable[[], int] = time.time_ns,
                 store: Callable[[Checkpoint, bytes], None] | None = None) -> None:
        self.chain_id = chain_id
        self.key_id = key_id
        self.key = key
        self.verifiers = verifiers
        self.log = log_
        self.interval_ns = int(interval_s * 1e9)
        self.clock_ns = clock_ns
        self.store = store  # a copy in the database (ledger_checkpoints), for statements
        self.head = ChainHead(chain_id, -1, GENESIS, 0, 0, 0, 0)
        self.published: Checkpoint | None = None
        self.prev = GENESIS
        self._last_publish_ns = 0

    # -- start ----------------------------------------------------------------------
    def start(self, head: ChainHead, batch_hash_at: Callable[[int], str | None]) -> Checkpoint | None:
        """Check the database's head of this chain against its last checkpoint and
        publish a registration (a chain the topic does not know) or a checkpoint
        of the head (when it moved since). ChainMismatch: the database lost or
        rewrote checkpointed batches; CheckpointError: the topic's last
        checkpoint of this chain is not one the ledger keys signed."""
        self.head = head
        raw = self.log.last(self.chain_id)
        if raw is None:
            if head.seq >= 0:
                log.warning("chain %s has %d batches but was never registered with the witnesses; registering "
                            "it at its head (seq %d)", self.chain_id, head.seq + 1, head.seq)
            return self._publish("register", "start")
        last = decode_checkpoint(raw, self.verifiers)
        if last.chain_id != self.chain_id:
            raise CheckpointError(f"the last checkpoint of chain {self.chain_id} names chain {last.chain_id}")
        if last.seq > head.seq:
            raise ChainMismatch(
                f"chain {self.chain_id}: batch {last.seq} was checkpointed (hash {last.batch_hash[:16]}…) but the "
                f"database's chain ends at seq {head.seq}: batches were deleted or the ledger was re-created; "
                f"nothing is written on top of it (restore the database, then run bridgeledger ledger verify "
                f"--witness)")
        if last.seq >= 0 and batch_hash_at(last.seq) != last.batch_hash:
            raise ChainMismatch(
                f"chain {self.chain_id}: batch {last.seq} in the database is not the batch that was checkpointed "
                f"(hash {last.batch_hash[:16]}…): the chain was rewritten; nothing is written on top of it")
        self.published, self.prev = last, checkpoint_id(raw)
        if last.seq != head.seq:
            return self._publish("checkpoint", "start")
        return None

    # -- while writing ----------------------------------------------------------------
    def committed(self, batch: ChainHead) -> None:
        """The sink's ``on_commit``: count the batch; publish when one is due."""
        h = self.head
        self.head = ChainHead(self.chain_id, batch.seq, batch.batch_hash, h.entries + batch.entries,
                              h.windows + batch.windows, h.energy_mj + batch.energy_mj, h.gpu_ms + batch.gpu_ms)
        self.tick()

    def tick(self) -> None:
        """Publish the head if it moved and the interval has passed; failures are logged."""
        if self._behind() and self.clock_ns() - self._last_publish_ns >= self.interval_ns:
            self._try("interval")

    def stop(self, reason: str = "stop") -> None:
        """The head after the last batch, witnessed (a clean stop)."""
        if self._behind():
            self._try(reason)

    def _behind(self) -> bool:
        return self.published is None or self.published.seq != self.head.seq

    def _try(self, reason: str) -> None:
        try:
            self._publish("checkpoint", reason)
        except Exception as exc:  # the broker's errors: the batches stay committed, the next try publishes
            log.warning("checkpoint of chain %s at seq %d not published (%s: %s); retried", self.chain_id,
                        self.head.seq, type(exc).__name__, exc)

    def _publish(self, kind: str, reason: str) -> Checkpoint:
        h = self.head
        cp = Checkpoint(self.chain_id, h.seq, h.batch_hash, *h.totals(), kind=kind,
                        prev=GENESIS if kind == "register" else self.prev, time_ns=self.clock_ns(), reason=reason,
                        key_id=self.key_id)
        raw = encode_checkpoint(cp, self.key)
        self.log.publish(self.chain_id, raw)
        self.published, self.prev, self._last_publish_ns = cp, checkpoint_id(raw), cp.time_ns
        if self.store is not None:
            try:
                self.store(cp, raw)
            except Exception as exc:  # the topic has it; the database copy is a convenience
                log.warning("checkpoint of chain %s seq %d published but not stored in the database (%s)",
                            self.chain_id, cp.seq, exc)
        log.info("checkpoint %s of chain %s at seq %d published (%s)", kind, self.chain_id, cp.seq, reason)
        return cp
