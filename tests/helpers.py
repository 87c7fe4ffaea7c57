"""Small helpers shared by tests."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate: Any, timeout_s: float = 90.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def book_messages(messages: list[tuple[str, bytes, bytes]], processor: Any, sink: Any | None = None,
                  batch: int = 7) -> tuple[list[Any], list[Any]]:
    """What the stream worker does with published messages, offline: the job
    events first (the scheduler's word on who pays), then the windows,
    attributed with them and written through ``sink`` in batches of ``batch``.
    Returns (accepted windows, ledger entries)."""
    from schemas.jobs import decode_job_event
    from schemas.ledger import row_from_entry
    from schemas.topics import JOBS_TOPIC, WINDOWS_TOPIC
    from streams.attribution import book_jobs
    from streams.core import entry_rows

    events = [decode_job_event(v) for t, _, v in messages if t == JOBS_TOPIC]
    jobs = book_jobs(events)
    if sink is not None:
        sink.write_jobs(events)
    raws = [v for t, _, v in messages if t == WINDOWS_TOPIC]
    windows, entries = [], []
    for i in range(0, len(raws), batch):
        outs = [(processor.process(r, jobs), r) for r in raws[i:i + batch]]
        assert all(o.rejection is None for o, _ in outs), [o.rejection for o, _ in outs if o.rejection]
        if sink is not None:
            rows = entry_rows(row_from_entry(e) for o, _ in outs for e in o.entries)
            sink.write([(o.window, r) for o, r in outs], rows)
        windows += [o.window for o, _ in outs]
        entries += [e for o, _ in outs for e in o.entries]
    return windows, entries


def go_tool(name: str) -> Path:
    """tools/NAME (a Go program checking a file with an ecosystem's own code) built once
    into the user's cache, again when its sources change; skips without Go."""
    import os
    import shutil
    import subprocess

    import pytest

    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        pytest.skip(f"Go is not installed here: tools/{name} cannot be built")
    out = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bridgeledger" / name
    src = ROOT / "tools" / name
    newest = max(p.stat().st_mtime for p in src.iterdir())
    if not out.exists() or out.stat().st_mtime < newest:
        out.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([go, "build", "-o", str(out), "."], cwd=src, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
    return out


def qualify(sql: str, db: str) -> str:
    """A dashboard query with its tables in ``db`` (Grafana sends them to the datasource's default one)."""
    names = ("ledger_batches", "ledger_entries", "config_members", "config_sites", "config_pledges", "config_versions",
             "config_grid", "grid_intensity",
             "dlq_records", "audit_runs",
             "corrections", "raw_windows", "windows", "rollup_monthly", "rollup", "ledger_hourly", "ledger")
    for t in names:
        sql = re.sub(rf"\b(FROM|JOIN)\s+{t}\b", rf"\1 {db}.{t}", sql)
    return sql
