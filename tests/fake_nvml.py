"""An in-memory NVML with the binding's (nvidia-ml-py's) API, for the reader's
unit tests and bench/agent.py's call counts on a machine without a GPU."""

from __future__ import annotations

from types import SimpleNamespace


class NVMLError(Exception):
    pass


class NVMLError_NotFound(NVMLError):  # noqa: N801 (the binding's name)
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801
    pass


class NVMLError_NoPermission(NVMLError):  # noqa: N801
    pass


class FakeNvml:
    NVMLError = NVMLError
    NVMLError_NotFound = NVMLError_NotFound
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, gpus: int = 2) -> None:
        self.energy = {i: 1_000_000 + i for i in range(gpus)}
        self.gpus = gpus
        self.util_rows: dict[int, list] = {}
        self.broken: set[tuple[int, str]] = set()
        self.mig: dict[int, list[tuple[str, int, list[int]]]] = {}
        self.mig_monitor = True  # the MIG monitor capability (/dev/nvidia-caps) reaches the agent

    def _chk(self, h, call):
        if (h, call) in self.broken:
            raise NVMLError_NotSupported("Not Supported")

    def nvmlInit(self): pass
    def nvmlShutdown(self): pass
    def nvmlDeviceGetCount(self): return self.gpus
    def nvmlDeviceGetHandleByIndex(self, i): return i
    def nvmlDeviceGetUUID(self, h): return f"GPU-{h}" if isinstance(h, int) else h
    def nvmlDeviceGetName(self, h): return b"NVIDIA H100 80GB HBM3"
    def nvmlDeviceGetEnforcedPowerLimit(self, h): return 700_000

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self._chk(h, "energy")
        return self.energy[h]

    def nvmlDeviceGetPowerUsage(self, h):
        self._chk(h, "power")
        return 300_000

    def nvmlDeviceGetUtilizationRates(self, h): return SimpleNamespace(gpu=40, memory=10)
    def nvmlDeviceGetMemoryInfo(self, h): return SimpleNamespace(used=1 << 30)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        if isinstance(h, str):
            if not self.mig_monitor:
                raise NVMLError_NoPermission("Insufficient Permissions")
            return [SimpleNamespace(pid=p) for name, _, pids in self.mig.get(int(h.split("/")[0][4:]), [])
                    if name == h for p in pids]
        return [SimpleNamespace(pid=r.pid) for r in self.util_rows.get(h, [])]

    def nvmlDeviceGetProcessUtilization(self, h, ts):
        rows = [r for r in self.util_rows.get(h, []) if r.timeStamp > ts]
        if not rows:
            raise NVMLError_NotFound("Not Found")
        return rows

    def nvmlDeviceGetMigMode(self, h):
        if isinstance(h, int) and h in self.mig:
            return (1, 1)
        raise NVMLError_NotSupported("Not Supported")

    def nvmlDeviceGetAttributes(self, h):
        if isinstance(h, int):
            return SimpleNamespace(multiprocessorCount=132)
        parent = int(h.split("/")[0][4:])
        return SimpleNamespace(multiprocessorCount=next(s for n, s, _ in self.mig[parent] if n == h))

    def nvmlDeviceGetMaxMigDeviceCount(self, h): return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, i):
        inst = self.mig.get(h, [])
        if i >= len(inst):
            raise NVMLError_NotFound("Not Found")
        return inst[i][0]


class MovingNvml(FakeNvml):
    """GPUs drawing 300 W whose counters move with a clock (``now[0]``, ns); counts counter reads."""

    def __init__(self, now: list[int], gpus: int = 2) -> None:
        super().__init__(gpus)
        self.now = now
        self.counter_reads = 0

    def nvmlDeviceGetTotalEnergyConsumption(self, h):  # noqa: N802 (the binding's name)
        self.counter_reads += 1
        return 1_000_000 + 300 * self.now[0] // 1_000_000  # 300 W × ns → mJ
