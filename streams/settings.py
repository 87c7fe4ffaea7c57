"""Settings of the stream worker process (``BRIDGELEDGER_*`` environment)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["StreamSettings"]


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRIDGELEDGER_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    app_id: str = Field(default="bridgeledger-stream", pattern=r"^[A-Za-z0-9._-]+$")
    consortium_config: Path = Path("deploy/consortium.example.yaml")
    partitions: int = Field(default=4, ge=1)
    batch_size: int = Field(default=2000, ge=1)
    batch_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
