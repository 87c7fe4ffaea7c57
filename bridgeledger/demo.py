"""``make demo``: the whole pipeline on the real local stack, then the answer.

Stack up → migrations → stream worker → a simulated fleet on every site plus
one agent replaying the real H100 trace → wait until every produced window
is in the ledger → per-member table. The stack stays up; the worker and the
agents are stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from bridgeledger import StackError
from bridgeledger.stack import Stack, repo_root

__all__ = ["run_demo"]

TRACE = repo_root().parent / "shared" / "fixtures" / "nvml" / "h100-two-jobs"
CONFIG = repo_root() / "deploy" / "consortium.example.yaml"
REPLAY_ACCOUNTS = repo_root() / "deploy" / "replay-accounts.example.yaml"


DEMO_MAX_WINDOW_AGE_S = 10 * 366 * 86_400


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridgeledger.cli", *args]


def run_demo(stack: Stack, *, duration_s: float, echo: Callable[[str], None]) -> None:
    from ledger.migrate import apply_migrations
    from ledger.reports import format_member_table, member_summary
    from streams.clickhouse import ClickHouseSettings, connect

    echo("== 1/5 local stack (Kafka KRaft + ClickHouse) ==")
    for s in stack.up():
        echo("   " + s.line())
    # The recorded H100 trace is from 2026-11-26: older than the worker's default window age
    # (7 days) once a week has passed. The demo books it as if it had just arrived; a real
    # deployment books a late trace by a correction.
    env = {**os.environ, **stack.client_env(), "BRIDGELEDGER_CONSORTIUM_CONFIG": str(CONFIG),
           "BRIDGELEDGER_MAX_WINDOW_AGE_S": str(DEMO_MAX_WINDOW_AGE_S)}
    ch, migrator = (ClickHouseSettings.model_validate({k.removeprefix("BRIDGELEDGER_CH_").lower(): v
                                                       for k, v in stack.client_env(user).items()
                                                       if k.startswith("BRIDGELEDGER_CH_")})
                    for user in ("writer", "migrator"))
    echo("== 2/5 ledger schema (as the migrator; the stream's writer may not run DDL) ==")
    done = apply_migrations(connect(migrator, database="system"), migrator.database)
    echo("   applied: " + (", ".join(done) if done else "already up to date"))

    run_dir = stack.state / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    echo(f"== 3/5 stream worker (log: {run_dir / 'worker.log'}) ==")
    worker = subprocess.Popen(_cli("stream", "run"), env=env, cwd=repo_root(),
                              stdout=open(run_dir / "worker.log", "ab"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        echo(f"== 4/5 agents: simulated fleet for {duration_s:.0f} s + replay of the real H100 trace ==")
        summary = run_dir / "sim-summary.json"
        sim = subprocess.Popen(
            _cli("agent", "sim", "--config", str(CONFIG), "--duration-s", str(duration_s),
                 "--summary", str(summary)),
            env=env, cwd=repo_root(), stdout=open(run_dir / "sim.log", "ab"), stderr=subprocess.STDOUT,
        )
        expected: dict[str, int] = {}
        if TRACE.exists():
            replay_out = subprocess.run(
                _cli("agent", "replay", str(TRACE), "--kafka", "--site", "kr-daejeon",
                     "--node", "kr-daejeon-h100-replay", "--accounts", str(REPLAY_ACCOUNTS)),
                env=env, cwd=repo_root(), capture_output=True, text=True, check=False,
            )
            echo("   " + (replay_out.stdout.strip() or replay_out.stderr.strip()[-500:]))
        else:
            echo(f"   (no trace at {TRACE}; replay skipped)")
        if sim.wait() != 0:
            raise StackError(f"simulated fleet failed; see {run_dir / 'sim.log'}")
        expected = {a: t["windows"] for a, t in json.loads(summary.read_text()).items()}
        echo(f"   simulated fleet: {len(expected)} nodes, {sum(expected.values())} windows published")

        client = connect(ch)
        deadline = time.monotonic() + 120
        while True:
            got = dict(client.execute(
                f"SELECT agent_id, count() FROM {ch.database}.windows "
                f"WHERE agent_id IN %(ids)s GROUP BY agent_id", {"ids": tuple(expected)}))
            missing = sum(expected.values()) - sum(got.get(a, 0) for a in expected)
            if missing <= 0:
                break
            if worker.poll() is not None:
                raise StackError(f"stream worker exited; see {run_dir / 'worker.log'}")
            if time.monotonic() > deadline:
                raise StackError(f"{missing} windows not in the ledger after 120 s; see worker.log")
            time.sleep(1)
        echo("   every published window of the fleet is in the ledger")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)

    echo("== 5/5 usage by member country (whole ledger) ==")
    echo(format_member_table(member_summary(client, ch.database)))
    from datetime import datetime

    from ledger.audit import reconcile
    from ledger.verify import verify_ledger

    everything = (datetime(1970, 1, 1), datetime(2100, 1, 1))
    v = verify_ledger(client, ch.database, *everything)
    r = reconcile(client, ch.database, *everything)
    echo(f"\nAudit: hash chain {'verified' if v.ok else 'BROKEN'} ({v.batches} batches, {v.entries} entries); "
         f"conservation residual {r.residual_mj} mJ over {r.gpu_windows} GPU windows")
    # a member's witness: its own copy of the ledger's signed checkpoints, and the database against it
    witness_dir = run_dir / "witness"
    for args in (("ledger", "witness", "--out", str(witness_dir)), ("ledger", "verify", "--witness", str(witness_dir))):
        res = subprocess.run(_cli(*args), env=env, cwd=repo_root(), capture_output=True, text=True, check=False)
        last = (res.stdout.strip().splitlines() or [res.stderr.strip()[-300:]])[-1]
        echo(f"Witness: bridgeledger {' '.join(args[:2])}{' --witness' if 'verify' in args else ''}: {last}")
    pw = stack.password_file("auditor")
    echo(f"""
Query further as the read-only auditor:
  clickhouse-client --port {stack.ports.clickhouse_tcp} --user auditor --password "$(cat {pw})" \\
    --database bridgeledger -q "SELECT project, sum(energy_mj)/3.6e9 AS kWh FROM ledger GROUP BY project"
Per-member table again:   .venv/bin/bridgeledger ledger members
Monthly statement:        .venv/bin/bridgeledger ledger statement --member KR --month $(date -u +%Y-%m) \\
                            --format pdf --out kr.pdf
Audits:                   .venv/bin/bridgeledger ledger verify | reconcile | recompute
A member's witness:       .venv/bin/bridgeledger ledger witness --out witness/ && \\
                            .venv/bin/bridgeledger ledger verify --witness witness/
Dashboard pictures:       .venv/bin/bridgeledger dashboards preview --out previews/
Stack status / stop:      .venv/bin/bridgeledger stack status   |   make stack-down""")
