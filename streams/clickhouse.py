"""Connection settings for ClickHouse, shared by the sink and the ledger tools."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ClickHouseSettings", "NativeEncoder", "connect", "insert_native"]


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
