"""Every query of the auditor cookbook, run as the read-only auditor on the
pipeline's output in Debian's ClickHouse 18.16 (after test_pipeline.py)."""

from __future__ import annotations

import uuid

import pytest

from agents.publisher import KafkaPublisher
from streams.clickhouse import ClickHouseSettings, connect
from tests.cookbook import cookbook_queries
from tests.stack_helpers import Recorder, replay, wait_for_windows

pytestmark = pytest.mark.integration
EXPECT_EMPTY = ("HAVING copies > 1", "prev_hash != expected_prev", "stored != entry_count",
                "energy_mj != b_mj", "HAVING missing > 0")


@pytest.fixture(scope="module")
def auditor(stack, worker, ch, trace_dir):
    """The real H100 trace through Kafka and the worker first, so there is output to audit."""
    pub = Recorder(KafkaPublisher(stack.kafka_bootstrap))
    replay(trace_dir, pub, f"cookbook-{uuid.uuid4().hex[:8]}")
    wait_for_windows(ch, pub.windows())
    return connect(ClickHouseSettings(port=stack.ports.clickhouse_tcp, user="auditor",
                                      password_file=stack.password_file("auditor")))


@pytest.mark.parametrize("sql", cookbook_queries(), ids=lambda q: q.split("\n")[0][:40])
def test_cookbook_query_runs_as_auditor(auditor, sql: str) -> None:
    rows = auditor.execute(sql)
    if any(marker in sql for marker in EXPECT_EMPTY):
        assert rows == [], rows[:5]
    elif "residual_mj" in sql:
        (windows, measured, booked, residual_mj, residual_ms) = rows[0]
        assert windows > 0 and measured == booked and residual_mj == 0 and residual_ms == 0
    elif "entries_without" in sql:
        assert rows == [(0,)]
    elif "corrects != ''" in sql or "FROM dlq_records" in sql:
        pass  # may be empty or not, depending on what the tests sent
    else:
        assert rows, "expected rows from the pipeline's output"


@pytest.mark.parametrize("fmt", ["csv", "html", "pdf"])
def test_member_statement_from_pipeline_output(auditor, worker, tmp_path, fmt: str) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / f"kr.{fmt}"
    res = subprocess.run([sys.executable, "-m", "bridgeledger.cli", "ledger", "statement", "--member", "KR",
                          "--month", "2026-11", "--format", fmt, "--out", str(out)],
                         env=worker.env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    (cost,) = auditor.execute("SELECT sum(cost_eur) FROM ledger WHERE member = 'KR' "
                              "AND toYYYYMM(window_start) = 202611")[0]
    if fmt == "pdf":
        from pypdf import PdfReader

        text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(out).pages)
    else:
        text = out.read_text()
    assert "KR" in text and f"{cost:,.2f}" in text


def test_dashboard_panels_run_on_debian_clickhouse(auditor, worker) -> None:
    """Every panel's SQL, macros expanded, as the auditor on 18.16: the columns the panel expects."""
    import subprocess
    import sys
    import time

    from dashboards.build import expand
    from dashboards.specs import DASHBOARDS
    from tests.conftest import ROOT

    subprocess.run([sys.executable, "-m", "bridgeledger.cli", "ledger", "verify", "--record"], env=worker.env(),
                   cwd=ROOT, capture_output=True, timeout=120, check=True)
    now = int(time.time())
    for spec in DASHBOARDS:
        variables = {v.name: [str(r[0]) for r in auditor.execute(v.sql)] for v in spec.variables}
        for p in spec.panels:
            rows, types = auditor.execute(expand(p.sql, now - 90 * 86400, now + 86400, variables),
                                          with_column_types=True)
            assert tuple(t[0] for t in types) == p.columns, (spec.uid, p.title)
            if p.title not in ("Corrections", "Rejected messages by reason"):
                assert rows, (spec.uid, p.title)
