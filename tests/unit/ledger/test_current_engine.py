"""The schema, sink inserts and report SQL on a current ClickHouse engine (chdb).
The same run on Debian's 18.16 server is in tests/integration."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agents.publisher import MemoryPublisher
from agents.runner import replay_trace
from ledger.migrate import apply_migrations
from ledger.reports import member_summary
from streams.processing import WindowProcessor
from streams.sink import ClickHouseSink
from tests.chdb_client import ChdbClient
from tests.helpers import book_messages

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def engine(chdb_engine) -> ChdbClient:
    return chdb_engine


def replay_messages(trace: Path) -> list[tuple[str, bytes, bytes]]:
    pub = MemoryPublisher()
    replay_trace(trace, pub, site_id="kr-daejeon", node="r1",
                 accounts=ROOT / "deploy" / "replay-accounts.example.yaml")
    return pub.messages


def test_migrations_run_twice_on_current_engine(engine: ChdbClient) -> None:
    first = apply_migrations(engine, "bridgeledger")
    assert first == ["0001_ledger", "0002_corrections", "0003_dashboards", "0004_rollups", "0005_chain_leases",
                     "0006_account_source", "0007_witnessed_chain", "0008_config_sites",
                     "0009_grid_intensity", "0010_hourly_rollup", "0011_window_seq_ranges"]
    assert apply_migrations(engine, "bridgeledger") == []
    tables = {r[0] for r in engine.execute("SHOW TABLES FROM bridgeledger")}
    assert {"raw_windows", "ledger_entries", "ledger_batches", "ledger", "windows", "job_events",
            "config_versions", "dlq_records", "ledger_checkpoints", "ledger_hourly", "rollup",
            "window_seq_ranges"} <= tables


def test_sink_and_member_report_on_current_engine(engine, trace_dir, config_and_hash) -> None:
    apply_migrations(engine, "bridgeledger")
    proc = WindowProcessor(*config_and_hash)
    sink = ClickHouseSink(engine, "bridgeledger")
    messages = replay_messages(trace_dir)
    windows, entries = book_messages(messages, proc, sink, batch=10**6)
    book_messages(messages, proc, sink, batch=10**6)  # a replayed batch: its windows are committed already
    total = engine.execute("SELECT sum(energy_mj), count() FROM bridgeledger.ledger")[0]
    assert int(total[0]) == sum(e.energy_mj for e in entries)
    assert int(total[1]) == len(entries)
    rows = {r.member: r for r in member_summary(engine, "bridgeledger")}
    assert set(rows) == {"KR", "FR", "DE", "(idle)"}
    assert sum(r.share for r in rows.values()) == pytest.approx(1.0)
    # a 50/50 joint project: equal but for the odd millisecond the remainder rule gives FR
    assert abs(rows["FR"].gpu_hours - rows["DE"].gpu_hours) * 3.6e6 <= len(windows)
    assert rows["FR"].gpu_hours >= rows["DE"].gpu_hours
    assert rows["KR"].cost_eur > Decimal(0)
