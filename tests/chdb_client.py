"""A current ClickHouse engine in-process (chdb) behind the small part of
clickhouse-driver's ``Client.execute`` that our code uses, so the same
migrations, sink inserts and report queries run on it unchanged."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, Decimal)):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, datetime):
        return f"'{v:%Y-%m-%d %H:%M:%S}'"
    if isinstance(v, bytes):  # a String column holds any bytes
        return "'" + "".join(chr(b) if 32 <= b < 127 and b not in (39, 92) else f"\\x{b:02x}" for b in v) + "'"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(literal(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner})"
    s = str(v).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{s}'"


class ChdbClient:
    def __init__(self, path: str) -> None:
        from chdb import session

        self.session = session.Session(path)

    def query_with_names(self, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        res = self.session.query(query, "JSONCompact")
        doc = json.loads(res.bytes().decode(), parse_float=Decimal)
        types = [m["type"] for m in doc["meta"]]
        rows = [tuple(_typed(v, t) for v, t in zip(r, types, strict=True)) for r in doc["data"]]
        return [m["name"] for m in doc["meta"]], rows

    def execute(self, query: str, params: Any = None, columnar: bool = False,
                external_tables: list[dict[str, Any]] | None = None) -> list[tuple[Any, ...]]:
        for table in external_tables or ():  # one-column tables, used as `x IN name`: inlined as a tuple
            (column, _), = table["structure"]
            values = literal(tuple(row[column] for row in table["data"]))
            query = re.sub(rf"\bIN {table['name']}\b", f"IN {values}", query)
        if isinstance(params, list) and columnar:
            params = [tuple(r) for r in zip(*params, strict=True)]
        if isinstance(params, list):  # INSERT ... VALUES with rows
            values = ", ".join("(" + ", ".join(literal(x) for x in row) + ")" for row in params)
            self.session.query(f"{query} {values}")
            return []
        if isinstance(params, dict):
            query = re.sub(r"%\((\w+)\)s", lambda m: literal(params[m.group(1)]), query)
        if query.lstrip().upper().startswith("ALTER") and "SETTINGS" not in query.upper():
            query += " SETTINGS mutations_sync = 2"  # make mutations visible at once in tests
        res = self.session.query(query, "JSONCompact")
        text = res.bytes().decode() if hasattr(res, "bytes") else str(res)
        if not text.strip():
            return []
        doc = json.loads(text, parse_float=Decimal)
        types = [m["type"] for m in doc["meta"]]
        return [tuple(_typed(v, t) for v, t in zip(r, types, strict=True)) for r in doc["data"]]


    def insert_native(self, query: str, encode: Callable[[list[tuple[str, str]], int], bytes]) -> None:
        """streams.clickhouse.insert_native: the block as a Native file (protocol revision 0)
        that the engine reads into the insert's columns, so a current engine checks the
        core's bytes too."""
        m = re.match(r"\s*INSERT INTO (\S+) \(([^)]*)\) VALUES\s*$", query)
        assert m, query
        table, names = m.group(1), [c.strip() for c in m.group(2).split(",")]
        _, described = self.query_with_names(f"DESCRIBE TABLE {table}")
        types = {r[0]: r[1] for r in described}
        block = encode([(n, types[n]) for n in names], 0)
        with tempfile.NamedTemporaryFile(suffix=".native") as f:
            f.write(block)
            f.flush()
            structure = ", ".join(f"{n} {types[n]}" for n in names)
            self.session.query(f"INSERT INTO {table} ({', '.join(names)}) "
                               f"SELECT * FROM file('{f.name}', 'Native', '{structure}')")


def _typed(v: Any, t: str) -> Any:
    """Values as clickhouse-driver returns them (JSON quotes 64-bit ints, dates are text)."""
    if v is None:
        return None
    if t.startswith("DateTime"):
        return datetime.strptime(v[:19], "%Y-%m-%d %H:%M:%S")
    if t == "Date":
        return date.fromisoformat(v)
    if re.match(r"U?Int\d+$", t):
        return int(v)
    if t.startswith("Decimal"):
        return Decimal(str(v))
    return v
