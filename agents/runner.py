"""Driving readers: one node agent (reader → windower → publisher) and a fleet.

The clock is injected: the live agent uses the wall clock, the simulated
fleet a virtual one it advances itself, and a replay the trace's own times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agents import PublishError
from agents.job_resolver import ChainResolver, JobResolver, ProcInfoResolver, StaticJobAccounts
from agents.publisher import Publisher
from agents.readers.base import GpuReader
from agents.readers.replay import ReplayReader
from agents.readers.simulated import SimulatedReader
from agents.service import AgentService
from agents.spool import Spool
from agents.windowing import Windower
from schemas import ConsortiumConfig, JobEvent, TelemetryWindow
from schemas.signing import SigningKey, demo_key
from schemas.topics import JOBS_TOPIC

__all__ = ["FleetClock", "NodeAgent", "NodeTotals", "Signer", "build_sim_fleet", "demo_signers", "publish_job_events",
           "replay_trace", "run_fleet", "trace_job_events"]

log = logging.getLogger(__name__)


@dataclass
class NodeTotals:
    windows: int = 0
    energy_mj: int = 0
    gpu_ms: int = 0
    job_events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None

    def add(self, w: TelemetryWindow) -> None:
        self.windows += 1
        self.energy_mj += sum(g.energy_mj for g in w.gpus)
        self.gpu_ms += sum(g.gpu_ms for g in w.gpus)
        self.first_seq = w.seq if self.first_seq is None else self.first_seq
        self.last_seq = w.seq


# (key id, private key): how a node signs its windows (schemas/signing.py)
Signer = tuple[str, SigningKey]
# The replay and the simulator sign with each site's public demo key unless told otherwise.
DEMO: Literal["demo"] = "demo"


def demo_signers(config: ConsortiumConfig) -> dict[str, Signer]:
    """Each site's public demo key (schemas/signing.py ``demo_key``): the demo, the
    simulator and the tests sign like production agents, with keys anyone can derive."""
    return {site.id: demo_key(site.id) for site in config.sites}


@dataclass
class NodeAgent:
    """A node agent for the replay, the simulator, the demo and the tests: the
    production :class:`agents.service.AgentService` (windowing, signing, the
    spool, sending in order) driven step by step, with its spool in memory.
    A window that cannot be sent is an error here (these runs are finite), not
    a window left for the next start."""

    service: AgentService
    totals: NodeTotals = field(default_factory=NodeTotals)

    @property
    def windower(self) -> Windower:
        return self.service.windower

    @classmethod
    def create(cls, reader: GpuReader, resolver: JobResolver, publisher: Publisher, *,
               agent_id: str, site_id: str, node: str, window_s: float, epoch: str,
               signer: Signer | None = None) -> NodeAgent:
        """``epoch``: a replay or a simulation derives it from its input, so that
        running the same input twice gives the same window ids (booked once)."""
        key_id, key = signer or (None, None)
        service = AgentService(reader=reader, resolver=resolver, spool=Spool(Path(":memory:"), new_epoch=lambda: epoch),
                               publisher_factory=lambda: publisher, agent_id=agent_id, site_id=site_id, node=node,
                               window_s=window_s, sample_s=1.0, key_id=key_id, key=key, send_timeout_s=60.0)
        return cls(service)

    def step(self) -> list[TelemetryWindow]:
        windows = self.service.tick(drain=False)
        self._send(windows)
        return windows

    def finish(self) -> TelemetryWindow | None:
        last = self.service.close_open_window()
        self._send([last] if last is not None else [])
        return last

    def _send(self, windows: Sequence[TelemetryWindow]) -> None:
        if not windows:
            return
        self.service.drain(force=True)
        left = self.service.spool.count()
        if left:
            raise PublishError(f"{left} window(s) of {self.windower.node} could not be sent; see the log")
        for w in windows:
            self.totals.add(w)


class FleetClock:
    """A virtual wall clock the fleet advances itself."""

    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns


def build_sim_fleet(
    config: ConsortiumConfig,
    publisher: Publisher,
    clock: Callable[[], int],
    *,
    start_ns: int,
    horizon_ns: int,
    nodes_per_site: int,
    gpus_per_node: int,
    window_s: float,
    seed: int,
    sites: Sequence[str] | None = None,
    signers: Mapping[str, Signer] | Literal["demo"] | None = DEMO,
) -> list[tuple[NodeAgent, SimulatedReader]]:
    """One simulated node agent per (site, node); models alternate by node.
    ``signers``: the key each site's nodes sign with ("demo": the sites' public
    demo keys; None: unsigned windows)."""
    if signers == DEMO:
        signers = demo_signers(config)
    from agents.readers.simulated import SIM_MODELS

    known = [n for g in config.gpu_models for n in g.names if n in SIM_MODELS]
    if not known:
        raise ValueError("the consortium config names no GPU model the simulator knows")
    accounts = [p.accounts[0] for p in config.projects]
    fleet = []
    for si, site in enumerate(sites or [s.id for s in config.sites]):
        if config.site(site) is None:
            raise ValueError(f"site {site!r} is not in the consortium config")
        for n in range(nodes_per_site):
            node = f"{site}-n{n + 1:02d}"
            model = known[(si + n) % len(known)]
            reader = SimulatedReader(
                node=node, site_id=site, models=[model] * gpus_per_node, accounts=accounts,
                seed=seed * 1000 + si * 100 + n, clock_ns=clock, start_ns=start_ns,
                horizon_ns=horizon_ns,
            )
            agent = NodeAgent.create(reader, reader, publisher, agent_id=node, site_id=site,
                                     node=node, window_s=window_s, epoch=f"sim{seed}",
                                     signer=(signers or {}).get(site))
            fleet.append((agent, reader))
    return fleet


def run_fleet(fleet: list[tuple[NodeAgent, SimulatedReader]], publisher: Publisher, clock: FleetClock, *,
              until_ns: int, step_ns: int = 1_000_000_000, job_events: bool = True, speed: float | None = None,
              on_tick: Callable[[], None] | None = None, finish: bool = True) -> None:
    """Drive a simulated fleet from the clock's time to ``until_ns``, one reading
    every ``step_ns``: the job events since the last step first (the scheduler
    speaks before the windows that bill it), then every agent reads and closes
    what windows it can. ``speed``: simulated seconds per wall second (None: as
    fast as possible). ``finish``: close the open windows at the end. The one
    loop behind ``agent sim``, the demo, the tests and the bench."""
    start = prev = clock.now_ns
    wall0 = time.monotonic()
    while clock.now_ns <= until_ns:
        for agent, reader in fleet:
            if job_events:
                agent.totals.job_events += publish_job_events(reader, publisher, prev, clock.now_ns)
            agent.step()
        if on_tick is not None:
            on_tick()
        prev = clock.now_ns
        clock.now_ns += step_ns
        if speed:
            ahead = (clock.now_ns - start) / 1e9 / speed - (time.monotonic() - wall0)
            if ahead > 0.05:
                publisher.flush()
                time.sleep(ahead)
    if finish:
        for agent, _ in fleet:
            agent.finish()
    publisher.flush()


def publish_job_events(reader: SimulatedReader, publisher: Publisher, after_ns: int, until_ns: int) -> int:
    events = reader.job_events(after_ns, until_ns)
    for e in events:
        publisher.publish(JOBS_TOPIC, f"{e.site_id}/{e.job_id}".encode(), e.to_json_bytes())
    return len(events)


def replay_trace(trace_dir: Path, publisher: Publisher, *, site_id: str, node: str | None = None,
                 accounts: Path | None = None, window_s: float = 10.0,
                 signer: Signer | Literal["demo"] | None = DEMO) -> NodeAgent:
    """Run a recorded trace through the real windowing and job resolution, to the end.

    Who pays is the scheduler's word, so the replay also publishes what the
    site's Slurm prolog and epilog would have sent: a start event for each
    job before its first window and an end event after its last one."""
    reader = ReplayReader(trace_dir)
    resolver = ChainResolver(
        ProcInfoResolver.from_file(trace_dir / "proc_info.json"),
        accounts=StaticJobAccounts.from_file(accounts) if accounts else None,
    )
    node = node or "replay-" + str(reader.static["devices"][0]["uuid"])[4:12]
    starts, ends = trace_job_events(reader, resolver, site_id, node)
    for e in starts:
        publisher.publish(JOBS_TOPIC, f"{e.site_id}/{e.job_id}".encode(), e.to_json_bytes())
    agent = NodeAgent.create(reader, resolver, publisher, agent_id=node, site_id=site_id, node=node,
                             window_s=window_s, epoch="replay", signer=demo_key(site_id) if signer == DEMO else signer)
    while not reader.exhausted:
        agent.step()
    agent.finish()
    for e in ends:
        publisher.publish(JOBS_TOPIC, f"{e.site_id}/{e.job_id}".encode(), e.to_json_bytes())
    agent.totals.job_events = len(starts) + len(ends)
    publisher.flush()
    return agent


def trace_job_events(reader: ReplayReader, resolver: JobResolver, site_id: str,
                     node: str) -> tuple[list[JobEvent], list[JobEvent]]:
    """The start and end events of the trace's jobs: from the first to the last
    reading in which one of the job's processes ran, on the trace's GPUs. A job
    whose account nobody knows gets no event (its usage stays unresolved)."""
    spans: dict[str, tuple[int, int]] = {}  # job -> (first t, last t)
    accounts: dict[str, str] = {}
    job_gpus: dict[str, set[str]] = {}
    for s in reader.samples:
        pids = set(s.running_pids) | {pu.pid for pu in s.process_util or ()}
        for pid in pids:
            ref = resolver.resolve(pid)
            if ref is None or not ref.account:
                continue
            first, last = spans.get(ref.job_id, (s.t_ns, s.t_ns))
            spans[ref.job_id] = (min(first, s.t_ns), max(last, s.t_ns))
            accounts.setdefault(ref.job_id, ref.account)
            job_gpus.setdefault(ref.job_id, set()).add(s.uuid)
    starts, ends = [], []
    for job, (first, last) in sorted(spans.items()):
        gpus = sorted(job_gpus[job])
        starts.append(JobEvent(event="start", site_id=site_id, job_id=job, account=accounts[job], node=node,
                               gpus=gpus, time_ns=first))
        ends.append(JobEvent(event="end", site_id=site_id, job_id=job, account=accounts[job], node=node,
                             gpus=gpus, time_ns=last))
    return starts, ends
