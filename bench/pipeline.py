"""Pipeline throughput and latency against the raw ceilings, measured in one run.

    .venv/bin/python bench/pipeline.py [--windows 10000]   (make bench)

On a stack of its own (.state-bench, ports +20000, wiped at start):
1. raw Kafka ceiling: a plain aiokafka consumer reading and JSON-decoding the windows;
2. ClickHouse ceiling: clickhouse-driver inserting as many ledger rows, columnar, in big batches;
3. the pipeline: the real Faust worker, first to last window visible in the ledger;
then p50/p99 sample-to-ledger latency at half the pipeline's rate, and the
worker's peak RSS. Each node window carries 8 GPUs; figures are GPU-windows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.publisher import KafkaPublisher, MemoryPublisher  # noqa: E402
from agents.runner import FleetClock, build_sim_fleet, run_fleet  # noqa: E402
from bridgeledger.stack import Stack, StackPorts  # noqa: E402
from ledger.migrate import apply_migrations  # noqa: E402
from schemas import load_config  # noqa: E402
from schemas.topics import WINDOWS_TOPIC  # noqa: E402
from streams.chain_writer import ENTRY_COLUMNS  # noqa: E402
from streams.clickhouse import (  # noqa: E402
    ClickHouseSettings,
    connect,
    insert_native,  # noqa: E402
)
from streams.core import EntryRows  # noqa: E402
from streams.processing import WindowProcessor  # noqa: E402

S = 1_000_000_000
CONFIG = ROOT / "deploy" / "consortium.example.yaml"


def make_windows(n: int) -> list[bytes]:
    cfg, _ = load_config(CONFIG)
    pub = MemoryPublisher()
    nodes = max(1, n // 360)  # an hour of 10 s windows per node
    per_site = -(-nodes // len(cfg.sites))
    start = (time.time_ns() // S - 7200) * S
    clock = FleetClock(start)
    fleet = build_sim_fleet(cfg, pub, clock, start_ns=start, horizon_ns=3700 * S, nodes_per_site=per_site,
                            gpus_per_node=8, window_s=10, seed=int(time.time()))
    # 0.5 Hz is enough for the bench's windows
    run_fleet(fleet, pub, clock, until_ns=start + 3600 * S, step_ns=2 * S, job_events=False, finish=False)
    return [v for _, _, v in pub.messages][:n]


def produce(stack: Stack, raws: list[bytes]) -> float:
    pub = KafkaPublisher(stack.kafka_bootstrap, batch_size=1 << 20, linger_ms=50)
    t = time.perf_counter()
    for r in raws:
        pub.publish(WINDOWS_TOPIC, json.loads(r)["node"].encode(), r)
    pub.flush(120)
    pub.close()
    return time.perf_counter() - t


async def raw_ceiling(stack: Stack, n: int) -> float:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(WINDOWS_TOPIC, bootstrap_servers=stack.kafka_bootstrap, group_id=f"raw-{uuid.uuid4()}",
                         auto_offset_reset="earliest", enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
    await c.start()
    seen, t0 = 0, None
    try:
        while seen < n:
            batch = await c.getmany(timeout_ms=1000, max_records=5000)
            for msgs in batch.values():
                if t0 is None:
                    t0 = time.perf_counter()
                for m in msgs:
                    json.loads(m.value)
                seen += len(msgs)
    finally:
        await c.stop()
    return time.perf_counter() - (t0 or time.perf_counter())


def clickhouse_ceiling(client, migrator, db: str, raws: list[bytes]) -> tuple[float, int]:
    """The same ledger rows as the pipeline writes, as the sink writes them (one Native
    block made by the core per insert), about 100k rows per insert; the blocks are
    made before the clock starts, so the ceiling is the server's and the socket's."""
    cfg, digest = load_config(CONFIG)
    proc = WindowProcessor(cfg, digest)
    chunks: list[EntryRows] = []
    for i in range(0, len(raws), 10_000):
        rows = EntryRows()
        for r in raws[i:i + 10_000]:
            proc.attribute_rows(proc.check(r), None, rows)
        chunks.append(rows)
    # DDL as the migrator: the writer may only insert and select
    migrator.execute(f"CREATE TABLE IF NOT EXISTS {db}.bench_entries AS {db}.ledger_entries")
    migrator.execute(f"TRUNCATE TABLE {db}.bench_entries")
    now_s = int(time.time())
    query = f"INSERT INTO {db}.bench_entries ({ENTRY_COLUMNS}) VALUES"
    columns = client.execute("SELECT name, type FROM system.columns WHERE database = %(d)s AND table = "
                             "'bench_entries'", {"d": db})
    types = dict(columns)
    revision = client.connection.server_info.used_revision
    wanted = [(name, types[name]) for name in ENTRY_COLUMNS.split(", ")]
    blocks = [rows.encode_native(wanted, revision, "bench", now_s) for rows in chunks]
    t = time.perf_counter()
    for block in blocks:
        insert_native(client, query, lambda _columns, _revision, b=block: b)
    return time.perf_counter() - t, sum(len(r) for r in chunks)


def worker_metrics(port: int) -> dict[str, float]:
    """The worker's Prometheus counters (streams/worker.py), unlabelled ones only."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            out[name.removeprefix("bridgeledger_stream_")] = float(value)
    return out


class RdkafkaPublisher:
    """The paced phases' producer: librdkafka (confluent-kafka), acks from all replicas
    and idempotence as the agents' producer. kafka-python in this process sent about
    1,100 windows a second beside the worker, a third of half the worker's rate, so
    the latency was measured at a lower rate than the target's."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Producer

        self.failed: list[str] = []
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                   "linger.ms": 5})

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed.append(str(err))

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._delivered)
                break
            except BufferError:  # its queue is full: let it send
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self) -> None:
        left = self._producer.flush(60)
        if left or self.failed:
            raise RuntimeError(f"{left} message(s) not delivered; failures: {self.failed[:3]}")


def paced_publisher(bootstrap: str) -> RdkafkaPublisher | KafkaPublisher:
    try:
        return RdkafkaPublisher(bootstrap)
    except ImportError:
        print("confluent-kafka is missing (pip install confluent-kafka): the paced phases use kafka-python, "
              "which may not reach their rate")
        return KafkaPublisher(bootstrap, batch_size=1 << 20, linger_ms=20)


def paced(pub: RdkafkaPublisher | KafkaPublisher, raws: list[bytes], rate: float, seconds: float, tag: str,
          every_30_s: Callable[[float, int], None] | None = None) -> tuple[int, tuple[str, ...], float]:
    """Send windows that end "now" at ``rate`` node windows/s for ``seconds``, as new
    agents named ``tag-...``; returns (sent, agent ids, seconds taken).

    The messages are serialised beforehand with placeholders for the sequence
    number and the window's times, so that this process keeps up with the rate;
    each is signed when sent, with its site's public demo key, as an agent does."""
    from schemas.signing import demo_key, sign_window, split_signature

    templates, agents, keys = [], set(), {}
    for r in raws:
        parts = split_signature(r)
        doc = json.loads(parts[0] if parts else r)
        keys.setdefault(doc["site_id"], demo_key(doc["site_id"])[1])
        doc.update(agent_id=f"{tag}-{doc['agent_id']}", boot_id=f"{tag}-{time.time_ns()}", seq="@SEQ@",
                   window_start_ns="@START@", window_end_ns="@END@")
        agents.add(doc["agent_id"])
        templates.append((doc["node"].encode(), doc["site_id"], json.dumps(doc).encode()))
    t0, last, i = time.perf_counter(), -30.0, 0
    while (el := time.perf_counter() - t0) < seconds:
        key, site, body = templates[i % len(templates)]
        end = time.time_ns()
        body = body.replace(b'"@SEQ@"', b"%d" % i).replace(b'"@START@"', b"%d" % (end - 10 * S)).replace(
            b'"@END@"', b"%d" % end)
        pub.publish(WINDOWS_TOPIC, key, sign_window(body, keys[site]))
        i += 1
        if every_30_s is not None and el - last >= 30:
            every_30_s(el, i)
            last = el
        ahead = i / rate - (time.perf_counter() - t0)
        if ahead > 0.05 or i % 1000 == 0:
            pub.flush()
            if ahead > 0:
                time.sleep(ahead)
    pub.flush()
    el = time.perf_counter() - t0
    if every_30_s is not None:
        every_30_s(el, i)
    return i, tuple(agents), el


def steal_seconds() -> float:
    """CPU time the hypervisor gave other guests, all cores, so far (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process and its reaped children so far (/proc/PID/stat)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (/proc/PID/stat), but multiprocessing's resource tracker."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"resource_tracker" not in cmdline:
            out.append(int(stat.parent.name))
    return sorted(out)


def count_windows(client, db: str, agents: tuple[str, ...] | None = None) -> int:
    if agents:
        return client.execute(f"SELECT count() FROM {db}.windows WHERE agent_id IN %(a)s", {"a": agents})[0][0]
    return client.execute(f"SELECT count() FROM {db}.windows")[0][0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=10_000, help="node windows (8 GPUs each)")
    ap.add_argument("--latency-s", type=float, default=20.0)
    ap.add_argument("--profile", type=Path, default=None,
                    help="record the worker with py-spy during the throughput phase (collapsed stacks to this "
                         "file) and print the top functions")
    ap.add_argument("--rules", choices=["compiled", "python"], default="compiled",
                    help="the worker's BRIDGELEDGER_RULES (python: the baseline before the compiled rules)")
    ap.add_argument("--verify-threads", type=int, default=None,
                    help="BRIDGELEDGER_VERIFY_THREADS of the worker (default: its own, one per core beyond the "
                         "first, at most 4; 0 checks signatures in the worker's own thread)")
    ap.add_argument("--verify-processes", type=int, default=None,
                    help="BRIDGELEDGER_VERIFY_PROCESSES of the worker (a pool of verifying processes instead)")
    ap.add_argument("--soak-s", type=float, default=0.0,
                    help="after the latency run, keep producing at half rate this long and print the worker RSS")
    args = ap.parse_args()

    state = ROOT / ".state-bench"
    stack = Stack(state, StackPorts.offset(20000))
    stack.down()
    shutil.rmtree(state, ignore_errors=True)
    stack.up(timeout_s=240)
    ch = ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="writer",
                            password_file=stack.password_file("writer"))
    migrator = connect(ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="migrator",
                                          password_file=stack.password_file("migrator")), database="system")
    apply_migrations(migrator, ch.database)
    client = connect(ch)
    from streams.topic_admin import declare_topics

    declare_topics(stack.kafka_bootstrap, 4)

    raws = make_windows(args.windows)
    n = len(raws)
    produce_s = produce(stack, raws)
    raw_s = asyncio.run(raw_ceiling(stack, n))
    ch_s, n_entries = clickhouse_ceiling(client, migrator, ch.database, raws)

    metrics_port = stack.ports.clickhouse_tcp + 7
    env = {**os.environ, **stack.client_env(), "BRIDGELEDGER_CONSORTIUM_CONFIG": str(CONFIG),
           "BRIDGELEDGER_STATE_DIR": str(state), "BRIDGELEDGER_PORT_OFFSET": "20000",
           "BRIDGELEDGER_METRICS_PORT": str(metrics_port), "BRIDGELEDGER_RULES": args.rules}
    for name, value in (("THREADS", args.verify_threads), ("PROCESSES", args.verify_processes)):
        if value is not None:
            env[f"BRIDGELEDGER_VERIFY_{name}"] = str(value)
    log = open(state / "bench-worker.log", "ab")
    worker = subprocess.Popen([sys.executable, "-m", "bridgeledger.cli", "stream", "run"], env=env, cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    spy = None
    py_spy = Path(sys.executable).parent / "py-spy"
    if args.profile and not py_spy.exists():
        print(f"--profile needs py-spy ({py_spy} is missing): pip install py-spy; running without a profile")
        args.profile = None
    if args.profile:
        spy = subprocess.Popen([str(py_spy), "record", "--pid", str(worker.pid),
                                "--format", "raw", "--rate", "200", "--nonblocking", "-o", str(args.profile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_first = None
    first_count = 0
    pids = {"worker": worker.pid, **{s.name: s.pid for s in stack.status()}}
    first_cpu: dict[str, float] = {}
    first_metrics: dict[str, float] = {}
    first_steal = 0.0
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        c = count_windows(client, ch.database)
        if c and t_first is None:
            t_first, first_count = time.perf_counter(), c
            first_metrics = worker_metrics(metrics_port)
            # the worker's verifying processes (streams/verifier.py), started before its first batch
            pids.update({f"verifier {i}": pid for i, pid in enumerate(children(worker.pid))})
            first_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
            first_steal = steal_seconds()
        if c >= n:
            break
        time.sleep(0.25)
    pipe_s = time.perf_counter() - (t_first or time.perf_counter())
    pipe_rate = (n - first_count) / pipe_s if pipe_s > 0 else float("nan")
    last_metrics = worker_metrics(metrics_port)
    cpu = {name: cpu_seconds(pid) - first_cpu.get(name, 0.0) for name, pid in pids.items()}
    steal = steal_seconds() - first_steal
    split = {k: last_metrics.get(k, 0.0) - first_metrics.get(k, 0.0)
             for k in ("process_seconds_total", "sink_seconds_total", "verify_cpu_seconds_total",
                       "verify_wait_seconds_total")}
    if spy is not None:
        spy.send_signal(2)
        spy.wait(60)

    # latency at half the pipeline's rate: windows that end "now" when produced
    rate = max(1.0, pipe_rate / 2)
    pub = paced_publisher(stack.kafka_bootstrap)
    sent, agents, lat_s = paced(pub, raws, rate, args.latency_s, "lat")
    deadline = time.monotonic() + 120
    while count_windows(client, ch.database, agents) < sent and time.monotonic() < deadline:
        time.sleep(0.5)
    p50, p99 = client.execute(
        f"SELECT quantiles(0.5, 0.99)(toFloat64(toUInt32(committed_at)) - window_end_ns / 1e9) FROM "
        f"(SELECT batch_id, window_end_ns FROM {ch.database}.windows WHERE agent_id IN %(a)s) AS w "
        f"ANY INNER JOIN (SELECT batch_id, committed_at FROM {ch.database}.ledger_batches) AS b USING batch_id",
        {"a": agents})[0][0]

    def rss(field: str = "VmRSS") -> int:
        return next(int(line.split()[1]) for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines()
                    if line.startswith(field))

    soak: list[tuple[int, int, int]] = []  # (seconds, windows sent, RSS KiB)
    if args.soak_s:
        paced(pub, raws, rate, args.soak_s, "soak", every_30_s=lambda el, i: soak.append((int(el), i, rss())))
    rss_kb = rss("VmHWM")
    os.killpg(worker.pid, 9)
    stack.down()

    gpu = 8
    ceilings = {"raw Kafka consume+decode": n * gpu / raw_s,
                "ClickHouse insert": n_entries / ch_s * (n * gpu / n_entries)}
    print(f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB; "
          f"{n} node windows x {gpu} GPUs = {n * gpu} GPU-windows, {n_entries} ledger entries "
          f"({n_entries / (n * gpu):.2f} per GPU-window); produced in {produce_s:.1f} s")
    for name, r in ceilings.items():
        print(f"ceiling  {name:<28} {r:>12,.0f} GPU-windows/s")
    print(f"pipeline Faust worker -> ClickHouse  {pipe_rate * gpu:>12,.0f} GPU-windows/s "
          f"({pipe_rate:,.0f} node windows/s)")
    print(f"ratio pipeline / min(ceilings): {pipe_rate * gpu / min(ceilings.values()):.3f}")
    if pipe_s > 0:
        p_s, s_s = split["process_seconds_total"], split["sink_seconds_total"]
        wait_s = split["verify_wait_seconds_total"]
        print(f"worker time over the throughput phase ({pipe_s:.1f} s): decode+validate+attribute {p_s:.1f} s "
              f"({100 * p_s / pipe_s:.0f} %, event loop, of which {wait_s:.1f} s waiting for the signature "
              f"checks), ClickHouse sink {s_s:.1f} s "
              f"({100 * s_s / pipe_s:.0f} %, sink thread, overlapping the next batch's processing)")
        shares = ", ".join(f"{name} {sec:.1f} s ({100 * sec / pipe_s:.0f} % of a core)" for name, sec in cpu.items())
        print(f"CPU over the throughput phase: {shares}; the machine has {os.cpu_count()} cores, of which the "
              f"hypervisor gave {steal:.1f} s ({100 * steal / pipe_s:.0f} % of a core) to other guests")
        booked_gw = (n - first_count) * gpu
        # the checks on threads beside the worker are in its process's CPU: counted apart (its metric)
        beside = split["verify_cpu_seconds_total"]
        own = (cpu["worker"] - beside) / booked_gw
        verify = (beside + sum(sec for name, sec in cpu.items() if name.startswith("verifier"))) / booked_gw
        where = (f"{sum(name.startswith('verifier') for name in cpu)} process(es)" if beside == 0 else
                 "thread(s) of the worker process")
        print(f"worker, its own path: {own * 1e6:.1f} µs CPU per GPU-window = {1 / own:,.0f} GPU-windows/s on one "
              f"core (ratio {1 / own / min(ceilings.values()):.3f}); signature checks beside it: {verify * 1e6:.1f} "
              f"µs CPU per GPU-window, in {where}")
    print(f"latency at {sent / lat_s * gpu:,.0f} GPU-windows/s (target {rate * gpu:,.0f}) for {args.latency_s:.0f} s: "
          f"p50 {p50:.2f} s, p99 {p99:.2f} s (window end to batch commit, 1 s resolution)")
    print(f"worker peak RSS: {rss_kb / 1024:.0f} MiB")
    for sec, sent_n, kb in soak:
        print(f"soak t={sec:>4d} s windows sent {sent_n:>8d} worker RSS {kb / 1024:6.0f} MiB")
    if args.profile and args.profile.exists():
        print_profile(args.profile)


def print_profile(path: Path, top: int = 25) -> None:
    """Self and inclusive share of samples per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split("/")[-1].rstrip(")").split(":")[0] + ")" for f in stack.split(";")]
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    print(f"profile of the worker during the throughput phase ({total} samples; self %, inclusive %):")
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / total:5.1f} {100 * incl[f] / total:5.1f}  {f}")


if __name__ == "__main__":
    main()
