"""The one interface between the agent and GPU hardware.

A reader returns, per call, one :class:`GpuSample` per GPU at one instant.
Energy is the device's cumulative counter (mJ since driver load); the
windowing code turns counter readings into per-window deltas.

The counter is the dearest reading on some nodes (4.1 ms a call in the
sandbox of the H100 we measured; docs/benchmarks.md), so the agent reads it
once per window: ``sample(energy=False)`` skips it (``energy_skipped``), and
``add_energy`` completes a reading with the counter, read now, when the
windower needs it (a window boundary, a new baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["GpuReader", "GpuSample", "ProcessUtil"]


@dataclass(frozen=True, slots=True)
class ProcessUtil:
    """One per-process utilisation sample (``nvmlDeviceGetProcessUtilization``)."""

    pid: int
    sm_util: int  # percent of the sample period the SMs ran this process
    mig_uuid: str | None = None  # the MIG instance the process runs on, if any


@dataclass(frozen=True, slots=True)
class GpuSample:
    uuid: str
    model: str
    t_ns: int  # wall clock of the reading
    energy_mj: int | None  # cumulative counter; None when the device lacks it
    power_mw: int | None
    util_gpu: int | None
    mem_used_bytes: int | None
    power_limit_mw: int | None
    running_pids: tuple[int, ...]
    # None: utilisation was not read at this sample (it is read at most 1 Hz);
    # (): read, and NVML had no new sample ("Not Found"): no process ran.
    process_util: tuple[ProcessUtil, ...] | None = None
    # "mig": the GPU is partitioned; shares are per-instance slices (see agents/readers/nvml.py)
    flags: tuple[str, ...] = ()
    # monotonic clock of the reading (ns); None when the reader has none (a
    # trace without it, the simulator's virtual clock): then t_ns is the time
    mono_ns: int | None = None
    # True: the counter was not asked for at this reading (energy_mj is None, as
    # asked); False with energy_mj None: asked, and the device had no answer
    energy_skipped: bool = False


class GpuReader(Protocol):
    """What the agent needs from GPU hardware, whatever provides it."""

    def boot_id(self) -> str:
        """Identity of the counter epoch: changes when counters may reset (reboot)."""
        ...

    def sample(self, energy: bool = True) -> list[GpuSample]:
        """Read every GPU once, now; without the energy counter when ``energy`` is False."""
        ...

    def add_energy(self, samples: list[GpuSample]) -> list[GpuSample]:
        """The same readings with the energy counter of each GPU whose reading
        skipped it, read now (the reading's time becomes the counter's)."""
        ...

    def close(self) -> None: ...
