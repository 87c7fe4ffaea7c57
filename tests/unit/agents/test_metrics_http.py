"""/metrics and /healthz of the agent and the worker: scrapeable, and a health
check that needs no Kafka round trip."""

from __future__ import annotations

import urllib.error
import urllib.request

from bridgeledger.metrics_http import DEFAULT_HOST, serve_text


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_and_health_are_served_and_unhealthy_is_503() -> None:
    state = {"ok": True}
    server = serve_text(lambda: "bridgeledger_agent_samples_total 3\n", 0, "127.0.0.1",
                        health=lambda: (state["ok"], "ok" if state["ok"] else "last reading 99 s ago"))
    port = server.server_address[1]
    try:
        assert get(port, "/metrics") == (200, "bridgeledger_agent_samples_total 3\n")
        assert get(port, "/healthz") == (200, "ok\n")
        state["ok"] = False
        assert get(port, "/healthz") == (503, "last reading 99 s ago\n")
        assert get(port, "/other")[0] == 404
    finally:
        server.shutdown()


def test_the_default_address_lets_prometheus_scrape_from_outside() -> None:
    assert DEFAULT_HOST == "0.0.0.0"


def test_the_agent_is_healthy_while_it_reads_its_gpus_whatever_kafka_does(tmp_path) -> None:
    from agents.readers.simulated import SimulatedReader
    from agents.service import AgentService
    from agents.spool import Spool

    now = [100.0]

    def broken() -> object:
        raise ConnectionError("broker down")

    reader = SimulatedReader(node="n1", site_id="kr-daejeon", models=["NVIDIA H100 80GB HBM3"], accounts=["kr-llm"],
                             seed=1, clock_ns=lambda: int(now[0] * 1e9), start_ns=0, horizon_ns=10**12)
    svc = AgentService(reader=reader, resolver=reader,
                       spool=Spool(tmp_path / "s.sqlite"), publisher_factory=broken, agent_id="a",
                       site_id="kr-daejeon", node="n1", window_s=10, sample_s=1, monotonic=lambda: now[0])
    assert svc.health() == (False, "no reading yet")
    svc.tick()  # Kafka is down: the window is spooled, the agent is healthy
    assert svc.health()[0] is True
    now[0] += 11
    assert svc.health() == (False, "last reading 11 s ago (limit 10 s)")
