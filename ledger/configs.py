"""The consortium configs the ledger holds, by content hash.

A stored config is used only if its bytes still hash to the hash it is
stored under (the hash every entry carries): a config edited in the
database (say, a project given to another owner so that ``recompute``
agrees with rewritten entries) is refused with LedgerError.
"""

from __future__ import annotations

from typing import Any

from ledger import LedgerError
from schemas import ConsortiumConfig
from schemas.consortium import parse_config

__all__ = ["all_configs", "config_by_hash", "period_config_hashes"]


def config_by_hash(client: Any, db: str, config_hash: str) -> ConsortiumConfig | None:
    rows = client.execute(f"SELECT any(content) FROM {db}.config_versions WHERE config_hash = %(h)s",
                          {"h": config_hash})
    if not rows or not rows[0][0]:
        return None
    return _parse(config_hash, rows[0][0])


def all_configs(client: Any, db: str) -> dict[str, ConsortiumConfig]:
    return {h: _parse(h, c) for h, c in client.execute(
        f"SELECT config_hash, any(content) FROM {db}.config_versions GROUP BY config_hash")}


def _parse(config_hash: str, content: str) -> ConsortiumConfig:
    cfg, digest = parse_config(content.encode(), f"config {config_hash[:12]}")
    if digest != config_hash:
        raise LedgerError(f"the config stored under hash {config_hash[:12]}… hashes to {digest[:12]}…: it was "
                          f"edited in the database; the ledger cannot be recomputed with it")
    return cfg


def period_config_hashes(client: Any, db: str, start: Any, end: Any, source: str | None = None,
                         params: dict[str, Any] | None = None) -> list[str]:
    """The config hashes the entries of [start, end) carry, most entries first (ties by
    hash): the first is the period's config for statements, settlement and capacity.
    ``source``/``params``: read the entries from this expression instead of the ledger."""
    return [r[0] for r in client.execute(
        f"SELECT config_hash, count() AS n FROM {source or db + '.ledger'} WHERE window_start >= %(start)s "
        f"AND window_start < %(end)s GROUP BY config_hash ORDER BY n DESC, config_hash",
        {**(params or {}), "start": start, "end": end})]
