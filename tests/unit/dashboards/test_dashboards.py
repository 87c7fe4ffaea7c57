"""Dashboards as code: stable, described, and every panel's SQL runs on pipeline
output (a current ClickHouse engine here; Debian's 18.16 in tests/integration)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dashboards.build import JSON_DIR, build_all, expand
from dashboards.specs import DASHBOARDS
from ledger.audit import record_run
from tests.builders import ALL
from tests.helpers import qualify

START, END = 1_790_000_000, 1_800_000_000


def test_committed_json_equals_a_fresh_build() -> None:
    for rel, doc in build_all().items():
        committed = JSON_DIR / rel
        assert committed.exists(), f"run `bridgeledger dashboards build`: {rel} missing"
        assert json.loads(committed.read_text()) == doc, f"{rel} differs from a fresh build"


def test_panels_have_stable_ids_titles_units_descriptions() -> None:
    uids = set()
    for spec in DASHBOARDS:
        uids.add(spec.uid)
        doc = build_all()[f"{spec.folder}/{spec.uid}.json"]
        ids = [p["id"] for p in doc["panels"]]
        assert len(set(ids)) == len(ids) == len(spec.panels)
        for p in doc["panels"]:
            assert p["title"] and p["fieldConfig"]["defaults"]["unit"] and len(p["description"]) > 40
            (target,) = p["targets"]
            assert target["datasource"]["type"] == "grafana-clickhouse-datasource"
            assert target["editorType"] == "sql" and target["rawSql"]
    assert len(uids) == 3


def pipeline_extras(engine, db) -> None:
    """What the audit and operations panels need besides windows and entries."""
    from ledger.corrections import move_entry
    from streams.processing import Rejection
    from streams.sink import ClickHouseSink

    eid = engine.execute(f"SELECT entry_id FROM {db}.ledger WHERE account_kind = 'idle' LIMIT 1")[0][0]
    move_entry(engine, db, eid, "gb-protein", "reserved GPU", "test")
    record_run(engine, db, "verify", True, "ok", *ALL)
    ClickHouseSink(engine, db).write([], [], [Rejection("malformed_json", "x", b'{"site_id": "kr-daejeon"')])


def test_every_panel_query_returns_its_columns_on_pipeline_output(ledger_db) -> None:  # noqa: F811
    engine, db = ledger_db
    pipeline_extras(engine, db)
    for spec in DASHBOARDS:
        variables = {v.name: [str(r[0]) for r in engine.query_with_names(qualify(v.sql, db))[1]]
                     for v in spec.variables}
        assert all(variables.values()), variables
        for p in spec.panels:
            names, rows = engine.query_with_names(qualify(expand(p.sql, START, END, variables), db))
            assert tuple(names) == p.columns, (spec.uid, p.title)
            assert rows, (spec.uid, p.title)


def test_preview_renders_a_png_per_dashboard(ledger_db, tmp_path: Path) -> None:  # noqa: F811
    from dashboards.preview import render_all

    engine, db = ledger_db
    pipeline_extras(engine, db)
    paths = render_all(lambda sql: engine.query_with_names(qualify(sql, db)), START, END, tmp_path)
    assert [p.name for p in paths] == ["bl-finance.png", "bl-operations.png", "bl-audit.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000


class FakeGrafana(BaseHTTPRequestHandler):
    """Just the Grafana HTTP API calls publishing makes."""

    folders: dict[str, dict] = {}
    dashboards: dict[str, dict] = {}

    def _reply(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != "Bearer good-token":
            self._reply(401, {"message": "Unauthorized"})
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802
        if self._authorised():
            self._reply(200, list(self.folders.values()))

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/api/folders"):
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
            self._reply(200, self.folders[body["uid"]])
        else:
            self.dashboards[body["dashboard"]["uid"]] = body
            self._reply(200, {"status": "success", "uid": body["dashboard"]["uid"]})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def grafana():
    FakeGrafana.folders, FakeGrafana.dashboards = {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_publish_is_idempotent_with_a_folder_per_audience(grafana) -> None:
    from dashboards.publish import publish

    assert publish(grafana, "good-token") == ["Audit/bl-audit", "Finance/bl-finance", "Operations/bl-operations"]
    publish(grafana, "good-token")  # again: same folders, dashboards overwritten
    assert sorted(FakeGrafana.folders) == ["bridgeledger-audit", "bridgeledger-finance", "bridgeledger-operations"]
    assert FakeGrafana.dashboards["bl-finance"]["folderUid"] == "bridgeledger-finance"
    assert FakeGrafana.dashboards["bl-finance"]["overwrite"] is True


def test_publish_errors_say_what_is_wrong(grafana) -> None:
    from dashboards.publish import PublishError, publish

    with pytest.raises(PublishError, match="refused the token"):
        publish(grafana, "bad-token")
    with pytest.raises(PublishError, match="cannot reach Grafana"):
        publish("http://127.0.0.1:9", "good-token")


def _panel(uid: str, panel_id: int):
    spec = next(s for s in DASHBOARDS if s.uid == uid)
    return next(p for p in spec.panels if p.id == panel_id)


def test_every_member_appears_on_the_finance_table_and_it_honours_the_site(ledger_db) -> None:  # noqa: F811
    engine, db = ledger_db
    members = [r[0] for r in engine.execute(f"SELECT DISTINCT member FROM {db}.config_members ORDER BY member")]
    p = _panel("bl-finance", 1)
    sites = [r[0] for r in engine.execute(f"SELECT DISTINCT site_id FROM {db}.ledger WHERE account_kind = 'job'")]
    _, rows = engine.query_with_names(qualify(expand(p.sql, START, END, {"member": members, "site": sites}), db))
    assert [r[0] for r in rows] == members  # usage or not
    used = dict(engine.execute(f"SELECT member, count() FROM {db}.ledger WHERE account_kind = 'job' GROUP BY member"))
    idle_members = [m for m in members if m not in used]
    assert idle_members, "the fixture has members without usage"
    for member, usage_pct, contribution_pct, _hours, balance in rows:
        if member in idle_members:  # owed its contribution's worth of the range's cost
            assert usage_pct == 0 and balance < 0 and contribution_pct > 0
    assert abs(sum(r[4] for r in rows)) < 1e-6  # balances over all members sum to zero
    # a site with no jobs in the range: nobody used anything there
    _, rows = engine.query_with_names(qualify(expand(p.sql, START, END, {"member": members, "site": ["nowhere"]}),
                                              db))
    assert [r[1] for r in rows] == [0] * len(members)


def test_the_settlement_panel_shows_the_settlement_commands_transfers(ledger_db) -> None:  # noqa: F811
    from ledger.settlement import settle

    engine, db = ledger_db
    p = _panel("bl-finance", 8)
    start, end = 1_793_491_200, 1_796_083_199  # 2026-11-01 .. 2026-11-30 23:59:59 UTC
    _, rows = engine.query_with_names(qualify(expand(p.sql, start, end, {}), db))
    s = settle(engine, db, "2026-11", "2026-11")
    exact = {(a, b): float(v) for a, b, v in s.transfers}
    assert {(a, b) for a, b, _ in rows} == set(exact)
    for payer, payee, amount in rows:
        assert abs(float(amount) - exact[payer, payee]) <= 0.02 * len(s.balances)


def test_previews_label_units_as_people_write_them() -> None:
    from dashboards.preview import UNIT_LABELS, unit_label

    assert [unit_label(u) for u in ("kwatth", "currencyEUR", "masskg", "h", "suffix: mJ", "short")] == [
        "kWh", "EUR", "kg CO₂", "h", "mJ", ""]
    used = {p.unit for spec in DASHBOARDS for p in spec.panels}
    assert all(u in UNIT_LABELS or u.startswith("suffix:") for u in used), used - set(UNIT_LABELS)


# Panel types of Grafana's React core (Grafana 11/12); the Angular ones (graph, singlestat, table-old, ...)
# are gone from current Grafana and must not appear.
_PANEL_TYPES = {"stat", "table", "timeseries", "barchart"}
_ANGULAR = {"graph", "singlestat", "table-old", "grafana-piechart-panel", "grafana-worldmap-panel"}


def test_dashboards_use_only_current_panel_and_plugin_types() -> None:
    for rel, doc in build_all().items():
        for p in doc["panels"]:
            assert p["type"] in _PANEL_TYPES and p["type"] not in _ANGULAR, (rel, p["title"], p["type"])
            assert p["datasource"]["type"] == "grafana-clickhouse-datasource", (rel, p["title"])
            assert all(t["datasource"]["type"] == "grafana-clickhouse-datasource" for t in p["targets"])
        assert "rows" not in doc, rel  # the pre-5.0 row layout
        for v in doc.get("templating", {}).get("list", []):
            assert v["datasource"]["type"] == "grafana-clickhouse-datasource", (rel, v.get("name"))


def test_grafanas_own_dashboard_types_accept_every_dashboard_and_refuse_a_broken_one(tmp_path) -> None:
    """The Grafana Foundation SDK's generated Go types (tools/dashcheck) read each file
    strictly (no field the schema lacks, every type right, the panel plugins' options
    too) and check the schema's constraints."""
    import copy
    import json
    import subprocess

    from tests.helpers import go_tool

    tool = go_tool("dashcheck")
    files = sorted(JSON_DIR.glob("*/*.json"))
    assert len(files) == 3
    r = subprocess.run([str(tool), *map(str, files)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.count("ok ") == 3, r.stdout + r.stderr
    finance = json.loads((JSON_DIR / "Finance" / "bl-finance.json").read_text())
    broken = {"colour": lambda d: d["panels"][0].__setitem__("colour", "red"),
              "gridPos.w": lambda d: d["panels"][0]["gridPos"].__setitem__("w", "wide"),
              "showHeader": lambda d: d["panels"][0].setdefault("options", {}).__setitem__("showHeader", "yes"),
              "discriminator field 'type'": lambda d: d["panels"][0].pop("type")}
    for what, breaks in broken.items():
        doc = copy.deepcopy(finance)
        breaks(doc)
        path = tmp_path / "broken.json"
        path.write_text(json.dumps(doc))
        r = subprocess.run([str(tool), str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and what in r.stdout, (what, r.stdout)
