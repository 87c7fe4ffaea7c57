"""Versioned, idempotent migrations of the ledger database.

Files ``ledger/migrations/NNNN_name.sql`` run in order; each applied one is
recorded with its checksum in ``schema_migrations``. Running twice is
harmless; editing an applied migration is refused (add a new one instead).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger import MigrationError

__all__ = ["Migration", "apply_migrations", "load_migrations", "split_statements"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def split_statements(sql: str) -> list[str]:
    """Statements separated by ';' at line end; '--' comments dropped."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def qualify(stmt: str, database: str) -> str:
    """The statement with the tables it creates, changes or fills, and the ledger's tables it reads,
    in ``database`` (the files name tables without one)."""
    stmt = re.sub(r"((?:CREATE TABLE|CREATE VIEW|CREATE MATERIALIZED VIEW) IF NOT EXISTS |ALTER TABLE "
                  r"|DROP TABLE IF EXISTS |INSERT INTO )(\w+)", rf"\g<1>{database}.\g<2>", stmt)
    stmt = re.sub(r"^(CREATE MATERIALIZED VIEW IF NOT EXISTS \S+ TO )(\w+)", rf"\g<1>{database}.\g<2>", stmt)
    return re.sub(r"(\b(?:FROM|JOIN)\s+)(ledger_entries|raw_windows|ledger_batches|ledger_hourly|ledger)\b",
                  rf"\g<1>{database}.\g<2>", stmt)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for f in sorted(directory.glob("*.sql")):
        m = _NAME.match(f.name)
        if m is None:
            raise MigrationError(f"{f}: migration files are named NNNN_name.sql")
        out.append(Migration(int(m.group(1)), m.group(2), f.read_text()))
    return out


def apply_migrations(client: Any, database: str, migrations: list[Migration] | None = None) -> list[str]:
    """Create the database if needed and apply what is missing; return what was applied."""
    ms = migrations if migrations is not None else load_migrations()
    client.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.execute(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, checksum String, applied_at DateTime) "
        "ENGINE = MergeTree() ORDER BY version"
    )
    applied = {
        v: c for v, c in client.execute(f"SELECT version, checksum FROM {database}.schema_migrations")
    }
    done = []
    for m in ms:
        if m.version in applied:
            if applied[m.version] != m.checksum:
                raise MigrationError(
                    f"migration {m.version:04d}_{m.name} was changed after it was applied; "
                    "add a new migration instead"
                )
            continue
        for stmt in split_statements(m.sql):
            stmt = qualify(stmt, database)
            try:
                client.execute(stmt)
            except Exception as exc:  # the driver raises its own hierarchy
                raise MigrationError(f"migration {m.version:04d}_{m.name} failed: {exc}") from exc
        client.execute(
            f"INSERT INTO {database}.schema_migrations (version, name, checksum, applied_at) VALUES",
            [(m.version, m.name, m.checksum, datetime.now(UTC).replace(tzinfo=None))],
        )
        done.append(f"{m.version:04d}_{m.name}")
    return done
