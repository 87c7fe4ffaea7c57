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


def test_migrations_run_twice_on_debian_clickhouse(migrator_settings, ch) -> None:
    admin = connect(migrator_settings, database="system")
    assert apply_migrations(admin, migrator_settings.database) == []
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
    assert err.value.code in (291, 392)  # DATABASE_ACCESS_DENIED, QUERY_IS_PROHIBITED (allow_ddl=0)


# What the stream's writer may not do, tried on a scratch table the migrator makes in the ledger
# database (so that a statement 18.16 does not refuse harms nothing). docs/security.md has the table.
WRITER_REFUSED = {
    "DROP": "DROP TABLE {t}",
    "TRUNCATE": "TRUNCATE TABLE {t}",
    "ALTER DELETE": "ALTER TABLE {t} DELETE WHERE 1",
    "ALTER UPDATE": "ALTER TABLE {t} UPDATE b = 'x' WHERE 1",
    "ALTER DROP PARTITION": "ALTER TABLE {t} DROP PARTITION tuple()",
    "ALTER ADD COLUMN": "ALTER TABLE {t} ADD COLUMN c UInt8",
    "CREATE": "CREATE TABLE {t}_new (a UInt8) ENGINE = Memory",
    "RENAME": "RENAME TABLE {t} TO {t}_moved",
    "DETACH": "DETACH TABLE {t}",
    "OPTIMIZE": "OPTIMIZE TABLE {t}",
    "SYSTEM": "SYSTEM STOP MERGES",
    "SET allow_ddl = 1": "SET allow_ddl = 1",
}


@pytest.fixture()
def scratch(ch, migrator_settings):
    import uuid

    admin = connect(migrator_settings)
    table = f"{migrator_settings.database}.probe_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {table} (a UInt8, b String) ENGINE = MergeTree() ORDER BY a")
    admin.execute(f"INSERT INTO {table} VALUES", [(1, "a")])
    yield table
    admin.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.parametrize("what", list(WRITER_REFUSED))
def test_the_stream_writer_may_not_run_ddl(ch, scratch, what: str) -> None:
    from clickhouse_driver.errors import ServerException

    with pytest.raises(ServerException) as err:
        ch.execute(WRITER_REFUSED[what].format(t=scratch))
    assert err.value.code in (392, 164, 291), err.value  # QUERY_IS_PROHIBITED, READONLY, ACCESS_DENIED
    assert ch.execute(f"SELECT count() FROM {scratch}") == [(1,)]  # the table is as it was


def test_the_stream_writer_inserts_and_selects(ch, scratch) -> None:
    ch.execute(f"INSERT INTO {scratch} (a, b) VALUES", [(2, "b")])
    assert ch.execute(f"SELECT count() FROM {scratch}") == [(2,)]


def test_what_allow_ddl_cannot_forbid(ch) -> None:
    # KILL QUERY is not DDL: 18.16 lets the writer run it (on its own queries; the witness and
    # the chain catch what it could do to the books, which is nothing beyond a failed write)
    ch.execute("KILL QUERY WHERE 0 SYNC")


def test_decimal_units_are_written_exactly_and_never_reinterpreted(ch, migrator_settings) -> None:
    """streams/clickhouse.py: integer units go into Decimal columns as they are; a
    units value of another scale, or mixed with other values, is refused."""
    from decimal import Decimal

    from streams.clickhouse import decimal_units

    table = "bridgeledger.units_check"
    admin = connect(migrator_settings)  # the writer may not create or drop tables
    admin.execute(f"DROP TABLE IF EXISTS {table}")
    admin.execute(f"CREATE TABLE {table} (i UInt32, h Decimal(18, 9), g Decimal(18, 3)) ENGINE = Memory")
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
        admin.execute(f"DROP TABLE IF EXISTS {table}")
