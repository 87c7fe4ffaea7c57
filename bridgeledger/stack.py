"""The local stack: a real Kafka broker (KRaft) and a real ClickHouse server.

No Docker. Kafka's jars come from Maven Central through deploy/kafka/pom.xml
and run with ``java``; ClickHouse is Debian's ``clickhouse-server`` run as a
plain process. Everything lives under one state directory (git-ignored):
configs, data, logs, pid files and generated passwords. ``up`` is idempotent,
``down`` stops only the processes whose pid files this state dir holds and
whose command line names this state dir.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from bridgeledger import StackError

__all__ = ["Stack", "StackPorts", "ServiceStatus", "repo_root"]

KAFKA_HEAP = "-Xmx768m"  # a 2-core, 24 GB laptop runs broker, server and worker together
CLICKHOUSE_BIN = "/usr/sbin/clickhouse-server"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# ClickHouse users of the local stack (deploy/clickhouse/users.xml), each with a generated password.
USERS = ("migrator", "writer", "auditor", "default")


def kafka_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A new KRaft cluster id: a random UUID in URL-safe base64 without padding,
    drawn again while it starts with "-" (as Kafka's own Uuid.randomUuid does),
    which the storage tool's command line would read as an option and refuse
    (one start in 64 failed that way)."""
    while True:
        text = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class StackPorts:
    kafka: int = 19092
    kafka_controller: int = 19093
    clickhouse_tcp: int = 19000
    clickhouse_http: int = 18123

    @classmethod
    def offset(cls, delta: int) -> StackPorts:
        d = cls()
        return cls(d.kafka + delta, d.kafka_controller + delta, d.clickhouse_tcp + delta,
                   d.clickhouse_http + delta)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    port: int
    pid: int | None
    running: bool
    healthy: bool

    def line(self) -> str:
        state = "healthy" if self.healthy else ("running, not answering" if self.running else "stopped")
        return f"{self.name:<11} port {self.port:<6} pid {self.pid or '-':<8} {state}"


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Stack:
    """One local stack, identified by its state directory and ports."""

    def __init__(self, state_dir: Path, ports: StackPorts | None = None) -> None:
        self.state = state_dir.resolve()
        self.ports = ports or StackPorts()
        self.kafka_dir = self.state / "kafka"
        self.ch_dir = self.state / "clickhouse"
        self.secrets_dir = self.state / "secrets"
        self.jars_dir = Path(os.environ.get("BRIDGELEDGER_KAFKA_JARS",
                                            Path.home() / ".cache" / "bridgeledger" / "kafka-jars"))

    # -- addresses and credentials the clients need ---------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    def password_file(self, user: str) -> Path:
        return self.secrets_dir / f"clickhouse-{user}.password"

    def client_env(self, user: str = "writer") -> dict[str, str]:
        """Environment for the processes of the pipeline (agents, worker, ledger CLI);
        ``user="migrator"`` for the migrations (the writer may not run DDL)."""
        return {
            "BRIDGELEDGER_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "BRIDGELEDGER_CH_HOST": "127.0.0.1",
            "BRIDGELEDGER_CH_PORT": str(self.ports.clickhouse_tcp),
            "BRIDGELEDGER_CH_USER": user,
            "BRIDGELEDGER_CH_PASSWORD_FILE": str(self.password_file(user)),
        }

    # -- lifecycle ------------------------------------------------------------------
    def up(self, timeout_s: float = 120.0) -> list[ServiceStatus]:
        self.state.mkdir(parents=True, exist_ok=True)
        self._ensure_secrets()
        if self._owned_pid("clickhouse") is None:
            self._check_free("clickhouse", self.ports.clickhouse_tcp, self.ports.clickhouse_http)
            self._start_clickhouse()
        else:
            self._write_users()  # a running server reloads users.xml by itself (new users after an upgrade)
        if self._owned_pid("kafka") is None:
            self._check_free("kafka", self.ports.kafka, self.ports.kafka_controller)
            self._start_kafka()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            statuses = self.status()
            if all(s.healthy for s in statuses):
                return statuses
            for s in statuses:
                if not s.running and not self._started_alive(s.name):
                    raise StackError(f"{s.name} exited during start; see {self._log_of(s.name)}")
            time.sleep(0.5)
        raise StackError(f"stack not healthy after {timeout_s:.0f} s: "
                         + "; ".join(s.line() for s in self.status()))

    def down(self) -> list[str]:
        return [s for s in (self.stop("kafka"), self.stop("clickhouse")) if s]

    def stop(self, name: str) -> str | None:
        """Stop one service this state dir started; ``up`` starts it again."""
        pid = self._owned_pid(name)
        if pid is None:
            return None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._pid_file(name).unlink(missing_ok=True)
        return f"{name} (pid {pid})"

    def status(self) -> list[ServiceStatus]:
        kpid, cpid = self._owned_pid("kafka"), self._owned_pid("clickhouse")
        return [
            ServiceStatus("kafka", self.ports.kafka, kpid, kpid is not None,
                          kpid is not None and self._healthy_kafka()),
            ServiceStatus("clickhouse", self.ports.clickhouse_tcp, cpid, cpid is not None,
                          cpid is not None and self._healthy_clickhouse()),
        ]

    # -- pids -----------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.state / f"{name}.pid"

    def _owned_pid(self, name: str) -> int | None:
        """The pid in our pid file, if that process is alive and was started for this state dir."""
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if str(self.state) in cmdline else None

    def _check_free(self, name: str, *ports: int) -> None:
        busy = [p for p in ports if _port_open(p)]
        if busy:
            raise StackError(
                f"cannot start {name}: port {busy[0]} is in use by a process this state dir "
                f"({self.state}) did not start; stop it or set BRIDGELEDGER_PORT_OFFSET"
            )

    def _started_alive(self, name: str) -> bool:
        try:
            return _alive(int(self._pid_file(name).read_text().strip()))
        except (OSError, ValueError):
            return False

    def _log_of(self, name: str) -> Path:
        return (self.kafka_dir if name == "kafka" else self.ch_dir) / f"{name}.out"

    def _spawn(self, name: str, argv: list[str], cwd: Path) -> None:
        log = open(self._log_of(name), "ab")
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self._pid_file(name).write_text(str(proc.pid))

    # -- secrets --------------------------------------------------------------------
    def _ensure_secrets(self) -> None:
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.secrets_dir, 0o700)
        for user in USERS:
            f = self.password_file(user)
            if not f.exists():
                fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(24))

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    # -- ClickHouse -----------------------------------------------------------------
    def _healthy_clickhouse(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.ports.clickhouse_http}/ping"
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.read().strip() == b"Ok." and _port_open(self.ports.clickhouse_tcp)
        except OSError:
            return False

    def _ensure_clickhouse_installed(self) -> str:
        if Path(CLICKHOUSE_BIN).exists():
            return CLICKHOUSE_BIN
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise StackError("clickhouse-server is not installed; run: sudo apt-get install clickhouse-server")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for argv in (["apt-get", "install", "-y", "-q", "clickhouse-server"],
                     ["apt-get", "update", "-q"],
                     ["apt-get", "install", "-y", "-q", "clickhouse-server"]):
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if Path(CLICKHOUSE_BIN).exists():
                return CLICKHOUSE_BIN
        raise StackError("apt-get could not install clickhouse-server")

    def _start_clickhouse(self) -> None:
        binary = self._ensure_clickhouse_installed()
        data = self.ch_dir / "data"
        for sub in ("tmp", "user_files", "format_schemas"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        template = (repo_root() / "deploy" / "clickhouse" / "config.xml").read_text()
        (self.ch_dir / "config.xml").write_text(
            template.replace("@STATE@", str(self.ch_dir))
            .replace("@TCP_PORT@", str(self.ports.clickhouse_tcp))
            .replace("@HTTP_PORT@", str(self.ports.clickhouse_http))
        )
        self._write_users()
        self._spawn("clickhouse", [binary, f"--config-file={self.ch_dir / 'config.xml'}"], self.ch_dir)

    def _write_users(self) -> None:
        users = (repo_root() / "deploy" / "clickhouse" / "users.xml").read_text()
        for user in USERS:
            users = users.replace(f"@{user.upper()}_SHA256@", sha256(self.password(user).encode()).hexdigest())
        users_file = self.ch_dir / "users.xml"
        if users_file.exists() and users_file.read_text() == users:
            return
        users_file.write_text(users)
        os.chmod(users_file, 0o600)

    # -- Kafka ----------------------------------------------------------------------
    def _healthy_kafka(self) -> bool:
        if not _port_open(self.ports.kafka):
            return False
        log = self.kafka_dir / "server.log"
        try:
            return b"Kafka Server started" in log.read_bytes()[-200_000:]
        except OSError:
            return False

    def _ensure_kafka_jars(self) -> Path:
        marker = self.jars_dir / ".complete"
        if marker.exists():
            return self.jars_dir
        if shutil.which("mvn") is None:
            if os.geteuid() == 0 and shutil.which("apt-get"):
                subprocess.run(["apt-get", "install", "-y", "-q", "maven"], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if shutil.which("mvn") is None:
                raise StackError("Maven (mvn) is needed to fetch the Kafka broker; install maven")
        self.jars_dir.mkdir(parents=True, exist_ok=True)
        pom = repo_root() / "deploy" / "kafka" / "pom.xml"
        proc = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={self.jars_dir}", "-DincludeScope=runtime"],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"fetching Kafka from Maven Central failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        marker.touch()
        return self.jars_dir

    def _start_kafka(self) -> None:
        jars = self._ensure_kafka_jars()
        java = shutil.which("java")
        if java is None:
            raise StackError("java (17+) is needed to run the Kafka broker")
        data = self.kafka_dir / "data"
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        props = (repo_root() / "deploy" / "kafka" / "server.properties").read_text()
        props = (props.replace("@DATA@", str(data))
                 .replace("@PORT@", str(self.ports.kafka))
                 .replace("@CONTROLLER_PORT@", str(self.ports.kafka_controller)))
        (self.kafka_dir / "server.properties").write_text(props)
        log4j = (repo_root() / "deploy" / "kafka" / "log4j2.properties").read_text()
        (self.kafka_dir / "log4j2.properties").write_text(log4j.replace("@LOGDIR@", str(self.kafka_dir)))
        classpath = f"{jars}/*"
        jvm = [java, KAFKA_HEAP, "-Xms256m", "-XX:+UseG1GC",
               f"-Dlog4j2.configurationFile={self.kafka_dir / 'log4j2.properties'}",
               f"-Dkafka.logs.dir={self.kafka_dir}", "-cp", classpath]
        if not (data / "meta.properties").exists():
            fmt = subprocess.run(
                [*jvm, "kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(),
                 "-c", str(self.kafka_dir / "server.properties")],
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise StackError(f"formatting Kafka storage failed: {fmt.stdout}{fmt.stderr}")
        # health looks for this run's start line in the log
        (self.kafka_dir / "server.log").write_bytes(b"")
        self._spawn("kafka", [*jvm, "kafka.Kafka", str(self.kafka_dir / "server.properties")],
                    self.kafka_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
