"""Independent chunks of an audit, run in this process or in a pool of processes.

``ledger verify`` cuts the chains into chunks of batches that need nothing from
each other but the hash of the batch before them; each chunk reads its own
rows from ClickHouse and checks them. :class:`ChunkPool` runs such chunks in
``processes`` spawned processes, each with its own database connection (from
the same settings as the caller's), and gives the results back in chunk
order, so a report is the same, line for line, as one process would write.
With one process the chunks run here, on the caller's client.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

__all__ = ["ChunkPool", "default_audit_processes"]

T = TypeVar("T")
# fn(client, *args) -> T, a module-level function (the pool pickles it by name)
ChunkFn = Callable[..., T]

_client: Any = None


def _connect(settings: Any, parent: int) -> None:
    global _client
    from streams.clickhouse import connect
    from streams.verifier import exit_with_parent

    exit_with_parent(parent)
    _client = connect(settings)


def _run(fn: ChunkFn[T], args: tuple[Any, ...]) -> T:
    return fn(_client, *args)


def default_audit_processes() -> int:
    """Both cores of a 2-core machine, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


class ChunkPool:
    """``settings``: the caller's ClickHouseSettings (a connection per process); None runs here."""

    def __init__(self, settings: Any | None, processes: int) -> None:
        self.settings = settings
        self.processes = processes if settings is not None else 1

    def map(self, client: Any, fn: ChunkFn[T], tasks: Sequence[tuple[Any, ...]]) -> Iterator[T]:
        """``fn(client, *task)`` for every task, results in task order (as they are ready)."""
        if self.processes <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield fn(client, *task)
            return
        with ProcessPoolExecutor(min(self.processes, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_connect, initargs=(self.settings, os.getpid())) as pool:
            futures = [pool.submit(_run, fn, task) for task in tasks]
            try:
                for f in futures:
                    yield f.result()
            finally:
                for f in futures:
                    f.cancel()
