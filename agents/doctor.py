"""``bridgeledger agent doctor``: one line per check, so an operator sees at a
glance whether this node will account correctly."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agents import AgentError
from agents.settings import AgentSettings, read_key_file
from agents.spool import Spool

__all__ = ["Check", "run_checks"]

Status = Literal["ok", "warn", "fail"]
MIN_FREE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status.upper():<5} {self.name:<22} {self.detail}"


def check_nvml() -> list[Check]:
    from agents.readers.nvml import probe_nvml

    try:
        results = probe_nvml()
    except AgentError as exc:
        return [Check("nvml", "fail", str(exc))]
    out = []
    for name, ok, detail in results:
        if ok:
            out.append(Check(f"nvml {name}", "ok", detail))
        elif name == "total_energy":
            out.append(Check(f"nvml {name}", "warn", f"{detail}: energy will be estimated from power"))
        elif name == "mig_processes":  # jobs on the instances would be booked as idle
            out.append(Check(f"nvml {name}", "fail", detail))
        else:
            out.append(Check(f"nvml {name}", "warn", detail))
    return out


def check_kafka(settings: AgentSettings) -> Check:
    try:
        from kafka.admin import KafkaAdminClient
    except ImportError:
        return Check("kafka", "fail", "kafka-python is not installed: pip install 'bridgeledger[agent]'")
    from schemas.topics import WINDOWS_TOPIC

    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000,
                                 client_id=f"doctor-{settings.agent_id}",
                                 **settings.kafka_security.producer_options())
        topics = admin.list_topics()
        admin.close()
    except Exception as exc:  # kafka-python's errors, TLS and SASL failures alike
        return Check("kafka", "fail", f"{settings.kafka_bootstrap}: {exc}")
    if WINDOWS_TOPIC not in topics:
        return Check("kafka", "warn", f"{settings.kafka_bootstrap} reachable, topic {WINDOWS_TOPIC} not created yet")
    return Check("kafka", "ok", f"{settings.kafka_bootstrap} reachable, {WINDOWS_TOPIC} present")


def check_clock(now_s: Callable[[], float] = time.time) -> Check:
    if now_s() < 1_704_067_200:  # 2024-01-01: a clock before this is certainly wrong
        return Check("clock", "fail", "system clock is before 2024: windows would carry wrong times")
    if shutil.which("timedatectl"):
        res = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, check=False)
        if res.stdout.strip() == "yes":
            return Check("clock", "ok", "NTP synchronised")
        if res.returncode == 0:
            return Check("clock", "warn", "NTP not synchronised: window times may drift")
    return Check("clock", "warn", "cannot tell whether the clock is synchronised (no timedatectl)")


def check_spool(settings: AgentSettings) -> Check:
    try:
        spool = Spool(settings.spool_path, settings.spool_max_windows, settings.spool_full_policy)
        integrity, pending, dropped = spool.integrity(), spool.count(), spool.dropped
        spool.close()
    except AgentError as exc:
        return Check("spool", "fail", str(exc))
    free = shutil.disk_usage(settings.spool_path.parent).free
    detail = f"{settings.spool_path}: {pending} pending, {dropped} dropped, {free // 2**20} MiB free"
    if integrity != "ok":
        return Check("spool", "fail", f"{detail}; integrity check: {integrity}")
    if free < MIN_FREE_BYTES:
        return Check("spool", "fail", f"{detail}; less than {MIN_FREE_BYTES // 2**20} MiB free")
    if dropped:
        return Check("spool", "warn", detail)
    return Check("spool", "ok", detail)


def check_key(settings: AgentSettings) -> Check:
    if settings.key_file is None:
        return Check("signing key", "warn", "windows are not signed (set key_id and key_file)")
    try:
        read_key_file(settings.key_file)
    except AgentError as exc:
        return Check("signing key", "fail", str(exc))
    return Check("signing key", "ok", f"{settings.key_id} from {settings.key_file}")


def run_checks(settings: AgentSettings) -> list[Check]:
    checks = check_nvml() if settings.reader == "nvml" else [
        Check("gpu reader", "ok", f"{settings.reader} (no NVML needed)")]
    return [*checks, check_kafka(settings), check_clock(), check_spool(settings), check_key(settings)]
