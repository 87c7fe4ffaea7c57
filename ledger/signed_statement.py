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
checkpoints is one the member's witness took from the topic.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger import LedgerError
from ledger.witness import Witness
from schemas.checkpoint import Checkpoint, CheckpointError, checkpoint_id, decode_checkpoint
from schemas.signing import SigningKey, VerifyKey, sign_window, split_signature
from streams.chain_writer import ChainWriter

__all__ = ["Issued", "SignedStatement", "issue_statement", "latest_checkpoints", "sign_statement", "verify_statement"]

MAX_SIGNATURE_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class SignedStatement:
    member: str
    month: str
    key_id: str
    checkpoints: list[Checkpoint]


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
        if cp.seq >= 0 and ChainWriter(client, db, chain).batch_hash_at(cp.seq) != cp.batch_hash:
            raise LedgerError(f"chain {chain} batch {cp.seq} in the database is not the one checkpointed "
                              f"(hash {cp.batch_hash[:16]}…); run bridgeledger ledger verify --witness")
        out[chain] = (cp, raw)
    return out


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
    cps = []
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
    return SignedStatement(str(doc["member"]), str(doc["month"]), str(doc["key_id"]), cps)


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


def issue_statement(client: Any, db: str, keys: Mapping[str, VerifyKey], member: str, month: str | None,
                    from_month: str | None, to_month: str | None, fmt: str, out: Path, key_id: str,
                    key: SigningKey, now_ns: int | None = None) -> Issued:
    """A member's statement for a month (``month``) or a period (``from_month``..``to_month``),
    drawn up to each chain's latest signed checkpoint, written as ``fmt`` (csv, html, pdf) to
    ``out`` and signed next to it (``OUT.sig``) with the ledger key."""
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

    covered = latest_checkpoints(client, db, keys)
    cover = {c: cp.seq for c, (cp, _) in covered.items()}
    notes = [(c, cp.seq, checkpoint_id(raw)) for c, (cp, raw) in covered.items()]
    doc: Any
    renderers: tuple[Any, Any, Any]  # csv, html, pdf of doc
    if month is not None:
        doc = build_statement(client, db, member.upper(), month, cover=cover)
        statements, renderers = [doc], (render_csv, render_html, render_pdf)
        period, total_h, total_cost = doc.month, doc.total.normalised_gpu_hours, doc.total.cost_eur
    elif from_month is not None and to_month is not None:
        doc = build_period_statement(client, db, member.upper(), from_month, to_month, cover=cover)
        statements, renderers = doc.statements, (render_period_csv, render_period_html, render_period_pdf)
        period, total_h, total_cost = f"{from_month}..{to_month}", doc.normalised_gpu_hours, doc.cost
    else:
        raise LedgerError("a statement needs a month, or a first and a last month")
    for st in statements:
        st.covered = notes
    to_csv, to_html, to_pdf = renderers
    if fmt == "pdf":
        to_pdf(doc, out)
    else:
        out.write_text(to_csv(doc) if fmt == "csv" else to_html(doc))
    sig = out.with_name(out.name + ".sig")
    sig.write_bytes(sign_statement(out.read_bytes(), out.name, doc.member, period, [r for _, r in covered.values()],
                                   key_id, key, time.time_ns() if now_ns is None else now_ns) + b"\n")
    return Issued(doc.member, period, total_h, total_cost, doc.currency, doc.balance, out, sig, cover)
