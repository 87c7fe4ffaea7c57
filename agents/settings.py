"""Agent configuration: one YAML file, validated at start.

Every field can also come from the environment (``BRIDGELEDGER_AGENT_*``), and
a bad value stops the agent with one line naming the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents import AgentError
from schemas.signing import SigningKey, read_secret_file, read_signing_key

__all__ = ["AgentConfigError", "AgentSettings", "KafkaSecurity", "load_agent_settings", "read_key_file"]


class AgentConfigError(AgentError):
    """A bad agent config: the message names the file, the field and the fix."""


class KafkaSecurity(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid")

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def producer_options(self) -> dict[str, object]:
        opts: dict[str, object] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            if not (self.sasl_mechanism and self.username and self.password_file):
                raise AgentConfigError("kafka_security: SASL needs sasl_mechanism, username and password_file")
            try:
                password = read_secret_file(self.password_file, "Kafka password").decode()
            except ValueError as exc:
                raise AgentConfigError(f"kafka_security.password_file: {exc}") from exc
            opts.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                        sasl_plain_password=password)
        if self.protocol.endswith("SSL"):
            opts.update(ssl_cafile=str(self.ca_file) if self.ca_file else None,
                        ssl_certfile=str(self.cert_file) if self.cert_file else None,
                        ssl_keyfile=str(self.key_file) if self.key_file else None)
        return opts


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRIDGELEDGER_AGENT_", extra="forbid")

    agent_id: str = Field(min_length=1, max_length=256)
    site_id: str = Field(min_length=1, max_length=64)
    node: str = Field(default_factory=lambda: os.uname().nodename, min_length=1)
    reader: Literal["nvml", "sim", "replay"] = "nvml"
    replay_dir: Path | None = None
    sim_gpus: int = Field(default=8, ge=1, le=64)
    sim_model: str = "NVIDIA H100 80GB HBM3"
    sim_accounts: list[str] = Field(default_factory=lambda: ["kr-llm"])
    sim_seed: int = 1
    sim_epoch_ns: int | None = None
    window_s: float = Field(default=10.0, gt=0, le=3600)
    sample_s: float = Field(default=1.0, gt=0, le=60)
    # read the energy counter at every sample instead of once per window (where the
    # call is cheap: a sharper split at window boundaries; docs/operators.md)
    counter_every_sample: bool = False
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    spool_path: Path = Path("/var/lib/bridgeledger/spool.sqlite")
    spool_max_windows: int = Field(default=1_000_000, ge=1)
    spool_full_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    key_id: str | None = None
    key_file: Path | None = None
    proc_root: Path = Path("/proc")
    static_jobs_file: Path | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "0.0.0.0"  # all interfaces (Prometheus scrapes the node); 127.0.0.1 keeps it local
    send_batch: int = Field(default=500, ge=1)
    send_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> AgentSettings:
        if (self.key_id is None) != (self.key_file is None):
            raise ValueError("key_id and key_file go together (sign with both, or neither)")
        if self.reader == "replay" and self.replay_dir is None:
            raise ValueError("reader 'replay' needs replay_dir")
        if self.sample_s > self.window_s:
            raise ValueError("sample_s must not exceed window_s")
        return self


def read_key_file(path: Path) -> SigningKey:
    """The node's Ed25519 private key; refused if group or others may read it
    (a key others can read is no key)."""
    try:
        return read_signing_key(path)
    except ValueError as exc:
        raise AgentConfigError(f"signing key {exc}") from exc


def load_agent_settings(path: Path) -> AgentSettings:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise AgentConfigError(f"{path}: cannot read agent config: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise AgentConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise AgentConfigError(f"{path}: expected a mapping of settings")
    try:
        return AgentSettings(**doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = first["msg"].removeprefix("Value error, ")
        raise AgentConfigError(f"{path}: field {where}: {msg}") from exc
