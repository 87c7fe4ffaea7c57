"""Signature checks of a batch of windows, in the worker or beside it.

Every window's Ed25519 signature is checked (schemas/signing.py's format) by
the compiled core (native/src/verify.rs), whose verdicts are libsodium's, as
the audit's (PyNaCl) are; tests/unit/streams/test_core_verify.py checks they
agree. This module only decides *where*. :class:`CoreVerifier`, the default,
checks a batch on threads of the worker with the interpreter lock released,
so the worker attributes the batch while other cores check it;
:class:`InlineVerifier` checks in the calling thread; :class:`PoolVerifier`
sends the batch to verifying processes.
:meth:`LedgerWorker.prepare <streams.worker.LedgerWorker.prepare>` books
nothing of a window before its verdict is in.

A verdict is never skipped nor guessed: if the pool fails (a verifying
process killed, the pool broken), or a verifying thread fails, the batch is
checked inline and a new pool is started for the next one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Protocol

from streams.core import verify_signed as _core_verify
from streams.core import verify_signed_cpu as _core_verify_cpu

__all__ = ["CoreVerifier", "InlineVerifier", "PoolVerifier", "SignatureVerifier", "Verdicts", "default_threads",
           "exit_with_parent", "verify_signed", "verifier_for"]

log = logging.getLogger(__name__)

# (message bytes, the Ed25519 public key that must have signed them, 32 bytes)
Signed = tuple[bytes, bytes]
# call it to wait for the verdicts, one per item, in order
Verdicts = Callable[[], list[bool]]

def exit_with_parent(parent: int) -> None:
    """In a pool's process: exit once ``parent`` is gone (a worker killed with SIGKILL
    leaves no verifying process behind, whatever supervises it)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def verify_signed(items: Sequence[Signed]) -> list[bool]:
    """True for each message signed, over its exact bytes, by its key (in the calling thread)."""
    return _core_verify(list(items), 1)


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


class CoreVerifier:
    """Checks a batch on ``threads`` threads of the worker's own process, beside the
    caller: the core releases the interpreter lock for the whole batch.
    ``cpu_seconds``: the CPU its checks took, on all of its threads."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError("a verifying stage needs at least one thread")
        self.threads = threads
        self.cpu_seconds = 0.0
        self.failures = 0
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="verify")

    def start(self) -> None:
        self._runner.submit(self._check, []).result()

    def _check(self, items: list[Signed]) -> list[bool]:
        verdicts, cpu_s = _core_verify_cpu(items, self.threads)
        self.cpu_seconds += cpu_s
        return verdicts

    def submit(self, items: Sequence[Signed]) -> Verdicts:
        items = list(items)
        if not items:
            return list
        future = self._runner.submit(self._check, items)

        def collect() -> list[bool]:
            try:
                return future.result()
            except Exception as exc:  # never a guess: check here instead
                self.failures += 1
                log.error("signature check beside the worker failed (%s: %s); this batch is checked in the "
                          "worker", type(exc).__name__, exc)
                return verify_signed(items)
        return collect

    def close(self) -> None:
        self._runner.shutdown(wait=True, cancel_futures=True)


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


def default_threads() -> int:
    """One verifying thread per core beyond the worker's own, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def verifier_for(threads: int, processes: int = 0) -> SignatureVerifier:
    """A pool of ``processes`` verifying processes if any, else ``threads`` verifying
    threads beside the worker, or inline checks for none."""
    if processes > 0:
        return PoolVerifier(processes)
    return CoreVerifier(threads) if threads > 0 else InlineVerifier()
