from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bridgeledger.cli import cli, needs_extra

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "deploy" / "consortium.example.yaml"
ACCOUNTS = ROOT / "deploy" / "replay-accounts.example.yaml"


@pytest.mark.parametrize(("module", "extra"), [("faust", "streams"), ("kafka.admin", "agent"),
                                               ("grafana_client", "dashboards")])
def test_missing_extra_names_the_pip_line(module: str, extra: str) -> None:
    with pytest.raises(click.ClickException) as err, needs_extra("streams"):
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)
    assert f"pip install 'bridgeledger[{extra}]'" in err.value.message


def test_replay_then_attribute_golden(trace_dir: Path, tmp_path: Path) -> None:
    """Recorded H100 trace -> agent windows -> attribution -> ledger entries."""
    runner = CliRunner()
    windows, jobs = tmp_path / "windows.jsonl", tmp_path / "jobs.jsonl"
    r = runner.invoke(cli, ["agent", "replay", str(trace_dir), "--window-s", "10", "--out", str(windows),
                            "--jobs-out", str(jobs), "--site", "kr-daejeon", "--accounts", str(ACCOUNTS)])
    assert r.exit_code == 0, r.output
    # what the prolog/epilog would have sent: jobs 1001 (kr-llm) and 1002 (fr-de-fusion), start and end
    events = [json.loads(x) for x in jobs.read_text().splitlines()]
    assert sorted((e["job_id"], e["event"], e["account"]) for e in events) == [
        ("1001", "end", "kr-llm"), ("1001", "start", "kr-llm"), ("1002", "end", "fr-de-fusion"),
        ("1002", "start", "fr-de-fusion")]
    ledger = tmp_path / "ledger.jsonl"
    r = runner.invoke(cli, ["attribute", "--windows", str(windows), "--jobs", str(jobs), "--config", str(CONFIG),
                            "--out", str(ledger)])
    assert r.exit_code == 0, r.output
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    for key in ("entry_id", "window_start_ns", "window_end_ns", "site_id", "gpu_uuid", "job_id",
                "project", "member", "energy_mj", "gpu_seconds", "normalised_gpu_hours", "cost",
                "carbon_g", "config_hash"):
        assert key in entries[0]
    static = json.loads((trace_dir / "nvml_static.json").read_text())
    samples = [json.loads(x) for x in (trace_dir / "nvml_trace.jsonl").read_text().splitlines()]
    assert sum(e["energy_mj"] for e in entries) == samples[-1]["energy_mj"] - samples[0]["energy_mj"]
    assert static["devices"][0]["uuid"] == entries[0]["gpu_uuid"]
    assert {(e["job_id"], e["project"], e["member"], e["account_source"]) for e in entries if e["job_id"]} == {
        ("1001", "kr-llm", "KR", "job_event"), ("1002", "fr-de-fusion", "FR", "job_event"),
        ("1002", "fr-de-fusion", "DE", "job_event")}

    phases = {p["phase"]: (p["start_ns"], p["end_ns"])
              for p in json.loads((trace_dir / "nvml_phases.json").read_text())}
    a, b = phases["job1001_alone_full"]
    alone = [e for e in entries if e["window_start_ns"] >= a and e["window_end_ns"] <= b]
    assert alone and {e["job_id"] for e in alone} == {"1001"}
    by_window: dict[int, int] = {}
    for e in alone:
        by_window[e["window_start_ns"]] = by_window.get(e["window_start_ns"], 0) + e["energy_mj"]
    windows_doc = [json.loads(x) for x in windows.read_text().splitlines()]
    for w in windows_doc:
        if w["window_start_ns"] in by_window:
            assert by_window[w["window_start_ns"]] == w["gpus"][0]["energy_mj"]

    a, b = phases["job1001_full_plus_job1002_30pct"]
    shared = [w for w in windows_doc if w["window_start_ns"] >= a and w["window_end_ns"] <= b]
    assert shared
    for w in shared:
        shares = {p["job_id"]: p["sm_share"] for p in w["gpus"][0]["processes"]}
        got = {}
        for e in entries:
            if e["window_start_ns"] == w["window_start_ns"]:
                got[e["job_id"]] = got.get(e["job_id"], 0) + e["energy_mj"]
        expected_1001 = w["gpus"][0]["energy_mj"] * shares["1001"] / (shares["1001"] + shares["1002"])
        assert abs(got["1001"] - expected_1001) <= 1
        assert got["1001"] + got["1002"] == w["gpus"][0]["energy_mj"]


def test_attribute_reports_rejections_and_dedups(tmp_path: Path) -> None:
    from tests.builders import window, wire

    lines = [wire(window()), wire(window()), b"{broken", wire(window(seq=4))]
    src = tmp_path / "w.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "l.jsonl"
    r = CliRunner().invoke(cli, ["attribute", "--windows", str(src), "--config", str(CONFIG),
                                 "--out", str(out)])
    assert r.exit_code == 0
    assert "4 windows read, 1 rejected" in r.output
    assert "malformed_json" in r.output
    assert len(out.read_text().splitlines()) == 2


def test_bad_config_stops_with_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(CONFIG.read_text().replace('pue: "1.32"', 'pue: "0.5"'))
    r = CliRunner().invoke(cli, ["attribute", "--windows", str(bad), "--config", str(bad),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert f"{bad}: field sites.0.pue" in r.output


def test_replay_needs_exactly_one_destination(trace_dir: Path) -> None:
    r = CliRunner().invoke(cli, ["agent", "replay", str(trace_dir)])
    assert r.exit_code == 2
    assert "exactly one of --out FILE or --kafka" in r.output


def test_attribute_reports_each_bad_line_and_books_the_rest(tmp_path: Path) -> None:
    """Hostile lines never end the offline tool in a traceback (issue: poison-proof worker)."""
    import json

    from tests.builders import window, wire

    good = [wire(window(seq=i)) for i in range(3)]
    forged = wire({**window(seq=1), "gpus": [{**window()["gpus"][0], "energy_mj": 9}]})
    lines = [good[0], b"\xff\xfe", b"[" * 5000, good[1], b'{"schema_version": true}', forged, good[1], good[2]]
    src = tmp_path / "w.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_bytes(b'{"event":"start"}\n\xff\n')
    r = CliRunner().invoke(cli, ["attribute", "--windows", str(src), "--jobs", str(jobs), "--config", str(CONFIG),
                                 "--out", str(tmp_path / "out.jsonl")])
    assert r.exit_code == 0, r.output
    assert r.exception is None
    for n, reason in ((2, "malformed_json"), (3, "too_deep"), (5, "unsupported_version"),
                      (6, "conflicting_duplicate")):
        assert f"w.jsonl:{n}: rejected: {reason}" in r.output
    assert "jobs.jsonl:1: rejected: schema_invalid" in r.output and "jobs.jsonl:2: rejected: malformed_json" in r.output
    assert "8 windows read, 4 rejected" in r.output and "2 job event line(s) rejected" in r.output
    booked = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sum(e["energy_mj"] for e in booked) == 3 * 5000


def test_a_long_audit_draws_a_bar_with_its_rate_and_time_left_on_a_terminal_only() -> None:
    import io

    from bridgeledger.progress import ProgressBar, terminal_progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    t = iter([100.0, 100.1, 102.0, 104.0, 104.05, 108.0])
    out = Tty()
    bar = ProgressBar("verify", "entries", out, clock=t.__next__)  # starts at t = 100
    bar(0, 1000)  # t = 100.1: nothing done yet, no rate
    bar(400, 1000)  # t = 102: 400 in 2 s = 200/s, 600 left: 3 s
    bar(600, 1000)  # t = 104: 150/s, 400 left: 3 s
    bar(700, 1000)  # t = 104.05: under a quarter second since the last line: not drawn
    bar(1000, 1000)  # t = 108: done, always drawn
    bar.done()
    lines = out.getvalue().split("\r")[1:]
    assert lines[0].startswith("verify [....................]   0.0 %  0/1,000 entries  0/s  …")
    assert lines[1] == "verify [########............]  40.0 %  400/1,000 entries  200/s  3 s left"
    assert lines[2] == "verify [############........]  60.0 %  600/1,000 entries  150/s  3 s left"
    assert lines[3] == "verify [####################] 100.0 %  1,000/1,000 entries  125/s  done\n"
    assert terminal_progress("verify", "entries", io.StringIO()) is None  # redirected: no bar at all
