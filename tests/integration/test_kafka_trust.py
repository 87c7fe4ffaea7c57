"""Kafka with SASL/SCRAM over TLS and per-principal ACLs: a site may write only the
telemetry topic, only the stream may read it, and a site cannot report for another."""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest

from agents import PublishError
from agents.publisher import KafkaPublisher
from schemas.signing import sign_document
from schemas.topics import JOBS_TOPIC, WINDOWS_TOPIC
from tests.secure_kafka import start_secure_kafka
from tests.unit.test_telemetry import window

pytestmark = [pytest.mark.integration]
KR_KEY = b"k" * 32


@pytest.fixture(scope="module")
def secure(stack, tmp_path_factory):
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        KafkaAdminClient,
        NewTopic,
        ResourcePattern,
        ResourceType,
    )

    sk = start_secure_kafka(stack, tmp_path_factory.mktemp("secure-kafka"), 39092,
                            ["site-kr-daejeon", "site-ca-montreal", "stream"])
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sk.internal_port}")
    admin.create_topics([NewTopic(WINDOWS_TOPIC, 1, 1), NewTopic(JOBS_TOPIC, 1, 1)])
    topic = ResourcePattern(ResourceType.TOPIC, WINDOWS_TOPIC)
    acls = [ACL(f"User:{site}", "*", op, ACLPermissionType.ALLOW, topic)
            for site in ("site-kr-daejeon", "site-ca-montreal") for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
    acls += [ACL("User:stream", "*", ACLOperation.READ, ACLPermissionType.ALLOW, topic),
             ACL("User:stream", "*", ACLOperation.DESCRIBE, ACLPermissionType.ALLOW, topic),
             ACL("User:stream", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                 ResourcePattern(ResourceType.GROUP, "bridgeledger-stream"))]
    result = admin.create_acls(acls)
    assert not result["failed"], result["failed"]
    admin.close()
    yield sk
    os.killpg(sk.proc.pid, signal.SIGKILL)


def publisher(sk, user: str, password: str | None = None) -> KafkaPublisher:
    return KafkaPublisher(sk.bootstrap, client_id=f"t-{uuid.uuid4().hex[:6]}", **sk.client_options(user, password))


def test_a_site_writes_telemetry_over_sasl_ssl(secure) -> None:
    pub = publisher(secure, "site-kr-daejeon")
    pub.publish(WINDOWS_TOPIC, b"n1", b"{}")
    pub.flush(30)
    pub.close()


def test_a_site_cannot_write_other_topics(secure) -> None:
    pub = publisher(secure, "site-kr-daejeon")
    with pytest.raises(PublishError, match="(?i)authoriz"):
        pub.publish(JOBS_TOPIC, b"j", b"{}")
        pub.flush(30)


def test_wrong_password_and_plaintext_are_refused(secure) -> None:
    with pytest.raises(PublishError):
        pub = publisher(secure, "site-kr-daejeon", "not-the-password")
        pub.publish(WINDOWS_TOPIC, b"n1", b"{}")
        pub.flush(15)
    with pytest.raises(PublishError):
        pub = KafkaPublisher(secure.bootstrap, client_id="plain", request_timeout_ms=5000)
        pub.publish(WINDOWS_TOPIC, b"n1", b"{}")
        pub.flush(10)


def consume(secure, user: str) -> list[bytes]:
    from kafka import KafkaConsumer

    c = KafkaConsumer(WINDOWS_TOPIC, bootstrap_servers=secure.bootstrap, group_id="bridgeledger-stream",
                      auto_offset_reset="earliest", consumer_timeout_ms=8000, **secure.client_options(user))
    try:
        return [m.value for m in c]
    finally:
        c.close()


def test_only_the_stream_reads_and_a_site_cannot_report_for_another(secure, config_and_hash) -> None:
    import yaml

    from schemas.consortium import parse_config
    from streams.processing import WindowProcessor
    from tests.conftest import CONFIG

    forged = sign_document(window(site_id="ca-montreal", agent_id="kr-pretending"), "kr-1", KR_KEY)
    pub = publisher(secure, "site-kr-daejeon")
    pub.publish(WINDOWS_TOPIC, b"n1", json.dumps(forged).encode())
    pub.flush(30)
    with pytest.raises(Exception, match="(?i)authoriz"):
        consume(secure, "site-kr-daejeon")
    received = [m for m in consume(secure, "stream") if b"kr-pretending" in m]
    assert received
    doc = yaml.safe_load(CONFIG.read_bytes())
    doc["sites"][0]["key_ids"] = ["kr-1"]  # kr-daejeon
    doc["sites"][1]["key_ids"] = ["ca-1"]  # ca-montreal
    cfg, digest = parse_config(yaml.safe_dump(doc).encode())
    out = WindowProcessor(cfg, digest, {"kr-1": KR_KEY, "ca-1": b"c" * 32}).process(received[0])
    assert out.rejection is not None and out.rejection.reason == "unknown_key"


def test_agent_doctor_over_sasl_ssl(secure, tmp_path) -> None:
    from agents.doctor import check_kafka
    from agents.settings import AgentSettings

    pw = tmp_path / "kafka.password"
    pw.write_text(secure.passwords["site-kr-daejeon"])
    s = AgentSettings(agent_id="a", site_id="kr-daejeon", kafka_bootstrap=secure.bootstrap,
                      kafka_security={"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                      "username": "site-kr-daejeon", "password_file": str(pw),
                                      "ca_file": str(secure.ca)})
    check = check_kafka(s)
    assert check.status in ("ok", "warn"), check.line()
