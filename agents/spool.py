"""The on-disk spool: no window is lost between the sampler and Kafka.

Every closed window is committed to SQLite (WAL, synchronous=FULL) together
with the windower's checkpoint *before* it is sent, and deleted only after
Kafka acknowledged it (acks=all). A ``kill -9`` at any moment leaves either
the window in the spool or the window in Kafka (or, if the kill falls between
the ack and the delete, both: the resend is the same bytes under the same
window id, site/agent/boot/epoch/seq, and the centre books it once).

The spool is bounded (``max_windows``). When it is full, the configured
policy applies and is counted, never silent: ``drop_oldest`` (default: keep
recent data, count the loss) or ``drop_newest``.

One agent writes a spool: ``exclusive=True`` (the agent's own opening) holds an
advisory lock on ``<spool>.lock`` for the process's life, and a second agent
on the same spool (a manual ``agent run`` beside the service, a Kubernetes pod
replaced before its predecessor stopped) is refused at start rather than
interleaving its windows' sequence numbers with the first's. Readers such as
``agent doctor`` open it without the lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agents import AgentError

__all__ = ["FullPolicy", "Spool", "SpoolError", "SpooledWindow"]

log = logging.getLogger(__name__)

FullPolicy = Literal["drop_oldest", "drop_newest"]


class SpoolError(AgentError):
    """The spool file cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class SpooledWindow:
    rowid: int
    topic: str
    key: bytes
    value: bytes


class Spool:
    def __init__(self, path: Path, max_windows: int = 1_000_000,
                 full_policy: FullPolicy = "drop_oldest",
                 new_epoch: Callable[[], str] = lambda: secrets.token_hex(8), *, exclusive: bool = False) -> None:
        if max_windows < 1:
            raise SpoolError("spool max_windows must be at least 1")
        self.path = path
        self._lock_fd: int | None = self._take_lock(path) if exclusive and str(path) != ":memory:" else None
        self.max_windows = max_windows
        self.full_policy = full_policy
        # one connection shared by the sampler and the sender thread, serialised
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(
                """
                CREATE TABLE IF NOT EXISTS windows (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    topic TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                """
            )
            # The spool's epoch: made once, when the spool is created, and part of
            # every window id, so an agent that lost its spool (seq from 0 again
            # on the same boot) never reuses the id of a window it sent before.
            self.db.execute("INSERT OR IGNORE INTO state (name, value) VALUES ('epoch', ?)", (new_epoch(),))
        except sqlite3.Error as exc:
            self._release_lock()
            raise SpoolError(f"cannot open spool {path}: {exc}") from exc

    @staticmethod
    def _take_lock(path: Path) -> int:
        lock = path.with_name(path.name + ".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot open spool lock {lock}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SpoolError(f"spool {path} is in use by another agent (pid {holder}); one agent per spool: "
                             "stop the other one (or give this one its own spool_path)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # -- writing -------------------------------------------------------------------
    def append(self, topic: str, messages: Sequence[tuple[bytes, bytes]],
               checkpoint: dict[str, object]) -> int:
        """Store (key, value) messages and the checkpoint atomically; return how many
        were dropped for room."""
        with self._lock:
            dropped = self._append(topic, messages, checkpoint)
        if dropped:
            log.error("spool full (%d windows): %d window(s) dropped by policy %s; %d dropped in all",
                      self.max_windows, dropped, self.full_policy, self.dropped)
        return dropped

    def _append(self, topic: str, messages: Sequence[tuple[bytes, bytes]], checkpoint: dict[str, object]) -> int:
        dropped = 0
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for key, value in messages:
                if self._count() >= self.max_windows:
                    dropped += 1
                    if self.full_policy == "drop_newest":
                        continue
                    self.db.execute("DELETE FROM windows WHERE id = (SELECT min(id) FROM windows)")
                self.db.execute("INSERT INTO windows (topic, key, value) VALUES (?, ?, ?)",
                                (topic, key, value))
            self._set("checkpoint", json.dumps(checkpoint))
            if dropped:
                self._set("dropped", str(self.dropped + dropped))
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.db.execute("ROLLBACK")
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from exc
        return dropped

    def ack(self, rowids: Sequence[int]) -> None:
        """Kafka acknowledged these: remove them."""
        if rowids:
            with self._lock:
                self.db.executemany("DELETE FROM windows WHERE id = ?", [(r,) for r in rowids])

    # -- reading -------------------------------------------------------------------
    def pending(self, limit: int = 500) -> list[SpooledWindow]:
        with self._lock:
            rows = self.db.execute("SELECT id, topic, key, value FROM windows ORDER BY id LIMIT ?",
                                   (limit,)).fetchall()
        return [SpooledWindow(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in rows]

    def count(self) -> int:
        with self._lock:
            return self._count()

    @property
    def dropped(self) -> int:
        with self._lock:
            row = self.db.execute("SELECT value FROM state WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    @property
    def epoch(self) -> str:
        with self._lock:
            return str(self.db.execute("SELECT value FROM state WHERE name = 'epoch'").fetchone()[0])

    def checkpoint(self) -> dict[str, object] | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM state WHERE name = 'checkpoint'").fetchone()
        return json.loads(row[0]) if row else None

    def integrity(self) -> str:
        with self._lock:
            return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self.db.close()
        self._release_lock()

    def _count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM windows").fetchone()[0])

    def _set(self, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO state (name, value) VALUES (?, ?)", (name, value))
