"""Writes docs/chain-vectors.json: a fixed two-batch chain made by the stream's own
code (real windows through WindowProcessor, the chain helpers of schemas/chain.py),
for auditors to check an independent implementation against.

    .venv/bin/python tools/chain_vectors.py [--out docs/chain-vectors.json]

tests/unit/schemas/test_chain.py checks the file with an independent implementation
and pins its batch hashes: regenerate it only when the format changes on
purpose, and say so in docs/ledger.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas import JobEvent, load_config  # noqa: E402
from schemas.chain import (  # noqa: E402
    ENTRY_FIELDS,
    GENESIS,
    batch_hash,
    entries_hash,
    entry_digest,
    window_digest,
    windows_hash,
)
from schemas.signing import demo_key, sign_window  # noqa: E402
from streams.job_book import book_jobs  # noqa: E402
from streams.processing import WindowProcessor  # noqa: E402

S = 10**9
T0 = 1_795_000_000 * S  # 2026-11-26


def window(seq: int, gpus: list[dict[str, object]]) -> bytes:
    """A window as a kr-daejeon node sends it, signed with the site's public demo key."""
    key_id, key = demo_key("kr-daejeon")
    doc = {"schema_version": 1, "agent_id": "kr-n01", "site_id": "kr-daejeon", "node": "kr-n01",
           "boot_id": "b7d1", "epoch": "3f9c2a", "seq": seq, "window_start_ns": T0 + seq * 10 * S,
           "window_end_ns": T0 + (seq + 1) * 10 * S, "gpus": gpus, "key_id": key_id}
    return sign_window(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), key)


def gpu(uuid: str, energy: int, procs: list[dict[str, object]]) -> dict[str, object]:
    return {"uuid": uuid, "model": "NVIDIA H100 80GB HBM3", "energy_mj": energy, "gpu_seconds": 10.0,
            "processes": procs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "chain-vectors.json")
    args = ap.parse_args()
    config_path = ROOT / "deploy" / "consortium.example.yaml"
    cfg, digest = load_config(config_path)
    proc = WindowProcessor(cfg, digest)
    jobs = book_jobs([JobEvent(event="start", site_id="kr-daejeon", job_id=j, account=a, time_ns=T0)
                      for j, a in (("4711", "kr-sg-bio"), ("4712", "gb-protein"))])
    batches = [
        [window(0, [gpu("GPU-a1", 5_432_101, [{"pid": 11, "job_id": "4711", "sm_share": 0.61},
                                               {"pid": 12, "job_id": "4712", "sm_share": 0.3}])])],
        [window(1, [gpu("GPU-a1", 700_001, []),
                    gpu("GPU-a2", 3_000_000, [{"pid": 13, "job_id": "4712", "account": "de-robotics",
                                                "sm_share": 0.5},
                                               {"pid": 14, "sm_share": 0.25}])])],
    ]
    out: dict[str, object] = {
        "about": "Known answers for the ledger's hash chain (docs/ledger.md, schemas/chain.py): entry lines, "
                 "entry digests, entries hash, window digests, windows hash and batch hash of two linked batches. "
                 "Made by tools/chain_vectors.py "
                 "from the stream's own code; checked by tests/unit/schemas/test_chain.py.",
        "config_sha256": digest, "genesis": GENESIS, "chain_id": "main", "batches": []}
    prev = GENESIS
    for seq, raws in enumerate(batches):
        outs = [proc.process(raw, jobs) for raw in raws]
        assert all(o.rejection is None for o in outs), [o.rejection for o in outs]
        entries = [e for o in outs for e in o.entries]
        rows = []
        for e in entries:
            line = e.chain_line()
            values = dict(zip(ENTRY_FIELDS, line.decode().rstrip("\n").split("|"), strict=True))
            rows.append({"fields": values, "line": line.decode(), "digest": entry_digest(line)})
        digests = [r["digest"] for r in sorted(rows, key=lambda r: r["fields"]["entry_id"])]
        e_hash = entries_hash(digests)
        batch_id = f"vector-batch-{seq}"
        energy, gpu_ms = sum(e.energy_mj for e in entries), sum(e.gpu_ms for e in entries)
        by_id = sorted((o.window.window_id, raw) for o, raw in zip(outs, raws, strict=True) if o.window)
        w_digests = [window_digest(raw) for _, raw in by_id]
        w_hash = windows_hash(w_digests)
        b_hash = batch_hash("main", seq, batch_id, prev, e_hash, len(entries), energy, gpu_ms, w_hash, len(raws))
        out["batches"].append({  # type: ignore[attr-defined]
            "seq": seq, "batch_id": batch_id, "prev_hash": prev, "windows": [r.decode() for r in raws],
            "window_digests": w_digests, "windows_hash": w_hash, "window_count": len(raws),
            "entries": rows, "entries_hash": e_hash, "entry_count": len(entries), "energy_mj": energy,
            "gpu_ms": gpu_ms, "batch_hash_input": "|".join(("main", str(seq), batch_id, prev, e_hash,
                                                            str(len(entries)), str(energy), str(gpu_ms),
                                                            w_hash, str(len(raws)))),
            "batch_hash": b_hash})
        prev = b_hash
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}: " + ", ".join(b["batch_hash"][:16] for b in out["batches"]))  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
