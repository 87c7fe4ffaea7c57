"""Audit chunks in several processes come back as one process would give them
(ledger/chunk_pool.py); `ledger verify --processes 2` on the real stack is in
tests/integration/test_pipeline.py."""

from __future__ import annotations

import os
import time

from ledger.chunk_pool import ChunkPool
from streams.clickhouse import ClickHouseSettings


def square_slowly(client: object, x: int) -> tuple[int, int, bool]:
    time.sleep(0.02 * (6 - x))  # the first tasks finish last
    return x * x, os.getpid(), client is not None


def test_results_come_back_in_task_order_from_other_processes() -> None:
    pool = ChunkPool(ClickHouseSettings(port=1, password="x"), 2)  # a client per process, connected lazily
    out = list(pool.map(None, square_slowly, [(x,) for x in range(6)]))
    assert [r[0] for r in out] == [x * x for x in range(6)]
    assert all(pid != os.getpid() for _, pid, _ in out) and all(has_client for *_, has_client in out)


def test_one_process_runs_here_on_the_callers_client() -> None:
    out = list(ChunkPool(None, 4).map("client", square_slowly, [(x,) for x in range(3)]))
    assert [r[0] for r in out] == [0, 1, 4] and {pid for _, pid, _ in out} == {os.getpid()}
