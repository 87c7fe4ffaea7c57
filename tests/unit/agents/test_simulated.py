from __future__ import annotations

import itertools

from agents.publisher import MemoryPublisher
from agents.runner import FleetClock, build_sim_fleet
from agents.runner import run_fleet as drive_fleet
from schemas import decode_window
from schemas.topics import JOBS_TOPIC, WINDOWS_TOPIC

S = 1_000_000_000
START = 1_800_000_000 * S


def run_fleet(config, seed: int, minutes: int = 30):
    pub = MemoryPublisher()
    clock = FleetClock(START)
    fleet = build_sim_fleet(config, pub, clock, start_ns=START, horizon_ns=minutes * 60 * S,
                            nodes_per_site=1, gpus_per_node=4, window_s=10, seed=seed)
    counters: dict[str, list[int]] = {}

    def read_counters() -> None:
        for _, reader in fleet:
            for g in reader.gpus:
                counters.setdefault(g.uuid, []).append(g.counter_mj)

    drive_fleet(fleet, pub, clock, until_ns=START + minutes * 60 * S, on_tick=read_counters)
    pub.flush()
    return fleet, pub, counters


def test_fleet_is_deterministic_by_seed(config_and_hash) -> None:
    cfg, _ = config_and_hash
    _, a, _ = run_fleet(cfg, seed=3)
    _, b, _ = run_fleet(cfg, seed=3)
    _, c, _ = run_fleet(cfg, seed=4)
    assert [m[2] for m in a.messages] == [m[2] for m in b.messages]
    assert [m[2] for m in a.messages] != [m[2] for m in c.messages]


def test_fleet_windows_add_up_to_the_counters(config_and_hash) -> None:
    cfg, _ = config_and_hash
    fleet, pub, counters = run_fleet(cfg, seed=5)
    windows = [decode_window(v) for t, _, v in pub.messages if t == WINDOWS_TOPIC]
    per_gpu: dict[str, int] = {}
    for w in windows:
        for g in w.gpus:
            per_gpu[g.uuid] = per_gpu.get(g.uuid, 0) + g.energy_mj
    for uuid, series in counters.items():
        assert all(b >= a for a, b in itertools.pairwise(series))
        assert per_gpu[uuid] == series[-1] - series[0]
    assert sum(a.totals.windows for a, _ in fleet) == len(windows)
    jobs = [v for t, _, v in pub.messages if t == JOBS_TOPIC]
    assert jobs, "the simulated scheduler announces its jobs"
    accounts = {p.account for w in windows for g in w.gpus for p in g.processes}
    assert accounts and accounts <= {a for p in cfg.projects for a in p.accounts}
