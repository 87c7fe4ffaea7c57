"""The worker's own CPU per GPU-window, without Kafka: prepare (decode, validate,
attribute) and write (the ClickHouse commit), batch by batch as the worker does.

    .venv/bin/python bench/worker.py [--windows 8000] [--reps 3]

On the bench stack's ClickHouse (.state-bench, ports +20000; brought up if it
is down; the ledger tables there are emptied first). Each repetition books
the same windows into an emptied ledger; the best repetition is printed, for
the worker's settings (the rules compiled in the core, the garbage-collector
settings of ``streams/app.py`` ``tune_gc``), and in the same run with each
changed alone: the Python rules (``compiled_rules=False``, what ``ledger
recompute`` runs) and CPython's default GC.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bridgeledger.stack import Stack, StackPorts  # noqa: E402
from ledger.migrate import apply_migrations  # noqa: E402
from schemas import load_config  # noqa: E402
from streams.app import GC_THRESHOLDS  # noqa: E402
from streams.clickhouse import ClickHouseSettings, connect  # noqa: E402
from streams.processing import WindowProcessor  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.sink import ClickHouseSink  # noqa: E402
from streams.worker import LedgerWorker  # noqa: E402

TABLES = ("raw_windows", "ledger_entries", "ledger_batches", "ledger_intents")


def main() -> None:
    from pipeline import CONFIG, make_windows

    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=8000, help="node windows (8 GPUs each)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=StreamSettings().batch_size,
                    help="windows per batch (the worker's default)")
    args = ap.parse_args()

    stack = Stack(ROOT / ".state-bench", StackPorts.offset(20000))
    stack.up(timeout_s=240)
    ch = ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="writer", password_file=stack.password_file("writer"))
    migrator = connect(ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="migrator",
                                          password_file=stack.password_file("migrator")), database="system")
    apply_migrations(migrator, ch.database)
    client = connect(ch)
    cfg, digest = load_config(CONFIG)
    raws = make_windows(args.windows)
    batches = [raws[i:i + args.batch] for i in range(0, len(raws), args.batch)]
    gpu_windows = len(raws) * 8
    defaults = gc.get_threshold()

    results = {}
    for name, thresholds, compiled in (("CPython's default GC", defaults, True),
                                       ("the Python rules", GC_THRESHOLDS, False),
                                       ("the worker's settings", GC_THRESHOLDS, True)):
        gc.set_threshold(*thresholds)
        best = (float("inf"), float("inf"))
        for _ in range(args.reps):
            for t in TABLES:
                migrator.execute(f"TRUNCATE TABLE {ch.database}.{t}")  # the writer may not
            worker = LedgerWorker(WindowProcessor(cfg, digest, compiled_rules=compiled),
                                  ClickHouseSink(client, ch.database, "bench"))
            prepare = write = 0.0
            entries = 0
            for b in batches:
                c0 = time.process_time()
                batch = worker.prepare(b)
                c1 = time.process_time()
                worker.write(batch)
                c2 = time.process_time()
                prepare, write, entries = prepare + c1 - c0, write + c2 - c1, entries + len(batch.entries)
            best = min(best, (prepare, write), key=sum)
        results[name] = best
        p, w = best
        print(f"{name:<26} prepare {p / gpu_windows * 1e6:5.1f} µs + write {w / gpu_windows * 1e6:5.1f} µs CPU "
              f"per GPU-window = {gpu_windows / (p + w):>8,.0f} GPU-windows/s on one core "
              f"({entries / gpu_windows:.2f} entries per GPU-window)")
    gc.set_threshold(*defaults)
    # the site signature check alone (Ed25519 with libsodium, over the exact bytes), part of prepare above
    from schemas.signing import verifier, verify_window

    keys = {k.id: verifier(k.ed25519) for site in cfg.sites for k in site.keys}
    kid = [raw[raw.index(b'"key_id":"') + 10:].split(b'"', 1)[0].decode() for raw in raws]
    c0 = time.process_time()
    ok = sum(verify_window(raw, keys[k]) for raw, k in zip(raws, kid, strict=True))
    verify_s = time.process_time() - c0
    assert ok == len(raws)
    p, w = results["the worker's settings"]
    print(f"signature check: {verify_s / len(raws) * 1e6:5.1f} µs CPU per message = "
          f"{verify_s / gpu_windows * 1e6:4.1f} µs per GPU-window, {100 * verify_s / (p + w):.0f} % of the worker's "
          f"CPU above")
    default_gc, python_rules, worker = (sum(v) for v in results.values())
    (pp, _), (cp, _) = results["the Python rules"], results["the worker's settings"]
    print(f"machine: {len(raws)} node windows x 8 GPUs, batches of {args.batch}, best of {args.reps}; "
          f"GC settings save {100 * (1 - worker / default_gc):.0f} % of the worker's CPU; the compiled rules "
          f"{100 * (1 - worker / python_rules):.0f} % (prepare {pp / cp:.2f}x faster)")


if __name__ == "__main__":
    main()
