"""The consortium configs the ledger holds, by content hash.

A stored config is used only if its bytes still hash to the hash it is
stored under (the hash every entry carries): a config edited in the
database (say, a project given to another owner so that ``recompute``
agrees with rewritten entries) is refused with LedgerError. So is the
hourly grid-intensity series a config names (schemas/grid.py): it is loaded
from ``grid_series_files`` only if its bytes hash to what the config says.
"""

from __future__ import annotations

from typing import Any

from ledger import LedgerError
from ledger.periods import sums_source
from schemas import ConfigError, ConsortiumConfig
from schemas.consortium import grid_series_for, parse_config
from streams.ledger_tables import stored_grid_series

__all__ = ["all_configs", "config_by_hash", "period_config_hashes"]


def config_by_hash(client: Any, db: str, config_hash: str) -> ConsortiumConfig | None:
    rows = client.execute(f"SELECT any(content) FROM {db}.config_versions WHERE config_hash = %(h)s",
                          {"h": config_hash})
    if not rows or not rows[0][0]:
        return None
    return _parse(client, db, config_hash, rows[0][0])


def all_configs(client: Any, db: str) -> dict[str, ConsortiumConfig]:
    return {h: _parse(client, db, h, c) for h, c in client.execute(
        f"SELECT config_hash, any(content) FROM {db}.config_versions GROUP BY config_hash")}


def _parse(client: Any, db: str, config_hash: str, content: str) -> ConsortiumConfig:
    cfg, digest = parse_config(content.encode(), f"config {config_hash[:12]}")
    if digest != config_hash:
        raise LedgerError(f"the config stored under hash {config_hash[:12]}… hashes to {digest[:12]}…: it was "
                          f"edited in the database; the ledger cannot be recomputed with it")
    ref = cfg.grid_intensity
    if ref is not None:
        stored = stored_grid_series(client, db, ref.sha256)
        if stored is None:
            raise LedgerError(f"config {config_hash[:12]}… names the grid-intensity series {ref.file} (sha256 "
                              f"{ref.sha256[:12]}…), which the ledger does not hold")
        try:
            cfg.with_grid_series(grid_series_for(cfg, stored[1], f"stored series {ref.sha256[:12]}… ({stored[0]})"))
        except ConfigError as exc:
            raise LedgerError(f"config {config_hash[:12]}…: {exc}") from exc
    return cfg


def period_config_hashes(client: Any, db: str, start: Any, end: Any, source: str | None = None,
                         params: dict[str, Any] | None = None) -> list[str]:
    """The config hashes the entries of [start, end) carry, most entries first (ties by
    hash): the first is the period's config for statements, settlement and capacity.
    ``source``/``params``: read the entries from this expression (one with an
    ``entries`` count: ledger/periods.py ``sums_source``) instead of the ledger."""
    return [r[0] for r in client.execute(
        f"SELECT config_hash, sum(entries) AS n FROM {source or sums_source(db, start, end)} "
        f"WHERE window_start >= %(start)s "
        f"AND window_start < %(end)s GROUP BY config_hash ORDER BY n DESC, config_hash",
        {**(params or {}), "start": start, "end": end})]
