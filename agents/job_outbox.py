"""The node's job-event outbox: the Slurm prolog/epilog write, a service delivers.

A prolog must return at once whatever the network does (slurmd waits for it
before the job starts, and drains the node when it fails or times out), so
``deploy/slurm/prolog.sh`` only writes a small record into the outbox
directory (write to a temporary name, then rename: a record is whole or
absent) and exits 0. ``bridgeledger jobs deliver`` (the
``bridgeledger-jobs`` service) turns each record into a job event, maps the
job's GPU indices to UUIDs, publishes it to ``jobs.events`` with the site's
Kafka credentials, and removes the record only once the broker acknowledged
it. A broker outage leaves the records where they are; a record that is not
a valid event is moved to ``rejected/`` with the reason, never retried
forever and never blocking the others.

Record format (UTF-8 text, one ``key=value`` per line; the prolog writes it)::

    event=start            start | end
    job_id=4711            SLURM_JOB_ID
    account=kr-llm         SLURM_JOB_ACCOUNT
    node=gpu017            SLURMD_NODENAME (optional)
    gpus=0,1               SLURM_JOB_GPUS: GPU indices on this node (optional)
    time_ns=1795000000000000000

Settings (``/etc/bridgeledger/jobs.yaml``): ``site``, ``outbox`` and the
broker (``kafka.bootstrap``; ``username``, ``password_file``, ``ca_file`` and
``sasl_mechanism`` for SASL_SSL).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents import AgentError
from schemas.jobs import JobEvent
from schemas.telemetry import ID_PATTERN

__all__ = ["JobsSettings", "deliver_outbox", "event_from_record", "load_jobs_settings", "nvml_gpu_uuids",
           "run_delivery", "write_record"]

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 16 * 1024
RECORD_SUFFIX = ".job"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobsKafka(_Strict):
    bootstrap: str = Field(min_length=1)
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    sasl_mechanism: str = Field(default="SCRAM-SHA-512", pattern=r"^(SCRAM-SHA-256|SCRAM-SHA-512|PLAIN)$")

    def options(self) -> dict[str, object]:
        """kafka-python's security options (none: PLAINTEXT)."""
        if not self.username:
            return {}
        from schemas.signing import read_secret_file

        if self.password_file is None:
            raise AgentError("jobs settings: kafka.password_file is needed with kafka.username")
        try:
            password = read_secret_file(self.password_file, "Kafka password").decode()
        except ValueError as exc:
            raise AgentError(f"jobs settings: kafka.password_file: {exc}") from exc
        return {"security_protocol": "SASL_SSL" if self.ca_file else "SASL_PLAINTEXT",
                "sasl_mechanism": self.sasl_mechanism, "sasl_plain_username": self.username,
                "sasl_plain_password": password, "ssl_cafile": str(self.ca_file) if self.ca_file else None}


class JobsSettings(_Strict):
    site: Annotated[str, Field(pattern=ID_PATTERN)]
    outbox: Path = Path("/var/spool/bridgeledger/jobs-outbox")
    kafka: JobsKafka


def load_jobs_settings(path: Path) -> JobsSettings:
    """The settings file, or AgentError naming the file and the field."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise AgentError(f"{path}: cannot read jobs settings: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise AgentError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return JobsSettings.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise AgentError(f"{path}: field {'.'.join(str(p) for p in first['loc']) or '(top level)'}: "
                         f"{first['msg']}") from exc


def event_from_record(data: bytes, site_id: str, gpu_uuids: Mapping[str, str]) -> JobEvent:
    """A job event from an outbox record; ValueError says what is wrong with it."""
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"{len(data)} bytes, more than a record's {MAX_RECORD_BYTES}")
    fields: dict[str, str] = {}
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"line {n}: expected key=value")
        fields[key.strip()] = value.strip()
    indices = [g for g in fields.get("gpus", "").split(",") if g]
    unknown = [g for g in indices if g not in gpu_uuids]
    if unknown:
        log.warning("job %s: GPU index(es) %s not found on this node; the event goes without them",
                    fields.get("job_id"), ",".join(unknown[:8]))
    try:
        return JobEvent(event=fields.get("event"), site_id=site_id, job_id=fields.get("job_id"),  # type: ignore[arg-type]
                        account=fields.get("account"), node=fields.get("node") or None,  # type: ignore[arg-type]
                        gpus=[gpu_uuids[g] for g in indices if g in gpu_uuids],
                        exclusive=bool(indices), time_ns=_int(fields.get("time_ns")))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc


def _int(text: str | None) -> int:
    if not text or not text.isdigit() or len(text) > 20:
        raise ValueError(f"time_ns: expected nanoseconds since 1970, found {text!r}")
    return int(text)


def deliver_outbox(outbox: Path, site_id: str, publish: Callable[[JobEvent], None],
                   gpu_uuids: Mapping[str, str]) -> tuple[int, int]:
    """Publish every whole record in ``outbox``, oldest name first; remove each
    once ``publish`` returned (acknowledged). A publish failure stops the run
    (the records stay for the next); a bad record goes to ``rejected/``.
    Returns (delivered, rejected)."""
    delivered = rejected = 0
    for path in sorted(outbox.glob("*" + RECORD_SUFFIX)):
        try:
            data = path.read_bytes()
            event = event_from_record(data, site_id, gpu_uuids)
        except FileNotFoundError:
            continue  # delivered by another run meanwhile
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            _reject(outbox, path, str(exc))
            rejected += 1
            continue
        publish(event)
        path.unlink(missing_ok=True)
        delivered += 1
    return delivered, rejected


def run_delivery(settings: JobsSettings, gpu_uuids: Mapping[str, str], follow: bool, poll_s: float,
                 say: Callable[[str], None], warn: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """``bridgeledger jobs deliver``: the outbox to ``jobs.events`` with the site's credentials,
    once, or (``follow``) for ever, backing off to a minute while the broker is away.
    Without ``follow`` an unreachable broker is an AgentError naming what waits."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from schemas.topics import JOBS_TOPIC

    settings.outbox.mkdir(parents=True, exist_ok=True)
    producer: Any = None
    delay = poll_s
    while True:
        try:
            if producer is None:
                producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all",
                                         client_id="bridgeledger-jobs", max_block_ms=10_000,
                                         request_timeout_ms=10_000, **settings.kafka.options())

            def publish(e: JobEvent, producer: Any = producer) -> None:
                producer.send(JOBS_TOPIC, key=f"{e.site_id}/{e.job_id}".encode(),
                              value=e.to_json_bytes()).get(timeout=15)

            sent, rejected = deliver_outbox(settings.outbox, settings.site, publish, gpu_uuids)
            if sent or rejected or not follow:
                say(f"{sent} job event(s) delivered, {rejected} rejected record(s) (in {settings.outbox / 'rejected'})"
                    if rejected else f"{sent} job event(s) delivered from {settings.outbox}")
            delay = poll_s
        except KafkaError as exc:
            waiting = len(list(settings.outbox.glob("*" + RECORD_SUFFIX)))
            if not follow:
                raise AgentError(f"Kafka at {settings.kafka.bootstrap} not reachable ({exc}); "
                                 f"{waiting} event(s) wait in {settings.outbox}") from exc
            warn(f"Kafka at {settings.kafka.bootstrap} not reachable ({type(exc).__name__}); {waiting} "
                 f"event(s) wait in the outbox; retrying in {delay:.0f} s")
            if producer is not None:
                producer.close(timeout=1)
                producer = None
            delay = min(delay * 2, 60.0)
        if not follow:
            break
        sleep(delay)
    if producer is not None:
        producer.close(timeout=5)


def write_record(outbox: Path, event: JobEvent) -> Path:
    """An event as an outbox record, whole or not at all (what the sacct poller
    writes; the prolog writes the same format from sh)."""
    outbox.mkdir(parents=True, exist_ok=True)
    name = f"{event.time_ns}-{event.job_id}-{event.event}"
    tmp = outbox / f".{name}.tmp"
    tmp.write_text(f"event={event.event}\njob_id={event.job_id}\naccount={event.account}\n"
                   f"node={event.node or ''}\ngpus=\ntime_ns={event.time_ns}\n")
    os.replace(tmp, outbox / (name + RECORD_SUFFIX))
    return outbox / (name + RECORD_SUFFIX)


def _reject(outbox: Path, path: Path, why: str) -> None:
    target = outbox / "rejected"
    target.mkdir(exist_ok=True)
    os.replace(path, target / path.name)
    (target / (path.name + ".reason")).write_text(why[:500] + "\n")
    log.error("job record %s is not a valid job event (%s); moved to %s", path.name, why[:200], target)


def nvml_gpu_uuids() -> dict[str, str]:
    """GPU index (the minor number of /dev/nvidiaN, which Slurm's gres.conf
    names) -> UUID on this node; empty where NVML is not available."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no driver, no library: events go without GPUs
        log.warning("NVML not available (%s); job events carry no GPU UUIDs", exc)
        return {}
    try:
        out = {}
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            out[str(pynvml.nvmlDeviceGetMinorNumber(handle))] = uuid.decode() if isinstance(uuid, bytes) else uuid
        return out
    finally:
        pynvml.nvmlShutdown()
