"""Where job events come from: scheduler hooks and pollers at the site.

Each source turns what a scheduler says into :class:`schemas.JobEvent` values
(start/end, site, job id, account, GPUs); ``bridgeledger jobs ...`` publishes
them to ``jobs.events`` or writes them as JSON lines.

- Slurm prolog/epilog (``deploy/slurm/``): the job's environment.
- ``sacct`` poller: ``sacct -P -n -X -o JobID,Account,State,Start,End,NodeList``.
- Kubernetes pod watcher: watch events of ``/api/v1/pods?watch=1``; the pod's
  namespace is its account, ``pod-<uid>`` its job id (as the agent's cgroup
  resolver names it).
- Static schedule file: YAML list of jobs with start and end times.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from agents import AgentError
from schemas import JobEvent

__all__ = [
    "JobSourceError",
    "events_from_schedule",
    "parse_iso_ns",
    "parse_pod_watch",
    "parse_sacct",
    "slurm_hook_event",
]

SACCT_FIELDS = ("JobID", "Account", "State", "Start", "End", "NodeList")


class JobSourceError(AgentError):
    """A scheduler's output that cannot be read; names the line."""


def _known_ns(value: object) -> int:
    ns = parse_iso_ns(str(value))
    if ns is None:
        raise ValueError(f"{value!r} is not a time")
    return ns


def parse_iso_ns(text: str) -> int | None:
    """ISO-8601 / RFC 3339 time to ns since the epoch; naive times are UTC (sacct on a UTC host)."""
    if not text or text in ("Unknown", "None", "N/A"):
        return None
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def slurm_hook_event(event: str, site_id: str, env: Mapping[str, str], gpus: list[str],
                     now_ns: int) -> JobEvent:
    """A prolog (start) or epilog (end) event from the job's environment."""
    job = env.get("SLURM_JOB_ID")
    account = env.get("SLURM_JOB_ACCOUNT")
    if not job or not account:
        raise JobSourceError("SLURM_JOB_ID and SLURM_JOB_ACCOUNT must be set (run from a Slurm prolog/epilog)")
    return JobEvent(event=event, site_id=site_id, job_id=job, account=account,  # type: ignore[arg-type]
                    node=env.get("SLURMD_NODENAME"), gpus=gpus,
                    exclusive=env.get("SLURM_JOB_EXCLUSIVE", "") in ("1", "yes", "true") or bool(gpus),
                    time_ns=now_ns)


def parse_sacct(text: str, site_id: str) -> list[JobEvent]:
    """Start and end events of jobs listed by sacct (parsable, one line per job allocation)."""
    events = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("|")
        if len(cols) < len(SACCT_FIELDS):
            raise JobSourceError(f"sacct line {n}: expected {len(SACCT_FIELDS)} '|'-separated fields: {line!r}")
        job, account, _state, start, end, nodes = cols[:6]
        if "." in job:  # a job step, not the allocation
            continue
        try:
            start_ns, end_ns = parse_iso_ns(start), parse_iso_ns(end)
        except ValueError as exc:
            raise JobSourceError(f"sacct line {n}: bad time: {exc}") from exc
        if not account:
            raise JobSourceError(f"sacct line {n}: job {job} has no account")
        node = nodes if nodes and nodes != "None assigned" else None
        if start_ns is not None:
            events.append(JobEvent(event="start", site_id=site_id, job_id=job, account=account, node=node,
                                   time_ns=start_ns))
        if end_ns is not None:
            events.append(JobEvent(event="end", site_id=site_id, job_id=job, account=account, node=node,
                                   time_ns=end_ns))
    return events


def _pod_events(pod: Mapping[str, Any], site_id: str) -> list[JobEvent]:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    uid, namespace = meta.get("uid"), meta.get("namespace")
    if not uid or not namespace:
        raise JobSourceError(f"pod without uid or namespace: {meta.get('name')!r}")
    gpus = sum(int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
               for c in spec.get("containers", []))
    if gpus == 0:
        return []  # no GPU: nothing to account
    job = f"pod-{uid}"
    node = spec.get("nodeName")
    out = []
    started = parse_iso_ns(status.get("startTime", ""))
    if started is not None and status.get("phase") in ("Running", "Succeeded", "Failed"):
        out.append(JobEvent(event="start", site_id=site_id, job_id=job, account=namespace, node=node,
                            time_ns=started))
    if status.get("phase") in ("Succeeded", "Failed"):
        finished = [parse_iso_ns(cs.get("state", {}).get("terminated", {}).get("finishedAt", ""))
                    for cs in status.get("containerStatuses", [])]
        ends = [f for f in finished if f is not None]
        if ends:
            out.append(JobEvent(event="end", site_id=site_id, job_id=job, account=namespace, node=node,
                                time_ns=max(ends)))
    return out


def parse_pod_watch(lines: Iterable[str], site_id: str) -> Iterator[JobEvent]:
    """Job events from a pod watch stream (one JSON watch event per line); each event once."""
    seen: set[tuple[str, str]] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JobSourceError(f"watch line {n}: not JSON: {exc}") from exc
        pod = ev.get("object", ev)
        if pod.get("kind", "Pod") != "Pod":
            continue
        for e in _pod_events(pod, site_id):
            if (e.job_id, e.event) not in seen:
                seen.add((e.job_id, e.event))
                yield e


def events_from_schedule(text: str, site_id: str) -> list[JobEvent]:
    """A static schedule: ``[{job_id, account, start, end?, gpus?, exclusive?, node?}]``."""
    doc = yaml.safe_load(text) or []
    if not isinstance(doc, list):
        raise JobSourceError("a schedule file is a YAML list of jobs")
    events = []
    for i, job in enumerate(doc):
        try:
            base = {"site_id": site_id, "job_id": str(job["job_id"]), "account": job["account"],
                    "node": job.get("node"), "gpus": job.get("gpus", []), "exclusive": job.get("exclusive", False)}
            events.append(JobEvent(event="start", time_ns=_known_ns(job["start"]), **base))
            if job.get("end"):
                events.append(JobEvent(event="end", time_ns=_known_ns(job["end"]), **base))
        except (KeyError, TypeError, ValueError) as exc:
            raise JobSourceError(f"schedule entry {i}: {exc}") from exc
    return sorted(events, key=lambda e: e.time_ns)
