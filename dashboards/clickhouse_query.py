"""The grafana-clickhouse-datasource query model for grafana-foundation-sdk.

The SDK has no ClickHouse query type: this is one, registered for the
plugin's id, following the plugin's query model (``editorType: "sql"``,
``rawSql``, ``queryType``, ``format``: 0 time series, 1 table).
"""

from __future__ import annotations

from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

__all__ = ["PLUGIN_ID", "ClickHouseQuery", "ClickHouseQueryBuilder", "datasource_ref", "register"]

PLUGIN_ID = "grafana-clickhouse-datasource"
DATASOURCE_UID = "bridgeledger-ch"  # dashboards/provisioning/datasources/clickhouse.yaml


def datasource_ref() -> dashboard.DataSourceRef:
    return dashboard.DataSourceRef(type_val=PLUGIN_ID, uid=DATASOURCE_UID)


class ClickHouseQuery(cogvariants.Dataquery):
    def __init__(self, ref_id: str = "A", raw_sql: str = "", query_type: str = "table") -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.query_type = query_type

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": {"type": PLUGIN_ID, "uid": DATASOURCE_UID},
            "editorType": "sql",
            "rawSql": self.raw_sql,
            "queryType": self.query_type,
            "format": 0 if self.query_type == "timeseries" else 1,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(str(data.get("refId", "A")), str(data.get("rawSql", "")), str(data.get("queryType", "table")))


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self) -> None:
        self._internal = ClickHouseQuery()

    def build(self) -> ClickHouseQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def raw_sql(self, sql: str) -> Self:
        self._internal.raw_sql = sql
        return self

    def query_type(self, query_type: str) -> Self:
        self._internal.query_type = query_type
        return self


def register() -> None:
    cogruntime.Runtime().register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=PLUGIN_ID, from_json_hook=ClickHouseQuery.from_json))
