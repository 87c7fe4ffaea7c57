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
from schemas.signing import demo_key, sign_window
from schemas.topics import CHECKPOINTS_TOPIC, DLQ_TOPIC, JOBS_TOPIC, WINDOWS_TOPIC
from tests.builders import window, wire
from tests.secure_kafka import start_secure_kafka

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def secure(stack, tmp_path_factory):
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        NewTopic,
        ResourcePattern,
        ResourceType,
    )

    # ports clear of the local (+0), test (+10000) and bench (+20000) stacks: 19092, 29092 and 39092 are theirs
    sk = start_secure_kafka(stack, tmp_path_factory.mktemp("secure-kafka"), 45092,
                            ["site-kr-daejeon", "site-ca-montreal", "stream", "jobs-kr-daejeon"])
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sk.internal_port}")
    admin.create_topics([NewTopic(WINDOWS_TOPIC, 1, 1), NewTopic(JOBS_TOPIC, 1, 1), NewTopic(DLQ_TOPIC, 1, 1),
                         NewTopic(CHECKPOINTS_TOPIC, 1, 1, topic_configs={"retention.ms": "-1"})])
    topic = ResourcePattern(ResourceType.TOPIC, WINDOWS_TOPIC)
    acls = [ACL(f"User:{site}", "*", op, ACLPermissionType.ALLOW, topic)
            for site in ("site-kr-daejeon", "site-ca-montreal") for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
    acls += [ACL("User:stream", "*", ACLOperation.READ, ACLPermissionType.ALLOW, topic),
             ACL("User:stream", "*", ACLOperation.DESCRIBE, ACLPermissionType.ALLOW, topic),
             ACL("User:stream", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                 ResourcePattern(ResourceType.GROUP, "bridgeledger-stream", ACLResourcePatternType.PREFIXED))]
    # the stream worker: reads job events, writes dead letters, owns Faust's internal topics
    acls += [ACL("User:stream", "*", op, ACLPermissionType.ALLOW, ResourcePattern(ResourceType.TOPIC, name))
             for name, ops in ((JOBS_TOPIC, (ACLOperation.READ, ACLOperation.DESCRIBE)),
                               (DLQ_TOPIC, (ACLOperation.WRITE, ACLOperation.DESCRIBE)),
                               # its signed checkpoints: it writes them and reads its chain's last at start
                               (CHECKPOINTS_TOPIC, (ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE)))
             for op in ops]
    acls += [ACL("User:stream", "*", op, ACLPermissionType.ALLOW,
                 ResourcePattern(ResourceType.TOPIC, "bridgeledger-stream-", ACLResourcePatternType.PREFIXED))
             for op in (ACLOperation.CREATE, ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE)]
    # a site's job-event deliverer (the bridgeledger-jobs service) writes jobs.events only
    acls += [ACL("User:jobs-kr-daejeon", "*", op, ACLPermissionType.ALLOW,
                 ResourcePattern(ResourceType.TOPIC, JOBS_TOPIC)) for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
    result = admin.create_acls(acls)
    assert not result["failed"], result["failed"]
    admin.close()
    yield sk
    os.killpg(sk.proc.pid, signal.SIGKILL)


def publisher(sk, user: str, password: str | None = None, **extra) -> KafkaPublisher:
    return KafkaPublisher(sk.bootstrap, client_id=f"t-{uuid.uuid4().hex[:6]}", **sk.client_options(user, password),
                          **extra)


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
    # the producer tries to bootstrap for bootstrap_timeout_ms (30 s by default) before it gives up
    with pytest.raises(PublishError):
        pub = publisher(secure, "site-kr-daejeon", "not-the-password", bootstrap_timeout_ms=6000)
        pub.publish(WINDOWS_TOPIC, b"n1", b"{}")
        pub.flush(15)
    with pytest.raises(PublishError):
        pub = KafkaPublisher(secure.bootstrap, client_id="plain", request_timeout_ms=5000, bootstrap_timeout_ms=6000)
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
    from schemas.consortium import parse_config
    from streams.processing import WindowProcessor
    from tests.conftest import CONFIG

    # Korea's node signs a window that claims to be Montreal's, with Korea's own key
    key_id, kr_key = demo_key("kr-daejeon")
    body = json.dumps({**window(site_id="ca-montreal", agent_id="kr-pretending"), "key_id": key_id},
                      separators=(",", ":")).encode()
    pub = publisher(secure, "site-kr-daejeon")
    pub.publish(WINDOWS_TOPIC, b"n1", sign_window(body, kr_key))
    pub.flush(30)
    with pytest.raises(Exception, match="(?i)authoriz"):
        consume(secure, "site-kr-daejeon")
    received = [m for m in consume(secure, "stream") if b"kr-pretending" in m]
    assert received
    cfg, digest = parse_config(CONFIG.read_bytes())
    out = WindowProcessor(cfg, digest).process(received[0])
    assert out.rejection is not None and out.rejection.reason == "unknown_key"


def test_agent_doctor_over_sasl_ssl(secure, tmp_path) -> None:
    from agents.doctor import check_kafka
    from agents.settings import AgentSettings

    pw = tmp_path / "kafka.password"
    pw.write_text(secure.passwords["site-kr-daejeon"])
    pw.chmod(0o600)
    s = AgentSettings(agent_id="a", site_id="kr-daejeon", kafka_bootstrap=secure.bootstrap,
                      kafka_security={"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                      "username": "site-kr-daejeon", "password_file": str(pw),
                                      "ca_file": str(secure.ca)})
    check = check_kafka(s)
    assert check.status in ("ok", "warn"), check.line()


def test_the_stream_worker_reads_over_sasl_ssl_and_books_the_window(secure, stack, ch, tmp_path) -> None:
    """The real Faust worker as the `stream` principal: a site's window reaches the ledger."""
    import subprocess
    import sys
    import time

    from tests.conftest import CONFIG, ROOT, TEST_PORT_OFFSET
    from tests.helpers import wait_for

    pw = tmp_path / "stream.password"
    pw.write_text(secure.passwords["stream"])
    pw.chmod(0o600)
    env = {**os.environ, **stack.client_env(), "BRIDGELEDGER_KAFKA_BOOTSTRAP": secure.bootstrap,
           "BRIDGELEDGER_KAFKA_USERNAME": "stream", "BRIDGELEDGER_KAFKA_PASSWORD_FILE": str(pw),
           "BRIDGELEDGER_KAFKA_CA_FILE": str(secure.ca), "BRIDGELEDGER_CONSORTIUM_CONFIG": str(CONFIG),
           "BRIDGELEDGER_CHAIN_ID": "secure", "BRIDGELEDGER_STATE_DIR": str(stack.state),
           "BRIDGELEDGER_PORT_OFFSET": str(TEST_PORT_OFFSET)}
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "bridgeledger.cli", "stream", "run"], env=env, cwd=ROOT,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        agent = f"secure-{uuid.uuid4().hex[:8]}"
        doc = window(agent_id=agent, window_end_ns=time.time_ns(), window_start_ns=time.time_ns() - 10**10)
        pub = publisher(secure, "site-kr-daejeon")
        pub.publish(WINDOWS_TOPIC, b"n1", wire(doc))
        pub.flush(30)
        wait_for(lambda: ch.execute("SELECT sum(energy_mj) FROM ledger WHERE agent_id = %(a)s",
                                    {"a": agent})[0][0] == doc["gpus"][0]["energy_mj"], 120,
                 f"the window in the ledger (worker log: {log})")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def test_the_prologs_outbox_is_delivered_over_sasl_ssl(secure, tmp_path) -> None:
    """`jobs deliver` with the site's jobs.yaml: SCRAM over TLS, as the jobs principal."""
    import subprocess
    import sys

    from kafka import KafkaConsumer

    from agents.job_outbox import write_record
    from schemas.jobs import JobEvent, decode_job_event
    from tests.conftest import ROOT

    pw = tmp_path / "kafka-jobs.password"
    pw.write_text(secure.passwords["jobs-kr-daejeon"])
    pw.chmod(0o600)
    job = f"sasl-{uuid.uuid4().hex[:8]}"
    write_record(tmp_path / "outbox", JobEvent(event="start", site_id="kr-daejeon", job_id=job, account="kr-llm",
                                               time_ns=1_795_000_000 * 10**9))
    settings = tmp_path / "jobs.yaml"
    settings.write_text(f"site: kr-daejeon\noutbox: {tmp_path / 'outbox'}\nkafka:\n  bootstrap: {secure.bootstrap}\n"
                        f"  username: jobs-kr-daejeon\n  password_file: {pw}\n  ca_file: {secure.ca}\n")
    res = subprocess.run([sys.executable, "-m", "bridgeledger.cli", "jobs", "deliver", "--settings", str(settings),
                          "--gpu-map", "/dev/null"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "1 job event(s) delivered" in res.stdout, res.stdout + res.stderr
    consumer = KafkaConsumer(JOBS_TOPIC, bootstrap_servers=secure.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=15_000, group_id=None, **secure.client_options("stream"))
    found = [decode_job_event(m.value) for m in consumer if m.key == f"kr-daejeon/{job}".encode()]
    consumer.close()
    assert [(e.job_id, e.account) for e in found] == [(job, "kr-llm")]
