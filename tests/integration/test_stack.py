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


def test_the_cores_native_block_is_read_back_exactly_by_debian_clickhouse(ch, migrator_settings) -> None:
    """streams/clickhouse.py insert_native with the core's block (native/): the
    server takes every field as the chain texts it; a column the core would
    write in another layout is refused before any data goes, and the
    connection serves the next query."""
    from schemas.ledger import ENTRY_ROW_FIELDS
    from streams.chain_writer import ENTRY_COLUMNS
    from streams.clickhouse import insert_native
    from streams.core import EntryRows

    table = "bridgeledger.native_check"
    admin = connect(migrator_settings)  # the writer may not create or drop tables
    admin.execute(f"DROP TABLE IF EXISTS {table}")
    admin.execute(f"CREATE TABLE {table} AS bridgeledger.ledger_entries ENGINE = Memory")
    admin.execute(f"DROP TABLE IF EXISTS {table}_other")
    admin.execute(f"CREATE TABLE {table}_other (entry_id String, cost_eur Decimal(18, 9)) ENGINE = Memory")
    try:
        rows = EntryRows()
        top = 10**18 - 1  # the most units a Decimal(18, S) holds
        rows.window("c" * 64, "w-Köln|1", "agent", "boot", 2**64 - 1, "site", "node ü", 4_294_967_295 * 10**9,
                    2**64 - 1)
        rows.gpu("GPU-ü", "")
        rows.add("project", "Çà", "p", "KR", "", -(2**63), 2**63 - 1, top, -top, 5, "none")
        rows.window("d" * 64, "w2", "a", "b", 0, "s", "n", 0, 1)
        rows.gpu("GPU-2", "h100")
        rows.add("member", "", "", "", "job\n'7", 0, 0, 0, 1, -1, "job_event")
        insert_native(ch, f"INSERT INTO {table} ({ENTRY_COLUMNS}) VALUES",
                      lambda cols, rev: rows.encode_native(cols, rev, "batch-ü", 1_700_000_000))
        names = [c for c in ENTRY_ROW_FIELDS if c != "digest"]
        texts = ", ".join(f"toString({c})" if c in ("normalised_gpu_hours", "cost_eur", "carbon_g") else c
                          for c in names)
        got = ch.execute(f"SELECT {texts}, batch_id, toUInt32(window_start), toUInt32(written_at) "
                         f"FROM {table} ORDER BY window_id")
        want = [(*r[:-1], "batch-ü", r[9] // 10**9, 1_700_000_000) for r in rows]
        assert sorted(got) == sorted(want)
        assert got[0][18:21] == ("999999999.999999999", "-999999999999.999999", "0.005")
        with pytest.raises(ValueError, match="cost_eur is Decimal.18, 9. on the server"):
            insert_native(ch, f"INSERT INTO {table}_other (entry_id, cost_eur) VALUES",
                          lambda cols, rev: rows.encode_native(cols, rev, "b", 0))
        assert ch.execute(f"SELECT count() FROM {table}_other") == [(0,)]
    finally:
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.execute(f"DROP TABLE IF EXISTS {table}_other")
