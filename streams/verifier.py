"""Signature checks of a batch of windows, in the worker or beside it.

Every window's Ed25519 signature is checked (schemas/signing.py); this module
only decides *where*. :class:`InlineVerifier` checks in the calling thread.
:class:`PoolVerifier` sends the batch to verifying processes and returns at
once, so the worker attributes the batch while the other cores check it
(PyNaCl holds the interpreter lock, so threads would not run it in parallel);
:meth:`LedgerWorker.prepare <streams.worker.LedgerWorker.prepare>` books
nothing of a window before its verdict is in.

A verdict is never skipped nor guessed: if the pool fails (a verifying
process killed, the pool broken), the batch is checked inline and a new pool
is started for the next one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Protocol

from schemas.signing import VerifyKey, verify_window

__all__ = ["InlineVerifier", "PoolVerifier", "SignatureVerifier", "Verdicts", "default_processes",
           "exit_with_parent", "verify_signed", "verifier_for"]

log = logging.getLogger(__name__)

# (message bytes, the Ed25519 public key that must have signed them, 32 bytes)
Signed = tuple[bytes, bytes]
# call it to wait for the verdicts, one per item, in order
Verdicts = Callable[[], list[bool]]

_KEYS: dict[bytes, VerifyKey] = {}


def exit_with_parent(parent: int) -> None:
    """In a pool's process: exit once ``parent`` is gone (a worker killed with SIGKILL
    leaves no verifying process behind, whatever supervises it)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def verify_signed(items: Sequence[Signed]) -> list[bool]:
    """True for each message signed, over its exact bytes, by its key."""
    out = []
    for raw, public in items:
        key = _KEYS.get(public)
        if key is None:
            if len(_KEYS) > 10_000:  # keys of every config a process saw: bounded anyway
                _KEYS.clear()
            key = _KEYS[public] = VerifyKey(public)
        out.append(verify_window(raw, key))
    return out


class SignatureVerifier(Protocol):
    def submit(self, items: Sequence[Signed]) -> Verdicts:
        """Start checking ``items``; the returned call waits for their verdicts."""

    def start(self) -> None: ...

    def close(self) -> None: ...


class InlineVerifier:
    """Checks in the calling thread, when its verdicts are asked for."""

    def submit(self, items: Sequence[Signed]) -> Verdicts:
        return lambda: verify_signed(items)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class PoolVerifier:
    """Checks in ``processes`` verifying processes (spawned: the worker has threads)."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("a verifying pool needs at least one process")
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self.failures = 0

    def start(self) -> None:
        """Start the processes now (the first batch would otherwise wait for them)."""
        self._executor().submit(verify_signed, []).result()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=exit_with_parent, initargs=(os.getpid(),))
        return self._pool

    def pids(self) -> list[int]:
        """The verifying processes now (for CPU accounting)."""
        procs = getattr(self._pool, "_processes", None) or {}
        return sorted(procs)

    def submit(self, items: Sequence[Signed]) -> Verdicts:
        items = list(items)
        if not items:
            return list
        size = -(-len(items) // self.processes)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        try:
            pool = self._executor()
            futures: list[Future[list[bool]]] = [pool.submit(verify_signed, c) for c in chunks]
        except Exception as exc:  # a broken pool: check here, start afresh next time
            self._failed(exc)
            return lambda: verify_signed(items)

        def collect() -> list[bool]:
            try:
                out: list[bool] = []
                for f in futures:
                    out.extend(f.result())
                return out
            except Exception as exc:
                self._failed(exc)
                return verify_signed(items)
        return collect

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        log.error("signature pool failed (%s: %s); this batch is checked in the worker, a new pool "
                  "starts for the next", type(exc).__name__, exc)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def default_processes() -> int:
    """One verifying process per core beyond the worker's own, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def verifier_for(processes: int) -> SignatureVerifier:
    """A pool of ``processes`` verifying processes, or inline checks for 0."""
    return PoolVerifier(processes) if processes > 0 else InlineVerifier()
