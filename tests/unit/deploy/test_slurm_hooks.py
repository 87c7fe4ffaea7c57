"""The Slurm prolog/epilog as slurmd runs them (a clean environment, no PATH),
and the outbox they write, delivered by `jobs deliver`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.job_outbox import deliver_outbox, event_from_record, load_jobs_settings, write_record
from schemas.jobs import JobEvent

ROOT = Path(__file__).resolve().parents[3]
SLURM = ROOT / "deploy" / "slurm"
GPUS = {"0": "GPU-aaaa-0", "1": "GPU-bbbb-1", "3": "GPU-dddd-3"}


@pytest.fixture()
def installed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """prolog and epilog installed side by side as slurm.conf names them, a settings file, the outbox."""
    hooks = tmp_path / "slurm"
    hooks.mkdir()
    for src, dst in (("prolog.sh", "bridgeledger-prolog.sh"), ("epilog.sh", "bridgeledger-epilog.sh")):
        (hooks / dst).write_text((SLURM / src).read_text())
        (hooks / dst).chmod(0o755)
    outbox = tmp_path / "outbox"
    cfg = tmp_path / "jobs.yaml"
    # a broker nobody listens on: the hooks never touch the network anyway
    cfg.write_text(f"site: kr-daejeon\noutbox: {outbox}\nkafka:\n  bootstrap: 127.0.0.1:9\n")
    return hooks, cfg, outbox


def run_hook(hooks: Path, name: str, cfg: Path, **slurm: str) -> tuple[subprocess.CompletedProcess[str], float]:
    # what slurmd gives a prolog: SLURM_* variables and nothing else (no PATH, no HOME)
    env = ["env", "-i", f"BRIDGELEDGER_JOBS_SETTINGS={cfg}", *(f"{k}={v}" for k, v in slurm.items())]
    t0 = time.monotonic()
    res = subprocess.run([*env, str(hooks / name)], capture_output=True, text=True, timeout=10)
    return res, time.monotonic() - t0


def test_prolog_and_epilog_under_a_clean_environment_return_at_once_and_leave_events(installed) -> None:
    hooks, cfg, outbox = installed
    job = {"SLURM_JOB_ID": "4711", "SLURM_JOB_ACCOUNT": "kr-llm", "SLURM_JOB_GPUS": "0,3",
           "SLURMD_NODENAME": "gpu017"}
    res, took = run_hook(hooks, "bridgeledger-prolog.sh", cfg, **job)
    assert res.returncode == 0 and took < 1.0, (res.stderr, took)
    res, took = run_hook(hooks, "bridgeledger-epilog.sh", cfg, **job)
    assert res.returncode == 0 and took < 1.0, (res.stderr, took)
    records = sorted(outbox.glob("*.job"))
    assert [p.name.split("-", 1)[1] for p in records] == ["4711-start.job", "4711-end.job"]
    assert not list(outbox.glob(".*.tmp"))
    sent: list[JobEvent] = []
    assert deliver_outbox(outbox, "kr-daejeon", sent.append, GPUS) == (2, 0)
    start, end = sent
    assert (start.event, start.job_id, start.account, start.node, start.gpus, start.exclusive) == (
        "start", "4711", "kr-llm", "gpu017", ["GPU-aaaa-0", "GPU-dddd-3"], True)
    assert end.event == "end" and end.time_ns >= start.time_ns > 1_700_000_000 * 10**9
    assert not list(outbox.glob("*.job"))  # delivered records are gone


def test_a_prolog_that_cannot_write_still_lets_the_job_start(tmp_path: Path, installed) -> None:
    hooks, _, _ = installed
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("outbox: /proc/forbidden/outbox\n")
    res, took = run_hook(hooks, "bridgeledger-prolog.sh", cfg, SLURM_JOB_ID="1", SLURM_JOB_ACCOUNT="kr-llm")
    assert res.returncode == 0 and took < 1.0


def test_the_hooks_pass_shellcheck() -> None:
    tool = Path(sys.executable).parent / "shellcheck"
    res = subprocess.run([str(tool), "--shell=sh", *map(str, sorted(SLURM.glob("*.sh")))], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_failed_publish_keeps_the_record_and_a_bad_one_is_set_aside(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    write_record(outbox, JobEvent(event="start", site_id="kr-daejeon", job_id="1", account="kr-llm", time_ns=10**18))
    (outbox / "0-2-start.job").write_text("event=start\njob_id=2\naccount=bad account!\ntime_ns=5\n")

    def down(event: JobEvent) -> None:
        raise ConnectionError("broker away")

    with pytest.raises(ConnectionError):
        deliver_outbox(outbox, "kr-daejeon", down, {})
    # the bad record went aside with its reason; the good one waits
    assert [p.name for p in outbox.glob("*.job")] == [f"{10**18}-1-start.job"]
    assert "account" in (outbox / "rejected" / "0-2-start.job.reason").read_text()
    sent: list[JobEvent] = []
    assert deliver_outbox(outbox, "kr-daejeon", sent.append, {}) == (1, 0)
    assert [e.job_id for e in sent] == ["1"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=20_000))
def test_any_bytes_in_the_outbox_are_set_aside_or_delivered_never_a_crash(tmp_path: Path, data: bytes) -> None:
    outbox = tmp_path / f"o{time.monotonic_ns()}"
    outbox.mkdir()
    (outbox / "1-x-start.job").write_bytes(data)
    sent: list[JobEvent] = []
    delivered, rejected = deliver_outbox(outbox, "kr-daejeon", sent.append, GPUS)
    assert delivered + rejected == 1 and not list(outbox.glob("*.job"))


def test_event_from_record_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="time_ns"):
        event_from_record(b"event=start\njob_id=1\naccount=a\n", "s", {})
    with pytest.raises(ValueError, match="event"):
        event_from_record(b"event=begin\njob_id=1\naccount=a\ntime_ns=1\n", "s", {})


def test_jobs_settings_errors_name_the_field(tmp_path: Path) -> None:
    from agents import AgentError

    p = tmp_path / "jobs.yaml"
    p.write_text("site: kr-daejeon\nkafka: {bootstrap: x:1, sasl_mechanism: MD5}\n")
    with pytest.raises(AgentError, match="kafka.sasl_mechanism"):
        load_jobs_settings(p)
    p.write_text("site: kr-daejeon\nkafka: {bootstrap: x:1}\ncolour: blue\n")
    with pytest.raises(AgentError, match="colour"):
        load_jobs_settings(p)
