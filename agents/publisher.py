"""Transport behind one small interface: Kafka for real, memory for tests."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from agents import PublishError

__all__ = ["KafkaPublisher", "MemoryPublisher", "Publisher"]

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one message; delivery is confirmed by :meth:`flush`."""
        ...

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued is acknowledged; raise PublishError if not."""
        ...

    def close(self) -> None: ...


class MemoryPublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.fail_next_flush: Exception | None = None
        self._pending: list[tuple[str, bytes, bytes]] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self._pending.append((topic, key, value))

    def flush(self, timeout_s: float = 30.0) -> None:
        if self.fail_next_flush is not None:
            exc, self.fail_next_flush = self.fail_next_flush, None
            self._pending.clear()  # not delivered
            raise PublishError(f"flush failed: {exc}")
        self.messages.extend(self._pending)
        self._pending.clear()

    def close(self) -> None:
        pass


class KafkaPublisher:
    """kafka-python producer: acks=all and idempotence (the 3.x defaults, set explicitly)."""

    def __init__(self, bootstrap: str, client_id: str = "bridgeledger-agent", **extra: Any) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self._kafka_error = KafkaError
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=extra.pop("linger_ms", 20),
                max_in_flight_requests_per_connection=5,
                # a dead broker must not block the caller for long: the spool waits instead
                max_block_ms=extra.pop("max_block_ms", 5000),
                **extra,
            )
        except KafkaError as exc:
            raise PublishError(f"cannot connect to Kafka at {bootstrap}: {exc}") from exc
        self._futures: list[Any] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            self._futures.append(self._producer.send(topic, key=key, value=value))
        except self._kafka_error as exc:
            raise PublishError(f"send to {topic} failed: {exc}") from exc

    def flush(self, timeout_s: float = 30.0) -> None:
        futures, self._futures = self._futures, []
        try:
            self._producer.flush(timeout=timeout_s)
            for f in futures:
                f.get(timeout=0)
        except Exception as exc:  # kafka-python raises KafkaError and its own timeouts
            raise PublishError(f"{len(futures)} message(s) not acknowledged: {exc}") from exc

    def close(self) -> None:
        self._producer.close(timeout=10)
