"""What an insider with write access to the ledger database can do (for attack tests).

Everything here uses only the database: the rows the stream wrote and the
public chain format (schemas/chain.py). ``rechain`` recomputes every batch
record of a chain from its stored rows, so that ``ledger verify`` passes on
whatever the insider changed; only what was witnessed outside the database
can tell.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from decimal import Decimal
from typing import Any

from ledger.migrate import apply_migrations
from schemas.chain import GENESIS, batch_hash, entries_hash, entry_digest, entry_line, windows_hash

TABLES = ("ledger_entries", "raw_windows", "ledger_batches", "ledger_intents", "config_versions", "config_members",
          "job_events", "ledger_checkpoints", "corrections")

Dump = dict[str, tuple[list[str], list[list[Any]]]]


def dump(client: Any, db: str) -> Dump:
    out: Dump = {}
    for t in TABLES:
        cols = [c[0] for c in client.execute(f"DESCRIBE TABLE {db}.{t}")]
        out[t] = (cols, [list(r) for r in client.execute(f"SELECT {', '.join(cols)} FROM {db}.{t}")])
    return out


def restore(client: Any, db: str, data: Dump) -> None:
    """Drop the database and create it again with exactly these rows."""
    client.execute(f"DROP DATABASE IF EXISTS {db}")
    apply_migrations(client, db)
    for t, (cols, rows) in data.items():
        if rows:
            client.execute(f"INSERT INTO {db}.{t} ({', '.join(cols)}) VALUES", [tuple(r) for r in rows])


def rows(data: Dump, table: str) -> list[dict[str, Any]]:
    cols, rs = data[table]
    return [dict(zip(cols, r, strict=True)) for r in rs]


def put(data: Dump, table: str, new_rows: list[dict[str, Any]]) -> None:
    cols, _ = data[table]
    data[table] = (cols, [[r[c] for c in cols] for r in new_rows])


def _digest(e: dict[str, Any]) -> str:
    return entry_digest(entry_line(
        e["entry_id"], e["window_id"], e["site_id"], e["gpu_uuid"], e["job_id"], e["account_kind"], e["account"],
        e["project"], e["member"], int(e["energy_mj"]), int(e["gpu_ms"]), Decimal(str(e["normalised_gpu_hours"])),
        Decimal(str(e["cost_eur"])), Decimal(str(e["carbon_g"])), e["config_hash"], e["account_source"]))


def rechain(data: Dump, chain_id: str) -> None:
    """Recompute the chain's batch records from its stored entries and windows."""
    entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in rows(data, "ledger_entries"):
        entries[e["batch_id"]].append(e)
    windows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for w in rows(data, "raw_windows"):
        windows[w["batch_id"]].append(w)
    batches = rows(data, "ledger_batches")
    prev = GENESIS
    for b in sorted((b for b in batches if b["chain_id"] == chain_id), key=lambda b: b["seq"]):
        es = sorted(entries[b["batch_id"]], key=lambda e: e["entry_id"])
        ws = sorted(windows[b["batch_id"]], key=lambda w: w["window_id"])
        payload = [w["payload"] if isinstance(w["payload"], bytes) else w["payload"].encode() for w in ws]
        b.update(prev_hash=prev, entry_ids=[e["entry_id"] for e in es], entry_digests=[_digest(e) for e in es],
                 entry_count=len(es), window_count=len(ws), energy_mj=sum(int(e["energy_mj"]) for e in es),
                 gpu_ms=sum(int(e["gpu_ms"]) for e in es))
        b["entries_hash"] = entries_hash(b["entry_digests"])
        b["windows_hash"] = windows_hash(hashlib.sha256(p).hexdigest() for p in payload)
        b["batch_hash"] = prev = batch_hash(chain_id, b["seq"], b["batch_id"], prev, b["entries_hash"],
                                            b["entry_count"], b["energy_mj"], b["gpu_ms"], b["windows_hash"],
                                            b["window_count"])
    put(data, "ledger_batches", batches)
