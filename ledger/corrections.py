"""Corrections: never an update, always new entries that reference the original.

Moving an entry to another account writes, in one committed batch of the
chain, a reversal (the original's quantities negated, same account) and the
re-booked entries (the target project's owners, priced with the original's
config, GPU model and site), all with ``corrects`` = the original entry id.
Every window still balances: original + reversal + re-booking = original.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from ledger import LedgerError
from ledger.configs import config_by_hash
from schemas import LedgerEntry
from schemas.ledger import ENTRY_ROW_FIELDS, row_from_entry
from streams.attribution import owner_weights, split_exact
from streams.chain_writer import ChainWriter
from streams.checkpoints import Checkpointer
from streams.core import entry_rows
from streams.pricing import price_part

__all__ = ["CORRECTIONS_CHAIN", "CorrectionError", "move_entry"]

CORRECTIONS_CHAIN = "corrections"

FIELDS = tuple(f for f in ENTRY_ROW_FIELDS if f != "digest")  # a LedgerEntry's fields


class CorrectionError(LedgerError):
    """A correction that cannot be made as asked."""


def _correction_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(("correction", *parts)).encode()).hexdigest()


def move_entry(client: Any, db: str, entry_id: str, to_account: str, reason: str, author: str,
               chain_id: str = CORRECTIONS_CHAIN, checkpoints: Checkpointer | None = None,
               now: datetime | None = None) -> list[LedgerEntry]:
    """``checkpoints``: the chain's checkpointer (the ledger key); the batch is
    then witnessed like the stream's, registered if it is the chain's first.
    ``now``: when the correction is written (the clock's time if None)."""
    rows = client.execute(f"SELECT {', '.join(FIELDS)} FROM {db}.ledger WHERE entry_id = %(e)s", {"e": entry_id})
    if not rows:
        raise CorrectionError(f"entry {entry_id} is not in the ledger")
    orig = LedgerEntry.model_validate({k: (v if v != "" or k not in ("job_id", "corrects") else None)
                                       for k, v in zip(FIELDS, rows[0], strict=True)})
    if orig.corrects:
        raise CorrectionError(f"entry {entry_id} is itself a correction; correct the original")
    if client.execute(f"SELECT count() FROM {db}.ledger WHERE corrects = %(e)s", {"e": entry_id})[0][0]:
        raise CorrectionError(f"entry {entry_id} was corrected already")
    cfg = config_by_hash(client, db, orig.config_hash)
    if cfg is None:
        raise CorrectionError(f"config {orig.config_hash} of entry {entry_id} is not in the ledger")
    project = cfg.project_for_account(to_account)
    if project is None:
        raise CorrectionError(f"account {to_account!r} belongs to no project of config {cfg.version}")
    site = cfg.site(orig.site_id)
    model = next((g for g in cfg.gpu_models if g.key == orig.gpu_model), None)
    if site is None or model is None:  # the entry was booked under this config: its site and model are in it
        raise CorrectionError(f"entry {entry_id}: site {orig.site_id!r} or GPU model {orig.gpu_model!r} is not in "
                              f"its config {cfg.version}; the ledger and its stored config disagree")

    reversal = orig.model_copy(update={
        "entry_id": _correction_id(entry_id, "reversal"), "energy_mj": -orig.energy_mj, "gpu_ms": -orig.gpu_ms,
        "normalised_gpu_hours": -orig.normalised_gpu_hours, "cost_eur": -orig.cost_eur,
        "carbon_g": -orig.carbon_g, "corrects": entry_id})
    out = [reversal]
    owners = owner_weights(project)
    gco2 = cfg.grid_gco2_at(orig.site_id, orig.window_start_ns)  # the hour's intensity, as the stream priced it
    weights = [w for _, w in owners]
    for (member, _), e_mj, g_ms in zip(owners, split_exact(orig.energy_mj, weights),
                                       split_exact(orig.gpu_ms, weights), strict=True):
        price = price_part(e_mj, g_ms, model, site, cfg.pricing, gco2)
        out.append(orig.model_copy(update={
            "entry_id": _correction_id(entry_id, to_account, member), "account_kind": "job", "account": to_account,
            "project": project.id, "member": member, "energy_mj": e_mj, "gpu_ms": g_ms,
            "normalised_gpu_hours": price.normalised_gpu_hours, "cost_eur": price.cost_eur,
            "carbon_g": price.carbon_g, "corrects": entry_id, "account_source": "correction"}))
    if sum(e.energy_mj for e in out) or sum(e.gpu_ms for e in out):  # a correction moves usage, never makes it
        raise CorrectionError(f"entry {entry_id}: the correction does not net to zero; nothing written")
    now = now or datetime.now(UTC).replace(tzinfo=None)
    sink = ChainWriter(client, db, chain_id=chain_id)
    if checkpoints is not None:
        checkpoints.store = sink.record_checkpoint
        checkpoints.start(sink.totals(), sink.batch_hash_at)
        sink.on_commit = checkpoints.committed
    batch_id = sink.commit_batch(entry_rows(row_from_entry(e) for e in out), [], now)
    client.execute(f"INSERT INTO {db}.corrections (batch_id, corrects, reason, author, created_at) VALUES",
                   [(batch_id, entry_id, reason, author, now)])
    if checkpoints is not None:
        checkpoints.stop("correction")
    return out


