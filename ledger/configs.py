"""The consortium configs the ledger holds, by content hash."""

from __future__ import annotations

from typing import Any

from schemas import ConsortiumConfig
from schemas.consortium import parse_config

__all__ = ["all_configs", "config_by_hash"]


def config_by_hash(client: Any, db: str, config_hash: str) -> ConsortiumConfig | None:
    rows = client.execute(f"SELECT any(content) FROM {db}.config_versions WHERE config_hash = %(h)s",
                          {"h": config_hash})
    if not rows or not rows[0][0]:
        return None
    return parse_config(rows[0][0].encode(), f"config {config_hash[:12]}")[0]


def all_configs(client: Any, db: str) -> dict[str, ConsortiumConfig]:
    return {h: parse_config(c.encode(), f"config {h[:12]}")[0] for h, c in client.execute(
        f"SELECT config_hash, any(content) FROM {db}.config_versions GROUP BY config_hash")}
