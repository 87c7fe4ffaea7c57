"""Settings of the stream worker process (``BRIDGELEDGER_*`` environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.telemetry import MAX_ENERGY_MJ, MAX_GPUS

__all__ = ["MAX_BATCH_SIZE", "StreamSettings"]

# The most windows a batch may hold: the sums of its commit record fit Int64
# whatever the windows carry (each at most MAX_GPUS GPUs of MAX_ENERGY_MJ).
MAX_BATCH_SIZE = (2**63 - 1) // (MAX_GPUS * MAX_ENERGY_MJ)


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRIDGELEDGER_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    app_id: str = Field(default="bridgeledger-stream", pattern=r"^[A-Za-z0-9._-]+$")
    # One hash chain per worker writing the ledger (see streams/sink.py).
    chain_id: str = Field(default="main", pattern=r"^[A-Za-z0-9._-]+$")
    consortium_config: Path = Path("deploy/consortium.example.yaml")
    partitions: int = Field(default=4, ge=1)
    # Windows per batch: fewer, larger inserts (docs/benchmarks.md: 4,000 booked ~7 % more
    # a second than 2,000 on the bench machine, within its run-to-run spread).
    batch_size: int = Field(default=4000, ge=1, le=MAX_BATCH_SIZE)
    batch_s: float = Field(default=0.5, gt=0)
    # Batches prepared while the sink writes an earlier one, then the consumer waits. Each
    # costs a batch's memory; on the bench machine 2 was not measurably faster than 1
    # (docs/benchmarks.md: medians 49.7k and 49.0k GPU-windows/s over five and three runs)
    batches_ahead: int = Field(default=1, ge=1, le=8)
    # Which implementation of the attribution and pricing rules books the windows:
    # "compiled" (native/src/attribute.rs) or "python" (streams/attribution.py and
    # streams/pricing.py, the definition, which `ledger recompute` runs). The same
    # entries either way (docs/attribution.md); "python" costs about 8 µs of CPU more
    # a GPU-window on the bench machine (docs/benchmarks.md).
    rules: Literal["compiled", "python"] = "compiled"
    retry_max_s: float = Field(default=30.0, gt=0)
    session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    # A window older than this when it reaches the broker is dead-lettered (too_old).
    max_window_age_s: float = Field(default=7 * 86_400, gt=0)
    # The chain's lease (streams/lease.py): a dead worker's chain is free after this.
    lease_ttl_s: int = Field(default=30, ge=5, le=3600)
    # Threads that check the windows' signatures beside the worker, in its process
    # (streams/verifier.py); 0 checks them in the worker's own thread. Unset: one per
    # core beyond the worker's, at most 4.
    verify_threads: int | None = Field(default=None, ge=0, le=64)
    # Processes that check them instead (a pool of verifying processes); 0: none.
    verify_processes: int = Field(default=0, ge=0, le=64)
    # The ledger's private key (64 hex digits, mode 600): signs the checkpoints.
    # Unset: only a config listing the public demo ledger key runs (the demo).
    ledger_key_file: Path | None = None
    # A checkpoint of the chain's head at least this often while writing.
    checkpoint_interval_s: float = Field(default=60.0, ge=0, le=3600)
    # SASL/SCRAM over TLS to the broker (all unset: PLAINTEXT, the local stack)
    kafka_username: str | None = None
    kafka_password_file: Path | None = None
    kafka_sasl_mechanism: str = Field(default="SCRAM-SHA-512", pattern=r"^(SCRAM-SHA-256|SCRAM-SHA-512|PLAIN)$")
    kafka_ca_file: Path | None = None

    @property
    def heartbeat_interval_s(self) -> float:
        """Heartbeats of both consumer groups: a quarter of the session timeout, at least 1 s."""
        return max(1.0, self.session_timeout_s / 4)

    def kafka_python_options(self) -> dict[str, object]:
        """The same credentials for kafka-python clients (topic declaration)."""
        if not self.kafka_username:
            return {}
        return {"security_protocol": "SASL_SSL" if self.kafka_ca_file else "SASL_PLAINTEXT",
                "sasl_mechanism": self.kafka_sasl_mechanism, "sasl_plain_username": self.kafka_username,
                "sasl_plain_password": self.kafka_password(),
                "ssl_cafile": str(self.kafka_ca_file) if self.kafka_ca_file else None}

    def aiokafka_options(self) -> dict[str, object]:
        """The same credentials for aiokafka clients (the windows consumer): a TLS context, not a CA file."""
        options = self.kafka_python_options()
        if options:
            import ssl

            cafile = options.pop("ssl_cafile")
            options["ssl_context"] = ssl.create_default_context(cafile=str(cafile)) if cafile else None
        return options

    def kafka_password(self) -> str:
        from schemas.signing import read_secret_file

        if self.kafka_password_file is None:
            raise ValueError("BRIDGELEDGER_KAFKA_PASSWORD_FILE is needed with BRIDGELEDGER_KAFKA_USERNAME")
        return read_secret_file(self.kafka_password_file, "Kafka password").decode()
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "0.0.0.0"  # BRIDGELEDGER_METRICS_HOST; 127.0.0.1 keeps /metrics and /healthz local
