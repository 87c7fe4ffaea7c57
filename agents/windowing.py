"""Cutting GPU samples into contiguous telemetry windows.

Windows are aligned to wall-clock multiples of ``window_ns``; the first one
starts at the first sample. Energy comes from the cumulative counter: each
interval between two samples contributes its counter delta, and an interval
that straddles a boundary is split in proportion to time with integer
arithmetic, so the windows' energies telescope to exactly the counter's delta
over the covered span.

The counter need not be read at every sample (the agent reads it once per
window, where it is dear; agents/readers/base.py): a reading without it
(``energy_skipped``) is weighed by its power reading (power × interval) and
measured at the next counter reading, whose delta is shared among the
intervals it covers in proportion to their weights. Every window boundary
and clock step needs a counter reading (``needs_energy`` says when, and the
agent completes the reading with ``add_energy``), so each window's energy is
still a counter delta, and the windows still telescope to the counter.

Counter trouble never produces negative or huge energy: a counter that goes
backwards, or jumps more than the power limit allows, starts a new baseline;
that interval is estimated from the power reading and the window is flagged
``counter_reset``. A device without the counter is integrated from power and
flagged ``energy_estimated``. A counter that stands still for
FROZEN_AFTER_NS while the GPU draws power is flagged ``counter_frozen``.

Time: where the reader gives a monotonic clock, intervals are measured on it,
and the wall clock only places the windows: the windower's timeline is the
monotonic clock plus an offset taken from the wall clock at the first
reading. When the wall clock steps (NTP, an operator) by more than
STEP_TOLERANCE_NS, the open window is closed at the step, the timeline moves
to the new wall clock, and both windows are flagged ``clock_step``: a step
back loses no energy and a step forward invents no GPU-seconds.

A GPU missing from a reading stops accruing GPU time at its last reading
(``gpu_missing``); once it has been away a whole window it is left out of
the windows until it appears again (``gpu_appeared``, a new baseline).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from agents.job_resolver import JobRef, JobResolver
from agents.readers.base import GpuSample
from schemas import SCHEMA_VERSION, GpuWindow, ProcessShare, TelemetryWindow

__all__ = ["Windower"]

log = logging.getLogger(__name__)

# A counter step above limit × time × this is impossible, hence a reset.
JUMP_FACTOR = 2.0
DEFAULT_LIMIT_MW = 1_000_000  # when the device does not report its limit
# The wall clock may drift from the monotonic one by this before it counts as a step.
STEP_TOLERANCE_NS = 1_000_000_000
# An energy counter that has not moved for this long while the GPU draws at
# least FROZEN_MIN_MW is stuck (an idle H100 draws ~70 W, so it always moves).
FROZEN_AFTER_NS = 3_000_000_000
FROZEN_MIN_MW = 20_000


@dataclass
class _GpuState:
    model: str
    last_t: int
    last_counter: int | None
    last_power_mw: int | None
    power_limit_mw: int | None
    energy_mj: int = 0
    flags: set[str] = field(default_factory=set)
    util_sum: int = 0
    util_n: int = 0
    mem_used: int = 0
    reads: int = 0
    pid_util: dict[int, int] = field(default_factory=dict)
    pid_mig: dict[int, str] = field(default_factory=dict)
    pids: set[int] = field(default_factory=set)
    # job of each pid, read when the pid is first seen in the window: a process
    # that ends before the window closes is gone from /proc by then
    pid_job: dict[int, JobRef | None] = field(default_factory=dict)
    seen: bool = True
    # timeline time from which this GPU accrues (its first reading)
    since: int = 0
    # how long the counter has stood still while the GPU drew power
    still_ns: int = 0
    # timeline time of last_counter: before last_t when readings since skipped the
    # counter; their intervals' weights (power mW × ns) wait for the next counter
    counter_t: int = 0
    pending_w: int = 0

    @property
    def waiting(self) -> bool:
        """Readings since the last counter reading wait for the next one."""
        return self.last_counter is not None and self.last_t > self.counter_t

    def reset_window(self) -> None:
        self.energy_mj = 0
        self.flags = set()
        self.util_sum = self.util_n = self.reads = 0
        self.pid_util = {}
        self.pid_mig = {}
        self.pids = set()
        self.pid_job = {}


class Windower:
    def __init__(
        self,
        *,
        agent_id: str,
        site_id: str,
        node: str,
        boot_id: str,
        window_ns: int,
        resolver: JobResolver,
        epoch: str,
        first_seq: int = 0,
    ) -> None:
        if window_ns <= 0:
            raise ValueError("window_ns must be positive")
        self.agent_id = agent_id
        self.site_id = site_id
        self.node = node
        self.boot_id = boot_id
        self.epoch = epoch
        # timeline = monotonic + offset (None until the first reading with a monotonic clock)
        self._offset: int | None = None
        self.window_ns = window_ns
        self.resolver = resolver
        self.seq = first_seq
        self.win_start: int | None = None
        self.gpus: dict[str, _GpuState] = {}
        self._snapshot: dict[str, object] | None = None

    def _next_boundary(self, t: int) -> int:
        return (t // self.window_ns + 1) * self.window_ns

    def _times(self, samples: list[GpuSample]) -> tuple[list[GpuSample], int]:
        """The samples with t_ns on the windower's timeline, and the wall clock's
        step from it (0 without a monotonic clock, or within tolerance)."""
        if self._offset is None and all(s.mono_ns is not None for s in samples):
            self._offset = max(s.t_ns for s in samples) - max(s.mono_ns or 0 for s in samples)
        clock = self._clock(samples)
        if clock is None:
            return samples, 0
        offset = self._offset or 0
        return [replace(s, t_ns=(s.mono_ns or 0) + offset) for s in samples], clock[1]

    def _clock(self, samples: list[GpuSample]) -> tuple[int, int] | None:
        """The reading's time on the timeline and the wall clock's step from it (0
        within tolerance); None without a monotonic clock or a timeline yet."""
        if self._offset is None or any(s.mono_ns is None for s in samples):
            return None
        placed = max(s.mono_ns or 0 for s in samples) + self._offset
        step = max(s.t_ns for s in samples) - placed
        return placed, (step if abs(step) > STEP_TOLERANCE_NS else 0)

    def needs_energy(self, samples: list[GpuSample]) -> bool:
        """Whether readings that skipped the counter must be completed with it
        (``GpuReader.add_energy``) before :meth:`add`: they close a window, meet a
        clock step, or a GPU has no counter baseline yet."""
        if not any(s.energy_skipped for s in samples):
            return False
        if self.win_start is None or self._offset is None and all(s.mono_ns is not None for s in samples):
            return True
        for s in samples:
            st = self.gpus.get(s.uuid)
            if s.energy_skipped and (st is None or st.last_counter is None):
                return True
        clock = self._clock(samples)
        if clock is None:
            t = max(s.t_ns for s in samples)
        elif clock[1]:
            return True  # a clock step closes the window
        else:
            t = clock[0]
        return t >= self._next_boundary(self.win_start)

    def pending(self) -> bool:
        """Whether readings since the last counter reading wait for the next one."""
        return any(st.waiting for st in self.gpus.values())

    def add(self, samples: list[GpuSample]) -> list[TelemetryWindow]:
        """Feed one reading of all GPUs; return the windows it closed (usually none)."""
        if not samples:
            return []
        samples, step = self._times(samples)
        t = max(s.t_ns for s in samples)
        if self.win_start is None:
            self.win_start = t
            for s in samples:
                self.gpus[s.uuid] = self._new_state(s)
                self._observe(self.gpus[s.uuid], s)
            return []
        if t <= self.win_start:
            log.warning("sample at %d is not after the window start %d; ignored", t, self.win_start)
            return []
        present = {s.uuid for s in samples}
        for uuid, missing in self.gpus.items():
            if uuid not in present:
                if missing.seen:
                    log.warning("GPU %s missing from the reading on %s", uuid, self.node)
                missing.flags.add("gpu_missing")
        b = self._next_boundary(self.win_start)
        # readings without the counter inside the window wait for the next counter
        # reading (one that closes a window cannot: see _close)
        waits = t < b
        deltas: dict[str, int] = {}
        measured: dict[str, bool] = {}  # False: estimated, so the counter at a boundary is unknown
        weighed: set[str] = set()
        for s in samples:
            st = self.gpus.get(s.uuid)
            if st is not None and s.energy_skipped and waits and st.last_counter is not None:
                if s.t_ns > st.last_t:
                    st.pending_w += self._weight(st, s, s.t_ns - st.last_t)
                weighed.add(s.uuid)
                deltas[s.uuid], measured[s.uuid] = 0, True
            else:
                deltas[s.uuid], measured[s.uuid] = self._delta(s)
        closed: list[TelemetryWindow] = []
        while b <= t:
            for s in samples:
                st = self.gpus.get(s.uuid)
                if st is None or st.last_t >= b:
                    continue
                d = deltas[s.uuid]
                part = d * (b - st.last_t) // (s.t_ns - st.last_t) if s.t_ns > st.last_t else 0
                st.energy_mj += part
                deltas[s.uuid] = d - part
                # the rest of the interval now starts at the boundary, where the
                # counter read (interpolated) its old value plus the part
                st.last_t = st.counter_t = b
                if st.last_counter is not None:
                    st.last_counter = st.last_counter + part if measured[s.uuid] else None
            self._emit(closed, b)
            b += self.window_ns
        for s in samples:
            st = self.gpus.get(s.uuid)
            if st is None:
                log.warning("GPU %s appeared on %s; its energy counts from now", s.uuid, self.node)
                self.gpus[s.uuid] = st = self._new_state(s)
                st.flags.add("gpu_appeared")
            else:
                st.energy_mj += deltas[s.uuid]
                st.last_t = s.t_ns
                if s.uuid not in weighed:
                    st.last_counter = s.energy_mj
                    st.counter_t = st.last_t
                st.last_power_mw = s.power_mw
            self._observe(st, s)
        for uuid, st in self.gpus.items():
            st.seen = uuid in present
        if step:
            self._step(closed, t, step)
        return closed

    def _step(self, closed: list[TelemetryWindow], t: int, step: int) -> None:
        """The wall clock stepped by ``step`` ns: close the open window at the
        step and carry on on the new wall clock. Nothing is lost or invented:
        the windows keep the monotonic durations."""
        log.warning("wall clock stepped by %+.3f s on %s; window closed at the step (flag clock_step)",
                    step / 1e9, self.node)
        assert self.win_start is not None and self._offset is not None
        for st in self.gpus.values():
            st.flags.add("clock_step")
        if t > self.win_start:
            self._emit(closed, t)
        self._offset += step
        self.win_start = t + step
        for st in self.gpus.values():
            st.last_t += step
            st.counter_t += step
            st.since += step
            st.flags.add("clock_step")  # the first window on the new clock says so too

    def _emit(self, closed: list[TelemetryWindow], end: int) -> None:
        window = self._close(end)
        if window is not None:
            closed.append(window)

    def checkpoint(self) -> dict[str, object] | None:
        """State as of the last closed window, to resume from after a restart: the
        next window's start, the next seq and each GPU's counter at its last
        reading before that boundary. Saved with every closed window (agents/spool.py)."""
        return self._snapshot

    def _take_snapshot(self) -> None:
        self._snapshot = {
            "boot_id": self.boot_id,
            "seq": self.seq,
            "win_start": self.win_start,
            "offset": self._offset,
            "gpus": {
                u: {"model": st.model, "last_t": st.last_t, "last_counter": st.last_counter,
                    "last_power_mw": st.last_power_mw, "power_limit_mw": st.power_limit_mw}
                for u, st in self.gpus.items()
            },
        }

    def restore(self, state: dict[str, object]) -> bool:
        """Resume after a restart on the same boot: the energy used while the agent
        was down lands in the next windows (flagged ``agent_restart``), so the windows
        still add up to the counter. A different boot starts fresh."""
        if state.get("boot_id") != self.boot_id:
            return False
        gpus = state.get("gpus")
        if not isinstance(gpus, dict) or state.get("win_start") is None:
            return False
        self.seq = int(state["seq"])  # type: ignore[call-overload]
        self.win_start = int(state["win_start"])  # type: ignore[call-overload]
        self.gpus = {
            u: _GpuState(g["model"], g["last_t"], g["last_counter"], g["last_power_mw"],
                         g["power_limit_mw"], flags={"agent_restart"}, since=g["last_t"], counter_t=g["last_t"])
            for u, g in gpus.items()
        }
        offset = state.get("offset")
        self._offset = int(offset) if isinstance(offset, int) else None
        return True

    def flush(self) -> TelemetryWindow | None:
        """Close the open (partial) window at the last sample, e.g. at shutdown."""
        if self.win_start is None or not self.gpus:
            return None
        end = max(st.last_t for st in self.gpus.values())
        if end <= self.win_start:
            return None
        return self._close(end)

    # -- internals ------------------------------------------------------------------
    @staticmethod
    def _new_state(s: GpuSample) -> _GpuState:
        return _GpuState(s.model, s.t_ns, s.energy_mj, s.power_mw, s.power_limit_mw, since=s.t_ns,
                         counter_t=s.t_ns)

    @staticmethod
    def _power(st: _GpuState, s: GpuSample) -> int:
        return s.power_mw if s.power_mw is not None else (st.last_power_mw or 0)

    @classmethod
    def _weight(cls, st: _GpuState, s: GpuSample, dt: int) -> int:
        """An interval's weight in its counter delta: the power readings at its
        two ends, averaged, times its length (mW × ns)."""
        now = cls._power(st, s)
        before = st.last_power_mw if st.last_power_mw is not None else now
        return (before + now) * dt // 2

    def _delta(self, s: GpuSample) -> tuple[int, bool]:
        """Energy of the interval since this GPU's last sample, in mJ, never negative,
        and whether it was measured by the counter (True) or estimated (False).
        Readings since the last counter reading that skipped it (``pending_w``)
        get their share of the counter's delta here, in the open window."""
        st = self.gpus.get(s.uuid)
        if st is None:
            return 0, True
        dt = max(0, s.t_ns - st.last_t)
        if dt == 0 and st.last_t == st.counter_t:
            return 0, True
        power = self._power(st, s)
        estimate = power * dt // 1_000_000_000  # mW × s = mJ
        waited, st.pending_w = st.pending_w, 0
        if s.energy_mj is None or st.last_counter is None:
            st.flags.add("energy_estimated")
            st.energy_mj += waited // 1_000_000_000
            return estimate, False
        d = s.energy_mj - st.last_counter
        span = s.t_ns - st.counter_t
        limit = s.power_limit_mw or st.power_limit_mw or DEFAULT_LIMIT_MW
        if d < 0 or d > limit * span * JUMP_FACTOR / 1e9 + 1000:
            log.warning(
                "GPU %s energy counter went from %d to %d mJ in %.3f s: counter reset, "
                "new baseline, interval estimated from power",
                s.uuid, st.last_counter, s.energy_mj, span / 1e9,
            )
            st.flags.update(("counter_reset", "energy_estimated"))
            st.still_ns = 0
            st.energy_mj += waited // 1_000_000_000
            return estimate, False
        if d == 0 and (s.power_mw or 0) >= FROZEN_MIN_MW:
            st.still_ns += span
            if st.still_ns >= FROZEN_AFTER_NS:
                if "counter_frozen" not in st.flags:
                    log.warning("GPU %s energy counter has not moved for %.1f s at %d mW: frozen",
                                s.uuid, st.still_ns / 1e9, s.power_mw)
                st.flags.add("counter_frozen")
        else:
            st.still_ns = 0
        if st.waiting:
            # the waiting readings' share of the delta, by power × time (by time
            # where no power was read); the rest is this interval's
            w_last, n_wait = self._weight(st, s, dt), st.last_t - st.counter_t
            share = d * waited // (waited + w_last) if waited + w_last else d * n_wait // (n_wait + dt)
            st.energy_mj += share
            d -= share
            st.last_counter += share
            st.counter_t = st.last_t
        return d, True

    def _observe(self, st: _GpuState, s: GpuSample) -> None:
        st.power_limit_mw = s.power_limit_mw or st.power_limit_mw
        if s.util_gpu is not None:
            st.util_sum += s.util_gpu
            st.util_n += 1
        if s.mem_used_bytes is not None:
            st.mem_used = s.mem_used_bytes
        st.pids.update(s.running_pids)
        st.flags.update(s.flags)
        if s.process_util is not None:
            st.reads += 1
            for pu in s.process_util:
                st.pids.add(pu.pid)
                st.pid_util[pu.pid] = st.pid_util.get(pu.pid, 0) + pu.sm_util
                if pu.mig_uuid:
                    st.pid_mig[pu.pid] = pu.mig_uuid
        for pid in st.pids:
            if pid not in st.pid_job:
                st.pid_job[pid] = self.resolver.resolve(pid)

    def _shares(self, st: _GpuState) -> list[ProcessShare]:
        raw = {
            pid: (st.pid_util.get(pid, 0) / (100 * st.reads) if st.reads else 0.0)
            for pid in sorted(st.pids)
        }
        total = sum(raw.values())
        scale = 1.0 / total if total > 1.0 else 1.0
        out = []
        for pid, share in raw.items():
            ref = st.pid_job.get(pid)
            if ref is None:  # not known at first sight (or unreadable then): one more try
                ref = self.resolver.resolve(pid)
            # round down so the shares of one GPU never sum above 1
            s = int(min(1.0, share * scale) * 1_000_000) / 1_000_000
            out.append(ProcessShare(pid=pid, job_id=ref.job_id if ref else None,
                                    account=ref.account if ref else None, sm_share=s,
                                    mig_uuid=st.pid_mig.get(pid)))
        return out

    def _close(self, end: int) -> TelemetryWindow | None:
        """Close the window at ``end``; None when no GPU was there at all (the
        time passes, no seq is used)."""
        assert self.win_start is not None
        start = self.win_start
        length = end - start
        gpus = []
        for st in self.gpus.values():
            if st.waiting:
                # readings since the last counter reading and none after them (a GPU
                # missing from the reading that closes the window; a flush without a
                # last counter reading, which the agent avoids): estimated, and the
                # counter from which the next interval counts is unknown
                st.energy_mj += st.pending_w // 1_000_000_000
                st.pending_w = 0
                st.flags.add("energy_estimated")
                st.last_counter, st.counter_t = None, st.last_t
        for uuid, st in list(self.gpus.items()):
            # a GPU accrues from its first reading to its last: one that fell off
            # the bus stops at its last reading, one that appeared starts at its first
            covered = min(st.last_t, end) - max(st.since, start)
            if covered <= 0 and not st.seen:
                del self.gpus[uuid]  # away the whole window: left out until it appears again
                continue
            covered = max(0, covered)
            gpus.append(
                GpuWindow(
                    uuid=uuid,
                    model=st.model,
                    energy_mj=st.energy_mj,
                    gpu_seconds=covered / 1e9,
                    util_gpu=round(st.util_sum / st.util_n, 2) if st.util_n else 0.0,
                    mem_used_bytes=st.mem_used,
                    power_avg_mw=st.energy_mj * 1_000_000_000 // length,
                    power_limit_mw=st.power_limit_mw,
                    flags=sorted(st.flags),
                    processes=self._shares(st),
                )
            )
            st.reset_window()
            if not st.seen:
                st.flags.add("gpu_missing")
        self.win_start = end
        if not gpus:
            self._take_snapshot()
            return None
        window = TelemetryWindow(
            schema_version=SCHEMA_VERSION,
            agent_id=self.agent_id,
            site_id=self.site_id,
            node=self.node,
            boot_id=self.boot_id,
            epoch=self.epoch,
            seq=self.seq,
            window_start_ns=start,
            window_end_ns=end,
            gpus=gpus,
        )
        self.seq += 1
        self._take_snapshot()
        return window
