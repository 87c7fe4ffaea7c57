"""The agent process against the real broker: killed with SIGKILL while the
broker is down, both restarted, and every window arrives exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from agents.readers.simulated import SimulatedReader
from agents.spool import Spool
from schemas.topics import WINDOWS_TOPIC
from tests.conftest import ROOT
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
S = 1_000_000_000


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bridgeledger.cli", "agent", "run", "--config", str(config)],
                            cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def spool_count(path: Path) -> int:
    """Windows in the agent's spool, read without touching it (it may not exist yet)."""
    import sqlite3

    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM windows").fetchone()[0])
    except sqlite3.Error:
        return 0  # created but not yet initialised


def test_sigkill_during_broker_outage_loses_and_doubles_nothing(stack, tmp_path: Path, fault_table) -> None:
    from kafka import KafkaConsumer

    agent_id = f"outage-{uuid.uuid4().hex[:8]}"
    epoch = (time.time_ns() // S - 120) * S
    settings = {
        "agent_id": agent_id, "site_id": "kr-daejeon", "node": agent_id, "reader": "sim",
        "sim_gpus": 2, "sim_accounts": ["kr-llm"], "sim_seed": 11, "sim_epoch_ns": epoch,
        "window_s": 1, "sample_s": 0.25, "kafka_bootstrap": stack.kafka_bootstrap,
        "spool_path": str(tmp_path / "spool.sqlite"), "send_timeout_s": 3,
    }
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(settings))
    log = tmp_path / "agent.log"

    stack.stop("kafka")
    try:
        agent = start_agent(config, log)
        wait_for(lambda: spool_count(tmp_path / "spool.sqlite") >= 3, 90, "three windows spooled in the outage")
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(10)
        spool = Spool(tmp_path / "spool.sqlite")
        spooled = spool.count()
        assert spooled >= 3, log.read_text()[-2000:]

        agent = start_agent(config, log)
        wait_for(lambda: "resumed after a restart" in log.read_text(errors="replace"), 60,
                 "the restarted agent to resume from its spool")
    finally:
        stack.up(timeout_s=180)
    wait_for(lambda: spool.count() == 0, 90, "the spool to drain after the broker came back")
    os.killpg(agent.pid, signal.SIGTERM)
    assert agent.wait(30) == 0
    assert spool.count() == 0

    consumer = KafkaConsumer(WINDOWS_TOPIC, bootstrap_servers=stack.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=8000,
                             group_id=f"test-{agent_id}")
    windows = [json.loads(m.value) for m in consumer if m.key == agent_id.encode()]
    consumer.close()
    seqs = [w["seq"] for w in windows]
    assert seqs == list(range(len(seqs))), "every window exactly once, in order"
    assert len({w["boot_id"] for w in windows}) == 1
    for a, b in zip(windows, windows[1:], strict=False):
        assert a["window_end_ns"] == b["window_start_ns"]
    assert any("agent_restart" in g.get("flags", []) for w in windows for g in w["gpus"])

    # the simulated counter is a function of time: the windows must add up to it exactly
    sim = SimulatedReader(node=agent_id, site_id="kr-daejeon", models=["NVIDIA H100 80GB HBM3"] * 2,
                          accounts=["kr-llm"], seed=11, clock_ns=time.time_ns, start_ns=epoch,
                          horizon_ns=windows[-1]["window_end_ns"] - epoch + 2 * 86400 * S)
    residual = 0
    for gi, g in enumerate(sim.gpus):
        got = sum(w["gpus"][gi]["energy_mj"] for w in windows)
        assert windows[0]["gpus"][gi]["uuid"] == g.uuid
        first = sim._counter(g, windows[0]["window_start_ns"])  # the counter only moves forward
        residual += sim._counter(g, windows[-1]["window_end_ns"]) - first - got
    assert residual == 0
    fault_table.append(("broker down; agent SIGKILLed and restarted (windows in Kafka)", seqs[-1] + 1,
                        len(windows), residual))
