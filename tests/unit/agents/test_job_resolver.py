from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agents.job_resolver import (
    ChainResolver,
    JobRef,
    ProcInfoResolver,
    ProcResolver,
    StaticJobAccounts,
    parse_cgroup,
    parse_environ,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12:devices:/slurm/uid_1000/job_4242/step_0\n", JobRef("4242")),
        ("0::/system.slice/slurmstepd.scope/job_777/step_batch/user/task_0\n", JobRef("777")),
        ("0::/kubepods/burstable/pod1b2c3d4e-1111-2222-3333-444455556666/abc\n",
         JobRef("pod-1b2c3d4e-1111-2222-3333-444455556666")),
        ("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_1111_2222_3333_444455556666.slice/cri-containerd-1.scope\n",
         JobRef("pod-1b2c3d4e-1111-2222-3333-444455556666")),
        ("0::/process_api/b7d930466f6b3c89bc4d2c441895ae78\n", None),
        ("0::/user.slice/user-1000.slice/session-3.scope\n", None),
    ],
)
def test_parse_cgroup(text: str, expected: JobRef | None) -> None:
    assert parse_cgroup(text) == expected


def test_parse_environ_reads_job_and_account() -> None:
    assert parse_environ(["PATH=/bin", "SLURM_JOB_ID=12", "SLURM_JOB_ACCOUNT=kr-llm"]) == JobRef("12", "kr-llm")
    assert parse_environ(["SLURM_JOBID=13"]) == JobRef("13")
    assert parse_environ(["HOME=/root"]) is None


def make_proc(root: Path, pid: int, environ: bytes | None, cgroup: str | None) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    if environ is not None:
        (d / "environ").write_bytes(environ)
    if cgroup is not None:
        (d / "cgroup").write_text(cgroup)


def test_proc_resolver_environ_then_cgroup_then_unknown(tmp_path: Path, caplog) -> None:
    make_proc(tmp_path, 10, b"A=1\0SLURM_JOB_ID=99\0SLURM_JOB_ACCOUNT=ca-climate\0", "0::/\n")
    make_proc(tmp_path, 11, b"A=1\0", "0::/slurm/uid_0/job_55/step_0\n")
    make_proc(tmp_path, 12, None, None)  # unreadable: process gone or hidden
    caplog.set_level(logging.WARNING)
    r = ProcResolver(tmp_path)
    assert r.resolve(10) == JobRef("99", "ca-climate")
    assert r.resolve(11) == JobRef("55")
    assert r.resolve(12) is None
    assert r.resolve(13) is None
    assert "pid 12: environ unreadable" in caplog.text
    assert "job stays unknown" in caplog.text


def test_trace_proc_info_and_static_accounts(trace_dir: Path, tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text('"1001": kr-llm\n')
    r = ChainResolver(ProcInfoResolver.from_file(trace_dir / "proc_info.json"),
                      accounts=StaticJobAccounts.from_file(accounts))
    assert r.resolve(420) == JobRef("1001", "kr-llm")
    assert r.resolve(451) == JobRef("1002", None)
    assert r.resolve(1) is None
