"""Connection settings for ClickHouse, shared by the sink and the ledger tools."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ClickHouseSettings", "NativeEncoder", "connect", "decimal_units", "insert_native"]


class ClickHouseSettings(BaseSettings):
    """``BRIDGELEDGER_CH_*`` environment variables; the password from a file or the env."""

    model_config = SettingsConfigDict(env_prefix="BRIDGELEDGER_CH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 19000
    user: str = "writer"
    password: SecretStr = SecretStr("")
    password_file: Path | None = None
    database: str = "bridgeledger"
    connect_timeout_s: float = 5.0

    @model_validator(mode="after")
    def _read_password_file(self) -> ClickHouseSettings:
        if self.password_file is not None and not self.password.get_secret_value():
            from schemas.signing import read_secret_file

            secret = read_secret_file(self.password_file, "ClickHouse password").decode()  # ValueError: bad file
            object.__setattr__(self, "password", SecretStr(secret))
        return self


def connect(settings: ClickHouseSettings, database: str | None = None) -> Any:
    """A clickhouse-driver client; ``database`` overrides the configured one."""
    from clickhouse_driver import Client

    return Client(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password.get_secret_value(),
        database=database or settings.database,
        connect_timeout=settings.connect_timeout_s,
        send_receive_timeout=60,
        settings={"use_numpy": False},
    )


# -- an insert's data as one Native block made elsewhere ---------------------------------
# clickhouse-driver serialises an insert value by value in Python; the stream's
# entries come from the compiled core already laid out in ClickHouse's Native
# format (native/src/native.rs). The insert runs through the driver's own
# protocol steps (query, the server's sample block, data, the empty block that
# ends it, end of stream) with the core's block as the data packet, so the
# connection, its TLS, user and settings are the driver's.

# (the server's column names and types for the insert, its protocol revision) -> the block
NativeEncoder = Callable[[list[tuple[str, str]], int], bytes]


def insert_native(client: Any, query: str, encode: NativeEncoder) -> None:
    """``INSERT INTO t (columns) VALUES`` with one block of data that ``encode``
    makes for the columns and types the server names. A client that inserts
    Native blocks its own way (tests/chdb_client.py, in-process) has an
    ``insert_native`` method of the same form."""
    own = getattr(client, "insert_native", None)
    if own is not None:
        own(query, encode)
        return
    from clickhouse_driver import defines
    from clickhouse_driver.block import ColumnOrientedBlock
    from clickhouse_driver.protocol import ClientPacketTypes
    from clickhouse_driver.varint import write_varint
    from clickhouse_driver.writer import write_binary_str

    with client.disconnect_on_error(query, None):
        conn = client.connection
        if conn.compression:  # connect() never asks for it; a compressed stream frames blocks itself
            raise ValueError("insert_native needs an uncompressed connection")
        conn.send_query(query)
        conn.send_external_tables(None)
        sample = client.receive_sample_block()
        if not sample:
            raise ValueError(f"the server sent no columns for {query!r}")
        revision = conn.server_info.used_revision
        block = encode([(name, type_) for name, type_ in sample.columns_with_types], revision)
        write_varint(ClientPacketTypes.DATA, conn.fout)
        if revision >= defines.DBMS_MIN_REVISION_WITH_TEMPORARY_TABLES:
            write_binary_str("", conn.fout)  # the table name of a data packet: none
        conn.fout.write(block)
        conn.fout.flush()
        client.receive_profile_events()
        conn.send_data(ColumnOrientedBlock())  # the empty block: end of data
        client.receive_profile_events()
        client.receive_end_of_insert_query()


# -- exact integer units for Decimal columns ----------------------------------------
# clickhouse-driver turns every value it writes to a Decimal(P, S) column into
# int(Decimal(str(value)) * 10**S), one by one: on the ledger's hot path that
# was the costliest part of an insert. The stream already holds each decimal
# as an exact integer count of 10^-S, so it marks such values with the type
# ``decimal_units(S)`` and the column writes them as they are. A column whose
# values are not all of its own scale's type converts them the driver's way;
# a units value there (another scale, or mixed in) is an error, never a
# silent reinterpretation.

_UNIT_TYPES: dict[int, type[int]] = {}


def decimal_units(scale: int) -> type[int]:
    """The int subclass whose values are exact counts of 10^-scale, for a
    Decimal column of that scale: ``decimal_units(3)(5)`` writes 0.005."""
    unit = _UNIT_TYPES.get(scale)
    if unit is None:
        try:  # no units value can exist before the driver knows them (else it would read 5 as 5.000)
            _accept_decimal_units()
        except ImportError:  # no driver in this process: nothing can write them
            pass
        unit = _UNIT_TYPES[scale] = type(f"DecimalUnits{scale}", (int,), {"__slots__": (), "scale": scale})
    return unit


def _accept_decimal_units() -> None:
    from clickhouse_driver.columns.decimalcolumn import DecimalColumn

    convert = DecimalColumn.before_write_items
    if getattr(convert, "accepts_units", False):
        return
    unit_types = _UNIT_TYPES

    def before_write_items(self: Any, items: list[Any], nulls_map: Any = None) -> None:
        unit = unit_types.get(self.scale)
        if unit is not None and nulls_map is None and all(type(x) is unit for x in items):
            return  # already integer units of this column's scale
        stray = next((x for x in items if type(x) in unit_types.values()), None)
        if stray is not None:
            raise TypeError(f"{type(stray).__name__} value {int(stray)} written to a Decimal column of scale "
                            f"{self.scale}")
        convert(self, items, nulls_map)

    before_write_items.accepts_units = True  # type: ignore[attr-defined]
    DecimalColumn.before_write_items = before_write_items
