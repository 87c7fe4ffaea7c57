"""The ``ledger.checkpoints`` topic through kafka-python: publish, read a range, find a chain's last.

The topic has one partition (one order for every chain) and keeps every
record; the stream appends with ``acks=all`` and waits for the broker, the
witnesses read it from where they stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from schemas.topics import CHECKPOINTS_TOPIC
from streams import StreamError

__all__ = ["KafkaCheckpointLog", "read_checkpoints"]


def _consumer(bootstrap: str, options: dict[str, Any]) -> tuple[Any, Any]:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                 client_id="bridgeledger-checkpoints", **options)
    except KafkaError as exc:
        raise StreamError(f"cannot reach Kafka at {bootstrap} to read {CHECKPOINTS_TOPIC}: {exc}") from exc
    tp = TopicPartition(CHECKPOINTS_TOPIC, 0)
    consumer.assign([tp])
    return consumer, tp


def _range(consumer: Any, tp: Any, lo: int, hi: int, timeout_s: float) -> Iterator[tuple[int, bytes, bytes]]:
    """(offset, key, value) of the records lo <= offset < hi."""
    consumer.seek(tp, lo)
    deadline = time.monotonic() + timeout_s
    position = lo
    while position < hi:
        if time.monotonic() > deadline:
            raise StreamError(f"reading {CHECKPOINTS_TOPIC} offsets {lo}..{hi} timed out at {position}")
        for records in consumer.poll(timeout_ms=500, max_records=1000).values():
            for r in records:
                if r.offset >= hi:
                    return
                position = r.offset + 1
                yield r.offset, r.key or b"", r.value or b""


def read_checkpoints(bootstrap: str, start: int, options: dict[str, Any] | None = None,
                     timeout_s: float = 60.0) -> Iterator[tuple[int, bytes, bytes]]:
    """Every record from offset ``start`` to the end the topic had when called."""
    consumer, tp = _consumer(bootstrap, options or {})
    try:
        first = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp]
        if start < first:
            raise StreamError(f"{CHECKPOINTS_TOPIC} starts at offset {first}, after {start}: records were deleted "
                              f"(the topic must keep every checkpoint: retention.ms=-1)")
        yield from _range(consumer, tp, start, end, timeout_s)
    finally:
        consumer.close()


class KafkaCheckpointLog:
    """:class:`streams.checkpoints.CheckpointLog` on the topic."""

    def __init__(self, bootstrap: str, options: dict[str, Any] | None = None, timeout_s: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.options = options or {}
        self.timeout_s = timeout_s
        self._producer: Any = None

    def publish(self, chain_id: str, message: bytes) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                           client_id="bridgeledger-checkpoints", **self.options)
        self._producer.send(CHECKPOINTS_TOPIC, key=chain_id.encode(), value=message,
                            partition=0).get(timeout=self.timeout_s)

    def last(self, chain_id: str) -> bytes | None:
        """Reads back from the end in growing steps until the chain's newest record."""
        consumer, tp = _consumer(self.bootstrap, self.options)
        key = chain_id.encode()
        try:
            first = consumer.beginning_offsets([tp])[tp]
            hi = consumer.end_offsets([tp])[tp]
            step = 256
            while hi > first:
                lo = max(first, hi - step)
                found = [v for _, k, v in _range(consumer, tp, lo, hi, self.timeout_s) if k == key]
                if found:
                    return found[-1]
                hi, step = lo, step * 4
            return None
        finally:
            consumer.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
