"""``ledger verify``: the hash chain and every entry in it, from the database alone.

For each chain, batch by batch: sequence numbers contiguous from 0, each
``prev_hash`` equal to the previous ``batch_hash``, the batch hash recomputed
(schemas/chain.py) — always over the whole chain —, and for the batches of
the period (all of them without one): the entries hash recomputed from the
manifest, the entries in the table
against the batch's manifest (entry ids and digests): an entry changed,
deleted or added is named; the raw windows stored under the batch against
its windows hash (a payload edited, deleted or added). Entries whose batch was never committed (older
than an in-flight write can be) are named too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.chunk_pool import ChunkPool
from schemas.chain import (
    ENTRY_FIELDS,
    GENESIS,
    batch_hash,
    entries_hash,
    entry_digest,
    entry_line,
    fixed_text,
    windows_hash,
)

__all__ = ["Problem", "Progress", "VerifyReport", "printed_columns", "verify_ledger"]


def printed_columns(fields: Iterable[str]) -> str:
    """A SELECT list of entry columns with the decimals as the server prints them, for
    schemas.chain.fixed_text to turn into the chain's text without a Decimal."""
    return ", ".join(f"toString({f})" if f in ("normalised_gpu_hours", "cost_eur", "carbon_g") else f
                     for f in fields)


ENTRY_COLS = printed_columns(ENTRY_FIELDS)  # the chain line's fields, in its order
# progress(done, total): called as an audit works through the ledger (the CLI draws a bar)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Problem:
    chain_id: str
    seq: int | None
    kind: str  # broken_link, bad_batch_hash, bad_entries_hash, entry_changed, entry_deleted, entry_added, ...
    detail: str

    def line(self) -> str:
        where = f"chain {self.chain_id} batch {self.seq}" if self.seq is not None else f"chain {self.chain_id}"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    batches: int
    entries: int
    problems: list[Problem]
    # rows of interrupted writes (an intent, no commit): outside every view,
    # removed when that chain's worker starts; listed, not failures
    interrupted: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _digest(row: tuple[Any, ...]) -> str:
    # the decimals as the server prints them (ENTRY_COLS): fixed_text gives the chain's text of the same value
    return entry_digest(entry_line(*row, to_text=fixed_text))


def _check_windows(client: Any, db: str, batches: dict[str, tuple[str, int, str, int]]) -> list[Problem]:
    """The raw windows stored under each batch against the windows hash its commit record holds."""
    if not batches:
        return []
    stored: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for bid, wid, digest in client.execute(
            f"SELECT batch_id, window_id, lower(hex(SHA256(payload))) FROM {db}.raw_windows "
            f"WHERE batch_id IN %(b)s", {"b": tuple(batches)}):
        stored[bid].append((wid, digest))
    problems = []
    for bid, (chain, seq, w_hash, w_count) in batches.items():
        found = sorted(stored.get(bid, []))
        if len(found) != w_count or windows_hash(d for _, d in found) != w_hash:
            problems.append(Problem(chain, seq, "windows_changed",
                                    f"the raw windows stored under this batch ({len(found)}, committed {w_count}) "
                                    f"are not the bytes that were committed"))
    return problems


# Batches read and checked at a time: the manifests (every entry id and digest) and the
# entries of a chunk are in memory, never the whole chain's.
CHUNK_BATCHES = 400


def verify_ledger(client: Any, db: str, start: datetime | None = None, end: datetime | None = None,
                  progress: Progress | None = None, pool: ChunkPool | None = None) -> VerifyReport:
    """Verify the chains; ``start``/``end`` limit the entry checks to batches whose
    windows fall in that period (the links are always checked from the start).
    Reads the chain a chunk of batches at a time, in ``pool``'s processes if it has
    several (the same report); ``progress(done, total)`` counts entries."""
    heads = client.execute(f"SELECT chain_id, seq, entry_count, min_window_start, max_window_start, batch_hash "
                           f"FROM {db}.ledger_batches ORDER BY chain_id, seq")
    total = sum(int(n) for _, _, n, lo, hi, _ in heads
                if (start is None or hi >= start) and (end is None or lo < end))
    # each chunk's link to the batch before it, as the stored chain has it
    before: dict[tuple[str, int], tuple[int, str]] = {}
    for (chain, seq, *_), previous in zip(heads, [None, *heads[:-1]], strict=True):
        if previous is not None and previous[0] == chain:
            before[(chain, int(seq))] = (int(previous[1]), previous[5])
    tasks = [(db, chunk, start, end, before.get((chunk[0], chunk[1]), (-1, GENESIS)))
             for chunk in _chunks(heads, CHUNK_BATCHES)]
    problems: list[Problem] = []
    entries = 0
    for checked, found in (pool or ChunkPool(None, 1)).map(client, _verify_alone, tasks):
        entries += checked
        problems += found
        if progress is not None:
            progress(entries, total)
    # entries of the period (all without one) that no batch holds
    when = "".join((" AND window_start >= %(start)s" if start is not None else "",
                    " AND window_start < %(end)s" if end is not None else ""))
    outside = client.execute(
        f"SELECT entry_id, batch_id, batch_id IN (SELECT batch_id FROM {db}.ledger_intents) "
        f"FROM {db}.ledger_entries WHERE batch_id NOT IN (SELECT batch_id FROM {db}.ledger_batches){when} "
        f"LIMIT 1000", {"start": start, "end": end})
    interrupted = []
    for eid, bid, intended in outside:
        if intended:
            interrupted.append(bid)
        else:
            problems.append(Problem("-", None, "entry_outside_chain",
                                    f"entry {eid} (batch_id {bid!r}) belongs to no batch of any chain"))
    return VerifyReport(len(heads), entries, problems, sorted(set(interrupted)))


def _verify_alone(client: Any, db: str, chunk: tuple[str, int, int], start: datetime | None, end: datetime | None,
                  before: tuple[int, str]) -> tuple[int, list[Problem]]:
    """One chunk, given the (seq, hash) of the batch before it: (entries checked, problems)."""
    problems: list[Problem] = []
    checked = _verify_chunk(client, db, chunk, start, end, {chunk[0]: before}, problems)
    return checked, problems


def _chunks(heads: list[tuple[Any, ...]], size: int) -> list[tuple[str, int, int]]:
    """(chain, first seq, last seq) ranges of at most ``size`` batches, in chain order."""
    out: list[tuple[str, int, int]] = []
    for chain, seq, *_ in heads:
        seq = int(seq)
        if out and out[-1][0] == chain and seq - out[-1][1] < size:
            out[-1] = (chain, out[-1][1], seq)
        else:
            out.append((chain, seq, seq))
    return out


def _verify_chunk(client: Any, db: str, chunk: tuple[str, int, int], start: datetime | None, end: datetime | None,
                  prev: dict[str, tuple[int, str]], problems: list[Problem]) -> int:
    """One chunk of a chain: links (carried in ``prev`` from the chunk before), hashes, entries, windows."""
    chain_id, first, last = chunk
    span = {"c": chain_id, "a": first, "b": last}
    batches = client.execute(
        f"SELECT chain_id, seq, batch_id, prev_hash, entries_hash, batch_hash, entry_count, energy_mj, gpu_ms, "
        f"min_window_start, max_window_start, windows_hash, window_count "
        f"FROM {db}.ledger_batches WHERE chain_id = %(c)s AND seq >= %(a)s AND seq <= %(b)s ORDER BY seq", span)
    period = [(int(seq), bid) for _, seq, bid, *_, lo, hi, _, _ in batches
              if (start is None or hi >= start) and (end is None or lo < end)]
    # the manifests (the large columns) of the period's batches only: links and batch
    # records are checked over the whole chain, entries over the period
    manifests: dict[tuple[int, str], tuple[list[str], list[str]]] = {
        (int(seq), bid): (list(ids), list(digests)) for seq, bid, ids, digests in client.execute(
            f"SELECT seq, batch_id, entry_ids, entry_digests FROM {db}.ledger_batches WHERE chain_id = %(c)s "
            f"AND seq >= %(a)s AND seq <= %(b)s AND batch_id IN %(ids)s",
            {**span, "ids": tuple(b for _, b in period)})} if period else {}
    in_range: dict[str, tuple[str, int, list[str], list[str]]] = {}
    window_hashes: dict[str, tuple[str, int, str, int]] = {}
    for (chain, seq, bid, prev_hash, e_hash, b_hash, count, energy, gpu_ms, _, _, w_hash, w_count) in batches:
        seq = int(seq)
        want_seq, want_prev = prev.get(chain, (-1, GENESIS))
        if seq != want_seq + 1:
            problems.append(Problem(chain, seq, "broken_link", f"seq {seq} follows seq {want_seq}"))
        elif prev_hash != want_prev:
            problems.append(Problem(chain, seq, "broken_link",
                                    f"prev_hash {prev_hash[:16]}… is not batch {want_seq}'s hash {want_prev[:16]}…"))
        listed = manifests.get((seq, bid))
        if listed is not None:
            ids, digests = listed
            if entries_hash(digests) != e_hash or len(ids) != count:
                problems.append(Problem(chain, seq, "bad_entries_hash", "the batch manifest does not match its hash"))
        if batch_hash(chain, seq, bid, prev_hash, e_hash, int(count), int(energy), int(gpu_ms), w_hash,
                      int(w_count)) != b_hash:
            problems.append(Problem(chain, seq, "bad_batch_hash", "the batch record was altered"))
        prev[chain] = (seq, b_hash)
        if listed is not None:
            in_range[bid] = (chain, seq, *listed)
            window_hashes[bid] = (chain, seq, w_hash, int(w_count))

    rows = client.execute(f"SELECT batch_id, {ENTRY_COLS} FROM {db}.ledger_entries "
                          f"WHERE batch_id IN %(b)s", {"b": tuple(in_range)}) if in_range else []
    by_batch: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_batch[r[0]][r[1]].append(_digest(r[1:]))
    entries = 0
    for bid, (chain, seq, ids, digests) in in_range.items():
        stored = by_batch.get(bid, {})
        if len(ids) != len(digests):  # a manifest rewritten by hand (already a bad_entries_hash): no pairs to check
            problems.append(Problem(chain, seq, "bad_entries_hash",
                                    f"the manifest lists {len(ids)} entry ids and {len(digests)} digests"))
            continue
        manifest = dict(zip(ids, digests, strict=True))
        for eid, digest in manifest.items():
            found = stored.get(eid, [])
            if not found:
                problems.append(Problem(chain, seq, "entry_deleted", f"entry {eid} is missing"))
            elif digest not in found:
                problems.append(Problem(chain, seq, "entry_changed", f"entry {eid} differs from what was committed"))
            elif len(found) > 1:
                problems.append(Problem(chain, seq, "entry_added", f"entry {eid} appears {len(found)} times"))
        for eid in stored:
            if eid not in manifest:
                problems.append(Problem(chain, seq, "entry_added", f"entry {eid} is not in the batch manifest"))
        entries += len(ids)
    problems += _check_windows(client, db, window_hashes)
    return entries
