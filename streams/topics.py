"""The pipeline's Kafka topics, declared in one place and created before use.

A consumer that subscribes to a topic that does not exist yet would ignore it
until its next metadata refresh (minutes), so the worker creates the topics
before it starts instead of relying on broker auto-creation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from schemas.topics import DLQ_TOPIC, JOBS_TOPIC, WINDOWS_TOPIC
from streams import StreamError

__all__ = ["TopicSpec", "declare_topics", "topic_specs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int


def topic_specs(partitions: int) -> list[TopicSpec]:
    fortnight = 14 * 24 * 3600 * 1000
    return [
        TopicSpec(WINDOWS_TOPIC, partitions, fortnight),
        TopicSpec(JOBS_TOPIC, partitions, fortnight),
        # Dead letters wait for a person: kept 90 days.
        TopicSpec(DLQ_TOPIC, 1, 90 * 24 * 3600 * 1000),
    ]


def declare_topics(bootstrap: str, partitions: int, **client_options: object) -> list[str]:
    """Create missing topics; return the names created. Existing ones are left alone."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bridgeledger-topics", **client_options)
    except KafkaError as exc:
        raise StreamError(f"cannot reach Kafka at {bootstrap} to declare topics: {exc}") from exc
    try:
        try:
            existing = set(admin.list_topics())
        except KafkaError as exc:
            raise StreamError(f"cannot list topics at {bootstrap}: {exc}") from exc
        wanted = [s for s in topic_specs(partitions) if s.name not in existing]
        created = []
        for spec in wanted:
            try:
                admin.create_topics([NewTopic(spec.name, spec.partitions, 1,
                                              topic_configs={"retention.ms": str(spec.retention_ms)})])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
