from __future__ import annotations

import pytest

from schemas import JobEvent
from streams.attribution import book_jobs
from streams.processing import WindowProcessor, entry_id
from tests.builders import window, wire


@pytest.fixture()
def proc(config_and_hash) -> WindowProcessor:
    return WindowProcessor(*config_and_hash)


def test_entries_sum_to_the_window_and_carry_config_hash(proc: WindowProcessor) -> None:
    doc = window()
    doc["gpus"][0]["processes"] = [
        {"pid": 1, "job_id": "7", "account": "kr-sg-bio", "sm_share": 0.5},
        {"pid": 2, "job_id": "8", "account": "fr-speech", "sm_share": 0.2},
    ]
    jobs = book_jobs([JobEvent(event="start", site_id="kr-daejeon", job_id=j, account=a, time_ns=1)
                      for j, a in (("7", "kr-sg-bio"), ("8", "fr-speech"))])
    out = proc.process(wire(doc), jobs)
    assert out.rejection is None
    assert sum(e.energy_mj for e in out.entries) == 5000
    assert sum(e.gpu_ms for e in out.entries) == 10_000
    assert {e.config_hash for e in out.entries} == {proc.config_hash}
    assert {e.member for e in out.entries} == {"KR", "SG", "FR"}
    assert {e.account_source for e in out.entries} == {"job_event"}
    again = proc.process(wire(doc), jobs)
    assert [e.entry_id for e in again.entries] == [e.entry_id for e in out.entries]
    assert len({e.entry_id for e in out.entries}) == len(out.entries)


def test_entry_id_depends_on_every_input() -> None:
    base = ("a/b/1", "GPU-1", "job", "kr-llm", "7", "KR")
    ids = {entry_id(*base)}
    for i in range(len(base)):
        changed = list(base)
        changed[i] = (changed[i] or "") + "x"
        ids.add(entry_id(*changed))
    assert len(ids) == len(base) + 1


@pytest.mark.parametrize(
    ("over", "gpu_over", "reason"),
    [
        ({"site_id": "atlantis"}, {}, "unknown_site"),
        ({}, {"model": "Voodoo 2"}, "unknown_gpu_model"),
        ({}, {"energy_mj": 700_000 * 10 * 2}, "implausible_energy"),
        ({}, {"gpu_seconds": 20.0}, "implausible_window"),
        ({"window_end_ns": 10**18 + 7200 * 10**9}, {}, "implausible_window"),
    ],
)
def test_rejections_keep_the_original_bytes(proc, over, gpu_over, reason) -> None:
    doc = window(**over)
    doc["gpus"][0].update(gpu_over)
    raw = wire(doc)
    out = proc.process(raw)
    assert out.entries == []
    assert out.rejection is not None
    assert out.rejection.reason == reason
    assert out.rejection.raw == raw


def test_duplicate_gpu_in_one_window_is_rejected(proc) -> None:
    doc = window()
    doc["gpus"].append(dict(doc["gpus"][0]))
    assert proc.process(wire(doc)).rejection.reason == "schema_invalid"
