"""The stream worker assembled: settings and config in, a Faust app that writes the ledger out.

:func:`prepare_stream` does everything that must hold before the first
message is read: the config recorded under its hash, the chain's lease
taken, interrupted writes counted, the job events the ledger holds loaded,
the chain checked against its last signed checkpoint (or registered), and
the worker and its app built. ClickHouse or Kafka still starting is waited
for (with a line per try); another live worker on the chain, a database that
lost checkpointed batches, or a checkpoint the ledger keys did not sign stop
it. ``bridgeledger stream run`` calls it, then :func:`run_stream`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas.checkpoint import CheckpointError
from schemas.consortium import ConsortiumConfig
from schemas.signing import demo_key, public_key_hex
from streams.checkpoint_topic import KafkaCheckpointLog
from streams.checkpoints import ChainMismatch, Checkpointer, ledger_signer, ledger_verifiers
from streams.clickhouse import ClickHouseSettings, connect
from streams.lease import ChainLease, LeaseError
from streams.processing import WindowProcessor
from streams.settings import StreamSettings
from streams.sink import ClickHouseSink
from streams.verifier import default_threads, verifier_for
from streams.worker import LedgerWorker

__all__ = ["StreamService", "prepare_stream", "run_stream", "start_warnings"]


@dataclass
class StreamService:
    settings: StreamSettings
    worker: LedgerWorker
    checkpoints: Checkpointer
    interrupted: int
    warnings: list[str] = field(default_factory=list)


def start_warnings(cfg: ConsortiumConfig, demo_ledger_key: bool) -> list[str]:
    """What the worker says at start about trust the config gives away."""
    out = []
    for site in cfg.sites:
        if site.allow_unsigned:
            out.append(f"site {site.id} may send UNSIGNED windows (allow_unsigned in config {cfg.version}); its "
                       f"statements say so")
        demo = public_key_hex(demo_key(site.id)[1])
        if any(k.ed25519 == demo for k in site.keys):
            out.append(f"site {site.id} lists the PUBLIC DEMO KEY: anyone can sign its windows; fine for the demo "
                       f"and the tests, never for a real consortium")
    if demo_ledger_key:
        out.append("the ledger signs its checkpoints with the PUBLIC DEMO LEDGER KEY (no "
                   "BRIDGELEDGER_LEDGER_KEY_FILE): anyone can forge them; fine for the demo and the tests only")
    return out


def prepare_stream(settings: StreamSettings, cfg: ConsortiumConfig, digest: str, content: bytes,
                   ch: ClickHouseSettings, say: Callable[[str], None]) -> StreamService:
    client = connect(ch)
    lease = ChainLease(client, ch.database, settings.chain_id, ttl_s=settings.lease_ttl_s)
    # a second connection for the raw windows' insert, beside the entries' (streams/chain_writer.py)
    sink = ClickHouseSink(client, ch.database, chain_id=settings.chain_id, lease=lease, windows_client=connect(ch))
    key_id, ledger_key, demo_ledger_key = ledger_signer(cfg, settings.ledger_key_file)
    checkpoints = Checkpointer(settings.chain_id, key_id, ledger_key, ledger_verifiers(cfg),
                               KafkaCheckpointLog(settings.kafka_bootstrap, settings.kafka_python_options()),
                               settings.checkpoint_interval_s, store=sink.record_checkpoint)
    delay = 1.0
    while True:  # the ledger database or the broker may still be starting: wait, loudly
        try:
            sink.record_config(digest, cfg.version, content,
                               [(m.code, m.name, m.contribution_share) for m in cfg.members], cfg.grid_series())
            lease.acquire()  # one live writer per chain
            interrupted = sink.recover()
            jobs_known = sink.load_jobs()
            # the database against the chain's last checkpoint; a registration if it has none
            checkpoints.start(sink.totals(), sink.batch_hash_at)
            break
        except (LeaseError, ChainMismatch, CheckpointError):
            raise
        except Exception as exc:  # clickhouse-driver's and the broker's network and server errors
            say(f"ClickHouse at {ch.host}:{ch.port} or Kafka at {settings.kafka_bootstrap} not usable "
                f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                f"retrying in {delay:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, settings.retry_max_s)
    sink.on_commit = checkpoints.committed
    threads = default_threads() if settings.verify_threads is None else settings.verify_threads
    processes = settings.verify_processes
    verifier = verifier_for(threads, processes)
    verifier.start()  # the verifying threads or processes before the first batch, not during it
    where = (f"in {processes} verifying process(es)" if processes else
             f"on {threads} thread(s) beside the worker" if threads else "in the worker")
    say(f"window signatures checked {where}")
    say(f"attribution and pricing by the {settings.rules} rules")
    worker = LedgerWorker(WindowProcessor(cfg, digest, max_age_ns=int(settings.max_window_age_s * 1e9),
                                          compiled_rules=settings.rules == "compiled"), sink, verifier=verifier)
    worker.load_jobs(jobs_known)
    return StreamService(settings, worker, checkpoints, interrupted, start_warnings(cfg, demo_ledger_key))


def run_stream(service: StreamService, serve_metrics: Callable[..., Any] | None = None) -> None:
    """Run the Faust worker until it is stopped (blocks)."""
    from faust.worker import Worker

    from streams.app import create_app, tune_gc

    settings, worker = service.settings, service.worker
    app = create_app(settings, worker, service.checkpoints)
    if settings.metrics_port and serve_metrics is not None:
        serve_metrics(worker.stats.render, settings.metrics_port, settings.metrics_host,
                      health=lambda: (True, f"ok: {worker.stats.windows} windows booked"))
    faust_worker = Worker(app, loglevel="info")
    tune_gc()
    try:
        faust_worker.execute_from_commandline()
    finally:
        worker.verifier.close()
