"""Kafka topic names: part of the contract between agents and the centre."""

from __future__ import annotations

__all__ = ["CHECKPOINTS_TOPIC", "DLQ_TOPIC", "JOBS_TOPIC", "WINDOWS_TOPIC"]

WINDOWS_TOPIC = "telemetry.gpu.windows"  # key: node, so one node's windows stay in order
JOBS_TOPIC = "jobs.events"  # key: site_id/job_id
DLQ_TOPIC = "telemetry.dlq"  # rejected messages with a reason and the original bytes
# The stream's signed checkpoints of each chain (schemas/checkpoint.py): one
# partition (one order for all chains), kept forever, written by the stream only.
CHECKPOINTS_TOPIC = "ledger.checkpoints"  # key: chain_id
