"""The worker's resend check as the ledger grows: what one batch's
``ChainWriter.committed`` costs against a ``raw_windows`` of N booked windows.

    .venv/bin/python bench/resend_check.py [--sizes 50000,200000,800000] [--batch 4000]

Every batch the worker asks which of its windows are booked already (resends,
replays, conflicting duplicates). The windows booked so far are the same
fleet's (the same sites and agents, older boots), so the sites and agents of
a batch do not narrow the search. For each size the bench times the check of a
batch of new windows, as the writer asks it now (``raw_windows`` with the ids
as PREWHERE) and as it asked before (the ``windows`` view), and prints what
ClickHouse read for each: time, rows and bytes, and the bytes per booked
window, from which it extrapolates to a month of the issue's consortium (130
million entries, ~13.5 million node windows). On the bench stack's ClickHouse
(.state-bench, ports +20000; brought up if it is down); its ledger tables are
emptied first and at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bridgeledger.stack import Stack, StackPorts  # noqa: E402
from ledger.migrate import apply_migrations  # noqa: E402
from schemas.telemetry import decode_window_fast  # noqa: E402
from streams.chain_writer import WINDOW_COLUMNS, ChainWriter  # noqa: E402
from streams.clickhouse import ClickHouseSettings, connect, insert_native  # noqa: E402
from streams.core import encode_windows_native  # noqa: E402

DB = ClickHouseSettings().database
TABLES = ("raw_windows", "ledger_entries", "ledger_batches", "ledger_intents")
MONTH_WINDOWS = 130_000_000 / 1.2 / 8  # the month: entries / entries per GPU-window / GPUs per window


def row(w: Any, raw: bytes, boot: str) -> tuple[Any, ...]:
    window_id = f"{w.site_id}/{w.agent_id}/{boot}/{w.epoch}/{w.seq}"
    return (window_id, w.agent_id, w.site_id, w.node, boot, w.seq, w.window_start_ns, w.window_end_ns, len(w.gpus),
            sum(g.energy_mj for g in w.gpus), sum(g.gpu_ms for g in w.gpus), raw)


def book(client: Any, rows: list[tuple[Any, ...]]) -> None:
    """Rows of one committed batch: raw_windows, and a commit record for the views."""
    batch_id = uuid.uuid4().hex
    now_s = int(time.time())
    insert_native(client, f"INSERT INTO {DB}.raw_windows ({WINDOW_COLUMNS}) VALUES",
                  lambda columns, revision: encode_windows_native(columns, revision, batch_id, now_s, rows))
    client.execute(f"INSERT INTO {DB}.ledger_batches (chain_id, seq, batch_id) VALUES", [("bench", 0, batch_id)])


def best_of(n: int, f: Any) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    from pipeline import make_windows

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50000,200000,800000", help="booked windows at each measurement")
    ap.add_argument("--batch", type=int, default=4000, help="windows in the batch checked")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    stack = Stack(ROOT / ".state-bench", StackPorts.offset(20000))
    stack.up(timeout_s=240)
    settings = ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="migrator",
                                  password_file=stack.password_file("migrator"))
    client = connect(settings, database="system")
    apply_migrations(client, DB)
    empty(client)
    raws = make_windows(args.batch)
    windows = [(decode_window_fast(r), r) for r in raws]
    new = [w for w, _ in windows]
    writer = ChainWriter(client, DB, "bench")
    sites, agents = tuple({w.site_id for w in new}), tuple({w.agent_id for w in new})
    ids = [{"window_id": w.window_id} for w in new]

    def before() -> Any:
        return client.execute(
            f"SELECT window_id, lower(hex(SHA256(payload))) FROM {DB}.windows "
            f"WHERE site_id IN %(s)s AND agent_id IN %(a)s AND window_id IN _batch_windows",
            {"s": sites, "a": agents},
            external_tables=[{"name": "_batch_windows", "structure": [("window_id", "String")], "data": ids}])

    def read() -> tuple[int, int]:
        p = client.last_query.progress
        return p.rows, p.bytes

    print(f"machine: 2 cores; a batch of {len(new)} new windows of {len(agents)} agents checked against the "
          f"booked windows of the same agents; best of 3")
    print(f"{'booked windows':>15}  {'now: s':>8} {'rows read':>11} {'MB read':>9}  "
          f"{'before: s':>9} {'rows read':>11} {'MB read':>9}")
    booked, copy = 0, 0
    points: list[tuple[int, float, int, float]] = []
    for size in sizes:
        while booked < size:
            copy += 1
            book(client, [row(w, r, f"{w.boot_id}-old{copy}") for w, r in windows])
            booked += len(windows)
        client.execute(f"OPTIMIZE TABLE {DB}.raw_windows")  # merged, as a month's parts would be
        now_s, done = best_of(3, lambda: writer.committed(new))
        now_rows, now_bytes = read()
        assert not done, "the new windows are not booked"
        was_s, _ = best_of(3, before)
        was_rows, was_bytes = read()
        print(f"{booked:>15,}  {now_s:>8.3f} {now_rows:>11,} {now_bytes / 1e6:>9.1f}  "
              f"{was_s:>9.3f} {was_rows:>11,} {was_bytes / 1e6:>9.1f}")
        points.append((booked, now_s, now_bytes, was_s))
    (n0, now0, _, was0), (n1, now1, now_bytes, was1) = points[0], points[-1]

    def month(t0: float, t1: float) -> float:  # the line through the first and last size, at a month
        return t1 + (t1 - t0) / (n1 - n0) * (MONTH_WINDOWS - n1) if n1 > n0 else float("nan")

    print(f"per booked window now: {now_bytes / n1:.0f} bytes read; at a month of the issue's consortium "
          f"({MONTH_WINDOWS / 1e6:.1f} million windows), on the line through {n0:,} and {n1:,}: "
          f"{month(now0, now1):.2f} s a batch now, {month(was0, was1):.1f} s before")
    empty(client)


def empty(client: Any) -> None:
    for t in TABLES:
        client.execute(f"TRUNCATE TABLE {DB}.{t}")


if __name__ == "__main__":
    main()
