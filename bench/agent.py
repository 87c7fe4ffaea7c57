"""CPU cost of the node agent per sample, for an 8-GPU simulated node
(or, with ``--reader nvml`` on a GPU machine, the real GPUs).

Prints the CPU time per sample of (a) the bare simulated reading (the
baseline: what reading the hardware costs here) and (b) the whole agent step
(reading, windowing, job resolution, signing, spooling to SQLite, sending to
an in-memory transport), both measured in this run, and the agent's share of
one core at 1 Hz. Target: under 0.2 % of one core.

    .venv/bin/python bench/agent.py [--samples 3000] [--reader sim|nvml]

With ``--reader nvml`` the readings are real NVML calls (per-process
utilisation included at every sample) stamped by the bench's 1 Hz clock, so
that windows close without waiting wall-clock time; jobs resolve from /proc.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.job_resolver import ProcResolver  # noqa: E402
from agents.publisher import MemoryPublisher  # noqa: E402
from agents.readers.simulated import SimulatedReader  # noqa: E402
from agents.service import AgentService  # noqa: E402
from agents.spool import Spool  # noqa: E402

S = 1_000_000_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--reader", choices=["sim", "nvml"], default="sim")
    args = ap.parse_args()
    start = 1_800_000_000 * S
    now = [start]

    def reader():
        if args.reader == "nvml":
            from agents.readers.nvml import NvmlReader

            return NvmlReader(clock_ns=lambda: now[0], monotonic=lambda: now[0] / S)
        return SimulatedReader(node="bench", site_id="kr-daejeon", models=["NVIDIA H100 80GB HBM3"] * args.gpus,
                               accounts=["kr-llm", "gb-protein"], seed=1, clock_ns=lambda: now[0],
                               start_ns=start, horizon_ns=args.samples * S * 2)

    r = reader()
    t0 = time.process_time()
    for i in range(args.samples):
        now[0] = start + i * S
        r.sample()
    base = (time.process_time() - t0) / args.samples

    with tempfile.TemporaryDirectory() as d:
        pub = MemoryPublisher()
        rd = reader()
        resolver = ProcResolver() if args.reader == "nvml" else rd
        svc = AgentService(reader=rd, resolver=resolver, spool=Spool(Path(d) / "spool.sqlite"),
                           publisher_factory=lambda: pub, agent_id="bench", site_id="kr-daejeon", node="bench",
                           window_s=10, sample_s=1, key_id="k", key=b"k" * 32, clock_ns=lambda: now[0])
        t0 = time.process_time()
        for i in range(args.samples):
            now[0] = start + i * S
            svc.tick()
        full = (time.process_time() - t0) / args.samples
        windows = svc.metrics.windows_sent

    gpus = f"{len(r.sample())} real GPU(s) (NVML)" if args.reader == "nvml" else f"{args.gpus} simulated GPUs"
    print(f"machine: {os.cpu_count()} cores; {gpus}; {args.samples} samples at 1 Hz; "
          f"{windows} windows sent")
    print(f"baseline ({args.reader} reading only): {base * 1e6:8.1f} µs CPU per sample")
    print(f"agent step (read+window+sign+spool+send): {full * 1e6:8.1f} µs CPU per sample "
          f"({full / base:.1f}x the reading)")
    print(f"share of one core at 1 Hz: {full * 100:.3f} %  (target < 0.2 %)")


if __name__ == "__main__":
    main()
