from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import GpuWindow, JobEvent, ProcessShare
from streams.attribution import attribute_gpu, book_jobs, split_exact

SITE = "kr-daejeon"
H100 = "NVIDIA H100 80GB HBM3"


def gpu(energy: int, procs: list[tuple[str | None, str | None, float]], seconds: float = 10.0) -> GpuWindow:
    return GpuWindow(
        uuid="GPU-1", model=H100, energy_mj=energy, gpu_seconds=seconds,
        processes=[ProcessShare(pid=100 + i, job_id=j, account=a, sm_share=s)
                   for i, (j, a, s) in enumerate(procs)],
    )


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, [1, 1, 1], [4, 3, 3]),  # leftover to the first on ties
        (10, [0, 0], [5, 5]),  # all-zero weights split equally
        (7, [2, 1], [5, 2]),  # 4.67 / 2.33: largest remainder wins the extra unit
        (0, [3, 4], [0, 0]),
        (1, [1, 1_000_000], [0, 1]),
        (100, [1], [100]),
    ],
)
def test_split_exact_table(total: int, weights: list[int], expected: list[int]) -> None:
    assert split_exact(total, weights) == expected


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_split_exact_sums_to_whole(total: int, weights: list[int]) -> None:
    parts = split_exact(total, weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)


def test_split_exact_rejects_negative() -> None:
    with pytest.raises(ValueError):
        split_exact(-1, [1])


def test_single_job_gets_whole_window_including_idle_part(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(5000, [("1001", "kr-llm", 0.3)]), cfg)
    assert [(p.project, p.member, p.energy_mj, p.gpu_ms) for p in parts] == [
        ("kr-llm", "KR", 5000, 10000)
    ]


def test_two_jobs_split_by_sm_share(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(9000, [("1", "kr-llm", 0.6), ("2", "gb-protein", 0.3)]), cfg)
    by = {p.project: p.energy_mj for p in parts}
    assert by == {"kr-llm": 6000, "gb-protein": 3000}


def test_joint_project_split_by_owner_shares(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(1001, [("7", "kr-sg-bio", 1.0)]), cfg)
    assert {p.member: p.energy_mj for p in parts} == {"KR": 601, "SG": 400}
    assert sum(p.gpu_ms for p in parts) == 10000


def test_no_process_goes_to_site_idle(config_and_hash) -> None:
    cfg, _ = config_and_hash
    (part,) = attribute_gpu(SITE, gpu(1234, []), cfg)
    assert (part.account_kind, part.project, part.member, part.energy_mj) == (
        "idle", f"idle:{SITE}", "", 1234)


def test_idle_gpu_exclusively_allocated_goes_to_the_job(config_and_hash) -> None:
    cfg, _ = config_and_hash
    alloc = JobEvent(event="start", site_id=SITE, job_id="42", account="ca-climate",
                     gpus=["GPU-1"], exclusive=True, time_ns=1)
    book = book_jobs([alloc])
    (part,) = attribute_gpu(SITE, gpu(800, []), cfg, book, (10, 20))
    assert (part.project, part.job_id, part.energy_mj) == ("ca-climate", "42", 800)
    # after the allocation ended, the idle GPU is the site's again
    book_jobs([alloc.model_copy(update={"event": "end", "time_ns": 15})], book)
    assert attribute_gpu(SITE, gpu(800, []), cfg, book, (10, 20))[0].project == "ca-climate"
    (after,) = attribute_gpu(SITE, gpu(800, []), cfg, book, (20, 30))
    assert after.account_kind == "idle"


def test_unknown_job_and_unknown_account_are_unresolved_not_guessed(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(1000, [(None, None, 0.5), ("9", "no-such-account", 0.5)]), cfg)
    assert {p.account_kind for p in parts} == {"unresolved"}
    assert all(p.member == "" for p in parts)
    assert sum(p.energy_mj for p in parts) == 1000


def test_account_from_job_events_when_window_lacks_it(config_and_hash) -> None:
    cfg, _ = config_and_hash
    start = JobEvent(event="start", site_id=SITE, job_id="55", account="fr-speech", time_ns=1)
    (part,) = attribute_gpu(SITE, gpu(10, [("55", None, 0.9)]), cfg, book_jobs([start]))
    assert (part.project, part.member) == ("fr-speech", "FR")


def test_processes_without_samples_weigh_equally(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(10, [("1", "kr-llm", 0.0), ("2", "gb-protein", 0.0)]), cfg)
    assert sorted(p.energy_mj for p in parts) == [5, 5]


ACCOUNTS = ["kr-llm", "gb-protein", "fr-de-fusion", "kr-sg-bio", "unknown-acct", None]
proc_st = st.tuples(st.sampled_from(["1", "2", "3", None]), st.sampled_from(ACCOUNTS),
                    st.floats(0, 0.25, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.floats(0.001, 3600, allow_nan=False), st.lists(proc_st, max_size=4))
def test_conservation_of_energy_and_gpu_time(config_and_hash, energy, seconds, procs) -> None:
    cfg, _ = config_and_hash
    g = gpu(energy, procs, seconds)
    parts = attribute_gpu(SITE, g, cfg)
    assert sum(p.energy_mj for p in parts) == energy
    assert sum(p.gpu_ms for p in parts) == g.gpu_ms
    assert all(p.energy_mj >= 0 and p.gpu_ms >= 0 for p in parts)
    # deterministic: the same input gives the same parts
    assert attribute_gpu(SITE, g, cfg) == parts


def test_owner_shares_are_exact_decimals(config_and_hash) -> None:
    cfg, _ = config_and_hash
    joint = next(p for p in cfg.projects if p.id == "fr-de-fusion")
    assert sum(o.share for o in joint.owners) == Decimal(1)


def test_mig_unused_slices_are_idle_not_the_tenants(config_and_hash) -> None:
    cfg, _ = config_and_hash
    g = GpuWindow(uuid="GPU-1", model=H100, energy_mj=1000, gpu_seconds=10.0, flags=["mig"],
                  processes=[ProcessShare(pid=1, job_id="1", account="kr-llm", sm_share=0.25, mig_uuid="MIG-a")])
    parts = {p.account_kind: p.energy_mj for p in attribute_gpu(SITE, g, cfg)}
    assert parts == {"job": 250, "idle": 750}
