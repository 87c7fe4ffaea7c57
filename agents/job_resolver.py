"""Job resolution: which job (and scheduler account) a GPU process belongs to.

Sources, first match wins: the process environment (``SLURM_JOB_ID``,
``SLURM_JOB_ACCOUNT``), its cgroup path (Slurm cgroup v1 and v2, Kubernetes
pod UIDs), then a static mapping file. An unknown process stays unknown:
the centre books it to the site's "unresolved" account, it is never guessed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "ChainResolver",
    "JobRef",
    "JobResolver",
    "ProcInfoResolver",
    "ProcResolver",
    "StaticJobAccounts",
    "parse_cgroup",
    "parse_environ",
]

log = logging.getLogger(__name__)

# Slurm cgroup v1: /slurm/uid_1000/job_1234/step_0; v2: .../job_1234/step_0/user/task_0
_SLURM_CGROUP = re.compile(r"/job_(\d+)(?:/|$)")
# Kubernetes: .../kubepods/burstable/pod<uid>/<container> (cgroupfs driver) or
# .../kubepods-burstable-pod<uid with _>.slice/... (systemd driver)
_UID = r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
_K8S_CGROUP = re.compile(rf"kubepods[^\n]*?pod({_UID})")


@dataclass(frozen=True, slots=True)
class JobRef:
    job_id: str
    account: str | None = None


class JobResolver(Protocol):
    def resolve(self, pid: int) -> JobRef | None: ...


def parse_environ(variables: Iterable[str]) -> JobRef | None:
    env = dict(v.split("=", 1) for v in variables if "=" in v)
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job:
        return None
    return JobRef(job, env.get("SLURM_JOB_ACCOUNT") or None)


def parse_cgroup(text: str) -> JobRef | None:
    m = _SLURM_CGROUP.search(text)
    if m:
        return JobRef(m.group(1))
    m = _K8S_CGROUP.search(text)
    if m:
        return JobRef("pod-" + m.group(1).replace("_", "-").lower())
    return None


class ProcResolver:
    """Reads ``<proc_root>/<pid>/environ`` and ``cgroup`` (root configurable for tests)."""

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self.root = proc_root
        self._warned: set[tuple[int, str]] = set()

    def resolve(self, pid: int) -> JobRef | None:
        base = self.root / str(pid)
        try:
            ref = parse_environ(
                (base / "environ").read_bytes().decode(errors="replace").split("\0")
            )
            if ref is not None:
                return ref
        except OSError as exc:
            self._warn(pid, f"environ unreadable ({exc.strerror}); trying cgroup")
        try:
            return parse_cgroup((base / "cgroup").read_text(errors="replace"))
        except OSError as exc:
            self._warn(pid, f"cgroup unreadable ({exc.strerror}); job stays unknown")
            return None

    def _warn(self, pid: int, msg: str) -> None:
        key = (pid, msg.split(" ", 1)[0])
        if key not in self._warned:  # once per pid and file, not once per sample
            self._warned.add(key)
            log.warning("pid %d: %s", pid, msg)


class ProcInfoResolver:
    """The ``proc_info.json`` of a recorded trace: what /proc said at capture time."""

    def __init__(self, proc_info: Mapping[str, Mapping[str, object]]) -> None:
        self.info = proc_info

    @classmethod
    def from_file(cls, path: Path) -> ProcInfoResolver:
        return cls(json.loads(path.read_text()) if path.exists() else {})

    def resolve(self, pid: int) -> JobRef | None:
        entry = self.info.get(str(pid))
        if not entry:
            return None
        env = entry.get("environ_job_vars")
        if isinstance(env, list):
            ref = parse_environ(str(v) for v in env)
            if ref is not None:
                return ref
        cgroup = entry.get("cgroup")
        return parse_cgroup(cgroup) if isinstance(cgroup, str) else None


class StaticJobAccounts:
    """Static mapping file (YAML/JSON ``{job_id: account}``): fills in accounts."""

    def __init__(self, accounts: Mapping[str, str]) -> None:
        self.accounts = {str(k): str(v) for k, v in accounts.items()}

    @classmethod
    def from_file(cls, path: Path) -> StaticJobAccounts:
        import yaml

        doc = yaml.safe_load(path.read_text()) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a mapping of job id to account")
        return cls(doc)

    def complete(self, ref: JobRef | None) -> JobRef | None:
        if ref is None or ref.account is not None:
            return ref
        return JobRef(ref.job_id, self.accounts.get(ref.job_id))


class ChainResolver:
    """First resolver that knows the pid wins; static accounts fill in the account."""

    def __init__(self, *resolvers: JobResolver, accounts: StaticJobAccounts | None = None) -> None:
        self.resolvers = resolvers
        self.accounts = accounts

    def resolve(self, pid: int) -> JobRef | None:
        for r in self.resolvers:
            ref = r.resolve(pid)
            if ref is not None:
                return self.accounts.complete(ref) if self.accounts else ref
        return None
