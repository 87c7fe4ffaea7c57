"""One live writer per hash chain: a lease in the ledger database.

ClickHouse has no compare-and-set, so the lease is a log of claims: each
worker appends rows (holder, taken_at, expires_at) and the holder of a chain
is, among the holders whose latest row has not expired (by the server's
clock), the one that took it first. A worker that finds another live holder
waits for its lease to expire and refuses to start if it does not; a holder
on this host whose process is gone is known dead at once. A holder renews
its lease while it writes and checks, before every batch, that it still
holds it; losing it stops the worker (:class:`LeaseError`) rather than fork
the chain.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams import StreamError

__all__ = ["ChainLease", "LeaseError", "LeaseHolder", "holder_id"]

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 30


class LeaseError(StreamError):
    """Another live worker holds this chain, or this worker lost it."""


def holder_id() -> str:
    """host:pid:random — the random part tells two lives of one pid apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    holder: str
    taken_at: Any
    expires_at: Any

    def dead_on_this_host(self, alive: Callable[[int], bool]) -> bool:
        host, _, rest = self.holder.partition(":")
        pid = rest.partition(":")[0]
        return host == socket.gethostname() and pid.isdigit() and not alive(int(pid))


class ChainLease:
    def __init__(self, client: Any, database: str, chain_id: str, holder: str | None = None,
                 ttl_s: int = DEFAULT_TTL_S, sleep: Callable[[float], None] = time.sleep,
                 alive: Callable[[int], bool] = _pid_alive, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.db = database
        self.chain_id = chain_id
        self.holder = holder or holder_id()
        self.ttl_s = ttl_s
        self._sleep, self._alive, self._clock = sleep, alive, clock
        self._renewed = float("-inf")
        self._version = 0
        self._taken_at: Any = None

    def holders(self) -> list[LeaseHolder]:
        """Live holders of the chain, the one that took it first first. A holder
        on this host whose process is gone is not live: its lease is ended here
        (a row on its behalf), so that workers on other hosts see it free too."""
        rows = self.client.execute(
            f"SELECT holder, argMax(taken_at, version) AS taken, argMax(expires_at, version) AS expires "
            f"FROM {self.db}.chain_leases WHERE chain_id = %(c)s GROUP BY holder "
            f"HAVING expires > now() ORDER BY taken, holder", {"c": self.chain_id})
        live = []
        for r in rows:
            h = LeaseHolder(r[0], r[1], r[2])
            if h.holder != self.holder and h.dead_on_this_host(self._alive):
                log.warning("chain %s: holder %s is gone from this host; its lease ends", self.chain_id, h.holder)
                self._write(None, -1, holder=h.holder)
                continue
            live.append(h)
        return live

    def _write(self, taken: Any, ttl_s: int, holder: str | None = None) -> None:
        """Append a claim row; times by the server's clock. ``taken``: the original
        taking time (a renewal), or None for now; ``holder``: another holder whose
        lease this row ends (its process is gone)."""
        self._version = max(self._version + 1, time.time_ns())
        self.client.execute(
            f"INSERT INTO {self.db}.chain_leases (chain_id, holder, taken_at, expires_at, version, written_at) "
            f"SELECT %(c)s, %(h)s, {'now()' if taken is None else 'toDateTime(%(t)s)'}, now() + {int(ttl_s)}, "
            f"{self._version}, now()", {"c": self.chain_id, "h": holder or self.holder, "t": str(taken)})

    def acquire(self, wait_s: float | None = None) -> None:
        """Take the chain, waiting up to ``wait_s`` (default: the TTL and 5 s) for
        another holder's lease to expire; :class:`LeaseError` if it stays held."""
        deadline = self._clock() + (self.ttl_s + 5 if wait_s is None else wait_s)
        told = False
        while True:
            others = [h for h in self.holders() if h.holder != self.holder]
            if not others:
                self._write(None, self.ttl_s)
                live = self.holders()
                if live and live[0].holder == self.holder:
                    self._taken_at = live[0].taken_at
                    self._renewed = self._clock()
                    log.info("chain %s: lease taken by %s (ttl %d s)", self.chain_id, self.holder, self.ttl_s)
                    return
                self.release()  # lost a race to a worker that claimed it first
                others = [h for h in live if h.holder != self.holder]
            if self._clock() >= deadline:
                if not others:
                    raise LeaseError(f"chain {self.chain_id!r}: the lease could not be taken (it expired as it "
                                     f"was written: is the ledger database's clock jumping?)")
                h = others[0]
                raise LeaseError(
                    f"chain {self.chain_id!r} is held by another live worker ({h.holder}, lease until "
                    f"{h.expires_at} UTC). Give each worker its own BRIDGELEDGER_CHAIN_ID, or stop the other one.")
            if not told and others:
                log.warning("chain %s is held by %s until %s; waiting up to %.0f s for its lease to expire",
                            self.chain_id, others[0].holder, others[0].expires_at, deadline - self._clock())
                told = True
            self._sleep(min(2.0, max(0.1, deadline - self._clock())))

    def renew(self, force: bool = False) -> None:
        """Extend the lease (at most every third of the TTL unless forced) and
        check it is still ours; :class:`LeaseError` if another worker holds it.

        A lease that expired while nobody else took it (the ledger database was
        unreachable longer than the TTL) is taken again: no one else can have
        written the chain meanwhile."""
        if not force and self._clock() - self._renewed < self.ttl_s / 3:
            return
        live = self.holders()
        if live and live[0].holder != self.holder:
            raise LeaseError(f"chain {self.chain_id!r}: this worker ({self.holder}) no longer holds the lease; "
                             f"{live[0].holder} does; stopping before writing")
        if not live:
            log.warning("chain %s: this worker's lease had expired and nobody took it; taking it again",
                        self.chain_id)
            self._write(None, self.ttl_s)
            live = self.holders()
            if not live or live[0].holder != self.holder:
                raise LeaseError(f"chain {self.chain_id!r}: another worker took the lease while it was free")
            self._taken_at = live[0].taken_at
        else:
            self._write(self._taken_at, self.ttl_s)
        self._renewed = self._clock()

    def release(self) -> None:
        """Give the chain up at once (a clean stop)."""
        self._write(None, -1)
        self._renewed = float("-inf")
