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


def test_decimal_units_are_written_exactly_and_never_reinterpreted(ch) -> None:
    """streams/clickhouse.py: integer units go into Decimal columns as they are; a
    units value of another scale, or mixed with other values, is refused."""
    from decimal import Decimal

    from streams.clickhouse import decimal_units

    table = "bridgeledger.units_check"
    ch.execute(f"DROP TABLE IF EXISTS {table}")
    ch.execute(f"CREATE TABLE {table} (i UInt32, h Decimal(18, 9), g Decimal(18, 3)) ENGINE = Memory")
    try:
        u9, u3 = decimal_units(9), decimal_units(3)
        big = 9_000_000_000_000_000_000 // 10  # near the top of Decimal(18, 9)
        ch.execute(f"INSERT INTO {table} (i, h, g) VALUES",
                   [[1, 2, 3], [u9(2_777_778), u9(0), u9(big)], [u3(5), u3(-1_234_567), u3(10**15)]], columnar=True)
        # the driver's own conversion still serves Decimal values
        ch.execute(f"INSERT INTO {table} (i, h, g) VALUES", [(4, Decimal("0.000000001"), Decimal("-2.5"))])
        rows = ch.execute(f"SELECT i, toString(h), toString(g) FROM {table} ORDER BY i")
        assert rows == [(1, "0.002777778", "0.005"), (2, "0.000000000", "-1234.567"),
                        (3, "900000000.000000000", "1000000000000.000"), (4, "0.000000001", "-2.500")]
        with pytest.raises(TypeError, match="DecimalUnits3 value 5 written to a Decimal column of scale 9"):
            ch.execute(f"INSERT INTO {table} (i, h, g) VALUES", [[5], [u3(5)], [u3(5)]], columnar=True)
        with pytest.raises(TypeError, match="scale 9"):
            ch.execute(f"INSERT INTO {table} (i, h, g) VALUES",
                       [[6, 7], [Decimal("1"), u9(1)], [u3(1), u3(1)]], columnar=True)
        assert ch.execute(f"SELECT count() FROM {table}") == [(4,)]
    finally:
        ch.execute(f"DROP TABLE IF EXISTS {table}")
