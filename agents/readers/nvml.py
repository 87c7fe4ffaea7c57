"""The real GPUs through NVML (nvidia-ml-py). The only module that imports pynvml.

What is read, per GPU and sample: power, utilisation, memory, running
compute processes, the total-energy counter (mJ; the measurement) when asked
(the agent asks once per window: ``sample(energy=False)`` and
``add_energy``), and at most once per ``proc_util_interval_s`` the
per-process SM utilisation since the last read (NVML "Not Found" there means
"no process ran": an empty reading, not an error).

MIG: on a partitioned GPU the energy counter exists only for the parent, and
per-process utilisation is not available inside instances. Each process on
an instance is given that instance's slice of the parent (its SMs over the
parent's SMs), shared equally by the processes on the instance; the window is
flagged ``mig`` so the centre books unused slices to the site's idle account.
Listing an instance's processes needs the MIG monitor capability
(/dev/nvidia-caps, ``NVIDIA_MIG_MONITOR_DEVICES=all`` in a container): where
it is refused the window is flagged ``mig_unreadable`` as well, because its
"unused" slices may have held jobs the agent could not see
(docs/operators.md, "MIG").

NVML errors are counted per call (``metrics.nvml_errors``) and logged once
per device and call; a device that fails its basic readings is left out of
that sample, which the windower flags ``gpu_missing``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from agents import ReaderError
from agents.metrics import AgentMetrics
from agents.readers.base import GpuSample, ProcessUtil

__all__ = ["NvmlReader", "probe_nvml"]

log = logging.getLogger(__name__)
MIG_RECHECK_S = 60.0
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class NvmlReader:
    def __init__(
        self,
        nvml: Any | None = None,
        *,
        proc_util_interval_s: float = 1.0,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: AgentMetrics | None = None,
        boot_id_path: Path = BOOT_ID,
    ) -> None:
        if nvml is None:
            try:
                import pynvml  # nvidia-ml-py
            except ImportError as exc:
                raise ReaderError("nvidia-ml-py is not installed: pip install 'bridgeledger[agent]'") from exc
            nvml = pynvml
        self.nv: Any = nvml
        self.clock_ns = clock_ns
        self.monotonic = monotonic
        self.metrics = metrics or AgentMetrics()
        self.interval = proc_util_interval_s
        self._next_util = 0.0
        self._logged: set[tuple[str, str]] = set()
        try:
            self.nv.nvmlInit()
            count = self.nv.nvmlDeviceGetCount()
        except self.nv.NVMLError as exc:
            raise ReaderError(f"NVML is not usable on this node: {exc}") from exc
        if count == 0:
            raise ReaderError("NVML reports no GPU on this node")
        self.devices: list[dict[str, Any]] = []
        for i in range(count):
            h = self.nv.nvmlDeviceGetHandleByIndex(i)
            self.devices.append({
                "handle": h,
                "uuid": _text(self.nv.nvmlDeviceGetUUID(h)),
                "name": _text(self.nv.nvmlDeviceGetName(h)),
                "limit": self._call("power_limit", "", self.nv.nvmlDeviceGetEnforcedPowerLimit, h),
                "last_ts": 0,
                "last_pids": None,  # read utilisation at the first sample whatever runs
                "mig_next": 0.0,
                "mig_on": False,
            })
        try:
            self._boot = boot_id_path.read_text().strip()
        except OSError:
            self._boot = "unknown-boot"
            log.warning("cannot read %s; counter resets across reboots are still caught by value", boot_id_path)

    def boot_id(self) -> str:
        return self._boot

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except self.nv.NVMLError:
            pass

    def _call(self, name: str, uuid: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self.nv.NVMLError as exc:
            self.metrics.nvml_errors[name] += 1
            if (uuid, name) not in self._logged:
                self._logged.add((uuid, name))
                log.warning("NVML %s failed on %s: %s (counted; logged once)", name, uuid or "node", exc)
            return None

    def _proc_util(self, dev: dict[str, Any]) -> tuple[ProcessUtil, ...]:
        try:
            rows = self.nv.nvmlDeviceGetProcessUtilization(dev["handle"], dev["last_ts"])
        except self.nv.NVMLError_NotFound:
            return ()  # no process ran since the last read
        except self.nv.NVMLError as exc:
            self._call("process_utilization", dev["uuid"], _raise, exc)
            return ()
        if rows:
            dev["last_ts"] = max(dev["last_ts"], max(r.timeStamp for r in rows))
        return tuple(ProcessUtil(int(r.pid), int(r.smUtil)) for r in rows)

    def _shares(self, dev: dict[str, Any], pids: list[int], util: Any) -> tuple[ProcessUtil, ...]:
        """Per-process utilisation is one of the dearest calls (2.5 ms on an H100,
        docs/benchmarks.md), needed only to tell processes apart: with no process
        now and none at the last reading it is "read, nothing ran" without asking;
        a process alone on the GPU now and at the last reading is given the GPU's
        own utilisation (the recorded H100 trace: within 2 points of its SM
        utilisation once running)."""
        last = dev["last_pids"]
        if not pids and last == []:
            return ()
        if len(pids) == 1 and last == pids and util is not None:
            return (ProcessUtil(pids[0], int(util.gpu)),)
        return self._proc_util(dev)

    def _mig(self, dev: dict[str, Any], now: float) -> tuple[list[int], tuple[ProcessUtil, ...], bool] | None:
        h, uuid = dev["handle"], dev["uuid"]
        if now >= dev["mig_next"]:  # MIG mode changes only with a GPU reset: checked once a minute
            mode = self._call("mig_mode", uuid, self.nv.nvmlDeviceGetMigMode, h)
            dev["mig_on"] = bool(mode) and mode[0] == getattr(self.nv, "NVML_DEVICE_MIG_ENABLE", 1)
            dev["mig_next"] = now + MIG_RECHECK_S
        if not dev["mig_on"]:
            return None
        total_sm = self._call("attributes", uuid, self.nv.nvmlDeviceGetAttributes, h)
        parent_sms = getattr(total_sm, "multiprocessorCount", 0) or 0
        pids: list[int] = []
        shares: list[ProcessUtil] = []
        unreadable = False
        for i in range(self.nv.nvmlDeviceGetMaxMigDeviceCount(h)):
            try:
                mh = self.nv.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
            except self.nv.NVMLError:
                continue  # no instance in this slot
            mig_uuid = _text(self.nv.nvmlDeviceGetUUID(mh))
            procs = self._call("mig_processes", mig_uuid, self.nv.nvmlDeviceGetComputeRunningProcesses, mh)
            if procs is None:  # refused (no MIG monitor capability) or failed: not "nothing ran"
                unreadable = True
                procs = []
            attrs = self._call("mig_attributes", mig_uuid, self.nv.nvmlDeviceGetAttributes, mh)
            sms = getattr(attrs, "multiprocessorCount", 0) or 0
            slice_pct = 100 * sms / parent_sms if parent_sms else 0
            for p in procs:
                pids.append(int(p.pid))
                shares.append(ProcessUtil(int(p.pid), int(slice_pct / len(procs)), mig_uuid))
        return pids, tuple(shares), unreadable

    def add_energy(self, samples: list[GpuSample]) -> list[GpuSample]:
        t = self.clock_ns()
        mono = int(self.monotonic() * 1e9)
        handles = {d["uuid"]: d["handle"] for d in self.devices}
        out = []
        for s in samples:
            if s.energy_skipped and s.uuid in handles:
                energy = self._call("total_energy", s.uuid, self.nv.nvmlDeviceGetTotalEnergyConsumption,
                                    handles[s.uuid])
                s = replace(s, energy_mj=int(energy) if energy is not None else None, energy_skipped=False,
                            t_ns=t, mono_ns=mono)
            out.append(s)
        return out

    def sample(self, energy: bool = True) -> list[GpuSample]:
        t = self.clock_ns()
        now = self.monotonic()
        read_util = now >= self._next_util
        if read_util:
            self._next_util = now + self.interval
        out = []
        for dev in self.devices:
            h, uuid = dev["handle"], dev["uuid"]
            power = self._call("power", uuid, self.nv.nvmlDeviceGetPowerUsage, h)
            # without a power reading the counter is all there is to weigh the window with
            asked = energy or power is None
            counter = (self._call("total_energy", uuid, self.nv.nvmlDeviceGetTotalEnergyConsumption, h)
                       if asked else None)
            if counter is None and power is None:
                continue  # the device answers nothing we can account with: flagged missing
            util = self._call("utilization", uuid, self.nv.nvmlDeviceGetUtilizationRates, h)
            mem = self._call("memory", uuid, self.nv.nvmlDeviceGetMemoryInfo, h)
            mig = self._mig(dev, now)
            if mig is not None:
                pids, putil, unreadable = mig
                flags: tuple[str, ...] = ("mig", "mig_unreadable") if unreadable else ("mig",)
                util_reading: tuple[ProcessUtil, ...] | None = putil
            else:
                procs = self._call("processes", uuid, self.nv.nvmlDeviceGetComputeRunningProcesses, h) or []
                pids = [int(p.pid) for p in procs]
                flags = ()
                util_reading = None
                if read_util:
                    util_reading = self._shares(dev, pids, util)
                dev["last_pids"] = pids
            out.append(GpuSample(
                uuid=uuid, model=dev["name"], t_ns=t, mono_ns=int(now * 1e9),
                energy_mj=int(counter) if counter is not None else None, energy_skipped=not asked,
                power_mw=int(power) if power is not None else None,
                util_gpu=int(util.gpu) if util is not None else None,
                mem_used_bytes=int(mem.used) if mem is not None else None,
                power_limit_mw=dev["limit"],
                running_pids=tuple(pids), process_util=util_reading, flags=flags,
            ))
        return out


def _raise(exc: Exception) -> None:
    raise exc


def probe_nvml(nvml: Any | None = None) -> list[tuple[str, bool, str]]:
    """For ``agent doctor``: which NVML calls this node supports, per call."""
    reader = NvmlReader(nvml)
    try:
        results = []
        dev = reader.devices[0]
        h = dev["handle"]
        for name, fn, args in (
            ("total_energy", reader.nv.nvmlDeviceGetTotalEnergyConsumption, (h,)),
            ("power", reader.nv.nvmlDeviceGetPowerUsage, (h,)),
            ("utilization", reader.nv.nvmlDeviceGetUtilizationRates, (h,)),
            ("processes", reader.nv.nvmlDeviceGetComputeRunningProcesses, (h,)),
            ("process_utilization", reader.nv.nvmlDeviceGetProcessUtilization, (h, 0)),
        ):
            try:
                fn(*args)
                results.append((name, True, "ok"))
            except reader.nv.NVMLError_NotFound:
                results.append((name, True, "ok (no samples yet)"))
            except reader.nv.NVMLError as exc:
                results.append((name, False, str(exc)))
        results.extend(_probe_mig(reader))
        results.insert(0, ("devices", True, ", ".join(f"{d['name']} {d['uuid']}" for d in reader.devices)))
        return results
    finally:
        reader.close()


def _probe_mig(reader: NvmlReader) -> list[tuple[str, bool, str]]:
    """On a node with MIG on: can the agent list every instance's processes?"""
    out = []
    for dev in reader.devices:
        mig = reader._mig(dev, reader.monotonic())
        if mig is None:
            continue
        if mig[2]:
            out.append(("mig_processes", False,
                        f"{dev['uuid']}: MIG instances' processes are unreadable "
                        "(grant the MIG monitor capability: /dev/nvidia-caps; in Kubernetes the "
                        "agent-mig DaemonSet; docs/operators.md)"))
        else:
            out.append(("mig_processes", True, f"{dev['uuid']}: MIG on, instances' processes readable"))
    return out
