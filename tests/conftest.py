"""Shared fixtures. The integration stack (real Kafka + real ClickHouse) is
started once per test session in its own state dir (.state-test) and ports
(+10000), so tests never touch a demo's data; it is stopped at the end only
if this session started it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout; found from a copy of the tests too (mutmut runs them in mutants/)
FIXTURES = next((d / "shared" / "fixtures" / "nvml" for d in ROOT.parents
                 if (d / "shared" / "fixtures" / "nvml").is_dir()), ROOT.parent / "shared" / "fixtures" / "nvml")
TRACE = FIXTURES / "h100-two-jobs"
CONFIG = ROOT / "deploy" / "consortium.example.yaml"
TEST_PORT_OFFSET = 10000


@pytest.fixture(scope="session")
def trace_dir() -> Path:
    if not TRACE.exists():
        pytest.fail(f"the recorded NVML trace is missing: {TRACE}")
    return TRACE


@pytest.fixture(scope="session")
def config_and_hash() -> tuple[Any, str]:
    from schemas import load_config

    return load_config(CONFIG)


FAULT_TABLE: list[tuple[str, int, int, int]] = []


@pytest.fixture(scope="session")
def fault_table() -> list[tuple[str, int, int, int]]:
    """Rows (fault, windows produced, windows in the ledger, residual mJ) printed after the run."""
    return FAULT_TABLE


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FAULT_TABLE:
        return
    tr = terminalreporter
    tr.section("fault suite")
    tr.write_line(f"{'fault':<64}{'produced':>10}{'in ledger':>11}{'residual mJ':>13}")
    for fault, produced, booked, residual in FAULT_TABLE:
        tr.write_line(f"{fault:<64}{produced:>10}{booked:>11}{residual:>13}")


@pytest.fixture(scope="session")
def chdb_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A current ClickHouse engine in-process; one per test process (chdb allows one path)."""
    from tests.chdb_client import ChdbClient

    return ChdbClient(str(tmp_path_factory.mktemp("chdb")))


@pytest.fixture(scope="session")
def stack() -> Iterator[Any]:
    from bridgeledger.stack import Stack, StackPorts

    state = ROOT / ".state-test"
    s = Stack(state, StackPorts.offset(TEST_PORT_OFFSET))
    was_up = all(x.healthy for x in s.status())
    if not was_up:
        # a session starts from empty topics and tables: what earlier sessions
        # left (a 1 GB dead-letter topic, windows of runs killed half-way)
        # would slow tests down and show up in their checks
        s.down()
        import shutil

        shutil.rmtree(state, ignore_errors=True)
    s.up(timeout_s=240)
    yield s
    if not was_up and not os.environ.get("BRIDGELEDGER_KEEP_TEST_STACK"):
        s.down()


@pytest.fixture(scope="session")
def ch_settings(stack: Any) -> Any:
    from streams.clickhouse import ClickHouseSettings

    return ClickHouseSettings(host="127.0.0.1", port=stack.ports.clickhouse_tcp, user="writer",
                              password_file=stack.password_file("writer"))


@pytest.fixture(scope="session")
def migrator_settings(stack: Any) -> Any:
    from streams.clickhouse import ClickHouseSettings

    return ClickHouseSettings(host="127.0.0.1", port=stack.ports.clickhouse_tcp, user="migrator",
                              password_file=stack.password_file("migrator"))


@pytest.fixture(scope="session")
def ch(ch_settings: Any, migrator_settings: Any) -> Any:
    """The stream's confined writer, on a ledger migrated by the migrator."""
    from ledger.migrate import apply_migrations
    from streams.clickhouse import connect

    apply_migrations(connect(migrator_settings, database="system"), migrator_settings.database)
    return connect(ch_settings)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridgeledger.cli", *args]


class WorkerProcess:
    """The real stream worker (``bridgeledger stream run``) as a child process."""

    def __init__(self, stack: Any, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        self.stack = stack
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.stack.client_env(),
                "BRIDGELEDGER_CONSORTIUM_CONFIG": str(CONFIG),
                "BRIDGELEDGER_STATE_DIR": str(self.stack.state),
                "BRIDGELEDGER_PORT_OFFSET": str(TEST_PORT_OFFSET),
                "BRIDGELEDGER_BATCH_S": "0.3",
                # a checkpoint of the chain's head after every batch: statements cover all that was booked
                "BRIDGELEDGER_CHECKPOINT_INTERVAL_S": "0",
                # the recorded H100 trace (2026-11-26) is replayed through the worker: no age limit for it;
                # the age check itself is tested in tests/unit (test_poison.py, test_consumer.py)
                "BRIDGELEDGER_MAX_WINDOW_AGE_S": str(10 * 366 * 86_400), **self.extra_env}

    def start(self) -> None:
        self.proc = subprocess.Popen(_cli("stream", "run"), env=self.env(), cwd=ROOT,
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self, sig: int = 9) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                # Faust can hang stopping a consumer it is still starting; the
                # worker is safe to SIGKILL (offsets are acked after writes only).
                os.killpg(self.proc.pid, 9)
                self.proc.wait(20)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until Faust says the worker is ready (it logs this once per start)."""
        import time

        deadline = time.monotonic() + timeout_s
        starts = self.log_path.read_bytes().count(b"stream worker: config") if self.log_path.exists() else 0
        while time.monotonic() < deadline:
            data = self.log_path.read_bytes() if self.log_path.exists() else b""
            if data.count(b"[^Worker]: Ready") >= max(1, starts):
                return
            time.sleep(0.5)
        raise AssertionError(f"worker not ready after {timeout_s:.0f} s; see {self.log_path}")


@pytest.fixture(scope="session")
def worker(stack: Any, ch: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    w = WorkerProcess(stack, tmp_path_factory.mktemp("worker") / "worker.log")
    w.start()
    yield w
    w.kill(15)


# -- a ledger on the in-process engine, written from the H100 trace and a simulated node --
_LEDGER_DBS = itertools.count()


def ledger_messages(trace_dir: Path, config: Any) -> list[tuple[str, bytes, bytes]]:
    """The replayed H100 trace and a simulated node, with their job events."""
    from agents.publisher import MemoryPublisher
    from agents.runner import FleetClock, build_sim_fleet, replay_trace, run_fleet

    pub = MemoryPublisher()
    replay_trace(trace_dir, pub, site_id="kr-daejeon", node="r1",
                 accounts=ROOT / "deploy" / "replay-accounts.example.yaml")
    start = 1_795_000_000 * 10**9
    clock = FleetClock(start)
    fleet = build_sim_fleet(config, pub, clock, start_ns=start, horizon_ns=600 * 10**9, nodes_per_site=1,
                            gpus_per_node=2, window_s=10, seed=3, sites=["de-juelich"])
    run_fleet(fleet, pub, clock, until_ns=start + 600 * 10**9, finish=False)
    return pub.messages


@pytest.fixture()
def ledger_db(chdb_engine, trace_dir, config_and_hash):
    """A fresh database per test: the same pipeline output, written in batches of 7 windows."""
    from ledger.migrate import apply_migrations
    from streams.processing import WindowProcessor
    from streams.sink import ClickHouseSink
    from tests.helpers import book_messages

    db = f"bl_audit{next(_LEDGER_DBS)}"
    apply_migrations(chdb_engine, db)
    cfg, digest = config_and_hash
    proc = WindowProcessor(cfg, digest)
    sink = ClickHouseSink(chdb_engine, db)
    sink.record_config(digest, cfg.version, (ROOT / "deploy" / "consortium.example.yaml").read_bytes(),
                       [(m.code, m.name, m.contribution_share) for m in cfg.members])
    book_messages(ledger_messages(trace_dir, cfg), proc, sink)
    return chdb_engine, db
