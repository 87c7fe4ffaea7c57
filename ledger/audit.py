"""``ledger reconcile`` and ``ledger recompute``: conservation and reproducibility.

Reconcile: for every committed window in the period, each GPU's energy and
GPU time in the raw window (as the agent sent it) against the sum of its
ledger entries; any residual is listed. Also the gaps in each agent's
sequence numbers and the dead-letter counts per site.

Recompute: the raw windows again through the stream's own functions
(streams.processing), with the consortium config recorded on their entries
and the job events the ledger holds, compared entry by entry with what is
stored. (A window whose job event reached the stream only after the window
was booked to *unresolved* recomputes to the job: such entries show as
changed, which is what a correction is for.)
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any

from ledger.chunk_pool import ChunkPool
from ledger.configs import all_configs
from ledger.periods import committed_in_period
from ledger.verify import Progress, printed_columns
from schemas import WireError
from schemas.chain import CARBON_SCALE, COST_SCALE, HOURS_SCALE, fixed_text
from schemas.ledger import ENTRY_ROW_FIELDS
from schemas.telemetry import decode_window_fast
from streams.core import EntryRows
from streams.job_book import book_jobs
from streams.ledger_tables import load_jobs
from streams.processing import WindowProcessor

__all__ = ["ReconcileReport", "RecomputeReport", "reconcile", "recompute", "record_run"]


def record_run(client: Any, db: str, kind: str, ok: bool, summary: str, start: datetime, end: datetime) -> None:
    """Keep the outcome of an audit run, for the Audit dashboard."""
    client.execute(f"INSERT INTO {db}.audit_runs (kind, run_at, ok, summary, period_from, period_to) VALUES",
                   [(kind, datetime.now(UTC).replace(tzinfo=None), int(ok), summary,
                     max(start, datetime(1970, 1, 2)), min(end, datetime(2105, 1, 1)))])


@dataclass
class ReconcileReport:
    windows: int = 0
    gpu_windows: int = 0
    residuals: list[tuple[str, str, int, int]] = field(default_factory=list)  # window, gpu, mJ, ms
    # site/agent, boot/epoch, first missing seq, last missing seq
    gaps: list[tuple[str, str, int, int]] = field(default_factory=list)
    dlq: list[tuple[str, str, int]] = field(default_factory=list)  # site, reason, count
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # window, why its stored payload does not parse
    # the hourly rollup the dashboards read against the ledger: (hour/site/model/member/project/kind/source/
    # config/corrected, what the ledger sums to, what the rollup says); empty when they agree
    rollup: list[tuple[str, tuple[object, ...], tuple[object, ...]]] = field(default_factory=list)
    rollup_groups: int = 0

    @property
    def ok(self) -> bool:
        return not self.residuals and not self.unreadable and not self.rollup

    @property
    def residual_mj(self) -> int:
        return sum(r[2] for r in self.residuals)

    @property
    def residual_gpu_ms(self) -> int:
        return sum(r[3] for r in self.residuals)


def _period(start: datetime, end: datetime) -> dict[str, Any]:
    return {"start": start, "end": end}


# Windows read and checked at a time (about twelve entries each): reconcile and recompute
# hold one slice of the ledger in memory, never the month's.
SLICE_WINDOWS = 20_000


def time_slices(client: Any, db: str, start: datetime, end: datetime,
                target: int | None = None) -> list[tuple[datetime, datetime, int]]:
    """[start, end) cut at whole hours into contiguous slices of about ``target`` raw windows
    each, as (slice start, slice end, windows in it): every instant of the period is in
    exactly one slice, hours with entries but no windows included."""
    target = target or SLICE_WINDOWS
    bounds: list[tuple[datetime, int]] = []
    acc = 0
    start, end = _naive_utc(start), _naive_utc(end)
    for hour, n in client.execute(
            f"SELECT toStartOfHour(window_start) AS h, count() FROM {committed_in_period(db, 'raw_windows')} "
            f"GROUP BY h ORDER BY h", _period(start, end)):
        acc += int(n)
        if acc >= target:  # the driver may give the hour time-zone aware: compared as naive UTC
            bounds.append((min(_naive_utc(hour) + timedelta(hours=1), end), acc))
            acc = 0
    cuts = [start] + [b for b, _ in bounds if start < b < end] + [end]
    counts = [n for b, n in bounds if start < b < end] + [acc]
    return [(a, b, n) for a, b, n in zip(cuts[:-1], cuts[1:], counts, strict=True)]


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def reconcile(client: Any, db: str, start: datetime, end: datetime,
              progress: Progress | None = None, pool: ChunkPool | None = None) -> ReconcileReport:
    """``pool``: the period's slices in several processes (the same report)."""
    rep = ReconcileReport()
    slices = time_slices(client, db, start, end)
    total = sum(n for _, _, n in slices)
    seqs: dict[tuple[str, str], list[int]] = defaultdict(list)  # (site/agent, boot/epoch): seqs
    tasks = [(db, a, b) for a, b, _ in slices]
    for part, part_seqs in (pool or ChunkPool(None, 1)).map(client, _reconcile_part, tasks):
        rep.windows += part.windows
        rep.gpu_windows += part.gpu_windows
        rep.residuals += part.residuals
        rep.unreadable += part.unreadable
        rep.rollup += part.rollup
        rep.rollup_groups += part.rollup_groups
        for key, ss in part_seqs.items():
            seqs[key] += ss
        if progress is not None:
            progress(rep.windows, total)
    for (agent, boot), ss in sorted(seqs.items()):
        ss.sort()
        for x, y in zip(ss, ss[1:], strict=False):
            if y > x + 1:
                rep.gaps.append((agent, boot, x + 1, y - 1))
    rep.residuals.sort()
    rep.dlq = [(s or "(unknown)", r, int(n)) for s, r, n in client.execute(
        f"SELECT site_id, reason, count() FROM {db}.dlq_records FINAL "
        f"WHERE received_at >= %(start)s AND received_at < %(end)s GROUP BY site_id, reason ORDER BY site_id, reason",
        _period(start, end))]
    return rep


def _reconcile_part(client: Any, db: str, start: datetime, end: datetime
                    ) -> tuple[ReconcileReport, dict[tuple[str, str], list[int]]]:
    """One slice: its report and the sequence numbers it saw (the gaps need every slice)."""
    part = ReconcileReport()
    seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
    _reconcile_slice(client, db, start, end, part, seqs)
    _check_rollup(client, db, start, end, part)
    return part, dict(seqs)


def _reconcile_slice(client: Any, db: str, start: datetime, end: datetime, rep: ReconcileReport,
                     seqs: dict[tuple[str, str], list[int]]) -> None:
    raw: dict[tuple[str, str], list[int]] = {}
    for window_id, agent, boot, seq, payload in client.execute(
            f"SELECT window_id, agent_id, boot_id, seq, payload FROM {committed_in_period(db, 'raw_windows')}",
            _period(start, end)):
        rep.windows += 1
        parts = window_id.split("/")  # site/agent/boot/epoch/seq
        seqs[(f"{parts[0]}/{agent}", f"{boot}/{parts[3] if len(parts) == 5 else ''}")].append(int(seq))
        try:
            gpus = decode_window_fast(payload.encode() if isinstance(payload, str) else bytes(payload)).gpus
        except WireError as exc:  # a stored payload that no longer meets the contract: say so, go on
            rep.unreadable.append((window_id, f"{exc.reason}: {exc.detail}"))
            continue
        for g in gpus:
            raw[(window_id, g.uuid)] = [g.energy_mj, g.gpu_ms]
    booked = {(window_id, gpu): [int(e_mj), int(g_ms)] for window_id, gpu, e_mj, g_ms in client.execute(
        f"SELECT window_id, gpu_uuid, sum(energy_mj), sum(gpu_ms) FROM {committed_in_period(db, 'ledger_entries')} "
        f"GROUP BY window_id, gpu_uuid", _period(start, end))}
    rep.gpu_windows += len(raw)
    none = [0, 0]
    for key, measured in raw.items():  # the residuals are sorted once, at the end of the run
        in_ledger = booked.pop(key, none)
        if measured != in_ledger:
            rep.residuals.append((key[0], key[1], measured[0] - in_ledger[0], measured[1] - in_ledger[1]))
    for key, in_ledger in booked.items():  # booked under a window or GPU the raw windows do not have
        rep.residuals.append((key[0], key[1], -in_ledger[0], -in_ledger[1]))


# The rollup's groups (ledger/migrations/0010_hourly_rollup.sql) and its sums, in the same order on both sides.
_GROUPS = "site_id, gpu_model, member, project, account_kind, account_source, config_hash"
_SUMS = "count(), sum(energy_mj), sum(gpu_ms), sum(normalised_gpu_hours), sum(cost_eur), sum(carbon_g)"
_ROLLUP_SUMS = "sum(entries), sum(energy_mj), sum(gpu_ms), sum(normalised_gpu_hours), sum(cost_eur), sum(carbon_g)"


def _check_rollup(client: Any, db: str, start: datetime, end: datetime, rep: ReconcileReport) -> None:
    """The rollup equals the ledger in every group of every hour the slice touches (whole
    hours: the slices are cut at hours, the period's ends widened to theirs)."""
    lo = _naive_utc(start).replace(minute=0, second=0, microsecond=0)
    hi = _naive_utc(end)
    if hi != hi.replace(minute=0, second=0, microsecond=0):
        hi = hi.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    period = _period(lo, hi)

    def sums(query: str) -> dict[tuple[object, ...], tuple[object, ...]]:
        # the driver may give an hour time-zone aware on one side only: keyed as naive UTC
        return {(_naive_utc(r[0]), *r[1:9]): tuple(int(x) if i < 3 else Decimal(x) for i, x in enumerate(r[9:]))
                for r in client.execute(query, period)}

    ledger = sums(f"SELECT toStartOfHour(window_start) AS h, {_GROUPS}, toUInt8(corrects != '') AS c, {_SUMS} "
                  f"FROM {committed_in_period(db, 'ledger_entries')} GROUP BY h, {_GROUPS}, c")
    rollup = sums(f"SELECT window_start AS h, {_GROUPS}, corrected, {_ROLLUP_SUMS} "
                  f"FROM {db}.rollup WHERE window_start >= %(start)s AND window_start < %(end)s "
                  f"GROUP BY h, {_GROUPS}, corrected")
    rep.rollup_groups += len(ledger)
    none = (0, 0, 0, Decimal(0), Decimal(0), Decimal(0))
    for key in sorted(set(ledger) | set(rollup), key=str):
        want, got = ledger.get(key, none), rollup.get(key, none)
        if want != got:
            hour = key[0].isoformat() if isinstance(key[0], datetime) else str(key[0])
            rep.rollup.append(("/".join([hour, *map(str, key[1:])]), want, got))


@dataclass
class RecomputeReport:
    windows: int = 0
    entries: int = 0
    signatures: int = 0  # windows whose site signature was verified again
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


COMPARED = ("energy_mj", "gpu_ms", "normalised_gpu_hours", "cost_eur", "carbon_g", "member", "project",
            "account_kind", "account", "account_source", "config_hash")
# where each compared field sits in the stream's entry rows (schemas/ledger.py); the decimals, third to
# fifth, are compared as the chain's fixed text: the rows carry it, the stored ones are read with
# toString() and put in the same form (schemas.chain.fixed_text), so equal texts are equal numbers
_ROW_AT = tuple(ENTRY_ROW_FIELDS.index(name) for name in COMPARED)
assert COMPARED[2:5] == ("normalised_gpu_hours", "cost_eur", "carbon_g")
_HASH_AT = COMPARED.index("config_hash")
_recomputed = itemgetter(*_ROW_AT)  # a recomputed row's compared fields
_SELECTED = printed_columns(COMPARED)


def _same(recomputed: tuple[Any, ...], stored: tuple[Any, ...]) -> bool:
    return recomputed == stored or recomputed == _stored(stored)


def _stored(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A stored entry's compared fields, its decimals (the server's print) as the chain's text."""
    return (row[0], row[1], fixed_text(row[2], HOURS_SCALE), fixed_text(row[3], COST_SCALE),
            fixed_text(row[4], CARBON_SCALE), *row[5:])


def recompute(client: Any, db: str, start: datetime, end: datetime,
              progress: Progress | None = None, pool: ChunkPool | None = None) -> RecomputeReport:
    """``pool``: the period's slices in several processes (the same report; each
    process loads the configs and the job events once)."""
    rep = RecomputeReport()
    slices = time_slices(client, db, start, end)
    total = sum(n for _, _, n in slices)
    run = uuid.uuid4().hex  # this run's configs and jobs, loaded once per process
    try:
        for part in (pool or ChunkPool(None, 1)).map(client, _recompute_part,
                                                      [(db, run, a, b) for a, b, _ in slices]):
            rep.windows += part.windows
            rep.entries += part.entries
            rep.signatures += part.signatures
            rep.differences += part.differences
            if progress is not None:
                progress(rep.windows, total)
    finally:
        _RUNS.pop(run, None)
    return rep


# per process: the configs' processors and the job book of a recompute run
_RUNS: dict[str, tuple[dict[str, WindowProcessor], Any]] = {}


def _recompute_part(client: Any, db: str, run: str, start: datetime, end: datetime) -> RecomputeReport:
    state = _RUNS.get(run)
    if state is None:
        _RUNS.clear()  # one run at a time per process
        # the Python rules, the definition; the stream ran them compiled (native/src/attribute.rs), so a
        # difference between the two would show here as a finding, not pass unseen
        state = _RUNS[run] = ({h: WindowProcessor(cfg, h, compiled_rules=False)
                               for h, cfg in all_configs(client, db).items()},
                              book_jobs(load_jobs(client, db)))
    part = RecomputeReport()
    _recompute_slice(client, db, start, end, state[0], state[1], part)
    return part


def _recompute_slice(client: Any, db: str, start: datetime, end: datetime, processors: dict[str, WindowProcessor],
                     jobs: Any, rep: RecomputeReport) -> None:
    stored: dict[str, dict[str, tuple[Any, ...]]] = defaultdict(dict)
    cols = f"window_id, entry_id, {_SELECTED}"
    for row in client.execute(f"SELECT {cols} FROM {committed_in_period(db, 'ledger_entries')} AND corrects = ''",
                              _period(start, end)):
        stored[row[0]][row[1]] = row[2:]  # put in the rows' form only where it differs (18.16 prints the same)
    for window_id, payload in client.execute(
            f"SELECT window_id, payload FROM {committed_in_period(db, 'raw_windows')} ORDER BY window_id",
            _period(start, end)):
        rep.windows += 1
        mine = stored.get(window_id, {})
        hashes = {e[_HASH_AT] for e in mine.values()}
        if len(hashes) != 1 or next(iter(hashes)) not in processors:
            rep.differences.append(f"{window_id}: cannot tell which config it was computed with ({hashes})")
            continue
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        processor = processors[next(iter(hashes))]
        try:
            window = decode_window_fast(raw)
            site = processor.config.site(window.site_id)
            if site is None:
                raise WireError("unknown_site", f"site {window.site_id} is not in config {processor.config.version}")
            processor.check_signature(raw, window, site)  # the site's signature over the stored bytes
        except WireError as exc:
            rep.differences.append(f"{window_id}: stored window refused ({exc.reason}: {exc.detail})")
            continue
        rep.signatures += window.signature is not None
        rows = EntryRows(digests=False)
        processor.attribute_rows(window, jobs, rows)  # the rules' own rows
        expected = {r[0]: r for r in rows}
        rep.entries += len(expected)
        if expected.keys() == mine.keys() and all(_same(_recomputed(expected[eid]), s) for eid, s in mine.items()):
            continue
        for eid in sorted(set(expected) | set(mine)):
            if eid not in mine:
                rep.differences.append(f"{window_id}: entry {eid} recomputes but is not in the ledger")
            elif eid not in expected:
                rep.differences.append(f"{window_id}: entry {eid} is in the ledger but does not recompute")
            else:
                e, s = _recomputed(expected[eid]), _stored(mine[eid])
                for name, want, got in zip(COMPARED, e, s, strict=True):
                    if want != got:
                        rep.differences.append(f"{window_id}: entry {eid} {name}: ledger {got}, recomputed {want}")

