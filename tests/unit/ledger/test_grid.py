"""Hourly grid carbon (schemas/grid.py): the series file, the hour a window is
priced with, the static fallback for gaps, and the series kept with the config
in the ledger so audits price again from it. Known answers worked by hand."""

from __future__ import annotations

import hashlib
import itertools
import re
from decimal import Decimal
from pathlib import Path

import pytest

from dashboards.build import expand
from dashboards.specs import FINANCE
from ledger import LedgerError
from ledger.audit import recompute
from ledger.configs import config_by_hash
from ledger.migrate import apply_migrations
from ledger.statement import build_statement
from ledger.statement_render import render_csv
from schemas import ConfigError, JobEvent
from schemas.consortium import parse_config, read_config
from schemas.grid import HOUR_NS, parse_grid_series
from streams.attribution import book_jobs
from streams.processing import WindowProcessor
from streams.sink import ClickHouseSink
from tests.builders import ALL, ROOT, window, wire
from tests.helpers import qualify

SITES = {"kr-daejeon", "de-juelich"}
# window()'s default start, 10**18 ns, is 2001-09-09T01:46:40Z: hour 01 of that day.
H01 = 10**18 // HOUR_NS * HOUR_NS
SERIES = (b"site_id,hour_utc,gco2_per_kwh\n"
          b"kr-daejeon,2001-09-09T01:00Z,100\n"
          b"kr-daejeon,2001-09-09T02:00:00+00:00,900.5\n"
          b"de-juelich,2001-09-09T01:00Z,50\n")
_dbs = itertools.count()


def configured(tmp_path: Path, series: bytes = SERIES, sha256: str | None = None) -> Path:
    (tmp_path / "grid.csv").write_bytes(series)
    text = (ROOT / "deploy" / "consortium.example.yaml").read_text()
    text += f"grid_intensity:\n  file: grid.csv\n  sha256: {sha256 or hashlib.sha256(series).hexdigest()}\n"
    (tmp_path / "consortium.yaml").write_text(text)
    return tmp_path / "consortium.yaml"


@pytest.mark.parametrize(("row", "error"), [
    (b"kr-daejeon,2001-09-09T01:30Z,100", "grid.csv line 2: hour_utc '2001-09-09T01:30Z' is not on the hour"),
    (b"kr-daejeon,2001-09-09T01:00,100", "grid.csv line 2: hour_utc '2001-09-09T01:00' must be in UTC"),
    (b"kr-daejeon,2001-09-09T01:00+09:00,100", "must be in UTC"),
    (b"kr-daejeon,yesterday,100", "is not an ISO 8601 time"),
    (b"nowhere,2001-09-09T01:00Z,100", "grid.csv line 2: site 'nowhere' is not a site of the config"),
    (b"kr-daejeon,2001-09-09T01:00Z,-1", "outside 0..5000"),
    (b"kr-daejeon,2001-09-09T01:00Z,436000", "outside 0..5000"),
    (b"kr-daejeon,2001-09-09T01:00Z,NaN", "outside 0..5000"),
    (b"kr-daejeon,2001-09-09T01:00Z,1.0000001", "more than 6 decimals"),
    (b"kr-daejeon,2001-09-09T01:00Z", "grid.csv line 2: expected 3 fields, found 2"),
    (b"kr-daejeon,2001-09-09T01:00Z,1\nkr-daejeon,2001-09-09T01:00:00Z,2",
     "grid.csv line 3: kr-daejeon 2001-09-09T01:00:00Z is given twice"),
])
def test_a_bad_series_row_is_refused_naming_file_and_line(row: bytes, error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        parse_grid_series(b"site_id,hour_utc,gco2_per_kwh\n" + row + b"\n", "grid.csv", SITES)


def test_header_and_empty_series_are_refused() -> None:
    with pytest.raises(ConfigError, match="grid.csv line 1: the header must be"):
        parse_grid_series(b"site,hour,g\nkr-daejeon,2001-09-09T01:00Z,1\n", "grid.csv", SITES)
    with pytest.raises(ConfigError, match="grid.csv: no rows after the header"):
        parse_grid_series(b"site_id,hour_utc,gco2_per_kwh\n", "grid.csv", SITES)


def test_the_config_pins_the_series_by_hash(tmp_path: Path) -> None:
    cfg, digest, text = read_config(configured(tmp_path))
    series = cfg.grid_series()
    assert series is not None and series.sha256 == hashlib.sha256(SERIES).hexdigest()
    assert cfg.grid_gco2_at("kr-daejeon", H01 + 3599 * 10**9) == Decimal(100)
    assert cfg.grid_gco2_at("kr-daejeon", H01 + 3600 * 10**9) == Decimal("900.5")  # the next hour starts
    assert cfg.grid_gco2_at("kr-daejeon", H01 - 1) is None  # a gap: the static figure applies
    assert cfg.grid_gco2_at("ca-montreal", H01) is None
    # the file changed after the config was written: refused, both ways round
    with pytest.raises(ConfigError, match="its sha256 is .* the config .* says"):
        read_config(configured(tmp_path, SERIES + b"de-juelich,2001-09-09T02:00Z,60\n",
                               hashlib.sha256(SERIES).hexdigest()))
    (tmp_path / "consortium.yaml").write_text(text.decode().replace("file: grid.csv", "file: gone.csv"))
    with pytest.raises(ConfigError, match="field grid_intensity.file: cannot read .*gone.csv"):
        read_config(tmp_path / "consortium.yaml")
    # parsed from bytes alone (a stored config), it cannot be used to price until its series is attached
    bare, same = parse_config(text)
    assert same == digest
    with pytest.raises(ConfigError, match="names the grid-intensity series grid.csv .* which was not loaded"):
        WindowProcessor(bare, digest)


def _carbon(processor: WindowProcessor, start_ns: int, energy_mj: int, site: str = "kr-daejeon") -> Decimal:
    doc = window(site_id=site, seq=start_ns // 10**9 % 100_000, window_start_ns=start_ns,
                 window_end_ns=start_ns + 10 * 10**9)
    doc["gpus"][0]["energy_mj"] = energy_mj
    out = processor.process(wire(doc), None, start_ns + 70 * 10**9)
    assert out.rejection is None, out.rejection
    return sum((e.carbon_g for e in out.entries), Decimal(0))


def test_each_window_is_priced_with_the_hour_it_starts_in(tmp_path: Path) -> None:
    cfg, digest = read_config(configured(tmp_path))[:2]
    p = WindowProcessor(cfg, digest)
    # 3,600,000 mJ = 0.001 kWh at the meter; × PUE 1.32 (kr-daejeon) = 0.00132 kWh at the facility
    assert _carbon(p, H01 + 3590 * 10**9, 3_600_000) == Decimal("0.132")  # 01:59:50, hour 01: × 100 g/kWh
    assert _carbon(p, H01 + 3600 * 10**9, 3_600_000) == Decimal("1.189")  # 02:00:00, hour 02: × 900.5 = 1.18866
    assert _carbon(p, H01 - 10 * 10**9, 3_600_000) == Decimal("0.576")  # 00:59:50, a gap: × 436 static = 0.57552
    # de-juelich (PUE 1.21), the same instant, its own hour: 0.00121 kWh × 50 g = 0.0605 g, a tie at the
    # stored 1e-3 g, rounded half-even to 0.060
    assert _carbon(p, H01, 3_600_000, "de-juelich") == Decimal("0.060")
    # cost does not depend on the hour: the same window in two hours costs the same
    same = [processor_cost(p, t) for t in (H01, H01 + 3600 * 10**9)]
    assert same[0] == same[1]


def processor_cost(p: WindowProcessor, start_ns: int) -> Decimal:
    doc = window(seq=start_ns // 10**9 % 100_000 + 1, window_start_ns=start_ns, window_end_ns=start_ns + 10 * 10**9)
    return sum((e.cost_eur for e in p.process(wire(doc), None, start_ns + 70 * 10**9).entries), Decimal(0))


def test_the_ledger_keeps_the_series_and_audits_price_again_from_it(tmp_path: Path, chdb_engine) -> None:
    cfg, digest, text = read_config(configured(tmp_path))
    db = f"bl_grid{next(_dbs)}"
    apply_migrations(chdb_engine, db)
    sink = ClickHouseSink(chdb_engine, db)
    sink.record_config(digest, cfg.version, text, [(m.code, m.name, m.contribution_share) for m in cfg.members],
                       cfg.grid_series())
    p = WindowProcessor(cfg, digest)
    raws = []
    for i, start in enumerate((H01 - 10 * 10**9, H01, H01 + 3600 * 10**9)):
        doc = window(seq=i, window_start_ns=start, window_end_ns=start + 10 * 10**9)
        doc["gpus"][0]["energy_mj"] = 3_600_000
        raws.append(wire(doc))
    events = [JobEvent(event="start", site_id="kr-daejeon", job_id="7", account="kr-llm", time_ns=1)]
    sink.write_jobs(events)  # the scheduler's word on who pays, kept for the audits too
    jobs = book_jobs(events)
    outs = [(p.process(r, jobs, H01 + 3700 * 10**9), r) for r in raws]
    assert all(o.rejection is None for o, _ in outs)
    from schemas.ledger import row_from_entry
    from streams.core import entry_rows

    sink.write([(o.window, r) for o, r in outs], entry_rows(row_from_entry(e) for o, _ in outs for e in o.entries))
    total = chdb_engine.execute(f"SELECT sum(carbon_g) FROM {db}.ledger")[0][0]
    assert Decimal(str(total)) == Decimal("0.576") + Decimal("0.132") + Decimal("1.189")
    stored = config_by_hash(chdb_engine, db, digest)
    assert stored is not None and stored.grid_gco2_at("kr-daejeon", H01) == Decimal(100)
    assert recompute(chdb_engine, db, *ALL).ok
    # KR's statement says which carbon followed the grid hour by hour and which hour had no value
    st = build_statement(chdb_engine, db, "KR", "2001-09")
    assert st.total.carbon_kg == Decimal("0.001897")
    assert st.carbon_methods == [("hourly", Decimal("0.001321"), Decimal("0.002")),
                                 ("static", Decimal("0.000576"), Decimal("0.001"))]
    assert st.series_gaps == [("kr-daejeon", 1)]
    assert st.carbon_notes() == [
        "carbon: 0.001 kg from the hourly grid-intensity series (66.7% of the energy)",
        "carbon: 0.001 kg from the site's static intensity, for hours the series has no value (33.3% of the energy)",
        "site kr-daejeon: 1 hour(s) without a grid-intensity value (static figure used)"]
    assert st.carbon_notes()[0] in render_csv(st)
    # the Finance dashboard's panel 10 says the same, from the ledger's tables in SQL
    panel = next(x for x in FINANCE.panels if x.id == 10)
    sql = qualify(expand(panel.sql, 0, 4_102_444_800, {"member": ["KR"], "site": ["kr-daejeon"]}), db)
    assert [(m, method, round(Decimal(str(kg)), 6), round(Decimal(str(kwh)), 6))
            for m, method, kg, kwh in chdb_engine.execute(sql)] == [
        ("KR", "hourly series", Decimal("0.001321"), Decimal("0.002")),
        ("KR", "static figure", Decimal("0.000576"), Decimal("0.001"))]
    rows = chdb_engine.execute(f"SELECT site_id, toString(hour), toString(gco2_per_kwh) FROM {db}.grid_intensity "
                               f"ORDER BY site_id, hour")
    assert [(site, hour, Decimal(v)) for site, hour, v in rows] == [
        ("de-juelich", "2001-09-09 01:00:00", 50), ("kr-daejeon", "2001-09-09 01:00:00", 100),
        ("kr-daejeon", "2001-09-09 02:00:00", Decimal("900.5"))]
    # an insider lowers an hour in the stored file: the config no longer matches it, audits refuse
    chdb_engine.execute(f"ALTER TABLE {db}.grid_series_files UPDATE content = replace(content, '900.5', '9.5') "
                        f"WHERE 1 SETTINGS mutations_sync = 2")
    with pytest.raises(LedgerError, match="its sha256 is .* the config .* says"):
        config_by_hash(chdb_engine, db, digest)
    chdb_engine.execute(f"ALTER TABLE {db}.grid_series_files DELETE WHERE 1 SETTINGS mutations_sync = 2")
    with pytest.raises(LedgerError, match="which the ledger does not hold"):
        config_by_hash(chdb_engine, db, digest)
