"""CPU cost of the node agent per sample, for an 8-GPU simulated node
(or, with ``--reader nvml`` on a GPU machine, the real GPUs).

Prints the CPU time per sample of (a) the bare reading (the baseline: what
reading the hardware costs here) and (b) the whole agent step (reading,
windowing, job resolution, signing, spooling to SQLite, sending to an
in-memory transport), both measured in this run, and the agent's share of
one core at 1 Hz. Target: under 0.2 % of one core for 8 GPUs.

    .venv/bin/python bench/agent.py [--samples 3000] [--reader sim|nvml|fake-nvml] [--procs N]

The agent step runs twice: reading the energy counter once per window (the
default) and at every sample (``counter_every_sample``).

With ``--reader nvml`` the readings are real NVML calls stamped by the
bench's 1 Hz clock, so that windows close without waiting wall-clock time;
jobs resolve from /proc. ``nvml`` and ``fake-nvml`` (an in-memory NVML,
tests/fake_nvml.py, for a machine without a GPU; ``--procs N`` runs N
processes on every GPU) also print the NVML calls per GPU and sample, and what they would
cost at the per-call CPU times measured on the H100 sandbox
(docs/benchmarks.md).

Last, the accuracy of the two ways against the recorded H100 trace
(shared/fixtures/nvml): the trace read once a second, each window's energy
compared with the 10 Hz counter at its boundaries.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.job_resolver import ProcInfoResolver, ProcResolver  # noqa: E402
from agents.publisher import MemoryPublisher  # noqa: E402
from agents.readers.replay import ReplayReader  # noqa: E402
from agents.readers.simulated import SimulatedReader  # noqa: E402
from agents.service import AgentService, read_once  # noqa: E402
from agents.spool import Spool  # noqa: E402
from agents.windowing import Windower  # noqa: E402
from schemas.signing import new_key  # noqa: E402

S = 1_000_000_000
TRACE = ROOT.parent / "shared" / "fixtures" / "nvml" / "h100-two-jobs"
# CPU µs per call on the lent H100 (gVisor sandbox), 2026-11-26 (docs/benchmarks.md);
# every other call measured 4-12 µs there
H100_SANDBOX_US = {"nvmlDeviceGetTotalEnergyConsumption": 4188.0, "nvmlDeviceGetProcessUtilization": 2482.0,
                   "nvmlDeviceGetMigMode": 257.0}
OTHER_CALL_US = 12.0


class CountingNvml:
    """Any NVML module (pynvml or the fake), counting the device calls made through it."""

    def __init__(self, nv: Any) -> None:
        self._nv = nv
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._nv, name)
        if not (name.startswith("nvmlDevice") and callable(attr)):
            return attr

        def counted(*args: Any) -> Any:
            self.calls[name] += 1
            return attr(*args)

        return counted


def fake_nvml(gpus: int, procs: int, now: list[int]) -> Any:
    from tests.fake_nvml import MovingNvml

    nv = MovingNvml(now, gpus)
    for h in range(gpus):
        nv.util_rows[h] = [SimpleNamespace(pid=100 * h + p, timeStamp=2**62, smUtil=90 // procs)
                           for p in range(procs)]
    return nv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--reader", choices=["sim", "nvml", "fake-nvml"], default="sim")
    ap.add_argument("--procs", type=int, default=0, help="fake-nvml: processes on every GPU")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the fake's "MIG mode: Not Supported" is expected
    key = new_key()
    start = 1_800_000_000 * S
    now = [start]
    counters: list[CountingNvml] = []

    def reader():
        if args.reader in ("nvml", "fake-nvml"):
            from agents.readers.nvml import NvmlReader

            if args.reader == "fake-nvml":
                nv = CountingNvml(fake_nvml(args.gpus, args.procs, now))
            else:
                import pynvml  # nvidia-ml-py

                nv = CountingNvml(pynvml)
            counters.append(nv)
            return NvmlReader(nv, clock_ns=lambda: now[0], monotonic=lambda: now[0] / S)
        return SimulatedReader(node="bench", site_id="kr-daejeon", models=["NVIDIA H100 80GB HBM3"] * args.gpus,
                               accounts=["kr-llm", "gb-protein"], seed=1, clock_ns=lambda: now[0],
                               start_ns=start, horizon_ns=args.samples * S * 2)

    r = reader()
    t0 = time.process_time()
    for i in range(args.samples):
        now[0] = start + i * S
        r.sample()
    base = (time.process_time() - t0) / args.samples
    gpus = len(r.sample())

    def agent_step(every_sample: bool) -> tuple[float, int, collections.Counter[str] | None]:
        with tempfile.TemporaryDirectory() as d:
            pub = MemoryPublisher()
            rd = reader()
            resolver = rd if isinstance(rd, SimulatedReader) else ProcResolver()
            svc = AgentService(reader=rd, resolver=resolver, spool=Spool(Path(d) / "spool.sqlite"),
                               publisher_factory=lambda: pub, agent_id="bench", site_id="kr-daejeon", node="bench",
                               window_s=10, sample_s=1, key_id="k", key=key, clock_ns=lambda: now[0],
                               counter_every_sample=every_sample)
            t0 = time.process_time()
            for i in range(args.samples):
                now[0] = start + i * S
                svc.tick()
            full = (time.process_time() - t0) / args.samples
            return full, svc.metrics.windows_sent, counters[-1].calls if counters else None

    once, windows, calls_once = agent_step(every_sample=False)
    every, _, calls_every = agent_step(every_sample=True)

    what = {"nvml": "real GPU(s) (NVML)", "fake-nvml": f"in-memory NVML GPUs, {args.procs} process(es) each",
            "sim": "simulated GPUs"}[args.reader]
    print(f"machine: {os.cpu_count()} cores; {gpus} {what}; {args.samples} samples at 1 Hz; "
          f"{windows} windows sent")
    print(f"baseline ({args.reader} reading, counter every sample): {base * 1e6:8.1f} µs CPU per sample")
    for name, cost in (("counter every sample", every), ("counter once per window", once)):
        print(f"agent step, {name:24s} {cost * 1e6:8.1f} µs CPU per sample ({cost / base:.2f}x the baseline); "
              f"share of one core at 1 Hz: {cost * 100:.3f} %  (target < 0.2 % for 8 GPUs)")
    if calls_once is not None and calls_every is not None:
        print("NVML calls per GPU and sample (counter every sample -> once per window):")
        for name in sorted(set(calls_once) | set(calls_every)):
            a, b = calls_every[name] / args.samples / gpus, calls_once[name] / args.samples / gpus
            print(f"  {name:40s} {a:6.3f} -> {b:6.3f}")
        for name, calls in (("counter every sample", calls_every), ("counter once per window", calls_once)):
            us = sum(n * H100_SANDBOX_US.get(c, OTHER_CALL_US) for c, n in calls.items()) / args.samples
            per8 = us / gpus * 8
            print(f"at the H100 sandbox's per-call CPU, {name}: NVML {us:8.1f} µs per sample for {gpus} GPU(s); "
                  f"8 GPUs {per8 / 1e4:.3f} % of a core plus the agent's own work")
    if TRACE.is_dir():  # the recorded trace sits beside the checkout (not on the GPU machine)
        accuracy()


def _trace_windows(every: int, offset: int, every_sample: bool) -> list:
    reader = ReplayReader(TRACE)
    reader.samples = reader.samples[offset::every]
    w = Windower(agent_id="a", site_id="s", node="n", boot_id="b", epoch="e", window_ns=10 * S,
                 resolver=ProcInfoResolver.from_file(TRACE / "proc_info.json"))
    out = []
    while not reader.exhausted:
        out += w.add(read_once(reader, w, every_sample))
    return out


def accuracy() -> None:
    """Each whole 10 s window of the trace read at 1 Hz, against the 10 Hz counter."""
    full = ReplayReader(TRACE).samples
    times = [s.t_ns for s in full]

    def counter_at(t: int) -> float:
        i = bisect.bisect_left(times, t)
        if times[i] == t:
            return full[i].energy_mj or 0
        a, b = full[i - 1], full[i]
        return (a.energy_mj or 0) + ((b.energy_mj or 0) - (a.energy_mj or 0)) * (t - a.t_ns) / (b.t_ns - a.t_ns)

    print("accuracy on the recorded H100 trace read once a second (10 offsets), 10 s windows, "
          "|window energy - 10 Hz counter delta| / that delta:")
    for name, every_sample in (("counter every sample", True), ("counter once per window", False)):
        errors = []
        for offset in range(10):
            for x in _trace_windows(10, offset, every_sample)[1:]:
                truth = counter_at(x.window_end_ns) - counter_at(x.window_start_ns)
                errors.append(abs(x.gpus[0].energy_mj - truth) / truth)
        print(f"  {name:24s} max {max(errors) * 100:5.2f} %  mean {sum(errors) / len(errors) * 100:5.2f} %  "
              f"({len(errors)} windows)")


if __name__ == "__main__":
    main()
