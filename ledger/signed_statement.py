"""Statements with a detached signature that names the checkpoints they cover.

``bridgeledger ledger statement`` draws a statement up to each chain's latest
signed checkpoint (batches after it are left for the next statement), writes
the file, and next to it ``FILE.sig``: a JSON object signed with the ledger's
key (schemas/signing.py format)::

    {"schema_version": 1, "kind": "statement", "file": <name>, "sha256": <of
     the file's bytes>, "bytes": n, "member": "KR", "month": "2026-11",
     "checkpoints": [<each covered checkpoint message, as signed>],
     "key_id": <ledger key id>, "signed_at_ns": n, "signature": <128 hex>}

``bridgeledger ledger statement-verify FILE [--witness DIR]`` checks the file
against the signature, the signature and every embedded checkpoint against
the config's ledger keys, and (with a witness directory) that each of those
checkpoints is one the member's witness took from the topic. With
``--ledger`` it also draws the statement again from the chained entries up to
those checkpoints and requires the same bytes: a statement is drawn from the
hourly rollup (fast, but outside the chain), so this is what shows its
figures are the ledger's (the renderings are deterministic, the PDF's too).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger import LedgerError
from ledger.witness import Witness
from schemas.checkpoint import Checkpoint, CheckpointError, checkpoint_id, decode_checkpoint
from schemas.signing import SigningKey, VerifyKey, sign_window, split_signature
from streams.chain_writer import ChainWriter

__all__ = ["Issued", "SignedStatement", "issue_statement", "latest_checkpoints", "redraw_statement", "sign_statement",
           "statement_format", "verify_statement"]

MAX_SIGNATURE_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class SignedStatement:
    member: str
    month: str
    key_id: str
    checkpoints: list[Checkpoint]
    checkpoint_ids: list[str]  # SHA-256 of each checkpoint message, in the same order
    signed_at_ns: int


def latest_checkpoints(client: Any, db: str, keys: Mapping[str, VerifyKey]) -> dict[str, tuple[Checkpoint, bytes]]:
    """Each chain's newest checkpoint the stream stored (ledger_checkpoints), its
    signature checked and its batch found in the database with that hash.
    LedgerError if either fails: the database no longer holds what was signed."""
    out: dict[str, tuple[Checkpoint, bytes]] = {}
    for chain, message in client.execute(
            f"SELECT chain_id, argMax(message, (seq, published_at)) FROM {db}.ledger_checkpoints "
            f"GROUP BY chain_id ORDER BY chain_id"):
        raw = message.encode()
        try:
            cp = decode_checkpoint(raw, keys)
        except CheckpointError as exc:
            raise LedgerError(f"the stored checkpoint of chain {chain} is not one the ledger signed: {exc}") from exc
        _require_in_database(client, db, chain, cp)
        out[chain] = (cp, raw)
    return out


def _require_in_database(client: Any, db: str, chain: str, cp: Checkpoint) -> None:
    """LedgerError unless the checkpoint's batch is in ``chain`` in the database with the hash it signed."""
    if cp.seq >= 0 and ChainWriter(client, db, chain).batch_hash_at(cp.seq) != cp.batch_hash:
        raise LedgerError(f"chain {chain} batch {cp.seq} in the database is not the one checkpointed "
                          f"(hash {cp.batch_hash[:16]}…); run bridgeledger ledger verify --witness")


def sign_statement(content: bytes, name: str, member: str, month: str, checkpoints: list[bytes], key_id: str,
                   key: SigningKey, now_ns: int) -> bytes:
    doc = {"schema_version": 1, "kind": "statement", "file": name, "sha256": hashlib.sha256(content).hexdigest(),
           "bytes": len(content), "member": member, "month": month,
           "checkpoints": [c.decode() for c in checkpoints], "key_id": key_id, "signed_at_ns": now_ns}
    return sign_window(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), key)


def verify_statement(content: bytes, signature_file: bytes, keys: Mapping[str, VerifyKey],
                     witness: Witness | None = None) -> SignedStatement:
    """The statement's bytes against its signature file; LedgerError names what fails."""
    if len(signature_file) > MAX_SIGNATURE_FILE_BYTES:
        raise LedgerError("the signature file is larger than any statement signature")
    parts = split_signature(signature_file.strip())
    if parts is None:
        raise LedgerError("the signature file carries no signature")
    body, signature = parts
    try:
        doc = json.loads(body)
        key = keys.get(str(doc["key_id"]))
        if doc.get("kind") != "statement":
            raise LedgerError("the signature file is not a statement signature")
        if key is None:
            raise LedgerError(f"signed with key {doc['key_id']!r}, which is not a ledger key of the config")
        key.verify(body, signature)
    except LedgerError:
        raise
    except Exception as exc:  # a malformed file or nacl's BadSignatureError
        raise LedgerError(f"the statement signature does not verify ({type(exc).__name__})") from exc
    if doc["sha256"] != hashlib.sha256(content).hexdigest() or doc["bytes"] != len(content):
        raise LedgerError(f"the file is not the statement that was signed ({doc['file']}, {doc['bytes']} bytes, "
                          f"sha256 {doc['sha256'][:16]}…)")
    cps, ids = [], []
    for message in doc["checkpoints"]:
        raw = message.encode()
        try:
            cp = decode_checkpoint(raw, keys)
        except CheckpointError as exc:
            raise LedgerError(f"a checkpoint the statement names does not verify: {exc}") from exc
        if witness is not None and checkpoint_id(raw) not in witness.ids:
            raise LedgerError(f"checkpoint {cp.where()} ({checkpoint_id(raw)[:16]}…) that the statement covers "
                              f"was not witnessed; run bridgeledger ledger witness, then check again")
        cps.append(cp)
        ids.append(checkpoint_id(raw))
    return SignedStatement(str(doc["member"]), str(doc["month"]), str(doc["key_id"]), cps, ids,
                           int(doc["signed_at_ns"]))


@dataclass(frozen=True)
class Issued:
    """What ``issue_statement`` wrote: the statement file, its signature, and the figures it shows."""

    member: str
    period: str  # YYYY-MM, or YYYY-MM..YYYY-MM
    normalised_gpu_hours: Decimal
    cost: Decimal
    currency: str
    balance: Decimal
    out: Path
    signature: Path
    covered: dict[str, int]  # chain -> the last batch the statement covers


def _draw(client: Any, db: str, member: str, period: str, fmt: str, out: Path, cover: Mapping[str, int],
          notes: list[tuple[str, int, str]], from_rollup: bool, signed_at_ns: int) -> Any:
    """Draw a member's statement for ``period`` (YYYY-MM or YYYY-MM..YYYY-MM) up to
    ``cover`` (and the dead letters received before the second it is signed in),
    note the checkpoints it covers, and write it as ``fmt`` to ``out``."""
    from ledger.period_statement import build_period_statement
    from ledger.statement import build_statement
    from ledger.statement_render import (
        render_csv,
        render_html,
        render_pdf,
        render_period_csv,
        render_period_html,
        render_period_pdf,
    )

    doc: Any
    renderers: tuple[Any, Any, Any]  # csv, html, pdf of doc
    until = datetime.fromtimestamp(signed_at_ns // 10**9, UTC).replace(tzinfo=None)
    if ".." not in period:
        doc = build_statement(client, db, member, period, cover=cover, from_rollup=from_rollup,
                              received_before=until)
        statements, renderers = [doc], (render_csv, render_html, render_pdf)
    else:
        first, last = period.split("..", 1)
        doc = build_period_statement(client, db, member, first, last, cover=cover, from_rollup=from_rollup,
                                     received_before=until)
        statements, renderers = doc.statements, (render_period_csv, render_period_html, render_period_pdf)
    for st in statements:
        st.covered = notes
    to_csv, to_html, to_pdf = renderers
    if fmt == "pdf":
        to_pdf(doc, out)
    else:
        out.write_text(to_csv(doc) if fmt == "csv" else to_html(doc))
    return doc


def issue_statement(client: Any, db: str, keys: Mapping[str, VerifyKey], member: str, month: str | None,
                    from_month: str | None, to_month: str | None, fmt: str, out: Path, key_id: str,
                    key: SigningKey, now_ns: int | None = None) -> Issued:
    """A member's statement for a month (``month``) or a period (``from_month``..``to_month``),
    drawn up to each chain's latest signed checkpoint from the hourly rollup, written as
    ``fmt`` (csv, html, pdf) to ``out`` and signed next to it (``OUT.sig``) with the ledger key."""
    if month is not None:
        period = month
    elif from_month is not None and to_month is not None:
        period = f"{from_month}..{to_month}"
    else:
        raise LedgerError("a statement needs a month, or a first and a last month")
    covered = latest_checkpoints(client, db, keys)
    cover = {c: cp.seq for c, (cp, _) in covered.items()}
    notes = [(c, cp.seq, checkpoint_id(raw)) for c, (cp, raw) in covered.items()]
    signed_at_ns = time.time_ns() if now_ns is None else now_ns
    doc = _draw(client, db, member.upper(), period, fmt, out, cover, notes, True, signed_at_ns)
    if ".." in period:
        total_h, total_cost = doc.normalised_gpu_hours, doc.cost
    else:
        total_h, total_cost = doc.total.normalised_gpu_hours, doc.total.cost_eur
    sig = out.with_name(out.name + ".sig")
    sig.write_bytes(sign_statement(out.read_bytes(), out.name, doc.member, period, [r for _, r in covered.values()],
                                   key_id, key, signed_at_ns) + b"\n")
    return Issued(doc.member, period, total_h, total_cost, doc.currency, doc.balance, out, sig, cover)


def statement_format(content: bytes) -> str:
    """csv, html or pdf: what ``issue_statement`` writes, told apart by their first bytes."""
    if content.startswith(b"%PDF"):
        return "pdf"
    return "html" if content.lstrip().startswith(b"<") else "csv"


def redraw_statement(client: Any, db: str, content: bytes, signed: SignedStatement) -> None:
    """Draw a verified statement again from the chained entries themselves (not the
    rollup it was drawn from), up to the checkpoints it covers, and require the
    same bytes; LedgerError names the first line that differs. Each covered
    checkpoint's batch must be in the database with the hash it signed."""
    for cp in signed.checkpoints:
        _require_in_database(client, db, cp.chain_id, cp)
    cover = {cp.chain_id: cp.seq for cp in signed.checkpoints}
    notes = [(cp.chain_id, cp.seq, i) for cp, i in zip(signed.checkpoints, signed.checkpoint_ids, strict=True)]
    fmt = statement_format(content)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"statement.{fmt}"
        _draw(client, db, signed.member, signed.month, fmt, out, cover, notes, False, signed.signed_at_ns)
        again = out.read_bytes()
    if again == content:
        return
    if fmt == "pdf":
        raise LedgerError("the ledger's entries up to the covered checkpoints give a different statement "
                          "(PDF; draw it as CSV to see the lines that differ)")
    old, new = content.decode(errors="replace").splitlines(), again.decode().splitlines()
    n = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
    said = old[n] if n < len(old) else "(nothing)"
    entries = new[n] if n < len(new) else "(nothing)"
    raise LedgerError(f"the ledger's entries up to the covered checkpoints give a different statement: line {n + 1} "
                      f"says {said[:200]!r}, the entries give {entries[:200]!r}")
