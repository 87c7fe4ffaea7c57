"""The pipeline's Kafka topics, declared in one place and created before use.

A consumer that subscribes to a topic that does not exist yet would ignore it
until its next metadata refresh (minutes), so the worker creates the topics
before it starts instead of relying on broker auto-creation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from schemas.topics import CHECKPOINTS_TOPIC, DLQ_TOPIC, JOBS_TOPIC, WINDOWS_TOPIC
from streams import StreamError

__all__ = ["TopicSpec", "declare_topics", "topic_specs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    # LogAppendTime: the broker stamps each record, so the worker's time checks
    # use the broker's clock, not the producer's claim.
    timestamp_type: str = "CreateTime"

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "message.timestamp.type": self.timestamp_type}


def topic_specs(partitions: int) -> list[TopicSpec]:
    fortnight = 14 * 24 * 3600 * 1000
    return [
        TopicSpec(WINDOWS_TOPIC, partitions, fortnight, "LogAppendTime"),
        TopicSpec(JOBS_TOPIC, partitions, fortnight),
        # Dead letters wait for a person: kept 90 days.
        TopicSpec(DLQ_TOPIC, 1, 90 * 24 * 3600 * 1000),
        # What the members witness: never deleted (retention -1), one partition.
        TopicSpec(CHECKPOINTS_TOPIC, 1, -1, "LogAppendTime"),
    ]


def declare_topics(bootstrap: str, partitions: int, **client_options: object) -> list[str]:
    """Create missing topics; return the names created. An existing topic keeps
    its partitions; its retention and timestamp type are set to the spec's."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
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
                admin.create_topics([NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.configs())])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        for spec in topic_specs(partitions):
            if spec.name in existing:
                try:  # a topic made by an earlier version: same settings as a new one
                    result = admin.alter_configs(
                        [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=spec.configs())],
                        raise_on_unknown=False)
                    errors = [e for r in (result or {}).values() for e in r.values()
                              if isinstance(e, Exception) or (isinstance(e, type) and issubclass(e, Exception)
                                                              and e.__name__ != "NoError")]
                    if errors:
                        raise KafkaError(str(errors[0]))
                except (KafkaError, ValueError) as exc:  # e.g. no AlterConfigs ACL: the topic's owner sets them
                    log.warning("topic %s keeps its own configs (%s); wanted %s. Without LogAppendTime the "
                                "worker's clock stands in for the broker's in the time checks",
                                spec.name, exc, spec.configs())
        return created
    finally:
        admin.close()
