"""The one writer of the ledger's hash chain: a batch's rows, then its commit record.

Commit protocol (see ledger/migrations/0001_ledger.sql): per batch, entries and
raw windows are inserted tagged with a fresh ``batch_id``, then one
``ledger_batches`` row links the batch into the hash chain (format in
schemas/chain.py). A crash or a failed insert at any point leaves at most rows
of an uncommitted ``batch_id`` (outside the ``ledger``/``windows`` views); the
caller retries. A commit record whose acknowledgement was lost is still a
commit: the retry finds its windows booked (:meth:`ChainWriter.committed`).
The writer deletes nothing (its ClickHouse user may only insert and select):
rows of interrupted writes stay outside the views until ``bridgeledger ledger
gc`` removes them as the migrator.

One chain per writer: two workers writing one database use distinct
``chain_id`` values (``BRIDGELEDGER_CHAIN_ID``); a lease (streams/lease.py)
stops a second worker configured with a chain id that a live one holds. The
stream's sink (streams/sink.py) and the corrections (ledger/corrections.py)
both write through this class.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from schemas.chain import GENESIS, batch_hash
from schemas.checkpoint import ChainHead, Checkpoint, checkpoint_id
from schemas.ledger import ENTRY_ROW_FIELDS
from schemas.telemetry import Window
from streams.clickhouse import insert_native
from streams.core import EntryRows, encode_windows_native, windows_hash
from streams.lease import ChainLease

__all__ = ["BATCH_COLUMNS", "ENTRY_COLUMNS", "WINDOW_COLUMNS", "ChainWriter", "ChainHead"]

log = logging.getLogger(__name__)

WINDOW_COLUMNS = (
    "batch_id, window_id, agent_id, site_id, node, boot_id, seq, window_start, window_start_ns, "
    "window_end_ns, gpu_count, energy_mj, gpu_ms, payload, received_at"
)
NS_PER_S = 1_000_000_000
_START, _DIGEST = (ENTRY_ROW_FIELDS.index(f) for f in ("window_start_ns", "digest"))
# the insert's columns, derived from the row: its fields but the digest, with the
# batch id first, the window's start in seconds (the partition key) before
# window_start_ns, and the write time last (the core writes each by its name)
ENTRY_COLUMNS = ", ".join(("batch_id", *ENTRY_ROW_FIELDS[:_START], "window_start", *ENTRY_ROW_FIELDS[_START:_DIGEST],
                           "written_at"))
BATCH_COLUMNS = (
    "chain_id, seq, batch_id, prev_hash, entries_hash, batch_hash, entry_count, window_count, energy_mj, "
    "gpu_ms, min_window_start, max_window_start, entry_ids, entry_digests, windows_hash, committed_at"
)


def _sites_agents(windows: Sequence[Window]) -> dict[str, tuple[str, ...]]:
    return {"s": tuple({w.site_id for w in windows}), "a": tuple({w.agent_id for w in windows})}


def _ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // NS_PER_S, UTC).replace(tzinfo=None)


class ChainWriter:
    def __init__(self, client: Any, database: str, chain_id: str = "main",
                 now: Callable[[], datetime] | None = None, lease: ChainLease | None = None,
                 on_commit: Callable[[ChainHead], None] | None = None, windows_client: Any | None = None) -> None:
        self.client = client
        # a second connection: the raw windows' insert then runs beside the entries' (ClickHouse
        # takes each insert on one thread); the commit record still waits for both
        self.windows_client = windows_client
        self._beside: ThreadPoolExecutor | None = None
        self.db = database
        self.chain_id = chain_id
        self._now = now or (lambda: datetime.now(UTC).replace(tzinfo=None))
        # the worker's hold on its chain (streams/lease.py), checked before each batch
        self.lease = lease
        # told of every batch once its commit record is in (the checkpointer)
        self.on_commit = on_commit
        # (next seq, hash) after this writer's last confirmed commit; only under a
        # lease (no other writer of the chain), forgotten on any failed write
        self._head: tuple[int, str] | None = None

    # -- the chain ------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """(next seq, hash of the last batch) of this chain."""
        rows = self.client.execute(
            f"SELECT seq, batch_hash FROM {self.db}.ledger_batches WHERE chain_id = %(c)s "
            f"ORDER BY seq DESC LIMIT 1", {"c": self.chain_id})
        return (int(rows[0][0]) + 1, rows[0][1]) if rows else (0, GENESIS)

    def recover(self) -> int:
        """How many of this chain's writes were interrupted (an intent, no commit).

        Their rows are outside every view and count for nothing; the writer
        may not delete (its ClickHouse profile forbids ALTER … DELETE), so they
        stay until `bridgeledger ledger gc` (the migrator) removes them."""
        orphans = self.client.execute(
            f"SELECT count() FROM {self.db}.ledger_intents WHERE chain_id = %(c)s AND batch_id NOT IN "
            f"(SELECT batch_id FROM {self.db}.ledger_batches)", {"c": self.chain_id})
        return int(orphans[0][0])

    def committed(self, windows: Sequence[Window]) -> dict[str, str]:
        """Which of these windows are already in a committed batch (resends,
        replays), each with the SHA-256 of the bytes booked under its id.

        Two queries, each reading in proportion to the batch, not to the
        ledger. First the seq ranges of the windows' agent runs
        (``window_seq_ranges``, migration 0011): a window whose seq is outside
        its run's range has no row in ``raw_windows``, booked or not; a new
        window, the common case, is settled there. Then the others by id:
        ``raw_windows`` with the ids as PREWHERE, committed batches only (as the
        ``windows`` view, which ClickHouse 18.16 reads whole: every booked
        payload of the batch's agents, for every batch; docs/benchmarks.md).
        The ids travel as an external table (one column, sent in the native
        format) rather than as an escaped IN list in the query text."""
        if not windows:
            return {}
        ranges = {(s, a, b, e): (low, high) for s, a, b, e, low, high in self.client.execute(
            f"SELECT site_id, agent_id, boot_id, epoch, minMerge(low), maxMerge(high) FROM {self.db}.window_seq_ranges "
            f"WHERE site_id IN %(s)s AND agent_id IN %(a)s GROUP BY site_id, agent_id, boot_id, epoch",
            _sites_agents(windows))}
        maybe = []
        for w in windows:
            r = ranges.get((w.site_id, w.agent_id, w.boot_id, w.epoch))
            if r is not None and r[0] <= w.seq <= r[1]:
                maybe.append(w)
        if not maybe:
            return {}
        rows = self.client.execute(
            f"SELECT window_id, lower(hex(SHA256(payload))) FROM {self.db}.raw_windows "
            f"PREWHERE window_id IN _batch_windows "
            f"WHERE site_id IN %(s)s AND agent_id IN %(a)s "
            f"AND batch_id IN (SELECT batch_id FROM {self.db}.ledger_batches)",
            _sites_agents(maybe),
            external_tables=[{"name": "_batch_windows", "structure": [("window_id", "String")],
                              "data": [{"window_id": w.window_id} for w in maybe]}])
        return {r[0]: r[1] for r in rows}

    # -- writing --------------------------------------------------------------------
    def commit_batch(self, entries: EntryRows,
                     windows: Sequence[tuple[Window, bytes]], now: datetime) -> str:
        """Insert entries and windows, then the chain record (entries hashed in entry_id order)."""
        if self.lease is not None:
            self.lease.renew()  # LeaseError: another worker holds the chain; write nothing
        batch_id = uuid.uuid4().hex
        # Under a lease this writer is the chain's only one, so after a confirmed commit
        # it knows the head without asking; after a failure (the record may have landed
        # with its acknowledgement lost) and without a lease it reads it.
        seq, prev = self._head or self.head()
        self._head = None
        # the entries hash over the digests in entry_id order, the sums, the first and last window start
        e_hash, energy, gpu_ms, first, last = entries.chain_totals()
        # schemas.chain.windows_hash of the payloads' window_digest, by window id, in the core
        w_hash = windows_hash([raw for _, raw in sorted(windows, key=lambda wr: wr[0].window_id)])
        b_hash = batch_hash(self.chain_id, seq, batch_id, prev, e_hash, len(entries), energy, gpu_ms,
                            w_hash, len(windows))
        if first is None or last is None:
            starts = [w.window_start_ns for w, _ in windows]
            first, last = min(starts), max(starts)
        now_s = int(now.replace(tzinfo=UTC).timestamp())
        try:
            self.client.execute(f"INSERT INTO {self.db}.ledger_intents (chain_id, batch_id, started_at) VALUES",
                                [(self.chain_id, batch_id, now)])
            insert_windows = None
            if windows:
                rows_w = [(w.window_id, w.agent_id, w.site_id, w.node, w.boot_id, w.seq, w.window_start_ns,
                           w.window_end_ns, len(w.gpus), sum(g.energy_mj for g in w.gpus),
                           sum(g.gpu_ms for g in w.gpus), raw) for w, raw in windows]

                def insert_windows(client: Any) -> None:
                    insert_native(client, f"INSERT INTO {self.db}.raw_windows ({WINDOW_COLUMNS}) VALUES",
                                  lambda columns, revision: encode_windows_native(columns, revision, batch_id, now_s,
                                                                                  rows_w))
            beside = self._insert_beside(insert_windows) if insert_windows is not None and entries else None
            if entries:
                # one Native block made by the core for the columns the server lists
                try:
                    insert_native(self.client, f"INSERT INTO {self.db}.ledger_entries ({ENTRY_COLUMNS}) VALUES",
                                  lambda columns, revision: entries.encode_native(columns, revision, batch_id, now_s))
                finally:
                    if beside is not None:
                        beside.result()  # both inserts end before the record, whichever failed
            if insert_windows is not None and beside is None:
                insert_windows(self.client)
            # the commit record; the core adds the entry ids and digests in entry_id order
            record: dict[str, str | int] = {
                "chain_id": self.chain_id, "seq": seq, "batch_id": batch_id, "prev_hash": prev,
                "entries_hash": e_hash, "batch_hash": b_hash, "entry_count": len(entries),
                "window_count": len(windows), "energy_mj": energy, "gpu_ms": gpu_ms,
                "min_window_start": first // NS_PER_S, "max_window_start": last // NS_PER_S,
                "windows_hash": w_hash, "committed_at": now_s}
            insert_native(self.client, f"INSERT INTO {self.db}.ledger_batches ({BATCH_COLUMNS}) VALUES",
                          lambda columns, revision: entries.encode_batch_native(columns, revision, record))
        except Exception:
            # The rows of this attempt, if any landed, stay outside every view;
            # if the commit record did land (its acknowledgement was lost), the
            # retry finds the windows booked. The writer deletes nothing.
            log.warning("batch %s of chain %s not confirmed; retried under a new batch id", batch_id, self.chain_id)
            raise
        if self.lease is not None:
            self._head = (seq + 1, b_hash)
        if self.on_commit is not None:
            self.on_commit(ChainHead(self.chain_id, seq, b_hash, len(entries), len(windows), energy, gpu_ms))
        return batch_id

    def _insert_beside(self, insert: Callable[[Any], None]) -> Future[None] | None:
        """``insert`` on the second connection, in the writer's own thread; None if there is none."""
        if self.windows_client is None:
            return None
        if self._beside is None:
            self._beside = ThreadPoolExecutor(1, thread_name_prefix=f"chain-{self.chain_id}-windows")
        return self._beside.submit(insert, self.windows_client)

    def batch_hash_at(self, seq: int) -> str | None:
        rows = self.client.execute(f"SELECT batch_hash FROM {self.db}.ledger_batches WHERE chain_id = %(c)s "
                                   f"AND seq = %(s)s", {"c": self.chain_id, "s": seq})
        return rows[0][0] if len(rows) == 1 else None

    def record_checkpoint(self, cp: Checkpoint, raw: bytes) -> None:
        """A copy of a published checkpoint (ledger_checkpoints), for statements."""
        self.client.execute(
            f"INSERT INTO {self.db}.ledger_checkpoints (chain_id, seq, kind, sha256, message, published_at) VALUES",
            [(cp.chain_id, cp.seq, cp.kind, checkpoint_id(raw), raw.decode(), _ts(cp.time_ns))])

    def totals(self) -> ChainHead:
        """This chain's head and running totals, from its commit records."""
        rows = self.client.execute(
            f"SELECT count(), max(seq), sum(entry_count), sum(window_count), sum(energy_mj), sum(gpu_ms), "
            f"argMax(batch_hash, seq) FROM {self.db}.ledger_batches WHERE chain_id = %(c)s", {"c": self.chain_id})
        n, seq, entries, windows, energy, gpu_ms, head = rows[0]
        if not n:
            return ChainHead(self.chain_id, -1, GENESIS, 0, 0, 0, 0)
        return ChainHead(self.chain_id, int(seq), head, int(entries), int(windows), int(energy), int(gpu_ms))

