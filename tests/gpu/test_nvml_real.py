"""On a real NVIDIA GPU only (marked gpu; skipped where NVML is absent)."""

from __future__ import annotations

import time

import pytest

from agents import ReaderError

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def reader():
    from agents.readers.nvml import NvmlReader

    try:
        r = NvmlReader()
    except ReaderError as exc:
        pytest.skip(f"no usable NVML here: {exc}")
    yield r
    r.close()


def test_counter_moves_forward_and_processes_are_listed(reader) -> None:
    first = reader.sample()
    time.sleep(1.1)
    second = reader.sample()
    assert [s.uuid for s in first] == [s.uuid for s in second]
    for a, b in zip(first, second, strict=True):
        assert b.t_ns > a.t_ns
        if a.energy_mj is not None:
            assert b.energy_mj >= a.energy_mj
        assert b.process_util is None or isinstance(b.process_util, tuple)


def test_a_reading_without_the_counter_is_completed_with_it(reader) -> None:
    before = reader.sample()
    skipped = reader.sample(energy=False)
    assert all(s.energy_skipped and s.energy_mj is None for s in skipped if s.power_mw is not None)
    time.sleep(0.2)
    completed = reader.add_energy(skipped)
    for a, s, c in zip(before, skipped, completed, strict=True):
        assert not c.energy_skipped and c.t_ns > s.t_ns
        if a.energy_mj is not None:
            assert c.energy_mj is not None and c.energy_mj >= a.energy_mj
        assert c.power_mw == s.power_mw  # the cheap readings are the skipped reading's own
