"""A second local broker with SASL/SCRAM over TLS and ACLs, for the trust tests.

Certificates are made here with openssl (a CA and a broker certificate for
127.0.0.1); SCRAM users are written at storage format time; ACLs are set by
the ANONYMOUS super user on a loopback-only plaintext listener that only the
broker itself and this setup use.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bridgeledger.stack import Stack, kafka_cluster_id


@dataclass
class SecureKafka:
    root: Path
    port: int
    internal_port: int
    controller_port: int
    passwords: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    def client_options(self, user: str, password: str | None = None) -> dict[str, object]:
        return {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": user, "sasl_plain_password": password or self.passwords[user],
                "ssl_cafile": str(self.ca)}


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=bridgeledger-test-ca", cwd=d)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "broker.key", cwd=d)
    _openssl("req", "-new", "-key", "broker.key", "-out", "broker.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    (d / "broker.pem").write_text((d / "broker.key").read_text() + (d / "broker.crt").read_text()
                                  + (d / "ca.pem").read_text())


def start_secure_kafka(stack: Stack, root: Path, base_port: int, users: list[str]) -> SecureKafka:
    root.mkdir(parents=True, exist_ok=True)
    make_certs(root)
    sk = SecureKafka(root, base_port, base_port + 1, base_port + 2,
                     {u: secrets.token_urlsafe(16) for u in users})
    props = f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{sk.controller_port}
listeners=SASL_SSL://127.0.0.1:{sk.port},INTERNAL://127.0.0.1:{sk.internal_port},CONTROLLER://127.0.0.1:{sk.controller_port}
advertised.listeners=SASL_SSL://127.0.0.1:{sk.port},INTERNAL://127.0.0.1:{sk.internal_port}
listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location={root}/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location={root}/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs={root}/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""
    (root / "server.properties").write_text(props)
    (root / "log4j2.properties").write_text(
        (Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "log4j2.properties").read_text()
        .replace("@LOGDIR@", str(root)))
    jvm = ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={root}/log4j2.properties", "-cp",
           f"{stack._ensure_kafka_jars()}/*"]
    cluster = kafka_cluster_id()
    scram = [a for u, p in sk.passwords.items() for a in ("--add-scram", f"SCRAM-SHA-512=[name={u},password={p}]")]
    subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(root / "server.properties"),
                    *scram], check=True, capture_output=True)
    sk.proc = subprocess.Popen([*jvm, "kafka.Kafka", str(root / "server.properties")],
                               stdout=open(root / "kafka.out", "wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log = root / "server.log"
        if log.exists() and b"Kafka Server started" in log.read_bytes():
            with socket.create_connection(("127.0.0.1", sk.port), timeout=1):
                return sk
        if sk.proc.poll() is not None:
            raise RuntimeError(f"secure broker exited: {(root / 'kafka.out').read_text()[-2000:]}")
        time.sleep(0.5)
    raise RuntimeError("secure broker did not start in 120 s")
