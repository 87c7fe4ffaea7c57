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
