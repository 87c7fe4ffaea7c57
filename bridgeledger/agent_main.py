"""Assembling the production agent from its settings (used by ``agent run``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agents.job_resolver import ChainResolver, JobResolver, ProcInfoResolver, ProcResolver, StaticJobAccounts
from agents.metrics import AgentMetrics
from agents.readers.base import GpuReader
from agents.service import AgentService
from agents.settings import AgentSettings, read_key_file
from agents.spool import Spool
from bridgeledger.metrics_http import serve_text

__all__ = ["build_service"]

DAY_NS = 86_400 * 1_000_000_000


def _reader(settings: AgentSettings, metrics: AgentMetrics) -> tuple[GpuReader, JobResolver]:
    accounts = StaticJobAccounts.from_file(settings.static_jobs_file) if settings.static_jobs_file else None
    if settings.reader == "nvml":
        from agents.readers.nvml import NvmlReader

        return NvmlReader(metrics=metrics), ChainResolver(ProcResolver(settings.proc_root), accounts=accounts)
    if settings.reader == "replay":
        from agents.readers.replay import ReplayReader

        assert settings.replay_dir is not None
        return ReplayReader(settings.replay_dir), ChainResolver(
            ProcInfoResolver.from_file(settings.replay_dir / "proc_info.json"), accounts=accounts)
    from agents.readers.simulated import SimulatedReader

    # The simulated node's counter is a function of time from its epoch; a fixed
    # epoch (default: start of the UTC day) keeps it continuous across restarts.
    now = time.time_ns()
    epoch = settings.sim_epoch_ns or now // DAY_NS * DAY_NS
    sim = SimulatedReader(node=settings.node, site_id=settings.site_id,
                          models=[settings.sim_model] * settings.sim_gpus, accounts=settings.sim_accounts,
                          seed=settings.sim_seed, clock_ns=time.time_ns, start_ns=epoch,
                          horizon_ns=now - epoch + 2 * DAY_NS)
    return sim, sim


def build_service(settings: AgentSettings) -> tuple[AgentService, Callable[[], None]]:
    from agents.publisher import KafkaPublisher

    metrics = AgentMetrics()
    reader, resolver = _reader(settings, metrics)
    spool = Spool(settings.spool_path, settings.spool_max_windows, settings.spool_full_policy, exclusive=True)
    key = read_key_file(settings.key_file) if settings.key_file else None
    options: dict[str, Any] = settings.kafka_security.producer_options()
    service = AgentService(
        reader=reader, resolver=resolver, spool=spool,
        publisher_factory=lambda: KafkaPublisher(settings.kafka_bootstrap,
                                                 client_id=f"agent-{settings.agent_id}", **options),
        agent_id=settings.agent_id, site_id=settings.site_id, node=settings.node,
        window_s=settings.window_s, sample_s=settings.sample_s, key_id=settings.key_id, key=key,
        send_batch=settings.send_batch, send_timeout_s=settings.send_timeout_s, metrics=metrics,
        counter_every_sample=settings.counter_every_sample,
    )
    server = (serve_text(metrics.render, settings.metrics_port, settings.metrics_host, health=service.health)
              if settings.metrics_port else None)

    def cleanup() -> None:
        if server is not None:
            server.shutdown()
        reader.close()
        spool.close()

    return service, cleanup
