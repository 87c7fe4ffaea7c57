"""A simulated GPU node: deterministic by seed, same interface as NVML.

Each GPU follows a schedule of segments (idle, one job, or two jobs
time-slicing) with per-job duty cycles; power follows utilisation with a
per-second jitter derived from a hash, and the energy counter is the exact
integral of that power from the simulation's epoch. Counter and power are
therefore functions of time alone: a restarted agent (same seed and epoch)
reads the same counter it would have read without the restart.

The simulated node is also its own job resolver (it knows which pid runs
which job) and emits the job start/end events a scheduler hook would.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from agents.job_resolver import JobRef
from agents.readers.base import GpuSample, ProcessUtil
from schemas import JobEvent

__all__ = ["SIM_MODELS", "SimJob", "SimulatedReader"]

# NVML name -> (idle W, busy W, limit W)
SIM_MODELS: dict[str, tuple[int, int, int]] = {
    "NVIDIA H100 80GB HBM3": (70, 660, 700),
    "NVIDIA A100-SXM4-80GB": (55, 380, 400),
}
MINUTE_NS = 60_000_000_000
S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SimJob:
    job_id: str
    account: str
    pid: int
    duty: float
    start_ns: int
    end_ns: int
    gpu_uuid: str


@dataclass
class _SimGpu:
    uuid: str
    model: str
    base_mj: int
    jobs: list[SimJob]
    # segments in time order: (start_ns, end_ns, jobs running in it)
    segments: list[tuple[int, int, list[SimJob]]]
    starts: list[int]
    done_sec: int
    cum_mj: int = 0
    counter_mj: int = 0


class SimulatedReader:
    def __init__(
        self,
        *,
        node: str,
        site_id: str,
        models: Sequence[str],
        accounts: Sequence[str],
        seed: int,
        clock_ns: Callable[[], int],
        start_ns: int,
        horizon_ns: int,
        mean_job_min: float = 25.0,
    ) -> None:
        for m in models:
            if m not in SIM_MODELS:
                raise ValueError(f"no simulation profile for GPU model {m!r}")
        if not accounts:
            raise ValueError("a simulated node needs at least one account to run jobs for")
        self.node = node
        self.site_id = site_id
        self.clock_ns = clock_ns
        self._rng = random.Random(seed)
        # A new simulated "boot" per run start, so separate runs never share window ids.
        self._boot = "sim-" + hashlib.sha256(f"{node}:{seed}:{start_ns}".encode()).hexdigest()[:16]
        self._pids: dict[int, SimJob] = {}
        self.gpus: list[_SimGpu] = []
        next_pid = 10_000
        self.start_s = start_ns // S
        for i, model in enumerate(models):
            uuid = "GPU-" + hashlib.sha256(f"{node}/{i}/{seed}".encode()).hexdigest()[:32]
            jobs: list[SimJob] = []
            segments: list[tuple[int, int, list[SimJob]]] = []
            t = start_ns
            while t < start_ns + horizon_ns:
                dur = int(self._rng.uniform(0.3, 1.7) * mean_job_min * MINUTE_NS)
                kind = self._rng.random()
                tenants = 0 if kind < 0.12 else (1 if kind < 0.8 else 2)
                seg: list[SimJob] = []
                for k in range(tenants):
                    next_pid += 1
                    duty = self._rng.uniform(0.6, 1.0) if k == 0 else self._rng.uniform(0.15, 0.6)
                    # job ids unique per run, as a scheduler's are: runs with other seeds never reuse them
                    job = SimJob(f"{node}-{seed}-{next_pid}", self._rng.choice(list(accounts)), next_pid,
                                 round(duty, 3), t, t + dur, uuid)
                    seg.append(job)
                    self._pids[next_pid] = job
                jobs.extend(seg)
                segments.append((t, t + dur, seg))
                t += dur
            base = self._rng.randrange(10**6, 10**9)
            self.gpus.append(_SimGpu(uuid, model, base, jobs, segments, [x[0] for x in segments],
                                     self.start_s))

    # -- GpuReader ------------------------------------------------------------------
    def boot_id(self) -> str:
        return self._boot

    def _active(self, g: _SimGpu, t_ns: int) -> list[SimJob]:
        i = bisect.bisect_right(g.starts, t_ns) - 1
        if i < 0:
            return []
        start, end, seg = g.segments[i]
        return seg if start <= t_ns < end else []

    def _power_mw(self, g: _SimGpu, sec: int) -> int:
        active = self._active(g, sec * S)
        load = min(1.0, sum(j.duty for j in active))
        idle_w, busy_w, _ = SIM_MODELS[g.model]
        if not active:
            return idle_w * 1000
        h = hashlib.blake2b(f"{g.uuid}:{sec}".encode(), digest_size=4).digest()
        jitter = 0.94 + 0.06 * int.from_bytes(h, "big") / 2**32
        return int((idle_w + (busy_w - idle_w) * load * jitter) * 1000)

    def _counter(self, g: _SimGpu, t_ns: int) -> int:
        sec = max(t_ns // S, self.start_s)
        while g.done_sec < sec:  # whole seconds: power in mW over 1 s is mJ
            g.cum_mj += self._power_mw(g, g.done_sec)
            g.done_sec += 1
        frac = max(0, t_ns - sec * S)
        return g.base_mj + g.cum_mj + self._power_mw(g, sec) * frac // S

    def add_energy(self, samples: list[GpuSample]) -> list[GpuSample]:
        counters = {g.uuid: g.counter_mj for g in self.gpus}
        return [replace(s, energy_mj=counters[s.uuid], energy_skipped=False) if s.energy_skipped else s
                for s in samples]

    def sample(self, energy: bool = True) -> list[GpuSample]:
        t = self.clock_ns()
        out = []
        for g in self.gpus:
            active = self._active(g, t)
            g.counter_mj = self._counter(g, t)
            load = min(1.0, sum(j.duty for j in active))
            _, _, limit_w = SIM_MODELS[g.model]
            denom = max(1.0, sum(j.duty for j in active))
            out.append(
                GpuSample(
                    uuid=g.uuid,
                    model=g.model,
                    t_ns=t,
                    energy_mj=g.counter_mj if energy else None,
                    energy_skipped=not energy,
                    power_mw=self._power_mw(g, t // S),
                    util_gpu=round(load * 100),
                    mem_used_bytes=sum(8 << 30 for _ in active),
                    power_limit_mw=limit_w * 1000,
                    running_pids=tuple(j.pid for j in active),
                    process_util=tuple(ProcessUtil(j.pid, round(100 * j.duty / denom)) for j in active),
                )
            )
        return out

    def close(self) -> None:
        pass

    # -- what a scheduler would tell -------------------------------------------------
    def resolve(self, pid: int) -> JobRef | None:
        job = self._pids.get(pid)
        return JobRef(job.job_id, job.account) if job else None

    def job_events(self, after_ns: int, until_ns: int) -> list[JobEvent]:
        """Start/end events with a time in (after_ns, until_ns], in time order."""
        events = []
        for g in self.gpus:
            for j in g.jobs:
                edges: tuple[tuple[Literal["start", "end"], int], ...] = (("start", j.start_ns), ("end", j.end_ns))
                for kind, when in edges:
                    if after_ns < when <= until_ns or (kind == "start" and when == after_ns == j.start_ns):
                        events.append(JobEvent(event=kind, site_id=self.site_id, job_id=j.job_id,
                                               account=j.account, node=self.node, gpus=[g.uuid],
                                               time_ns=when))
        return sorted(events, key=lambda e: (e.time_ns, e.event != "end"))
