"""Dashboards as code: build the Grafana JSON from dashboards/specs.py.

``bridgeledger dashboards build`` writes ``dashboards/json/<Folder>/<uid>.json``
(provisioned by docker-compose); a test checks the committed files equal a
fresh build. :func:`expand` turns a panel's SQL into what Grafana would send
for a fixed range and variable values, for tests and previews.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import barchart, dashboard, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import GridPos, VariableRefresh

from dashboards.clickhouse_query import ClickHouseQueryBuilder, datasource_ref, register
from dashboards.specs import DASHBOARDS, DashboardSpec, PanelSpec

__all__ = ["JSON_DIR", "build_all", "build_dashboard", "expand", "write_all"]

JSON_DIR = Path(__file__).resolve().parent / "json"
_PANELS: dict[str, Any] = {"stat": stat.Panel, "table": table.Panel, "timeseries": timeseries.Panel,
                           "barchart": barchart.Panel}


def _panel(p: PanelSpec, x: int, y: int) -> Any:
    query = (ClickHouseQueryBuilder().ref_id("A").raw_sql(p.sql)
             .query_type("timeseries" if p.kind == "timeseries" else "table"))
    return (_PANELS[p.kind]().id(p.id).title(p.title).description(p.description).unit(p.unit)
            .datasource(datasource_ref()).with_target(query)
            .grid_pos(GridPos(h=p.height, w=p.width, x=x, y=y)))


def build_dashboard(spec: DashboardSpec) -> dict[str, Any]:
    register()
    b = (dashboard.Dashboard(spec.title).uid(spec.uid).description(spec.description)
         .tags(["bridgeledger", spec.folder.lower()]).time("now-30d", "now").refresh("5m").timezone("utc"))
    for v in spec.variables:
        b = b.with_variable(
            dashboard.QueryVariable(v.name).label(v.label).query(v.sql).datasource(datasource_ref())
            .multi(True).include_all(True).refresh(VariableRefresh.ON_TIME_RANGE_CHANGED))
    x = y = row_h = 0
    for p in spec.panels:
        if x + p.width > 24:
            x, y, row_h = 0, y + row_h, 0
        b = b.with_panel(_panel(p, x, y))
        x, row_h = x + p.width, max(row_h, p.height)
    doc: dict[str, Any] = json.loads(json.dumps(b.build(), cls=JSONEncoder, sort_keys=True))
    return doc


def build_all() -> dict[str, dict[str, Any]]:
    """Relative path under dashboards/json -> dashboard JSON."""
    return {f"{s.folder}/{s.uid}.json": build_dashboard(s) for s in DASHBOARDS}


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    written = []
    for rel, doc in build_all().items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def expand(sql: str, start_s: int, end_s: int, variables: Mapping[str, Sequence[str]]) -> str:
    """Grafana's and the ClickHouse plugin's macros, expanded as they would be sent."""
    out = re.sub(r"\$__timeFilter\((\w+)\)",
                 lambda m: f"{m.group(1)} >= toDateTime({start_s}) AND {m.group(1)} <= toDateTime({end_s})", sql)
    out = out.replace("$__fromTime", f"toDateTime({start_s})").replace("$__toTime", f"toDateTime({end_s})")

    def var(m: re.Match[str]) -> str:
        values = variables.get(m.group(1))
        if values is None:
            raise KeyError(f"no value for dashboard variable {m.group(1)}")
        return ", ".join("'" + v.replace("'", "\\'") + "'" for v in values) or "''"

    return re.sub(r"\$\{(\w+):singlequote\}", var, out)


