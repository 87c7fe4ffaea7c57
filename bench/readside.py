"""The read side at consortium scale: a month of a synthetic consortium's ledger at
three sizes, and what each read costs on it.

    .venv/bin/python bench/readside.py [--nodes 1,3,7] [--days 30]

On a stack of its own (.state-bench, ports +20000, wiped at start) it books, for
each size in turn (the ledger grows from one size to the next), ``nodes`` GPU
nodes of 8 GPUs over ``days`` of 10 s windows through the stream's own code
(attribution, pricing, chain commit: the chain verifies), with:

- the example config's 6 members and 3 sites, each site with another idle
  policy (host, shared, apart), plus 40 projects (a third of them joint);
- jobs of 1 to 8 hours with job events, a tenth of the GPUs shared by two jobs,
  a tenth partitioned (MIG, two or three instances), a few processes nobody
  vouches for (unresolved), idle GPUs between jobs; windows signed by the sites;
- corrections (entries moved to another account) once the size is booked.

Then it times, on that ledger: every dashboard panel's query over the month
(macros expanded as Grafana sends them), a member's monthly statement,
``ledger verify``, ``reconcile`` and ``recompute`` of the month; prints each with
the entries it covered, how it grew from the size before, and what a month of
130 million entries and a year of them would take if each grows as measured
from the middle to the largest size (docs/benchmarks.md).

    .venv/bin/python bench/readside.py --replicate 1,4,15

measures the panels and the statement at a month's real size instead of
extrapolating: it copies the month the bench stack holds into a scratch
database ``bridgeledger_scale`` as many times as the largest factor (the
bench's month of 8.5 million entries: 1,4,15 reach 130 million; the 20
million of ``make bench-readside``: 1,3,7), each copy under other batch,
entry, window, agent and chain ids (as if that many more nodes had
reported), the hourly rollup filled by its materialized view as the entries
are inserted, and times each read (over the whole month) after each size is
reached (as the admin user with the auditor's memory settings; the copies'
batch records have empty manifests, so the chain does not verify there and
the audits are not run). The scratch database is left on the stack for
further queries.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bridgeledger.stack import Stack, StackPorts  # noqa: E402
from dashboards.build import expand  # noqa: E402
from dashboards.specs import DASHBOARDS  # noqa: E402
from ledger.audit import recompute, reconcile  # noqa: E402
from ledger.chunk_pool import ChunkPool  # noqa: E402
from ledger.corrections import move_entry  # noqa: E402
from ledger.migrate import apply_migrations  # noqa: E402
from ledger.statement import build_statement  # noqa: E402
from ledger.verify import verify_ledger  # noqa: E402
from schemas import JobEvent  # noqa: E402
from schemas.consortium import read_config  # noqa: E402
from schemas.signing import demo_key, sign_window  # noqa: E402
from schemas.telemetry import decode_window_fast  # noqa: E402
from streams.clickhouse import ClickHouseSettings, connect  # noqa: E402
from streams.core import EntryRows  # noqa: E402
from streams.job_book import JobBook, book_jobs  # noqa: E402
from streams.processing import WindowProcessor  # noqa: E402
from streams.sink import ClickHouseSink  # noqa: E402

S = 1_000_000_000
WINDOW_S = 10
GPUS = 8
MONTH_START = datetime(2026, 10, 1)
H100 = "NVIDIA H100 80GB HBM3"
TARGET_MONTH_ENTRIES = 130_000_000
MONTH_DAYS = 31  # October


def bench_config(tmp: Path) -> tuple[Any, str, bytes]:
    """The example config with 40 more projects (every third joint) and an idle policy per site."""
    doc = yaml.safe_load((ROOT / "deploy" / "consortium.example.yaml").read_text())
    members = [m["code"] for m in doc["members"]]
    for i in range(40):
        owners = ([{"member": members[i % 6], "share": "0.5"}, {"member": members[(i + 1) % 6], "share": "0.5"}]
                  if i % 3 == 0 else [{"member": members[i % 6], "share": "1"}])
        doc["projects"].append({"id": f"bench-p{i}", "name": f"Bench project {i}", "owners": owners,
                                "accounts": [f"bench-a{i}"]})
    for site, policy in zip(doc["sites"], ("host", "shared", "apart"), strict=False):
        site["idle_policy"] = policy
    path = tmp / "consortium.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return read_config(path)


class Node:
    """One node of 8 GPUs at a site: per GPU a job (or two, or MIG instances) or nothing."""

    def __init__(self, site: str, name: str, rng: random.Random, accounts: list[str]) -> None:
        self.site, self.name, self.rng, self.accounts = site, name, rng, accounts
        self.key_id, self.key = demo_key(site)
        self.seq = 0
        self.mig = {g for g in range(GPUS) if rng.random() < 0.1}
        self.tenants: list[list[tuple[str, str | None, int]]] = [[] for _ in range(GPUS)]  # (job, account, until)
        self.next_job = 0

    def _job(self, t_ns: int, events: list[JobEvent]) -> tuple[str, str | None, int]:
        self.next_job += 1
        job = f"{self.name}-{self.next_job}"
        until = t_ns + self.rng.randrange(3600, 8 * 3600) * S
        if self.rng.random() < 0.02:  # nobody vouches for it: unresolved
            return job, None, until
        account = self.rng.choice(self.accounts)
        events.append(JobEvent(event="start", site_id=self.site, job_id=job, account=account, time_ns=t_ns))
        events.append(JobEvent(event="end", site_id=self.site, job_id=job, account=account, time_ns=until))
        return job, account, until

    def window(self, t_ns: int, events: list[JobEvent]) -> bytes:
        gpus = []
        for g in range(GPUS):
            held = [x for x in self.tenants[g] if x[2] > t_ns]
            if not held and self.rng.random() < 0.01:  # a new job arrives about every 1,000 s on a free GPU
                want = 3 if g in self.mig else 2 if self.rng.random() < 0.1 else 1
                held = [self._job(t_ns, events) for _ in range(want)]
            self.tenants[g] = held
            uuid = f"GPU-{self.name}-{g}"
            if g in self.mig:
                slices = (0.43, 0.29, 0.14)
                procs = [{"pid": 1000 + i, "job_id": j, "sm_share": slices[i], "mig_uuid": f"MIG-{uuid}-{i}"}
                         for i, (j, _, _) in enumerate(held)]
                flags = ["mig"]
            else:
                procs = [{"pid": 1000 + i, "job_id": j, "sm_share": round(0.9 / len(held), 3)}
                         for i, (j, _, _) in enumerate(held)]
                flags = []
            busy = bool(held)
            power_w = self.rng.randrange(450, 690) if busy else self.rng.randrange(60, 90)
            gpus.append({"uuid": uuid, "model": H100, "energy_mj": power_w * 1000 * WINDOW_S,
                         "gpu_seconds": float(WINDOW_S), "util_gpu": 90.0 if busy else 0.0,
                         "mem_used_bytes": (40 << 30) if busy else 0, "power_avg_mw": power_w * 1000,
                         "power_limit_mw": 700_000, "flags": flags, "processes": procs})
        doc = {"schema_version": 1, "agent_id": self.name, "site_id": self.site, "node": self.name,
               "boot_id": "b1", "epoch": "e1", "seq": self.seq, "window_start_ns": t_ns,
               "window_end_ns": t_ns + WINDOW_S * S, "gpus": gpus, "key_id": self.key_id}
        self.seq += 1
        return sign_window(json.dumps(doc, separators=(",", ":")).encode(), self.key)


def book(client: Any, db: str, processor: WindowProcessor, nodes: list[Node], days: int,
         batch_windows: int = 400) -> tuple[int, int]:
    """Every node's windows over the month, through attribution, pricing and the chain commit."""
    sink = ClickHouseSink(client, db, chain_id="bench-readside")
    jobs = JobBook()
    t0 = int(MONTH_START.timestamp()) * S
    steps = days * 86400 // WINDOW_S
    pending: list[tuple[Any, bytes]] = []
    rows = EntryRows()
    windows = entries = 0
    started = time.perf_counter()
    for step in range(steps):
        t = t0 + step * WINDOW_S * S
        events: list[JobEvent] = []
        raws = [n.window(t, events) for n in nodes]
        if events:
            sink.write_jobs(events)
            book_jobs(events, jobs)
        for raw in raws:
            w = decode_window_fast(raw)
            processor.attribute_rows(w, jobs, rows)
            pending.append((w, raw))
        if len(pending) >= batch_windows:
            sink.write(pending, rows)
            windows, entries = windows + len(pending), entries + len(rows)
            pending, rows = [], EntryRows()
        if step % 8640 == 0 and step:
            el = time.perf_counter() - started
            print(f"  booked day {step // 8640} of {days}: {entries:,} entries, {windows / el:,.0f} node windows/s",
                  flush=True)
    if pending:
        sink.write(pending, rows)
        windows, entries = windows + len(pending), entries + len(rows)
    return windows, entries


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def measure(client: Any, db: str, days: float, audits: bool = True, pool: ChunkPool | None = None) -> dict[str, float]:
    start, end = MONTH_START, MONTH_START + timedelta(days=days)
    s0, s1 = int(start.timestamp()), int(end.timestamp())
    out: dict[str, float] = {}
    for spec in DASHBOARDS:
        variables = {v.name: [str(r[0]) for r in client.execute(v.sql)] for v in spec.variables}
        for p in spec.panels:
            sql = expand(p.sql, s0, s1, variables)
            name = f"panel {spec.uid}#{p.id} {p.title[:40]}"
            try:
                out[name], _ = timed(lambda sql=sql: client.execute(sql))
            except Exception as exc:  # e.g. the auditor's memory limit per query: a finding, not a crash
                out[name] = float("nan")
                print(f"  {name}: refused by the server: {str(exc).splitlines()[0][:160]}", flush=True)
    month = f"{start:%Y-%m}"
    out["statement (KR, month)"], _ = timed(lambda: build_statement(client, db, "KR", month))
    if not audits:
        return out
    out["verify (month)"], v = timed(lambda: verify_ledger(client, db, start, end, pool=pool))
    assert v.ok, [p.line() for p in v.problems[:5]]
    out["reconcile (month)"], r = timed(lambda: reconcile(client, db, start, end, pool=pool))
    assert r.ok, (r.residuals[:3], r.gaps[:3])
    out["recompute (month)"], rc = timed(lambda: recompute(client, db, start, end, pool=pool))
    assert rc.ok, rc.differences[:3]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", default="1,3,7", help="nodes (8 GPUs each) at each size, increasing")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--measure-only", metavar="DAYS", default=None,
                    help="no booking: measure the ledger the last run left on the bench stack over the first DAYS "
                         "(comma-separated, e.g. 1,3,10) of the month, as three sizes; the ledger's migrations "
                         "are applied first (timed: a new rollup is filled from the entries)")
    ap.add_argument("--no-audits", action="store_true", help="the panels and the statement only")
    ap.add_argument("--processes", type=int, default=1,
                    help="processes for verify, reconcile and recompute (ledger/chunk_pool.py; the CLI's default "
                         "is one per core)")
    ap.add_argument("--replicate", metavar="FACTORS", default=None,
                    help="measure the panels and the statement on the bench ledger's month copied this many times "
                         "(comma-separated, increasing, e.g. 1,4,15) in a scratch database")
    args = ap.parse_args()
    if args.replicate:
        measure_replicated([int(x) for x in args.replicate.split(",")])
        return
    if args.measure_only:
        measure_only([float(x) for x in args.measure_only.split(",")], audits=not args.no_audits,
                     processes=args.processes)
        return
    sizes = [int(x) for x in args.nodes.split(",")]
    state = ROOT / ".state-bench"
    stack = Stack(state, StackPorts.offset(20000))
    stack.down()
    shutil.rmtree(state, ignore_errors=True)
    stack.up(timeout_s=240)
    port = stack.ports.clickhouse_tcp
    migrator = connect(ClickHouseSettings(port=port, user="migrator", password_file=stack.password_file("migrator")),
                       database="system")
    db = "bridgeledger"
    apply_migrations(migrator, db)
    client = connect(ClickHouseSettings(port=port, user="writer", password_file=stack.password_file("writer")))
    auditor = connect(ClickHouseSettings(port=port, user="auditor", password_file=stack.password_file("auditor")))
    with tempfile.TemporaryDirectory() as tmp:
        cfg, digest, text = bench_config(Path(tmp))
    ClickHouseSink(client, db).record_config(digest, cfg.version, text,
                                             [(m.code, m.name, m.contribution_share) for m in cfg.members])
    processor = WindowProcessor(cfg, digest)
    accounts = [a for p in cfg.projects for a in p.accounts]
    rng = random.Random(20261127)
    sites = [s.id for s in cfg.sites]
    nodes: list[Node] = []
    results: list[tuple[int, int, dict[str, float]]] = []
    for size in sizes:
        fresh = [Node(sites[i % len(sites)], f"n{i:03d}", rng, accounts) for i in range(len(nodes), size)]
        print(f"size {size} node(s): booking {len(fresh)} more over {args.days} days", flush=True)
        t, (w, e) = timed(lambda fresh=fresh: book(client, db, processor, fresh, args.days))
        print(f"  {w:,} node windows, {e:,} entries in {t:.0f} s ({w / t:,.0f} node windows/s)", flush=True)
        nodes += fresh
        ids = [r[0] for r in client.execute(
            f"SELECT entry_id FROM {db}.ledger WHERE account_kind = 'unresolved' LIMIT 20")]
        for eid in ids:  # a site's operator fixes what nobody vouched for
            move_entry(client, db, eid, accounts[0], "job identified afterwards", "bench")
        total = client.execute(f"SELECT count() FROM {db}.ledger")[0][0]
        print(f"  ledger: {total:,} entries ({len(ids)} corrected); measuring", flush=True)
        results.append((size, int(total), measure(auditor, db, args.days)))
    stack.down()
    report(results)


def measure_only(ranges: list[float], audits: bool = True, processes: int = 1) -> None:
    state = ROOT / ".state-bench"
    stack = Stack(state, StackPorts.offset(20000))
    stack.up(timeout_s=240)
    port = stack.ports.clickhouse_tcp
    settings = ClickHouseSettings(port=port, user="auditor", password_file=stack.password_file("auditor"))
    auditor = connect(settings)
    pool = ChunkPool(settings, processes)
    db = "bridgeledger"
    migrator = connect(ClickHouseSettings(port=port, user="migrator", password_file=stack.password_file("migrator")),
                       database="system")
    t, applied = timed(lambda: apply_migrations(migrator, db))
    entries, rows = auditor.execute(f"SELECT sum(entries), count() FROM {db}.rollup")[0]
    print(f"migrations applied: {', '.join(applied) or 'none'} in {t:.1f} s; the hourly rollup holds {rows:,} rows "
          f"for {entries:,} committed entries", flush=True)
    results = []
    for days in ranges:
        end = MONTH_START + timedelta(days=days)
        n = auditor.execute(f"SELECT count() FROM {db}.ledger WHERE window_start < %(e)s", {"e": end})[0][0]
        print(f"first {days:g} day(s): {n:,} entries; measuring", flush=True)
        results.append((int(days), int(n), measure(auditor, db, days, audits, pool)))
    report(results)


SCALE_DB = "bridgeledger_scale"
# the columns each copy renames (suffixed with the copy's number); the rest are copied as they are
RENAMED = {"ledger_entries": ("batch_id", "entry_id", "window_id", "agent_id"),
           "raw_windows": ("batch_id", "window_id", "agent_id"),
           "ledger_batches": ("batch_id", "chain_id"),
           "corrections": ("batch_id", "corrects")}
EMPTIED = {"raw_windows": {"payload": "''"}, "ledger_batches": {"entry_ids": "emptyArrayString()",
                                                                 "entry_digests": "emptyArrayString()"}}
ONCE = ("config_versions", "config_members", "config_sites", "config_pledges", "config_grid", "grid_intensity",
        "grid_series_files", "job_events", "dlq_records", "audit_runs", "ledger_checkpoints")
AUDITOR_SETTINGS = {"max_memory_usage": 2_000_000_000, "max_bytes_before_external_group_by": 800_000_000,
                    "max_bytes_before_external_sort": 800_000_000}


def copy_month(admin: Any, src: str, dst: str, copy: int) -> None:
    """One more copy of ``src``'s ledger in ``dst``, under ids suffixed ``~copy``."""
    suffix = f"~{copy}"
    tables = [*RENAMED, *(ONCE if copy == 0 else ())]
    for table in tables:
        cols = [c[0] for c in admin.execute(f"DESCRIBE TABLE {src}.{table}")]
        exprs = []
        for c in cols:
            if c in RENAMED.get(table, ()):
                exprs.append(f"if({c} = '', '', concat({c}, '{suffix}'))")
            else:
                exprs.append(EMPTIED.get(table, {}).get(c, c))
        admin.execute(f"INSERT INTO {dst}.{table} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {src}.{table}")


def measure_replicated(factors: list[int]) -> None:
    stack = Stack(ROOT / ".state-bench", StackPorts.offset(20000))
    stack.up(timeout_s=240)
    admin = connect(ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="default",
                                       password_file=stack.password_file("default")), database="system")
    src = "bridgeledger"
    apply_migrations(admin, src)
    admin.execute(f"DROP DATABASE IF EXISTS {SCALE_DB}")
    apply_migrations(admin, SCALE_DB)
    reader = connect(ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="default",
                                        password_file=stack.password_file("default"), database=SCALE_DB))
    reader.settings.update(AUDITOR_SETTINGS)  # sent with every query, as the auditor's profile would set them
    results, copies = [], 0
    for factor in factors:
        t = time.perf_counter()
        while copies < factor:
            copy_month(admin, src, SCALE_DB, copies)
            copies += 1
        entries, rows = reader.execute(f"SELECT sum(entries), count() FROM {SCALE_DB}.rollup")[0]
        print(f"{factor} cop{'y' if factor == 1 else 'ies'} of the month in {time.perf_counter() - t:.0f} s: "
              f"{entries:,} committed entries, {rows:,} rollup rows; measuring", flush=True)
        # over the whole month (the better of two runs)
        runs = [measure(reader, SCALE_DB, MONTH_DAYS, audits=False) for _ in range(2)]
        results.append((factor, int(entries), {k: min(r[k] for r in runs) for k in runs[0]}))
    report(results, "copies of the bench month")
    print(f"{SCALE_DB} is left on the bench stack for more queries; the next --replicate run replaces it "
          f"(or: DROP DATABASE {SCALE_DB})")


def report(results: list[tuple[int, int, dict[str, float]]], sizes: str = f"nodes x {GPUS} GPUs") -> None:
    names = list(results[0][2])
    print(f"\nmachine: 2-core development VM; ClickHouse 18.16 (Debian); month of {results[0][0]}..{results[-1][0]} "
          f"{sizes}")
    head = "".join(f"{n:,} entries".rjust(20) for _, n, _ in results)
    print(f"{'read':<58}{head}{'growth':>9}{'130M month':>13}{'year':>11}")
    (_, n_mid, mid), (_, n_big, big) = results[-2] if len(results) > 1 else results[-1], results[-1]
    for name in names:
        cells = "".join(f"{r[2][name]:>19.3f}s" for r in results)
        # growth exponent from the middle to the largest size; extrapolate with it
        import math

        a, b = max(mid[name], 1e-4), max(big[name], 1e-4)
        k = math.log(b / a) / math.log(n_big / n_mid) if n_big > n_mid else 1.0  # one size: linear
        month = b * (TARGET_MONTH_ENTRIES / n_big) ** k
        year = b * (12 * TARGET_MONTH_ENTRIES / n_big) ** k
        print(f"{name:<58}{cells}{k:>9.2f}{month:>12.1f}s{year:>10.0f}s")


if __name__ == "__main__":
    main()
