"""The ledger's other tables, as the stream writes and reads them: job events,
consortium configs, dead letters. Plain functions over a ClickHouse client, used
by the stream's sink and by the audit tools (``ledger/``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.grid import GridSeries
from schemas.jobs import JobEvent
from schemas.telemetry import ID_PATTERN
from streams.processing import Rejection

__all__ = ["load_jobs", "record_config", "record_grid_series", "stored_grid_series", "write_dead_letters",
           "write_jobs"]

JOB_COLUMNS = "site_id, job_id, event, account, node, gpus, exclusive, time_ns, received_at"
DLQ_COLUMNS = "received_at, reason, detail, site_id, agent_id, raw_sha256, raw"


def write_jobs(client: Any, db: str, events: Sequence[JobEvent], now: datetime) -> None:
    if not events:
        return
    client.execute(
        f"INSERT INTO {db}.job_events ({JOB_COLUMNS}) VALUES",
        [(e.site_id, e.job_id, e.event, e.account, e.node or "", list(e.gpus), int(e.exclusive), e.time_ns, now)
         for e in events],
    )


def load_jobs(client: Any, db: str) -> list[JobEvent]:
    """Every job event the ledger holds (deduplicated), oldest first."""
    rows = client.execute(
        f"SELECT site_id, job_id, event, account, node, gpus, exclusive, time_ns "
        f"FROM {db}.job_events FINAL ORDER BY time_ns"
    )
    return [
        JobEvent(event=r[2], site_id=r[0], job_id=r[1], account=r[3], node=r[4] or None,
                 gpus=list(r[5]), exclusive=bool(r[6]), time_ns=r[7])
        for r in rows
    ]


def record_config(client: Any, db: str, config_hash: str, version: str, content: bytes,
                  members: Sequence[tuple[str, str, Decimal]], now: datetime, grid: GridSeries | None = None) -> None:
    """Store the config file by hash, and its members' contribution shares; with ``grid``
    (the hourly series the config names) the series file under its hash, and its rows."""
    client.execute(
        f"INSERT INTO {db}.config_versions (config_hash, version, content, first_seen) VALUES",
        [(config_hash, version, content.decode(), now)],
    )
    if members:
        client.execute(
            f"INSERT INTO {db}.config_members (config_hash, member, name, contribution_share, "
            f"recorded_at) VALUES", [(config_hash, code, name, share, now) for code, name, share in members])
    # the sites (hosting member, declared GPUs, idle policy) and the pledges, for the dashboards' SQL
    from schemas import ConfigError
    from schemas.consortium import parse_config

    try:
        cfg, digest = parse_config(content, "recorded config")
    except ConfigError:
        return  # not a config file (the stored bytes stay; recompute refuses them by hash)
    if digest != config_hash:
        return
    client.execute(
        f"INSERT INTO {db}.config_sites (config_hash, site_id, country, gpus, idle_policy, recorded_at) VALUES",
        [(config_hash, s.id, s.country, s.gpus or 0, s.idle_policy, now) for s in cfg.sites])
    if cfg.pledges:
        client.execute(
            f"INSERT INTO {db}.config_pledges (config_hash, member, period, normalised_gpu_hours, "
            f"availability_target, recorded_at) VALUES",
            [(config_hash, p.member, p.period, p.normalised_gpu_hours, p.availability_target, now)
             for p in cfg.pledges])
    if grid is not None and cfg.grid_intensity is not None and grid.sha256 == cfg.grid_intensity.sha256:
        record_grid_series(client, db, config_hash, grid, now)


def record_grid_series(client: Any, db: str, config_hash: str, grid: GridSeries, now: datetime) -> None:
    """The series file under its hash (once), its rows, and the config that names it."""
    stored = client.execute(f"SELECT count() FROM {db}.grid_series_files WHERE sha256 = %(h)s", {"h": grid.sha256})
    if not stored[0][0]:
        client.execute(f"INSERT INTO {db}.grid_series_files (sha256, name, content, recorded_at) VALUES",
                       [(grid.sha256, grid.name, grid.content.decode(), now)])
        client.execute(
            f"INSERT INTO {db}.grid_intensity (series_sha256, site_id, hour, gco2_per_kwh) VALUES",
            [(grid.sha256, site, datetime.fromtimestamp(hour * 3600, UTC).replace(tzinfo=None), value)
             for (site, hour), value in sorted(grid.values.items())])
    client.execute(f"INSERT INTO {db}.config_grid (config_hash, series_sha256, recorded_at) VALUES",
                   [(config_hash, grid.sha256, now)])


def stored_grid_series(client: Any, db: str, sha256: str) -> tuple[str, bytes] | None:
    """(name, content) of a series file stored under its hash, or None."""
    rows = client.execute(f"SELECT any(name), any(content) FROM {db}.grid_series_files WHERE sha256 = %(h)s",
                          {"h": sha256})
    if not rows or not rows[0][1]:
        return None
    return rows[0][0], rows[0][1].encode()


def write_dead_letters(client: Any, db: str, rejections: Sequence[Rejection], now: datetime) -> None:
    """Rejected messages for data-quality reports: the original bytes as they
    are (a String column holds any bytes), reason and detail bounded."""
    client.execute(
        f"INSERT INTO {db}.dlq_records ({DLQ_COLUMNS}) VALUES",
        [(now, r.reason[:64], r.detail, _field(r.raw, b"site_id"), _field(r.raw, b"agent_id"),
          hashlib.sha256(r.raw).hexdigest(), r.raw) for r in rejections],
    )


_ID_VALUE = re.compile(rb'"(site_id|agent_id)"\s*:\s*"(' + ID_PATTERN.strip("^$").encode() + rb')"')


def _field(raw: bytes, name: bytes) -> str:
    """Best effort: which site/agent sent a rejected message, for per-site DLQ
    counts. A pattern over the bytes, not a parse: safe on any message."""
    for m in _ID_VALUE.finditer(raw[:65536]):
        if m.group(1) == name:
            return m.group(2).decode("ascii")
    return ""
