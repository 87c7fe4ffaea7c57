from __future__ import annotations

import base64
import json

import pytest

from schemas import JobEvent
from streams import SinkError
from streams.processing import WindowProcessor
from streams.sink import MemorySink
from streams.worker import LedgerWorker, dlq_record
from tests.builders import raw


class FlakySink(MemorySink):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, windows, entries, rejections=()):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("clickhouse down")
        return super().write(windows, entries, rejections)


@pytest.fixture()
def make(config_and_hash):
    def _make(sink):
        return LedgerWorker(WindowProcessor(*config_and_hash), sink, clock_ns=lambda: 10**18 + 60 * 10**9)
    return _make


def test_batch_with_duplicates_and_garbage(make) -> None:
    sink = MemorySink()
    w = make(sink)
    rejections = w.handle_windows([raw(seq=1), raw(seq=1), b"garbage", raw(seq=2)])
    assert [r.reason for r in rejections] == ["malformed_json"]
    assert [x.seq for x, _ in sink.windows] == [1, 2]
    assert sum(e.energy_mj for e in sink.entries) == 2 * 5000
    assert sink.rejections == rejections
    assert w.stats.rejected["malformed_json"] == 1


def test_sink_failure_raises_and_the_batch_can_be_retried(make) -> None:
    sink = FlakySink(failures=1)
    w = make(sink)
    batch = [raw(seq=5)]
    with pytest.raises(SinkError, match="clickhouse down"):
        w.handle_windows(batch)
    assert sink.entries == []
    w.handle_windows(batch)
    assert len(sink.windows) == 1
    assert w.stats.sink_failures == 1


def test_job_events_feed_attribution(make) -> None:
    sink = MemorySink()
    w = make(sink)
    start = JobEvent(event="start", site_id="kr-daejeon", job_id="7", account="gb-protein", time_ns=1)
    assert w.handle_jobs([start.to_json_bytes(), b"{}"])[0].reason == "schema_invalid"
    w.handle_windows([raw()])
    assert {e.project for e in sink.entries} == {"gb-protein"}
    end = start.model_copy(update={"event": "end", "time_ns": 50})
    w.handle_jobs([end.to_json_bytes()])
    assert w.jobs[("kr-daejeon", "7")].end_ns == 50
    assert w.prune_jobs(before_ns=100) == 1 and w.jobs == {}


def test_dlq_record_carries_reason_and_original_bytes(make) -> None:
    w = make(MemorySink())
    (r,) = w.handle_windows([b"\x00\x01 not json"])
    doc = json.loads(dlq_record(r, "telemetry.gpu.windows", 5))
    assert doc["reason"] == "malformed_json"
    assert base64.b64decode(doc["raw_b64"]) == b"\x00\x01 not json"
    assert doc["source_topic"] == "telemetry.gpu.windows"


def test_metrics_text_counts_rejections_by_reason(make) -> None:
    w = make(MemorySink())
    w.handle_windows([raw(seq=1), b"garbage", b"{}"])
    text = w.stats.render()
    assert "bridgeledger_stream_windows_total 1" in text
    assert 'bridgeledger_stream_rejected_total{reason="malformed_json"} 1' in text
    assert 'bridgeledger_stream_rejected_total{reason="unsupported_version"} 1' in text


def test_metrics_endpoint_serves_prometheus_text() -> None:
    import urllib.request

    from agents.metrics import AgentMetrics
    from bridgeledger.metrics_http import serve_text

    m = AgentMetrics(samples=3)
    m.nvml_errors["total_energy"] += 2
    server = serve_text(m.render, 0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics").read().decode()
    finally:
        server.shutdown()
    assert "bridgeledger_agent_samples_total 3" in body
    assert 'bridgeledger_agent_nvml_errors_total{call="total_energy"} 2' in body
