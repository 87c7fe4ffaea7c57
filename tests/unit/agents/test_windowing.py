from __future__ import annotations

import itertools
import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from agents.job_resolver import ProcInfoResolver
from agents.readers.base import GpuSample, ProcessUtil
from agents.readers.replay import ReplayReader
from agents.windowing import Windower
from schemas import TelemetryWindow

S = 1_000_000_000


def replay(trace: Path, window_s: float = 10.0) -> tuple[ReplayReader, list[TelemetryWindow]]:
    reader = ReplayReader(trace)
    w = Windower(agent_id="a", site_id="s", node="n", boot_id=reader.boot_id(), epoch="e",
                 window_ns=int(window_s * S), resolver=ProcInfoResolver.from_file(trace / "proc_info.json"))
    out: list[TelemetryWindow] = []
    while not reader.exhausted:
        out += w.add(reader.sample())
    last = w.flush()
    if last:
        out.append(last)
    return reader, out


def phases(trace: Path) -> dict[str, tuple[int, int]]:
    return {p["phase"]: (p["start_ns"], p["end_ns"]) for p in json.loads((trace / "nvml_phases.json").read_text())}


@pytest.mark.parametrize("window_s", [10.0, 5.0, 1.0, 7.3])
def test_windows_sum_to_counter_delta_exactly(trace_dir: Path, window_s: float) -> None:
    reader, windows = replay(trace_dir, window_s)
    counters = [s.energy_mj for s in reader.samples]
    assert sum(g.energy_mj for w in windows for g in w.gpus) == counters[-1] - counters[0]
    # contiguous, aligned, increasing seq
    for a, b in itertools.pairwise(windows):
        assert a.window_end_ns == b.window_start_ns
        assert b.seq == a.seq + 1
        assert a.window_end_ns % int(window_s * S) == 0
    assert windows[0].window_start_ns == reader.samples[0].t_ns
    assert windows[-1].window_end_ns == reader.samples[-1].t_ns


def test_job_1001_alone_has_the_whole_process_share(trace_dir: Path) -> None:
    _, windows = replay(trace_dir)
    start, end = phases(trace_dir)["job1001_alone_full"]
    inside = [w for w in windows if w.window_start_ns >= start and w.window_end_ns <= end]
    assert inside, "the exclusive phase should contain at least one full window"
    for w in inside:
        (g,) = w.gpus
        assert {p.job_id for p in g.processes} == {"1001"}
        assert g.processes[0].sm_share > 0.9


def test_shared_phase_shows_both_jobs(trace_dir: Path) -> None:
    _, windows = replay(trace_dir)
    start, end = phases(trace_dir)["job1001_full_plus_job1002_30pct"]
    inside = [w for w in windows if w.window_start_ns >= start and w.window_end_ns <= end]
    assert inside
    for w in inside:
        shares = {p.job_id: p.sm_share for p in w.gpus[0].processes}
        assert set(shares) == {"1001", "1002"}
        assert shares["1001"] > shares["1002"] > 0
        assert sum(shares.values()) <= 1.0


def test_idle_windows_have_no_process(trace_dir: Path) -> None:
    _, windows = replay(trace_dir)
    start, end = phases(trace_dir)["idle_after"]
    inside = [w for w in windows if w.window_start_ns >= start and w.window_end_ns <= end]
    assert inside and all(not w.gpus[0].processes for w in inside)


def test_any_trace_in_the_format_works(trace_dir: Path, tmp_path: Path) -> None:
    """A second trace: the shipped one cut to its middle, with its own counter values."""
    t = tmp_path / "cut"
    shutil.copytree(trace_dir, t)
    rows = (t / "nvml_trace.jsonl").read_text().splitlines()[150:420]
    (t / "nvml_trace.jsonl").write_text("\n".join(rows) + "\n")
    reader, windows = replay(t, 3.0)
    assert sum(g.energy_mj for w in windows for g in w.gpus) == (
        reader.samples[-1].energy_mj - reader.samples[0].energy_mj)


T0 = 1_700_000_000 * S  # test readings start here (a multiple of the window)


def sample(t_s: float, energy: int | None, power_mw: int = 100_000, uuid: str = "GPU-1") -> GpuSample:
    return GpuSample(uuid=uuid, model="NVIDIA H100 80GB HBM3", t_ns=T0 + int(t_s * S), energy_mj=energy,
                     power_mw=power_mw, util_gpu=50, mem_used_bytes=0, power_limit_mw=700_000,
                     running_pids=())


class NoJobs:
    def resolve(self, pid: int):
        return None


def windower() -> Windower:
    return Windower(agent_id="a", site_id="s", node="n", boot_id="b", epoch="e", window_ns=10 * S, resolver=NoJobs())


def test_counter_reset_is_flagged_and_never_negative(caplog) -> None:
    w = windower()
    out = []
    caplog.set_level(logging.WARNING)
    for i, e in enumerate([1000_000, 1100_000, 1200_000, 5_000, 105_000, 205_000]):
        out += w.add([sample(101 + 2 * i, e)])
    out.append(w.flush())
    energies = [g.energy_mj for x in out for g in x.gpus]
    assert all(e >= 0 for e in energies)
    # 4 clean intervals of 100 J plus one estimated from 100 W over 2 s
    assert sum(energies) == 4 * 100_000 + 200_000
    assert any("counter_reset" in g.flags for x in out for g in x.gpus)
    assert "counter reset" in caplog.text


def test_impossible_jump_is_a_reset() -> None:
    w = windower()
    w.add([sample(100, 0)])
    (closed,) = w.add([sample(110, 10**12)])  # a petajoule in 10 s
    assert closed.gpus[0].energy_mj == 1_000_000  # 100 W × 10 s estimated
    assert "counter_reset" in closed.gpus[0].flags


def test_missing_counter_integrates_power_and_flags_estimate() -> None:
    w = windower()
    w.add([sample(100, None, 200_000)])
    (closed,) = w.add([sample(110, None, 200_000)])
    assert closed.gpus[0].energy_mj == 2_000_000
    assert closed.gpus[0].flags == ["energy_estimated"]


def test_missing_gpu_is_flagged_and_logged(caplog) -> None:
    w = windower()
    caplog.set_level(logging.WARNING)
    w.add([sample(100, 0), sample(100, 0, uuid="GPU-2")])
    (closed,) = w.add([sample(110, 1000)])
    flags = {g.uuid: g.flags for g in closed.gpus}
    assert "gpu_missing" in flags["GPU-2"]
    assert "GPU-2 missing" in caplog.text


def test_gap_spanning_boundaries_interpolates_exactly() -> None:
    w = windower()
    w.add([sample(105, 0)])
    closed = w.add([sample(135, 3_000_001)])  # crosses 110, 120, 130
    assert [c.gpus[0].energy_mj for c in closed] == [500_000, 1_000_000, 1_000_000]
    last = w.flush()
    assert sum(c.gpus[0].energy_mj for c in closed) + last.gpus[0].energy_mj == 3_000_001


class LiveProcesses:
    """Like /proc: a pid's job can be read only while the process runs."""

    def __init__(self) -> None:
        self.alive: dict[int, str] = {}
        self.calls = 0

    def resolve(self, pid: int):
        from agents.job_resolver import JobRef

        self.calls += 1
        job = self.alive.get(pid)
        return JobRef(job) if job else None


def test_job_of_a_process_that_ended_before_the_window_closed_is_kept() -> None:
    # Seen on the H100 (bench/device_check.sh): the load exited mid-window and
    # the window came out with its process share but no job.
    procs = LiveProcesses()
    w = Windower(agent_id="a", site_id="s", node="n", boot_id="b", epoch="e", window_ns=10 * S, resolver=procs)
    busy = (ProcessUtil(pid=77, sm_util=90),)
    procs.alive[77] = "4242"
    w.add([sample(0, 0)])
    for t in range(1, 5):
        s = sample(t, t * 500_000, power_mw=500_000)
        w.add([_with_process(s, busy)])
    del procs.alive[77]  # the job ended; /proc/77 is gone
    closed = []
    for t in range(5, 11):
        closed += w.add([_with_process(sample(t, 2_000_000 + t * 70_000, power_mw=70_000), ())])
    [window] = closed
    [proc] = window.gpus[0].processes
    assert proc.pid == 77 and proc.job_id == "4242"
    assert proc.sm_share == pytest.approx(0.9 * 4 / 9, abs=1e-6)  # 4 of the 9 readings in the window
    assert procs.calls == 1  # read once, at first sight, not once per sample


def _with_process(s: GpuSample, util: tuple[ProcessUtil, ...]) -> GpuSample:
    from dataclasses import replace

    return replace(s, running_pids=tuple(p.pid for p in util), process_util=util)


# -- clocks and devices that misbehave (issue: poison-proof worker, agent side) ------------------
def _run(readings: list[tuple[float, float, int]], power_mw: int = 100_000,
         uuids: tuple[str, ...] = ("GPU-1",), missing: dict[str, float] | None = None) -> list:
    """Readings (wall s, monotonic s, counter mJ) through a windower; every closed window and the flush."""
    w = windower()
    out = []
    for wall, mono, counter in readings:
        samples = [replace(sample(wall, counter, power_mw, uuid=u), mono_ns=int(mono * S))
                   for u in uuids if not (missing and u in missing and mono > missing[u])]
        out += w.add(samples)
    last = w.flush()
    return out + ([last] if last else [])


def _totals(windows: list, uuid: str = "GPU-1") -> tuple[int, float]:
    gpus = [g for x in windows for g in x.gpus if g.uuid == uuid]
    return sum(g.energy_mj for g in gpus), sum(g.gpu_seconds for g in gpus)


@pytest.mark.parametrize(("step_s", "name"), [(-3600, "back an hour"), (86_400, "forward a day"), (-5, "back 5 s")])
def test_a_wall_clock_step_neither_loses_energy_nor_invents_gpu_time(step_s: int, name: str, caplog) -> None:
    # 60 s of readings at 1 s, 100 W; the wall clock steps once, at 35 s (mid-window)
    readings = [(i + (step_s if i >= 35 else 0), i, i * 100_000) for i in range(61)]
    windows = _run(readings)
    energy, gpu_s = _totals(windows)
    assert energy == 60 * 100_000
    assert gpu_s == pytest.approx(60.0)
    stepped = [x for x in windows if "clock_step" in x.gpus[0].flags]
    assert len(stepped) == 2  # the window closed at the step and the first one after it
    assert stepped[1].window_start_ns == stepped[0].window_end_ns + step_s * S
    assert "wall clock stepped" in caplog.text
    assert [x.seq for x in windows] == list(range(len(windows)))


def test_small_drift_between_the_clocks_is_not_a_step() -> None:
    readings = [(i * 1.0001, i, i * 100_000) for i in range(61)]  # 100 ppm: 6 ms over the minute
    windows = _run(readings)
    assert not any("clock_step" in g.flags for x in windows for g in x.gpus)
    assert _totals(windows) == (6_000_000, pytest.approx(60.0))


def test_a_frozen_counter_is_flagged() -> None:
    # counter moves for 10 s, then stands still for 10 s while the GPU draws 300 W
    readings = [(i, i, min(i, 10) * 300_000) for i in range(21)]
    windows = _run(readings, power_mw=300_000)
    flags = [x.gpus[0].flags for x in windows]
    assert "counter_frozen" not in flags[0]
    assert "counter_frozen" in flags[1]


def test_an_idle_gpu_whose_counter_barely_moves_is_not_frozen() -> None:
    readings = [(i, i, 0) for i in range(21)]  # 0 W: nothing to count
    windows = _run(readings, power_mw=0)
    assert not any("counter_frozen" in g.flags for x in windows for g in x.gpus)


def test_a_gpu_that_falls_off_the_bus_stops_accruing_at_its_last_reading() -> None:
    readings = [(i, i, i * 100_000) for i in range(41)]
    windows = _run(readings, uuids=("GPU-1", "GPU-2"), missing={"GPU-2": 15})
    assert _totals(windows, "GPU-1") == (40 * 100_000, pytest.approx(40.0))
    energy2, seconds2 = _totals(windows, "GPU-2")
    assert seconds2 == pytest.approx(15.0) and energy2 == 15 * 100_000
    [w2] = [x for x in windows if x.window_start_ns == T0 + 10 * S]
    lost = {g.uuid: g for g in w2.gpus}["GPU-2"]
    assert "gpu_missing" in lost.flags and lost.gpu_seconds == pytest.approx(5.0)
    assert all(g.uuid == "GPU-1" for x in windows if x.window_start_ns >= T0 + 30 * S for g in x.gpus)


def test_windows_of_a_node_whose_every_gpu_is_gone_are_not_sent() -> None:
    readings = [(i, i, i * 100_000) for i in range(41)]
    w = windower()
    out = []
    for wall, mono, counter in readings:
        out += w.add([replace(sample(wall, counter), mono_ns=int(mono * S))] if mono <= 12 else [])
    assert [x.seq for x in out] == [0]


@pytest.mark.parametrize("window_ns", [0, -1])
def test_a_window_must_have_a_length(window_ns: int) -> None:
    with pytest.raises(ValueError, match="^window_ns must be positive$"):
        Windower(agent_id="a", site_id="s", node="n", boot_id="b", epoch="e", window_ns=window_ns, resolver=NoJobs())
    assert Windower(agent_id="a", site_id="s", node="n", boot_id="b", epoch="e", window_ns=1,
                    resolver=NoJobs()).window_ns == 1


def test_a_clock_step_exactly_at_a_window_boundary(caplog) -> None:
    # the window ends at the boundary where the wall clock steps: nothing partial to close
    readings = [(i + (-3600 if i >= 30 else 0), i, i * 100_000) for i in range(61)]
    windows = _run(readings)
    assert _totals(windows) == (6_000_000, pytest.approx(60.0))
    assert [x for x in windows if "clock_step" in x.gpus[0].flags][0].window_start_ns == T0 + (30 - 3600) * S
    assert "stepped by -3600.000 s on n" in caplog.text


@pytest.mark.parametrize("step_s", [-3605.5, 4.5])  # the next boundary half a reading after the step
def test_each_window_keeps_its_own_energy_across_a_clock_step(step_s: float) -> None:
    # constant 100 W: every window's energy is 100 W × its GPU time, to the millijoule,
    # also when the step moves the boundaries off the readings' grid
    readings = [(i + (step_s if i >= 35 else 0), i, i * 100_000) for i in range(61)]
    windows = _run(readings)
    assert _totals(windows) == (6_000_000, pytest.approx(60.0))
    for x in windows:
        g = x.gpus[0]
        assert abs(g.energy_mj - g.gpu_seconds * 100_000) <= 1, (x.window_start_ns, g.energy_mj, g.gpu_seconds)


def _checkpointed(readings: list[tuple[float, float, int | None]], power_mw: int = 100_000) -> Windower:
    w = windower()
    for wall, mono, counter in readings:
        w.add([replace(sample(wall, counter, power_mw), mono_ns=int(mono * S))])
    return w


def test_a_restart_on_the_same_boot_resumes_the_timeline() -> None:
    # 25 s of readings, the agent stops; the wall clock steps +100 s while it is down; it
    # restarts at monotonic 40 s. Nothing is invented for the step, nothing lost for the gap.
    before = _checkpointed([(i, i, i * 100_000) for i in range(26)])
    state = before.checkpoint()
    assert state is not None and state["offset"] is not None
    after = windower()
    assert after.restore(state) is True
    assert after.seq == before.seq and after.win_start == before.win_start
    out = []
    for i in range(40, 61):
        out += after.add([replace(sample(i + 100, i * 100_000), mono_ns=i * S)])
    assert after.flush() is None  # the last reading was on a boundary: nothing left open
    energy = sum(g.energy_mj for x in out for g in x.gpus)
    gpu_s = sum(g.gpu_seconds for x in out for g in x.gpus)
    assert energy == (60 - 20) * 100_000  # from the checkpoint's counter (boundary at 20 s) to the end
    assert gpu_s == pytest.approx(40.0)  # monotonic time since the checkpoint, not the 100 s step
    assert "agent_restart" in out[0].gpus[0].flags and any("clock_step" in g.flags for x in out for g in x.gpus)


def test_a_restart_estimates_from_the_last_power_when_the_counter_is_gone() -> None:
    before = _checkpointed([(i, i, i * 100_000) for i in range(21)], power_mw=300_000)
    after = windower()
    assert after.restore(before.checkpoint())
    # the device answers again without its counter or a power reading: the last known power counts
    out = after.add([replace(sample(30, None, 0), power_mw=None, power_limit_mw=None, mono_ns=30 * S)])
    assert [x.gpus[0].energy_mj for x in out] == [300_000 * 10]
    assert "energy_estimated" in out[0].gpus[0].flags


@pytest.mark.parametrize("state", [
    {"boot_id": "another-boot", "seq": 3, "win_start": 1, "gpus": {}},
    {"boot_id": "b", "seq": 3, "win_start": None, "gpus": {}},
    {"boot_id": "b", "seq": 3, "win_start": 1, "gpus": None},
])
def test_a_checkpoint_of_another_boot_or_an_incomplete_one_starts_fresh(state: dict) -> None:
    w = windower()
    assert w.restore(state) is False
    assert (w.seq, w.win_start, w.gpus) == (0, None, {})


def test_flush_with_every_gpu_gone_sends_nothing() -> None:
    w = windower()
    for i in range(12):
        w.add([replace(sample(i, i * 100_000), mono_ns=i * S)])
    w.gpus.clear()  # every GPU left the node
    assert w.flush() is None


@pytest.mark.parametrize(("jump_mj", "reset"), [(1_401_000, False), (1_401_001, True)])
def test_the_counter_jump_threshold_at_its_boundary(jump_mj: int, reset: bool) -> None:
    # limit 700 W, 1 s: a step above 700 W × 1 s × 2 + 1 J (1,401,000 mJ) is impossible, hence a reset
    w = windower()
    w.add([replace(sample(0, 0), power_limit_mw=700_000, mono_ns=0)])
    w.add([replace(sample(1, jump_mj, power_mw=500_000), power_limit_mw=700_000, mono_ns=S)])
    last = w.flush()
    assert ("counter_reset" in last.gpus[0].flags) is reset
    assert last.gpus[0].energy_mj == (500_000 if reset else jump_mj)  # the reset interval is estimated: 500 W × 1 s


@pytest.mark.parametrize(("still_s", "power_mw", "frozen"), [
    (3, 20_000, True),  # exactly the time and the power: frozen
    (2, 300_000, False),  # not long enough
    (5, 19_999, False),  # too little power to be sure
])
def test_a_frozen_counter_at_its_boundaries(still_s: int, power_mw: int, frozen: bool) -> None:
    readings = [(i, i, min(i, 5) * 100_000) for i in range(5 + still_s + 1)]
    windows = _run(readings, power_mw=power_mw)
    assert any("counter_frozen" in g.flags for x in windows for g in x.gpus) is frozen


def test_a_counter_that_resets_and_then_freezes_is_flagged() -> None:
    w = windower()
    out = []
    counters = [0, 100_000, 200_000, 5_000, 5_000, 5_000, 5_000, 5_000]  # reset at 3 s, then still
    for i, c in enumerate(counters):
        out += w.add([replace(sample(i, c, power_mw=100_000), mono_ns=i * S)])
    last = w.flush()
    flags = set(last.gpus[0].flags)
    assert {"counter_reset", "counter_frozen"} <= flags


def test_readings_a_nanosecond_apart_keep_their_energy() -> None:
    w = windower()
    w.add([replace(sample(0, 0), mono_ns=0)])
    w.add([replace(sample(0, 5), t_ns=T0 + 1, mono_ns=1)])  # the counter moved 5 mJ in 1 ns (plausible: < 1 J)
    w.add([replace(sample(2, 200_005), mono_ns=2 * S)])
    assert w.flush().gpus[0].energy_mj == 200_005


def test_a_window_carries_every_reading_it_summarises() -> None:
    """Known answers for the fields besides energy: utilisation mean, memory, power, limit, shares, MIG."""
    from agents.job_resolver import JobRef

    class Jobs:
        def resolve(self, pid: int):
            return JobRef("j7", "kr-llm") if pid == 7 else None

    w = Windower(agent_id="a", site_id="s", node="n", boot_id="b", epoch="e", window_ns=10 * S, resolver=Jobs())
    util = (ProcessUtil(pid=7, sm_util=60, mig_uuid="MIG-1"), ProcessUtil(pid=8, sm_util=20))
    for i, (u, mem) in enumerate([(50, 1000), (70, 3000), (60, 2000), (40, 2500)]):
        s = replace(sample(i * 2.5, i * 250_000), util_gpu=u, mem_used_bytes=mem, power_limit_mw=650_000,
                    mono_ns=int(i * 2.5 * S), running_pids=(7, 8), process_util=util if i else None)
        w.add([s])
    (x,) = w.add([replace(sample(10, 1_000_000), util_gpu=80, mem_used_bytes=4000, power_limit_mw=650_000,
                          mono_ns=10 * S, running_pids=(7, 8), process_util=util)])
    (g,) = x.gpus
    assert (g.energy_mj, g.gpu_seconds, g.power_avg_mw, g.power_limit_mw) == (1_000_000, 10.0, 100_000, 650_000)
    assert g.util_gpu == 55.0  # the mean of the four readings inside the window: (50+70+60+40)/4
    assert g.mem_used_bytes == 2500  # the last reading inside the window
    assert [(p.pid, p.job_id, p.account, p.sm_share, p.mig_uuid) for p in g.processes] == [
        (7, "j7", "kr-llm", 0.6, "MIG-1"), (8, None, None, 0.2, None)]
    assert (x.site_id, x.agent_id, x.node, x.boot_id, x.epoch, x.seq) == ("s", "a", "n", "b", "e", 0)
    assert (x.window_start_ns, x.window_end_ns) == (T0, T0 + 10 * S)


def test_shares_above_one_are_scaled_down_and_a_new_gpu_is_flagged() -> None:
    w = windower()
    util = (ProcessUtil(pid=1, sm_util=80), ProcessUtil(pid=2, sm_util=60))  # NVML's samples overlap: 140 %
    for i in range(10):
        s = replace(sample(i, i * 100_000), util_gpu=[33, 34, 34][i % 3], mono_ns=i * S, running_pids=(1, 2),
                    process_util=util)
        w.add([s] + ([replace(sample(i, i * 1000, uuid="GPU-2"), mono_ns=i * S)] if i >= 4 else []))
    (x,) = w.add([replace(sample(10, 1_000_000), mono_ns=10 * S),
                  replace(sample(10, 10_000, uuid="GPU-2"), mono_ns=10 * S)])
    g1, g2 = x.gpus
    assert [p.sm_share for p in g1.processes] == [0.571428, 0.428571]  # 80/140 and 60/140, rounded down
    assert g1.util_gpu == 33.6  # 4 × 33 + 6 × 34 over 10 readings
    assert "gpu_appeared" in g2.flags and "gpu_appeared" not in g1.flags
    assert (g2.gpu_seconds, g2.energy_mj) == (6.0, 6000)  # from its first reading at 4 s
