"""The dashboards' hourly rollup (ledger/migrations/0010_hourly_rollup.sql) is the
ledger summed, exactly, and `ledger reconcile` catches it when it is not.

On a current ClickHouse engine (chdb); tests/integration/test_pipeline.py runs
reconcile, with its rollup check, on ClickHouse 18.16.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from ledger.audit import reconcile
from ledger.migrate import apply_migrations, load_migrations
from ledger.verify import verify_ledger
from streams.processing import WindowProcessor
from streams.sink import ClickHouseSink
from tests.builders import ALL
from tests.conftest import ledger_messages
from tests.helpers import book_messages

_dbs = itertools.count()
GROUPS = "toStartOfHour(window_start) AS h, site_id, gpu_model, member, project, account_kind, account_source"
SUMS = "sum(energy_mj), sum(gpu_ms), sum(normalised_gpu_hours), sum(cost_eur), sum(carbon_g)"


def by_group(engine, db: str, table: str, count: str) -> dict[tuple, tuple]:
    rows = engine.execute(f"SELECT {GROUPS}, {count}, {SUMS} FROM {db}.{table} "
                          f"GROUP BY h, site_id, gpu_model, member, project, account_kind, account_source")
    return {tuple(r[:7]): tuple(int(x) if i < 3 else Decimal(str(x)) for i, x in enumerate(r[7:])) for r in rows}


def test_the_rollup_is_the_ledger_summed_by_hour_and_group(ledger_db) -> None:
    engine, db = ledger_db
    ledger = by_group(engine, db, "ledger", "count()")
    assert len(ledger) > 1 and by_group(engine, db, "rollup", "sum(entries)") == ledger
    # and far fewer rows than entries: what makes the panels fast
    rows, entries = engine.execute(f"SELECT count(), sum(entries) FROM {db}.rollup")[0]
    assert entries == engine.execute(f"SELECT count() FROM {db}.ledger")[0][0] > 3 * rows
    r = reconcile(engine, db, *ALL)
    assert r.ok and r.rollup == [] and r.rollup_groups == len(ledger)


def test_a_rollup_changed_in_the_database_is_named_by_reconcile(ledger_db) -> None:
    """An insider inflates one member's cost in the table the dashboards read and adds a
    row for another, under a committed batch: the ledger still verifies (the rollup is
    not in the chain); reconcile names both groups with the ledger's and the rollup's sums."""
    engine, db = ledger_db
    batch, hour, project, member = engine.execute(
        f"SELECT batch_id, hour, project, member FROM {db}.ledger_hourly WHERE account_kind = 'job' "
        f"AND cost_eur > 0 ORDER BY hour, project LIMIT 1")[0]
    engine.execute(f"ALTER TABLE {db}.ledger_hourly UPDATE cost_eur = cost_eur * 2 WHERE member = '{member}' "
                   f"AND project = '{project}' AND hour = toDateTime('{hour}') SETTINGS mutations_sync = 2")
    cols = ", ".join(c[0] for c in engine.execute(f"DESCRIBE TABLE {db}.ledger_hourly"))
    engine.execute(f"INSERT INTO {db}.ledger_hourly ({cols}) SELECT "
                   + cols.replace("member", "'XX' AS member", 1)
                   + f" FROM (SELECT * FROM {db}.ledger_hourly WHERE batch_id = '{batch}' LIMIT 1)")
    assert verify_ledger(engine, db, *ALL).ok
    r = reconcile(engine, db, *ALL)
    assert not r.ok and r.residuals == []
    assert {group.split("/")[3] for group, _, _ in r.rollup} == {member, "XX"}  # hour/site/model/member/...
    inflated = next((want, got) for group, want, got in r.rollup if group.split("/")[3] == member)
    assert inflated[1][:3] == inflated[0][:3] and inflated[1][4] == 2 * inflated[0][4]  # same entries, twice the cost
    invented = next((want, got) for group, want, got in r.rollup if group.split("/")[3] == "XX")
    assert invented[0] == (0, 0, 0, 0, 0, 0) and invented[1][0] > 0


def test_rows_of_an_interrupted_write_stay_outside_the_rollup(ledger_db) -> None:
    engine, db = ledger_db
    before = engine.execute(f"SELECT sum(entries), sum(cost_eur) FROM {db}.rollup")[0]
    cols = ", ".join(c[0] for c in engine.execute(f"DESCRIBE TABLE {db}.ledger_entries"))
    # rows of a batch whose commit record never came (the writer crashed before it)
    engine.execute(f"INSERT INTO {db}.ledger_entries ({cols}) SELECT "
                   + cols.replace("batch_id", "'interrupted' AS batch_id", 1)
                   + f" FROM (SELECT * FROM {db}.ledger_entries LIMIT 5)")
    assert engine.execute(f"SELECT count() FROM {db}.ledger_hourly WHERE batch_id = 'interrupted'")[0][0] > 0
    assert engine.execute(f"SELECT sum(entries), sum(cost_eur) FROM {db}.rollup")[0] == before
    assert reconcile(engine, db, *ALL).rollup == []


def test_the_migration_sums_the_entries_written_before_it(chdb_engine, trace_dir, config_and_hash) -> None:
    db = f"bl_rollup{next(_dbs)}"
    before_rollup = [m for m in load_migrations() if m.name != "hourly_rollup"]
    apply_migrations(chdb_engine, db, before_rollup)
    cfg, digest = config_and_hash
    book_messages(ledger_messages(trace_dir, cfg), WindowProcessor(cfg, digest), ClickHouseSink(chdb_engine, db))
    assert apply_migrations(chdb_engine, db) == ["0010_hourly_rollup"]
    ledger = by_group(chdb_engine, db, "ledger", "count()")
    assert ledger and by_group(chdb_engine, db, "rollup", "sum(entries)") == ledger
    assert reconcile(chdb_engine, db, *ALL).rollup == []


def counted_twice(engine, db: str) -> int:
    from dashboards.build import expand
    from dashboards.specs import DASHBOARDS
    from tests.helpers import qualify

    panel = next(p for d in DASHBOARDS if d.uid == "bl-audit" for p in d.panels if p.title == "Entries counted twice")
    return int(engine.execute(qualify(expand(panel.sql, 0, 4_000_000_000, {}), db))[0][0])


def test_the_audit_panel_counts_a_row_stored_twice_and_a_window_booked_twice(ledger_db) -> None:
    engine, db = ledger_db
    assert counted_twice(engine, db) == 0
    cols = ", ".join(c[0] for c in engine.execute(f"DESCRIBE TABLE {db}.ledger_entries"))
    eid = engine.execute(f"SELECT entry_id FROM {db}.ledger ORDER BY entry_id LIMIT 1")[0][0]
    engine.execute(f"INSERT INTO {db}.ledger_entries ({cols}) SELECT {cols} FROM {db}.ledger_entries "
                   f"WHERE entry_id = '{eid}'")  # the same row again, in its committed batch
    assert counted_twice(engine, db) == 1
    # a window booked again under another committed batch
    wcols = ", ".join(c[0] for c in engine.execute(f"DESCRIBE TABLE {db}.raw_windows"))
    wid, bid = engine.execute(f"SELECT window_id, batch_id FROM {db}.windows ORDER BY window_id LIMIT 1")[0]
    other = engine.execute(f"SELECT batch_id FROM {db}.ledger_batches WHERE batch_id != '{bid}' LIMIT 1")[0][0]
    engine.execute(f"INSERT INTO {db}.raw_windows ({wcols}) SELECT "
                   + wcols.replace("batch_id", f"'{other}' AS batch_id", 1)
                   + f" FROM {db}.raw_windows WHERE window_id = '{wid}'")
    assert counted_twice(engine, db) == 2


def test_the_corrections_panel_lists_a_correction_also_from_a_range_starting_within_its_hour(ledger_db) -> None:
    """The panel finds correcting entries through the rollup's corrected groups (hours):
    a range that starts after the hour's start still lists the entries it holds."""
    from dashboards.build import expand
    from dashboards.specs import DASHBOARDS
    from ledger.corrections import move_entry
    from tests.helpers import qualify

    engine, db = ledger_db
    panel = next(p for d in DASHBOARDS if d.uid == "bl-audit" for p in d.panels if p.title == "Corrections")

    def listed(t0: int, t1: int) -> list[tuple]:
        return [(c, m, int(mj), r) for _, c, m, _, mj, _, r in engine.execute(qualify(expand(panel.sql, t0, t1, {}),
                                                                                     db))]

    eid, energy, start = engine.execute(
        f"SELECT entry_id, energy_mj, toUInt32(window_start) FROM {db}.ledger WHERE account_kind = 'idle' "
        f"AND energy_mj > 0 AND toMinute(window_start) > 0 ORDER BY entry_id LIMIT 1")[0]
    assert listed(0, 4_000_000_000) == []
    move_entry(engine, db, eid, "gb-protein", "reserved for gb-protein", "auditor-1")
    both = [(eid, "", -energy, "reserved for gb-protein"), (eid, "GB", energy, "reserved for gb-protein")]
    assert sorted(listed(0, 4_000_000_000), key=lambda x: x[2]) == both
    # from the entry's own second (past its hour's start) to just after it: the hour's group is still read
    assert sorted(listed(start, start + 1), key=lambda x: x[2]) == both
    assert listed(start + 3600, 4_000_000_000) == []  # an hour later: none in the range


def test_the_agents_panel_counts_a_missing_window_and_numbers_each_epoch_apart(ledger_db) -> None:
    from dashboards.build import expand
    from dashboards.specs import DASHBOARDS
    from tests.helpers import qualify

    engine, db = ledger_db
    spec = next(d for d in DASHBOARDS if d.uid == "bl-operations")
    panel = next(p for p in spec.panels if p.title.startswith("Agents"))
    sites = [r[0] for r in engine.execute(f"SELECT DISTINCT site_id FROM {db}.raw_windows")]

    def missing() -> dict[str, tuple[int, int]]:
        rows = engine.execute(qualify(expand(panel.sql, 0, 4_000_000_000, {"site": sites}), db))
        return {agent: (int(n), int(gap)) for agent, _, _, n, gap in rows}

    before = missing()
    assert before and all(gap == 0 for _, gap in before.values())
    agent, wid, seq = engine.execute(
        f"SELECT agent_id, window_id, seq FROM {db}.windows ORDER BY agent_id, seq LIMIT 1 OFFSET 3")[0]
    engine.execute(f"ALTER TABLE {db}.raw_windows DELETE WHERE window_id = '{wid}' SETTINGS mutations_sync = 2")
    assert missing()[agent] == (before[agent][0] - 1, 1)  # one window gone from the middle of its sequence
    # a later epoch of the same boot numbers its windows from 0 again: no gap, no overlap with the first
    cols = ", ".join(c[0] for c in engine.execute(f"DESCRIBE TABLE {db}.raw_windows"))
    parts = wid.split("/")
    renamed = cols.replace("window_id", "concat(arrayStringConcat(arraySlice(splitByChar('/', window_id), 1, 3), '/'), "
                                        f"'/{parts[3]}x/', toString(seq)) AS window_id", 1)
    engine.execute(f"INSERT INTO {db}.raw_windows ({cols}) SELECT {renamed} FROM {db}.raw_windows "
                   f"WHERE agent_id = '{agent}' AND seq < {seq}")
    assert missing()[agent] == (before[agent][0] - 1 + seq, 1)
