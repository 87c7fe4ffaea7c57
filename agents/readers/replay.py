"""Replays a recorded NVML trace (the format of shared/fixtures/nvml/nvml_capture.py).

Each call to :meth:`ReplayReader.sample` returns the next recorded reading,
so the trace's own clock drives the agent. Per-process utilisation reads are
attached to the first reading at or after the moment they were read.
Any trace directory in that format works, not only the shipped one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from agents import ReaderError
from agents.readers.base import GpuSample, ProcessUtil

__all__ = ["ReplayReader", "load_trace"]

REQUIRED = ("nvml_static.json", "nvml_trace.jsonl")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ReaderError(f"{path}:{n}: not JSON: {exc}") from exc
    return rows


def load_trace(trace_dir: Path) -> tuple[dict[str, Any], list[GpuSample]]:
    """Read a trace directory into (static facts, samples in time order)."""
    for name in REQUIRED:
        if not (trace_dir / name).exists():
            raise ReaderError(f"{trace_dir}: not an NVML trace (missing {name})")
    static = json.loads((trace_dir / "nvml_static.json").read_text())
    devices = static.get("devices") or []
    if not devices:
        raise ReaderError(f"{trace_dir}/nvml_static.json: no devices")
    dev = devices[0]  # nvml_capture.py samples device 0
    uuid, model = dev.get("uuid"), dev.get("name")
    if not uuid or not model:
        raise ReaderError(f"{trace_dir}/nvml_static.json: device 0 lacks uuid or name")
    limit = dev.get("power_limit_enforced_mw") or dev.get("power_limit_mw")

    reads: dict[int, list[ProcessUtil]] = {}
    for r in _jsonl(trace_dir / "nvml_process_util.jsonl"):
        reads.setdefault(int(r["read_ns"]), []).append(ProcessUtil(int(r["pid"]), int(r["smUtil"])))
    read_times = sorted(reads)

    rows = sorted(_jsonl(trace_dir / "nvml_trace.jsonl"), key=lambda r: int(r["t_ns"]))
    samples = []
    ri = 0
    for row in rows:
        t = int(row["t_ns"])
        attached: list[ProcessUtil] | None = None
        while ri < len(read_times) and read_times[ri] <= t:
            attached = (attached or []) + reads[read_times[ri]]
            ri += 1
        samples.append(
            GpuSample(
                uuid=uuid,
                model=model,
                t_ns=t,
                energy_mj=row.get("energy_mj"),
                power_mw=row.get("power_mw"),
                util_gpu=row.get("util_gpu"),
                mem_used_bytes=row.get("mem_used"),
                power_limit_mw=limit,
                running_pids=tuple(int(p["pid"]) for p in row.get("procs") or []),
                process_util=tuple(attached) if attached is not None else None,
            )
        )
    return static, samples


class ReplayReader:
    """A :class:`GpuReader` over a recorded trace."""

    def __init__(self, trace_dir: Path) -> None:
        self.trace_dir = trace_dir
        self.static, self.samples = load_trace(trace_dir)
        self._i = 0

    def boot_id(self) -> str:
        # The counter epoch of a recording: same trace, same id, so replays dedup.
        dev = self.static["devices"][0]
        key = f"{dev['uuid']}:{dev.get('energy_mj_at_start')}:{self.samples[0].t_ns if self.samples else 0}"
        return "replay-" + hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def exhausted(self) -> bool:
        return self._i >= len(self.samples)

    def sample(self, energy: bool = True) -> list[GpuSample]:
        if self.exhausted:
            return []
        s = self.samples[self._i]
        self._i += 1
        if not energy and s.energy_mj is not None and s.power_mw is not None:
            return [replace(s, energy_mj=None, energy_skipped=True)]
        return [s]

    def add_energy(self, samples: list[GpuSample]) -> list[GpuSample]:
        # the recording's counter at the reading's own time: a replay asked for the
        # counter only at window boundaries sees what a live agent would have read
        return [self.samples[self._i - 1] if s.energy_skipped else s for s in samples]

    def close(self) -> None:
        self._i = len(self.samples)
