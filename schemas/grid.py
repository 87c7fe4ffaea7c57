"""Hourly grid carbon intensity per site: a CSV the consortium takes from its
grid operators (or a service such as Electricity Maps) and names in its config.

The file::

    site_id,hour_utc,gco2_per_kwh
    kr-daejeon,2026-11-01T00:00Z,452.1
    kr-daejeon,2026-11-01T01:00Z,447.9

one row per site and UTC hour (``YYYY-MM-DDTHH:00Z``, or with ``:00:00`` /
``+00:00``), the hour's average intensity in gCO2e/kWh. The config names the
file and its SHA-256 (``grid_intensity: {file, sha256}``), so the config hash
every entry carries pins the series too; the ledger stores the file under its
hash beside the config (``grid_series_files``), and audits price again from it.

A window is priced with the value of the UTC hour its start falls in (agents
cut windows on the wall clock, so a window of a divisor of an hour never spans
two); an hour the series lacks for the site falls back to the site's static
``grid_gco2_per_kwh``, and statements and the Finance dashboard say which
figure came from which (docs/attribution.md, "Carbon").
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from schemas.errors import ConfigError

__all__ = ["HEADER", "HOUR_NS", "MAX_GCO2_PER_KWH", "GridSeries", "parse_grid_series"]

HOUR_NS = 3600 * 10**9
HEADER = "site_id,hour_utc,gco2_per_kwh"
# No grid emits more than this (coal is about 1,000 g/kWh): a larger figure is a unit mistake.
MAX_GCO2_PER_KWH = Decimal(5000)
# Six decimals: what the ledger's grid_intensity table keeps.
_PLACES = 6


@dataclass(frozen=True)
class GridSeries:
    """A parsed series: ``values[(site_id, hour)]``, hour = UTC hour start in ns // HOUR_NS."""

    name: str
    sha256: str
    content: bytes  # the very bytes hashed, stored in the ledger under ``sha256``
    values: dict[tuple[str, int], Decimal] = field(repr=False)

    def at(self, site_id: str, t_ns: int) -> Decimal | None:
        """The intensity of the hour ``t_ns`` falls in at ``site_id``; None where the series has a gap."""
        return self.values.get((site_id, t_ns // HOUR_NS))


def _hour(text: str) -> int:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"hour_utc {text!r} is not an ISO 8601 time (YYYY-MM-DDTHH:00Z)") from exc
    if t.tzinfo is None or t.utcoffset() != timedelta(0):
        raise ValueError(f"hour_utc {text!r} must be in UTC (end it with Z)")
    if (t.minute, t.second, t.microsecond) != (0, 0, 0):
        raise ValueError(f"hour_utc {text!r} is not on the hour")
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) // 3600


def _value(text: str) -> Decimal:
    try:
        v = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"gco2_per_kwh {text!r} is not a number") from exc
    if not v.is_finite() or v < 0 or v > MAX_GCO2_PER_KWH:
        raise ValueError(f"gco2_per_kwh {text!r} is outside 0..{MAX_GCO2_PER_KWH}")
    if v != v.quantize(Decimal(1).scaleb(-_PLACES)):
        raise ValueError(f"gco2_per_kwh {text!r} has more than {_PLACES} decimals")
    return v


def parse_grid_series(content: bytes, name: str, sites: Collection[str]) -> GridSeries:
    """Check and read a series file; ConfigError naming the file and line otherwise."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text: {exc}") from exc
    lines = text.splitlines()
    if not lines or lines[0].strip().lstrip("\ufeff") != HEADER:
        raise ConfigError(f"{name} line 1: the header must be {HEADER!r}")
    values: dict[tuple[str, int], Decimal] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        try:
            if len(cells) != 3:
                raise ValueError(f"expected 3 fields, found {len(cells)}")
            site, hour_text, value_text = cells
            if site not in sites:
                raise ValueError(f"site {site!r} is not a site of the config")
            key = (site, _hour(hour_text))
            if key in values:
                raise ValueError(f"{site} {hour_text} is given twice")
            values[key] = _value(value_text)
        except ValueError as exc:
            raise ConfigError(f"{name} line {n}: {exc}") from exc
    if not values:
        raise ConfigError(f"{name}: no rows after the header")
    return GridSeries(name, hashlib.sha256(content).hexdigest(), content, values)
