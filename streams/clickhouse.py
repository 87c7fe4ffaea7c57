"""Connection settings for ClickHouse, shared by the sink and the ledger tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ClickHouseSettings", "connect"]


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
            try:
                secret = self.password_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"password_file {self.password_file}: {exc.strerror}") from exc
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
