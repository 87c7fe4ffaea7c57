"""The real local stack as the project's scripts start it: Debian's ClickHouse
18.16 and Apache Kafka in KRaft mode."""

from __future__ import annotations

import pytest

from ledger.migrate import apply_migrations
from streams.clickhouse import ClickHouseSettings, connect

pytestmark = pytest.mark.integration


def test_up_is_idempotent_and_status_is_healthy(stack) -> None:
    before = {s.name: s.pid for s in stack.status()}
    after = stack.up()
    assert all(s.healthy for s in after)
    assert {s.name: s.pid for s in after} == before


def test_migrations_run_twice_on_debian_clickhouse(ch_settings, ch) -> None:
    admin = connect(ch_settings, database="system")
    assert apply_migrations(admin, ch_settings.database) == []
    (version,) = ch.execute("SELECT version()")[0]
    assert version.startswith("18.16")
    tables = {r[0] for r in ch.execute("SHOW TABLES")}
    assert {"raw_windows", "ledger_entries", "job_events", "config_versions", "dlq_records",
            "schema_migrations"} <= tables


@pytest.fixture()
def auditor(stack, ch):
    s = ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="auditor",
                           password_file=stack.password_file("auditor"))
    return connect(s)


def test_auditor_reads_the_ledger(auditor) -> None:
    assert auditor.execute("SELECT count() FROM ledger_entries")[0][0] >= 0


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO bridgeledger.ledger_entries (entry_id) VALUES ('forged')",
        "ALTER TABLE bridgeledger.ledger_entries DELETE WHERE 1",
        "DROP TABLE bridgeledger.raw_windows",
        "CREATE TABLE bridgeledger.x (a UInt8) ENGINE = Memory",
        "SELECT * FROM default.nothing",
    ],
)
def test_auditor_cannot_write_alter_drop_or_leave_the_ledger(auditor, sql: str) -> None:
    from clickhouse_driver.errors import ServerException

    with pytest.raises(ServerException) as err:
        auditor.execute(sql)
    assert err.value.code in (164, 291)  # READONLY, DATABASE_ACCESS_DENIED


def test_writer_is_confined_to_the_ledger_database(ch) -> None:
    from clickhouse_driver.errors import ServerException

    with pytest.raises(ServerException) as err:
        ch.execute("CREATE DATABASE elsewhere")
    assert err.value.code == 291
