"""Job events from a Slurm prolog reach the real broker through the outbox, after an outage."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from schemas.jobs import decode_job_event
from schemas.topics import JOBS_TOPIC
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def deliver(settings: Path, gpu_map: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridgeledger.cli", "jobs", "deliver", "--settings", str(settings),
                           "--gpu-map", str(gpu_map)], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_prolog_during_an_outage_then_delivery_when_the_broker_is_back(stack, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    hooks = tmp_path / "slurm"
    hooks.mkdir()
    (hooks / "bridgeledger-prolog.sh").write_text((ROOT / "deploy" / "slurm" / "prolog.sh").read_text())
    gpu_map = tmp_path / "gpus.csv"
    gpu_map.write_text("0,GPU-1111\n1,GPU-2222\n")
    job = f"slurm-{uuid.uuid4().hex[:8]}"
    down = tmp_path / "down.yaml"
    down.write_text(f"site: kr-daejeon\noutbox: {outbox}\nkafka:\n  bootstrap: 127.0.0.1:9\n")
    t0 = time.monotonic()
    res = subprocess.run(["env", "-i", f"BRIDGELEDGER_JOBS_SETTINGS={down}", f"SLURM_JOB_ID={job}",
                          "SLURM_JOB_ACCOUNT=kr-llm", "SLURM_JOB_GPUS=1", "/bin/sh",
                          str(hooks / "bridgeledger-prolog.sh")], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0 and time.monotonic() - t0 < 1.0
    # the broker is away: the delivery fails, names it, and keeps the event
    failed = deliver(down, gpu_map)
    assert failed.returncode == 1 and "not reachable" in failed.stderr and "1 event(s) wait" in failed.stderr
    assert len(list(outbox.glob("*.job"))) == 1
    # the broker is back
    up = tmp_path / "up.yaml"
    up.write_text(f"site: kr-daejeon\noutbox: {outbox}\nkafka:\n  bootstrap: {stack.kafka_bootstrap}\n")
    ok = deliver(up, gpu_map)
    assert ok.returncode == 0 and "1 job event(s) delivered" in ok.stdout, ok.stdout + ok.stderr
    assert not list(outbox.glob("*.job"))

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(JOBS_TOPIC, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=15_000, group_id=None)
    found = [decode_job_event(m.value) for m in consumer if m.key == f"kr-daejeon/{job}".encode()]
    consumer.close()
    assert [(e.event, e.account, e.gpus) for e in found] == [("start", "kr-llm", ["GPU-2222"])]
