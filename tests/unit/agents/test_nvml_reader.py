"""NvmlReader against an in-memory NVML with the binding's API (no GPU here).
The real-GPU check is tests/gpu/ (marked gpu, skipped without NVML)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents import ReaderError
from agents.readers.base import ProcessUtil
from agents.readers.nvml import NvmlReader, probe_nvml
from tests.fake_nvml import FakeNvml, MovingNvml, NVMLError


@pytest.fixture()
def boot(tmp_path: Path) -> Path:
    f = tmp_path / "boot_id"
    f.write_text("boot-1\n")
    return f


def make(nv: FakeNvml, boot: Path) -> NvmlReader:
    return NvmlReader(nv, boot_id_path=boot, monotonic=iter(range(0, 10_000, 2)).__next__,
                      clock_ns=iter(range(10**18, 10**18 + 10**13, 10**9)).__next__)


def test_reads_counter_processes_and_utilisation(boot) -> None:
    nv = FakeNvml()
    nv.util_rows[0] = [SimpleNamespace(pid=7, timeStamp=5, smUtil=60)]
    r = make(nv, boot)
    assert r.boot_id() == "boot-1"
    s0, s1 = r.sample()
    assert (s0.uuid, s0.energy_mj, s0.power_mw, s0.running_pids) == ("GPU-0", 1_000_000, 300_000, (7,))
    assert s0.process_util[0].sm_util == 60
    assert s1.process_util == ()  # "Not Found": nothing ran, not an error
    assert s0.power_limit_mw == 700_000
    again = r.sample()[0]
    # still alone on the GPU: its share is the GPU's utilisation (40 %), without the dear call
    assert again.process_util == (ProcessUtil(7, 40),)


def test_per_process_utilisation_is_asked_only_to_tell_processes_apart(boot) -> None:
    nv = CountingNvml(gpus=1)
    nv.util_rows[0] = [SimpleNamespace(pid=7, timeStamp=5, smUtil=60)]
    r = make(nv, boot)  # utilisation read at every sample (2 s apart)
    assert r.sample()[0].process_util == (ProcessUtil(7, 60),)  # first reading: asked
    for _ in range(5):
        assert r.sample()[0].process_util == (ProcessUtil(7, 40),)  # alone: the GPU's own utilisation
    assert nv.calls["proc_util"] == 1
    nv.util_rows[0] = [SimpleNamespace(pid=7, timeStamp=9, smUtil=70), SimpleNamespace(pid=8, timeStamp=9, smUtil=20)]
    assert r.sample()[0].process_util == (ProcessUtil(7, 70), ProcessUtil(8, 20))  # two: asked
    nv.util_rows[0] = [SimpleNamespace(pid=8, timeStamp=11, smUtil=30)]
    assert r.sample()[0].process_util == (ProcessUtil(8, 30),)  # alone, but not at the last reading: asked
    assert r.sample()[0].process_util == (ProcessUtil(8, 40),)
    assert nv.calls["proc_util"] == 3


def test_unsupported_counter_is_none_and_counted(boot, caplog) -> None:
    nv = FakeNvml(gpus=1)
    nv.broken.add((0, "energy"))
    r = make(nv, boot)
    caplog.set_level(logging.WARNING)
    assert r.sample()[0].energy_mj is None
    r.sample()
    assert r.metrics.nvml_errors["total_energy"] == 2
    assert caplog.text.count("NVML total_energy failed on GPU-0") == 1


def test_gpu_that_answers_nothing_is_left_out(boot) -> None:
    nv = FakeNvml(gpus=2)
    nv.broken |= {(1, "energy"), (1, "power")}
    assert [s.uuid for s in make(nv, boot).sample()] == ["GPU-0"]


def test_mig_processes_get_their_instance_slice(boot) -> None:
    nv = FakeNvml(gpus=1)
    nv.mig[0] = [("GPU-0/mig-a", 66, [11, 12]), ("GPU-0/mig-b", 33, [])]
    (s,) = make(nv, boot).sample()
    assert s.flags == ("mig",)
    assert sorted(s.running_pids) == [11, 12]
    assert {(p.pid, p.sm_util, p.mig_uuid) for p in s.process_util} == {
        (11, 25, "GPU-0/mig-a"), (12, 25, "GPU-0/mig-a")}


def test_mig_instances_the_agent_may_not_read_flag_the_window_not_pass_as_idle(boot) -> None:
    # Without the MIG monitor capability NVML refuses the instances' process lists: their
    # slices would look unused (idle). The window says so, and doctor fails on it.
    nv = FakeNvml(gpus=1)
    nv.mig[0] = [("GPU-0/mig-a", 66, [11])]
    nv.mig_monitor = False
    r = make(nv, boot)
    (s,) = r.sample()
    assert s.flags == ("mig", "mig_unreadable") and s.process_util == ()
    assert r.metrics.nvml_errors["mig_processes"] == 1
    res = {name: (ok, msg) for name, ok, msg in probe_nvml(nv)}
    assert res["mig_processes"][0] is False and "MIG monitor capability" in res["mig_processes"][1]
    nv.mig_monitor = True
    (s,) = make(nv, boot).sample()
    assert s.flags == ("mig",)
    assert probe_nvml(nv)[-1] == ("mig_processes", True, "GPU-0: MIG on, instances' processes readable")


def test_doctor_fails_a_node_whose_mig_instances_are_unreadable(monkeypatch) -> None:
    import agents.readers.nvml as nvml_mod
    from agents.doctor import check_nvml

    monkeypatch.setattr(nvml_mod, "probe_nvml", lambda: [
        ("devices", True, "H100 GPU-0"), ("total_energy", False, "Not Supported"),
        ("mig_processes", False, "GPU-0: unreadable")])
    checks = {c.name: c.status for c in check_nvml()}
    assert checks == {"nvml devices": "ok", "nvml total_energy": "warn", "nvml mig_processes": "fail"}


def test_no_nvml_is_a_clear_reader_error(boot) -> None:
    class Broken(FakeNvml):
        def nvmlInit(self):
            raise NVMLError("Driver Not Loaded")

    with pytest.raises(ReaderError, match="NVML is not usable on this node: Driver Not Loaded"):
        make(Broken(), boot)


def test_probe_lists_supported_calls() -> None:
    nv = FakeNvml(gpus=1)
    nv.broken.add((0, "energy"))
    res = {name: (ok, msg) for name, ok, msg in probe_nvml(nv)}
    assert res["total_energy"] == (False, "Not Supported")
    assert res["process_utilization"] == (True, "ok (no samples yet)")
    assert "GPU-0" in res["devices"][1]


class CountingNvml(FakeNvml):
    def __init__(self, gpus: int = 1) -> None:
        super().__init__(gpus)
        self.calls: dict[str, int] = {}

    def nvmlDeviceGetProcessUtilization(self, h, ts):
        self.calls["proc_util"] = self.calls.get("proc_util", 0) + 1
        return super().nvmlDeviceGetProcessUtilization(h, ts)

    def nvmlDeviceGetMigMode(self, h):
        self.calls["mig_mode"] = self.calls.get("mig_mode", 0) + 1
        return super().nvmlDeviceGetMigMode(h)


def test_idle_gpu_skips_the_dear_calls_and_busy_gpu_makes_them(boot) -> None:
    # Measured on an H100: per-process utilisation 2.5 ms, MIG mode 0.26 ms per call.
    nv = CountingNvml()
    r = make(nv, boot)  # 2 s of monotonic time per sample
    for _ in range(10):
        (s,) = r.sample()
        assert s.process_util == ()  # an idle GPU still reads as "nothing ran"
    assert nv.calls["proc_util"] == 1  # the first reading only
    assert nv.calls["mig_mode"] == 1  # 20 s < the 60 s recheck
    nv.util_rows[0] = [SimpleNamespace(pid=7, timeStamp=5, smUtil=60)]
    (s,) = r.sample()
    assert [p.pid for p in s.process_util] == [7]
    del nv.util_rows[0]
    r.sample()  # the process just ended: one more read catches its last samples
    assert nv.calls["proc_util"] == 3
    for _ in range(30):
        r.sample()
    assert nv.calls["proc_util"] == 3
    assert nv.calls["mig_mode"] == 2  # rechecked once the minute was up


def test_the_agent_reads_the_counter_once_per_window_and_the_windows_still_add_up(boot, tmp_path) -> None:
    from agents.job_resolver import ProcResolver
    from agents.publisher import MemoryPublisher
    from agents.service import AgentService
    from agents.spool import Spool

    start = 1_800_000_000 * 10**9
    now = [start]
    nv = MovingNvml(now)
    reader = NvmlReader(nv, boot_id_path=boot, clock_ns=lambda: now[0], monotonic=lambda: now[0] / 1e9)
    svc = AgentService(reader=reader, resolver=ProcResolver(tmp_path), spool=Spool(tmp_path / "s.sqlite"),
                       publisher_factory=MemoryPublisher, agent_id="a", site_id="s", node="n",
                       window_s=10, sample_s=1, clock_ns=lambda: now[0])
    windows = []
    for k in range(60):
        now[0] = start + k * 10**9
        windows += svc.tick(drain=False)
    now[0] += 300_000_000  # the shutdown's own reading, 0.3 s later
    windows.append(svc.close_open_window())
    # 2 GPUs × (the first reading, the readings at 10, 20, ..., 50 s, the last one at shutdown)
    assert nv.counter_reads == 2 * 7
    energy = [g.energy_mj for w in windows for g in w.gpus]
    assert energy == [3_000_000] * 10 + [2_790_000] * 2  # 300 W × 10 s each; the last window 9.3 s
    assert all(g.flags == [] for w in windows for g in w.gpus)


def test_a_reading_without_power_reads_the_counter_after_all(boot) -> None:
    nv = FakeNvml(gpus=2)
    nv.broken.add((1, "power"))
    s0, s1 = make(nv, boot).sample(energy=False)
    assert (s0.energy_mj, s0.energy_skipped) == (None, True)
    assert (s1.energy_mj, s1.energy_skipped) == (1_000_001, False)  # nothing else to weigh it with
