"""A member's own copy of the chain's checkpoints, and the database against it.

``bridgeledger ledger witness --out DIR`` reads the ``ledger.checkpoints``
topic from where it stopped last time, checks each checkpoint's signature
(the config's ``ledger_keys``) and that it extends the one before it on its
chain, and keeps those that do in DIR:

- ``DIR/checkpoints.jsonl``: every accepted checkpoint message, one per line,
  as signed (anyone can check them again with the ledger's public key);
- ``DIR/state.json``: the next topic offset and each chain's last checkpoint;
- ``DIR/alarms.jsonl``: what was refused (fork, rollback, bad signature,
  unregistered chain), with the topic offset and the message.

A refused message is never taken as the chain's head: the first checkpoint
seen for a (chain, seq) stays the witnessed one, whatever comes later.

``bridgeledger ledger verify --witness DIR`` then checks that the database
still holds, for every witnessed checkpoint, a batch at that seq with that
hash and those running totals, and that it holds no chain the witnesses
never saw registered (:func:`compare`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger import LedgerError
from ledger.verify import Problem
from schemas.checkpoint import Checkpoint, CheckpointError, checkpoint_id, decode_checkpoint
from schemas.signing import VerifyKey

__all__ = ["Alarm", "Witness", "compare", "database_batches", "run_witness"]


@dataclass(frozen=True)
class Alarm:
    offset: int
    chain_id: str
    seq: int | None
    kind: str  # bad_signature, fork, rollback, unregistered, registered_twice
    detail: str

    def line(self) -> str:
        where = f"chain {self.chain_id} seq {self.seq}" if self.seq is not None else f"chain {self.chain_id}"
        return f"offset {self.offset}: {where}: {self.kind}: {self.detail}"


@dataclass
class _Chain:
    registered_seq: int
    last: Checkpoint
    last_id: str
    # (seq, batch hash, totals) of every witnessed checkpoint, in order
    seen: list[tuple[int, str, tuple[int, int, int, int]]] = field(default_factory=list)


class Witness:
    def __init__(self, directory: Path, keys: Mapping[str, VerifyKey] | None) -> None:
        """``keys``: the config's ledger keys, to take new checkpoints; None to
        read the store only (its checkpoints were checked when taken)."""
        self.dir = directory
        self.keys = keys
        self.offset = 0
        self.chains: dict[str, _Chain] = {}
        self.ids: set[str] = set()  # SHA-256 of every checkpoint message taken
        self.new_alarms: list[Alarm] = []
        self.accepted = 0
        directory.mkdir(parents=True, exist_ok=True)
        state = directory / "state.json"
        if state.exists():
            self.offset = int(json.loads(state.read_text())["next_offset"])
        log = directory / "checkpoints.jsonl"
        if log.exists():
            for line in log.read_bytes().splitlines():
                if line:
                    self._take(decode_checkpoint(line, None), line)

    def accept(self, offset: int, raw: bytes) -> Alarm | None:
        """Check one record of the topic; keep it or raise an alarm (kept in alarms.jsonl)."""
        alarm = self._check(offset, raw)
        if alarm is None:
            with (self.dir / "checkpoints.jsonl").open("ab") as f:
                f.write(raw.replace(b"\n", b"") + b"\n")
            self.accepted += 1
        else:
            self.new_alarms.append(alarm)
            with (self.dir / "alarms.jsonl").open("a") as f:
                f.write(json.dumps({"offset": alarm.offset, "chain_id": alarm.chain_id, "seq": alarm.seq,
                                    "kind": alarm.kind, "detail": alarm.detail,
                                    "message": raw[:8192].decode("utf-8", "replace")}) + "\n")
        self.offset = offset + 1
        return alarm

    def save(self) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps({"next_offset": self.offset, "chains": {
            c: {"registered_seq": ch.registered_seq, "seq": ch.last.seq, "batch_hash": ch.last.batch_hash,
                "checkpoint": ch.last_id} for c, ch in sorted(self.chains.items())}}, indent=1) + "\n")
        os.replace(tmp, self.dir / "state.json")

    def _check(self, offset: int, raw: bytes) -> Alarm | None:
        if self.keys is None:
            raise ValueError("a witness opened without the ledger keys takes no new checkpoints")
        try:
            cp = decode_checkpoint(raw, self.keys)
        except CheckpointError as exc:
            return Alarm(offset, _chain_of(raw), None, "bad_signature", str(exc))
        chain = self.chains.get(cp.chain_id)
        if cp.kind == "register":
            if chain is not None:
                return Alarm(offset, cp.chain_id, cp.seq, "registered_twice",
                             f"the chain was registered before (at seq {chain.registered_seq}); a second "
                             f"registration starts another history under its name")
        elif chain is None:
            return Alarm(offset, cp.chain_id, cp.seq, "unregistered", "a checkpoint of a chain never registered")
        elif cp.prev != chain.last_id:
            what = "rollback" if cp.seq < chain.last.seq else "fork"
            return Alarm(offset, cp.chain_id, cp.seq, what,
                         f"does not extend the last witnessed checkpoint (seq {chain.last.seq}, "
                         f"{chain.last_id[:16]}…): it names {cp.prev[:16]}…")
        elif cp.seq < chain.last.seq:
            return Alarm(offset, cp.chain_id, cp.seq, "rollback",
                         f"seq {cp.seq} after seq {chain.last.seq} was witnessed")
        elif cp.seq == chain.last.seq and (cp.batch_hash, cp.totals()) != (chain.last.batch_hash,
                                                                           chain.last.totals()):
            return Alarm(offset, cp.chain_id, cp.seq, "fork",
                         f"batch {cp.seq} was witnessed with hash {chain.last.batch_hash[:16]}…, now "
                         f"{cp.batch_hash[:16]}…")
        elif any(b < a for a, b in zip(chain.last.totals()[:2], cp.totals()[:2], strict=True)):
            return Alarm(offset, cp.chain_id, cp.seq, "rollback", "the running entry or window count went down")
        self._take(cp, raw)
        return None

    def _take(self, cp: Checkpoint, raw: bytes) -> None:
        chain = self.chains.get(cp.chain_id)
        if chain is None:
            chain = self.chains[cp.chain_id] = _Chain(cp.seq, cp, checkpoint_id(raw))
        chain.last, chain.last_id = cp, checkpoint_id(raw)
        self.ids.add(chain.last_id)
        if cp.seq >= 0:
            chain.seen.append((cp.seq, cp.batch_hash, cp.totals()))


def _chain_of(raw: bytes) -> str:
    try:
        doc = json.loads(raw[:8192])
        return str(doc.get("chain_id", "?"))[:128] if isinstance(doc, dict) else "?"
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "?"


def database_batches(client: Any, db: str) -> list[tuple[Any, ...]]:
    return list(client.execute(f"SELECT chain_id, seq, batch_hash, entry_count, window_count, energy_mj, gpu_ms "
                               f"FROM {db}.ledger_batches ORDER BY chain_id, seq"))


def compare(witness: Witness, batches: Iterable[tuple[Any, ...]]) -> list[Problem]:
    """The database's batch records (chain_id, seq, batch_hash, entry_count,
    window_count, energy_mj, gpu_ms; in chain and seq order) against what was
    witnessed: per chain, the first witnessed batch the database no longer
    holds as it was, and every chain the witnesses never saw registered."""
    db: dict[str, dict[int, tuple[str, tuple[int, int, int, int]]]] = {}
    for chain, seq, b_hash, entries, windows, energy, gpu_ms in batches:
        rows = db.setdefault(chain, {})
        t = (0, 0, 0, 0) if not rows else rows[max(rows)][1]
        rows[int(seq)] = (b_hash, (t[0] + int(entries), t[1] + int(windows), t[2] + int(energy),
                                   t[3] + int(gpu_ms)))
    problems = []
    for chain_id in sorted(set(db) - set(witness.chains)):
        problems.append(Problem(chain_id, None, "chain_not_registered",
                                f"{len(db[chain_id])} batch(es) of a chain the witnesses never saw registered"))
    for chain_id, chain in sorted(witness.chains.items()):
        rows = db.get(chain_id, {})
        head = max(rows) if rows else -1
        good = chain.registered_seq
        for seq, b_hash, totals in chain.seen:
            got = rows.get(seq)
            if got is None:
                problems.append(Problem(chain_id, seq, "witnessed_batch_missing",
                                        f"batch {seq} was witnessed (hash {b_hash[:16]}…) but the database's chain "
                                        f"ends at seq {head}" if head < seq else
                                        f"batch {seq} was witnessed (hash {b_hash[:16]}…) and is missing"))
                break
            if got[0] != b_hash:
                span = f"batches {good + 1}..{seq}" if good + 1 < seq else f"batch {seq}"
                problems.append(Problem(chain_id, seq, "differs_from_witness",
                                        f"batch {seq} was witnessed with hash {b_hash[:16]}…, the database holds "
                                        f"{got[0][:16]}…: the change is in {span}"))
                break
            if got[1] != totals:
                problems.append(Problem(chain_id, seq, "differs_from_witness",
                                        f"the running totals up to batch {seq} (entries, windows, mJ, GPU-ms) were "
                                        f"witnessed as {totals}, the database adds up to {got[1]}"))
                break
            good = seq
    return problems


def run_witness(witness: Witness, read: Callable[[int], Iterable[tuple[int, bytes, bytes]]], source: str,
                chains: Collection[str], follow: bool, poll_s: float, say: Callable[[str], None],
                warn: Callable[[str], None], errors: tuple[type[BaseException], ...],
                sleep: Callable[[float], None] = time.sleep) -> int:
    """``bridgeledger ledger witness``: read the checkpoint topic from the witness's offset
    (``read(offset)`` yields (offset, key, message)), accept each checkpoint of ``chains``
    (all when empty), save; once, or (``follow``) until an alarm. A read failing with one of
    ``errors`` keeps what was read; without ``follow`` it is a LedgerError. Returns the alarms."""
    alarms = 0
    while True:
        try:
            for offset, key, raw in read(witness.offset):
                if chains and key.decode("utf-8", "replace") not in chains:
                    witness.offset = offset + 1
                    continue
                alarm = witness.accept(offset, raw)
                if alarm is not None:
                    alarms += 1
                    say(f"ALARM {alarm.line()}")
        except errors as exc:
            witness.save()  # what was read so far is kept
            if not follow:
                raise LedgerError(f"cannot read the checkpoints at {source}: {exc}") from exc
            warn(f"{exc}; retrying in {poll_s:.0f} s")
            sleep(poll_s)
            continue
        witness.save()
        heads = ", ".join(f"{c} seq {ch.last.seq}" for c, ch in sorted(witness.chains.items())) or "none"
        say(f"{witness.accepted} new checkpoint(s) witnessed; heads: {heads} (next offset {witness.offset})")
        witness.accepted = 0
        if not follow or alarms:
            return alarms
        sleep(poll_s)
