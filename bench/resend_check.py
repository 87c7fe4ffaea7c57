"""The worker's resend check as the ledger grows: what one batch's
``ChainWriter.committed`` costs against a ``raw_windows`` of N booked windows.

    .venv/bin/python bench/resend_check.py [--sizes 50000,200000,800000] [--batch 4000]

Every batch the worker asks which of its windows are booked already (resends,
replays, conflicting duplicates). The windows booked so far are the same
fleet's (the same sites and agents, older boots), so the sites and agents of
a batch do not narrow the search. For each size the bench times the check of
a batch as the writer asks it now (the agent runs' seq ranges, then the
windows inside one by id: ``raw_windows`` with the ids as PREWHERE), for a
batch of new windows and for a replayed one (every window booked already),
and a new batch as the writer asked it before 2026-12-07 (the ``windows``
view), and prints what ClickHouse read for each (time, rows, bytes), then
extrapolates to a month of the issue's consortium (130 million entries,
~13.5 million node windows). On the bench stack's ClickHouse
(.state-bench, ports +20000; brought up if it is down); its ledger tables are
emptied first and at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
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
TABLES = ("raw_windows", "ledger_entries", "ledger_batches", "ledger_intents", "window_seq_ranges")
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
    # the windows of the first batch booked, as the worker would see them again (a replay)
    replay = [SimpleNamespace(site_id=w.site_id, agent_id=w.agent_id, boot_id=f"{w.boot_id}-old1", epoch=w.epoch,
                              seq=w.seq, window_id=f"{w.site_id}/{w.agent_id}/{w.boot_id}-old1/{w.epoch}/{w.seq}")
              for w in new]
    reading = Reading(client)
    writer = ChainWriter(reading, DB, "bench")
    sites, agents = tuple({w.site_id for w in new}), tuple({w.agent_id for w in new})
    ids = [{"window_id": w.window_id} for w in new]

    def before() -> Any:
        return reading.execute(
            f"SELECT window_id, lower(hex(SHA256(payload))) FROM {DB}.windows "
            f"WHERE site_id IN %(s)s AND agent_id IN %(a)s AND window_id IN _batch_windows",
            {"s": sites, "a": agents},
            external_tables=[{"name": "_batch_windows", "structure": [("window_id", "String")], "data": ids}])

    cases = {"new batch, now": lambda: writer.committed(new), "replayed batch, now": lambda: writer.committed(replay),
             "new batch, before": before}
    print(f"machine: 2 cores; batches of {len(new)} windows of {len(agents)} agents checked against the booked "
          f"windows of the same agents (s: best of 3; rows and MB: what ClickHouse read, all the check's queries)")
    print(f"{'booked windows':>15}" + "".join(f"  {name:>30}" for name in cases))
    booked, copy = 0, 0
    points: list[tuple[int, list[float]]] = []
    for size in sizes:
        while booked < size:
            copy += 1
            book(client, [row(w, r, f"{w.boot_id}-old{copy}") for w, r in windows])
            booked += len(windows)
        client.execute(f"OPTIMIZE TABLE {DB}.raw_windows")  # merged, as a month's parts would be
        cells, times = [], []
        for name, check in cases.items():
            t, found = best_of(3, lambda check=check: reading.measure(check))  # type: ignore[misc]
            rows_read, bytes_read, out = found
            if name == "new batch, now":
                assert not out, "the new windows are not booked"
            if name == "replayed batch, now":
                assert len(out) == len(replay), "every replayed window is found"
            cells.append(f"{t:7.3f} s {rows_read:>10,} r {bytes_read / 1e6:7.1f} MB")
            times.append(t)
        print(f"{booked:>15,}" + "".join(f"  {c:>30}" for c in cells))
        points.append((booked, times))
    (n0, t0), (n1, t1) = points[0], points[-1]
    print(f"at a month of the issue's consortium ({MONTH_WINDOWS / 1e6:.1f} million windows), on the line through "
          f"{n0:,} and {n1:,} booked windows:")
    for name, a, b in zip(cases, t0, t1, strict=True):
        slope = (b - a) / (n1 - n0) if n1 > n0 else float("nan")
        if slope > 0:
            print(f"  {name:<22} {b + slope * (MONTH_WINDOWS - n1):8.2f} s a batch")
        else:
            print(f"  {name:<22} {b:8.3f} s a batch: no growth measured")
    empty(client)


class Reading:
    """The client, summing what ClickHouse read over the queries of one measurement."""

    def __init__(self, client: Any) -> None:
        self.client, self.rows, self.bytes = client, 0, 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        out = self.client.execute(*args, **kwargs)
        progress = self.client.last_query.progress
        self.rows, self.bytes = self.rows + progress.rows, self.bytes + progress.bytes
        return out

    def measure(self, check: Any) -> tuple[int, int, Any]:
        self.rows = self.bytes = 0
        out = check()
        return self.rows, self.bytes, out


def empty(client: Any) -> None:
    for t in TABLES:
        client.execute(f"TRUNCATE TABLE {DB}.{t}")


if __name__ == "__main__":
    main()
