"""The wire and config contract of bridgeledger.

Imports nothing else of ours and nothing of Kafka, Faust or ClickHouse, so a
GPU node installs only pydantic and PyYAML for it.

Errors::

    SchemaError
    ├── WireError        a message that does not meet the wire contract (has a reason code)
    ├── ConfigError      a consortium config file that is invalid (names file and field)
    └── CheckpointError  a message on ledger.checkpoints that is not a checkpoint the ledger signed
"""

from __future__ import annotations

from schemas.consortium import ConsortiumConfig, GpuModel, Member, Project, Site, load_config
from schemas.errors import ConfigError, SchemaError, WireError
from schemas.jobs import JobEvent
from schemas.ledger import LedgerEntry
from schemas.telemetry import (
    SCHEMA_VERSION,
    GpuWindow,
    ProcessShare,
    TelemetryWindow,
    decode_window,
)

__all__ = [
    "SCHEMA_VERSION",
    "ConfigError",
    "ConsortiumConfig",
    "GpuModel",
    "GpuWindow",
    "JobEvent",
    "LedgerEntry",
    "Member",
    "ProcessShare",
    "Project",
    "SchemaError",
    "Site",
    "TelemetryWindow",
    "WireError",
    "decode_window",
    "load_config",
]
