"""The one interface between the agent and GPU hardware.

A reader returns, per call, one :class:`GpuSample` per GPU at one instant.
Energy is the device's cumulative counter (mJ since driver load); the
windowing code turns counter readings into per-window deltas.
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


class GpuReader(Protocol):
    """What the agent needs from GPU hardware, whatever provides it."""

    def boot_id(self) -> str:
        """Identity of the counter epoch: changes when counters may reset (reboot)."""
        ...

    def sample(self) -> list[GpuSample]:
        """Read every GPU once, now."""
        ...

    def close(self) -> None: ...
