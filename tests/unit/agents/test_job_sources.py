from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.job_sources import (
    JobSourceError,
    events_from_schedule,
    parse_iso_ns,
    parse_pod_watch,
    parse_sacct,
    slurm_hook_event,
)
from bridgeledger.cli import cli
from schemas.jobs import decode_job_event

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def test_sacct_allocations_not_steps() -> None:
    events = parse_sacct((FIX / "sacct.txt").read_text(), "kr-daejeon")
    assert [(e.job_id, e.event, e.account) for e in events] == [
        ("4242", "start", "kr-llm"), ("4242", "end", "kr-llm"), ("4243", "start", "ca-climate")]
    assert events[0].time_ns == parse_iso_ns("2026-11-20T08:00:00Z")
    assert events[0].node == "gpu[017-018]"


def test_sacct_bad_line_names_it() -> None:
    with pytest.raises(JobSourceError, match="sacct line 2"):
        parse_sacct("1|a|RUNNING|2026-11-20T08:00:00|Unknown|n\nbroken line\n", "s")


def test_pod_watch_gpu_pods_once_each() -> None:
    events = list(parse_pod_watch((FIX / "k8s-pod-watch.jsonl").read_text().splitlines(), "ca-montreal"))
    assert [(e.job_id, e.event, e.account, e.node) for e in events] == [
        ("pod-1b2c3d4e-1111-2222-3333-444455556666", "start", "sg-health", "gpu-a1"),
        ("pod-1b2c3d4e-1111-2222-3333-444455556666", "end", "sg-health", "gpu-a1"),
    ]
    assert events[1].time_ns - events[0].time_ns == int(2.5 * 3600) * 10**9


def test_pod_job_id_matches_the_agents_cgroup_resolver() -> None:
    from agents.job_resolver import parse_cgroup

    cg = "0::/kubepods/burstable/pod1b2c3d4e-1111-2222-3333-444455556666/c1\n"
    (event, *_) = parse_pod_watch((FIX / "k8s-pod-watch.jsonl").read_text().splitlines(), "s")
    assert parse_cgroup(cg).job_id == event.job_id


def test_schedule_and_slurm_hook() -> None:
    events = events_from_schedule((FIX / "schedule.yaml").read_text(), "de-juelich")
    assert [(e.job_id, e.event) for e in events] == [("res-1", "start"), ("res-2", "start"), ("res-1", "end")]
    assert events[0].exclusive and events[0].gpus == ["GPU-aaaa", "GPU-bbbb"]
    e = slurm_hook_event("start", "kr-daejeon", {"SLURM_JOB_ID": "7", "SLURM_JOB_ACCOUNT": "kr-llm",
                                                 "SLURMD_NODENAME": "gpu3"}, ["GPU-1"], 5)
    assert (e.job_id, e.account, e.node, e.gpus, e.exclusive) == ("7", "kr-llm", "gpu3", ["GPU-1"], True)
    with pytest.raises(JobSourceError, match="SLURM_JOB_ID"):
        slurm_hook_event("start", "s", {}, [], 5)


def test_jobs_cli_writes_events_that_attribute_reads(tmp_path: Path) -> None:
    out = tmp_path / "jobs.jsonl"
    r = CliRunner().invoke(cli, ["jobs", "sacct", "--site", "kr-daejeon", "--file", str(FIX / "sacct.txt"),
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["jobs", "schedule", str(FIX / "schedule.yaml"), "--site", "de-juelich",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert len(lines) == 6
    assert all(decode_job_event(x).site_id in ("kr-daejeon", "de-juelich") for x in lines)
    assert json.loads(lines[0])["job_id"] == "4242"
