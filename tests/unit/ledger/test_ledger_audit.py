"""The audit tools on a current ClickHouse engine (chdb): a ledger written by the
real sink from the real H100 trace and a simulated node, then tampered with."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agents.publisher import MemoryPublisher
from agents.runner import FleetClock, build_sim_fleet, replay_trace, run_fleet
from ledger.audit import recompute, reconcile
from ledger.migrate import apply_migrations
from ledger.verify import verify_ledger
from schemas import decode_window
from schemas.ledger import row_from_entry
from schemas.topics import WINDOWS_TOPIC
from streams.core import entry_rows
from streams.processing import WindowProcessor
from streams.sink import ClickHouseSink
from tests.builders import ALL
from tests.helpers import book_messages, qualify

ROOT = Path(__file__).resolve().parents[3]


_counter = itertools.count()

def mutate(engine, sql: str) -> None:
    engine.execute(f"{sql} SETTINGS mutations_sync = 2")


def build_statement(engine, db: str, member: str, month: str, **kw):
    """The statement as issued (from the hourly rollup), once it is checked to render
    to the same CSV and HTML as the one drawn from the chained entries."""
    from ledger.statement import build_statement as draw
    from ledger.statement_render import render_csv, render_html

    st = draw(engine, db, member, month, **kw)
    again = draw(engine, db, member, month, from_rollup=False, **kw)
    assert (render_csv(st), render_html(st)) == (render_csv(again), render_html(again))
    return st


def test_clean_ledger_verifies_reconciles_and_recomputes(ledger_db) -> None:
    engine, db = ledger_db
    v = verify_ledger(engine, db, *ALL)
    assert v.ok, [p.line() for p in v.problems]
    assert v.batches >= 10 and v.entries > 0
    r = reconcile(engine, db, *ALL)
    assert r.ok and r.residuals == [] and r.gaps == []
    assert r.gpu_windows > r.windows > 0
    rc = recompute(engine, db, *ALL)
    assert rc.ok, rc.differences[:5]
    assert rc.windows == r.windows


def test_daily_and_monthly_rollups_equal_the_ledger(ledger_db) -> None:
    engine, db = ledger_db
    total = engine.execute(f"SELECT sum(energy_mj), sum(cost_eur), count() FROM {db}.ledger")[0]
    for view in ("rollup_daily", "rollup_monthly"):
        assert engine.execute(f"SELECT sum(energy_mj), sum(cost_eur), sum(entries) FROM {db}.{view}")[0] == total


def one_entry(engine, db) -> tuple[str, int]:
    eid, energy = engine.execute(f"SELECT entry_id, energy_mj FROM {db}.ledger_entries "
                                 f"WHERE energy_mj > 0 ORDER BY entry_id LIMIT 1")[0]
    return eid, int(energy)


def test_changed_energy_is_named(ledger_db) -> None:
    engine, db = ledger_db
    eid, energy = one_entry(engine, db)
    mutate(engine, f"ALTER TABLE {db}.ledger_entries UPDATE energy_mj = {energy * 2} WHERE entry_id = '{eid}'")
    v = verify_ledger(engine, db, *ALL)
    assert [p.kind for p in v.problems] == ["entry_changed"]
    assert eid in v.problems[0].detail
    assert not reconcile(engine, db, *ALL).ok
    assert any(eid in d and "energy_mj" in d for d in recompute(engine, db, *ALL).differences)


@pytest.mark.parametrize(("field", "value"), [
    ("gpu_ms", "gpu_ms + 1"),
    ("normalised_gpu_hours", "normalised_gpu_hours + toDecimal64('0.000000001', 9)"),
    ("cost_eur", "cost_eur + toDecimal64('0.000001', 6)"),
    ("carbon_g", "carbon_g + toDecimal64('0.001', 3)"),
    ("account_kind", "concat(account_kind, '-x')"),
    ("account", "concat(account, '-x')"),
    ("account_source", "'claim'"),
])
def test_verify_and_recompute_name_the_one_field_an_insider_changed(ledger_db, field: str, value: str) -> None:
    engine, db = ledger_db
    eid, _ = one_entry(engine, db)
    mutate(engine, f"ALTER TABLE {db}.ledger_entries UPDATE {field} = {value} WHERE entry_id = '{eid}'")
    problems = verify_ledger(engine, db, *ALL).problems
    assert [p.kind for p in problems] == ["entry_changed"] and eid in problems[0].detail
    differences = recompute(engine, db, *ALL).differences
    assert len(differences) == 1 and f"entry {eid} {field}: ledger " in differences[0], differences


def test_deleted_entry_is_named_and_reconcile_locates_the_residual(ledger_db) -> None:
    engine, db = ledger_db
    eid, energy = one_entry(engine, db)
    window_id, gpu = engine.execute(f"SELECT window_id, gpu_uuid FROM {db}.ledger_entries "
                                    f"WHERE entry_id = '{eid}'")[0]
    mutate(engine, f"ALTER TABLE {db}.ledger_entries DELETE WHERE entry_id = '{eid}'")
    v = verify_ledger(engine, db, *ALL)
    assert [(p.kind, eid in p.detail) for p in v.problems] == [("entry_deleted", True)]
    r = reconcile(engine, db, *ALL)
    assert [(w, g, d_mj) for w, g, d_mj, _ in r.residuals] == [(window_id, gpu, energy)]


def test_forged_entries_are_named(ledger_db) -> None:
    engine, db = ledger_db
    cols = ", ".join(c for c in engine.execute(f"DESCRIBE TABLE {db}.ledger_entries") for c in [c[0]])
    bid = engine.execute(f"SELECT batch_id FROM {db}.ledger_batches ORDER BY seq LIMIT 1")[0][0]
    # a forged entry slipped into a committed batch, and one with a made-up batch id
    for forged_batch, forged_id in ((bid, "f" * 64), ("forged-batch", "e" * 64)):
        engine.execute(
            f"INSERT INTO {db}.ledger_entries ({cols}) SELECT "
            + cols.replace("batch_id", f"'{forged_batch}' AS batch_id", 1).replace(
                "entry_id", f"'{forged_id}' AS entry_id", 1)
            + f" FROM (SELECT * FROM {db}.ledger_entries WHERE batch_id = '{bid}' LIMIT 1)")
    kinds = {(p.kind, p.detail.split()[1]) for p in verify_ledger(engine, db, *ALL).problems}
    assert kinds == {("entry_added", "f" * 64), ("entry_outside_chain", "e" * 64)}


def test_altered_batch_record_breaks_the_chain(ledger_db) -> None:
    engine, db = ledger_db
    mutate(engine, f"ALTER TABLE {db}.ledger_batches UPDATE energy_mj = energy_mj + 1 WHERE seq = 2")
    problems = verify_ledger(engine, db, *ALL).problems
    assert [(p.kind, p.seq) for p in problems] == [("bad_batch_hash", 2)]


def test_resent_windows_are_not_committed_twice(ledger_db, config_and_hash) -> None:
    engine, db = ledger_db
    before = engine.execute(f"SELECT count(), sum(energy_mj) FROM {db}.ledger")[0]
    raw = engine.execute(f"SELECT payload FROM {db}.windows LIMIT 3")
    proc = WindowProcessor(*config_and_hash)
    sink = ClickHouseSink(engine, db)
    outs = [proc.process(r[0].encode()) for r in raw]
    sink.write([(o.window, r[0].encode()) for o, r in zip(outs, raw, strict=True)],
               entry_rows(row_from_entry(e) for o in outs for e in o.entries))
    assert engine.execute(f"SELECT count(), sum(energy_mj) FROM {db}.ledger")[0] == before
    assert verify_ledger(engine, db, *ALL).ok
    assert decode_window(raw[0][0]).window_id


class FailOnCommit:
    """A client whose chain-record insert fails, as if the server died mid-batch."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def execute(self, query, params=None, **kwargs):
        if "INSERT INTO" in query and "ledger_batches" in query:
            raise ConnectionError("server went away")
        return self.inner.execute(query, params, **kwargs)

    def insert_native(self, query, encode):
        if "ledger_batches" in query:
            raise ConnectionError("server went away")
        return self.inner.insert_native(query, encode)


def test_interrupted_write_is_invisible_and_cleaned_at_start(ledger_db, trace_dir, config_and_hash) -> None:
    engine, db = ledger_db
    before = engine.execute(f"SELECT count(), sum(energy_mj) FROM {db}.ledger")[0]
    cfg, digest = config_and_hash
    pub = MemoryPublisher()
    replay_trace(trace_dir, pub, site_id="kr-daejeon", node="another-node")
    outs = [(WindowProcessor(cfg, digest).process(v), v) for t, _, v in pub.messages if t == WINDOWS_TOPIC]
    with pytest.raises(ConnectionError):
        ClickHouseSink(FailOnCommit(engine), db).write([(o.window, r) for o, r in outs],
                                                      entry_rows(row_from_entry(e) for o, _ in outs for e in o.entries))
    assert engine.execute(f"SELECT count(), sum(energy_mj) FROM {db}.ledger")[0] == before
    report = verify_ledger(engine, db, *ALL)
    assert report.ok and len(report.interrupted) == 1
    # the stream's writer deletes nothing: the worker only counts them at start
    assert ClickHouseSink(engine, db).recover() == 1
    assert engine.execute(f"SELECT count() FROM {db}.ledger_entries WHERE batch_id = %(b)s",
                          {"b": report.interrupted[0]})[0][0] > 0
    assert engine.execute(f"SELECT count(), sum(energy_mj) FROM {db}.ledger")[0] == before
    # the migrator's gc removes them (not before they are old enough: they may be in flight)
    from ledger.maintenance import delete_interrupted

    assert delete_interrupted(engine, db, older_than_h=1) == []
    assert delete_interrupted(engine, db, older_than_h=-1) == report.interrupted
    assert engine.execute(f"SELECT count() FROM {db}.ledger_entries WHERE batch_id = %(b)s",
                          {"b": report.interrupted[0]}) == [(0,)]
    assert verify_ledger(engine, db, *ALL).interrupted == []
    assert engine.execute(f"SELECT count(), sum(energy_mj) FROM {db}.ledger")[0] == before


def test_cookbook_queries_run_on_current_engine(ledger_db) -> None:
    from tests.cookbook import cookbook_queries

    engine, db = ledger_db
    for sql in cookbook_queries():
        engine.execute(qualify(sql, db))


def test_correction_moves_an_entry_and_keeps_everything_verifiable(ledger_db) -> None:
    from ledger.corrections import CorrectionError, move_entry

    engine, db = ledger_db
    eid, energy = engine.execute(f"SELECT entry_id, energy_mj FROM {db}.ledger WHERE account_kind = 'idle' "
                                 f"AND energy_mj > 0 ORDER BY entry_id LIMIT 1")[0]
    gb_before = engine.execute(f"SELECT sum(energy_mj) FROM {db}.ledger WHERE member = 'GB'")[0][0] or 0
    out = move_entry(engine, db, eid, "gb-protein", "idle GPU was reserved for gb-protein", "auditor-1")
    assert [e.energy_mj for e in out] == [-energy, energy] and all(e.corrects == eid for e in out)
    assert engine.execute(f"SELECT sum(energy_mj) FROM {db}.ledger WHERE member = 'GB'")[0][0] == gb_before + energy
    assert verify_ledger(engine, db, *ALL).ok
    assert reconcile(engine, db, *ALL).ok
    assert recompute(engine, db, *ALL).ok
    with pytest.raises(CorrectionError, match="corrected already"):
        move_entry(engine, db, eid, "gb-protein", "again", "auditor-1")
    with pytest.raises(CorrectionError, match="belongs to no project"):
        move_entry(engine, db, one_entry(engine, db)[0], "nobody", "x", "a")


def test_member_statement_in_three_formats(ledger_db, tmp_path) -> None:
    from decimal import Decimal

    from pypdf import PdfReader

    from ledger.statement_render import render_csv, render_html, render_pdf

    engine, db = ledger_db
    st = build_statement(engine, db, "KR", "2026-11")
    cost, ngh = engine.execute(f"SELECT sum(cost_eur), sum(normalised_gpu_hours) FROM {db}.ledger "
                               f"WHERE member = 'KR' AND toYYYYMM(window_start) = 202611")[0]
    assert st.total.cost_eur == Decimal(str(cost)) and st.total.normalised_gpu_hours == Decimal(str(ngh))
    assert st.contribution_share == Decimal("0.24") and 0 < st.usage_share < 1
    assert st.batches and st.batches[0][0] == "main"
    text = render_csv(st)
    assert f"total,,{st.total.gpu_hours:,.3f}" in text and "contribution_share" in text
    # the scheduler vouched for all of KR's usage (job events from the replay and the simulator)
    assert [src for src, _ in st.sources] == ["job_event"]
    assert sum(h for _, h in st.sources) == st.total.normalised_gpu_hours
    assert "account_source,job_event," in text
    page = render_html(st)
    assert "Republic of Korea (KR), 2026-11" in page and "<svg" in page and f"{st.total.cost_eur:,.2f}" in page
    assert "account source job_event" in page and "(100.0%)" in page
    assert st.unsigned_sites == [] and "UNSIGNED" not in page  # the example config opts no site out
    st.unsigned_sites = ["ca-montreal"]
    assert "site ca-montreal may send UNSIGNED windows" in render_html(st)
    pdf = tmp_path / "kr.pdf"
    render_pdf(st, pdf)
    words = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)  # lines wrap
    assert "Republic of Korea (KR), 2026-11" in words and "Settlement of the month" in words
    assert all(line in words for line in st.transfer_lines())
    assert f"{st.total.cost_eur:,.2f}" in words and f"{st.balance:,.2f}" in words


def test_an_entry_row_stored_twice_is_named(ledger_db) -> None:
    engine, db = ledger_db
    cols = ", ".join(c[0] for c in engine.execute(f"DESCRIBE TABLE {db}.ledger_entries"))
    eid, bid = engine.execute(f"SELECT entry_id, batch_id FROM {db}.ledger_entries ORDER BY entry_id LIMIT 1")[0]
    engine.execute(f"INSERT INTO {db}.ledger_entries ({cols}) SELECT {cols} FROM {db}.ledger_entries "
                   f"WHERE entry_id = '{eid}'")  # the same row again: counted twice
    problems = verify_ledger(engine, db, *ALL).problems
    assert [(p.kind, p.detail) for p in problems] == [("entry_added", f"entry {eid} appears 2 times")]


def test_a_deleted_batch_breaks_the_link_after_it(ledger_db) -> None:
    engine, db = ledger_db
    bid = engine.execute(f"SELECT batch_id FROM {db}.ledger_batches WHERE seq = 3")[0][0]
    mutate(engine, f"ALTER TABLE {db}.ledger_batches DELETE WHERE seq = 3")
    problems = verify_ledger(engine, db, *ALL).problems
    assert ("broken_link", 4, "seq 4 follows seq 2") in [(p.kind, p.seq, p.detail) for p in problems]
    # its entries now belong to no batch of any chain (and had an intent: an interrupted write)
    assert verify_ledger(engine, db, *ALL).interrupted == [bid]


def test_a_rewritten_manifest_is_a_bad_entries_hash_and_a_relinked_batch_a_broken_link(ledger_db) -> None:
    engine, db = ledger_db
    mutate(engine, f"ALTER TABLE {db}.ledger_batches UPDATE entry_digests = arrayPopBack(entry_digests) "
                   f"WHERE seq = 1")
    mutate(engine, f"ALTER TABLE {db}.ledger_batches UPDATE prev_hash = '{'0' * 64}' WHERE seq = 5")
    kinds = {(p.kind, p.seq) for p in verify_ledger(engine, db, *ALL).problems}
    assert {("bad_entries_hash", 1), ("broken_link", 5), ("bad_batch_hash", 5)} <= kinds


def test_a_raw_window_payload_edited_in_the_database_breaks_its_batch(ledger_db) -> None:
    # The insider who moves usage between members edits the raw payloads too, so
    # that `recompute` agrees; the batch hash covers the payloads' bytes.
    engine, db = ledger_db
    assert verify_ledger(engine, db, *ALL).ok
    wid, bid = engine.execute(f"SELECT window_id, batch_id FROM {db}.raw_windows ORDER BY window_id LIMIT 1")[0]
    seq = engine.execute(f"SELECT seq FROM {db}.ledger_batches WHERE batch_id = '{bid}'")[0][0]
    mutate(engine, f"ALTER TABLE {db}.raw_windows UPDATE payload = replaceOne(payload, '\"seq\"', '\"seq\" ') "
                   f"WHERE window_id = '{wid}'")
    problems = verify_ledger(engine, db, *ALL).problems
    assert [(p.kind, p.seq) for p in problems] == [("windows_changed", seq)]
    assert "not the bytes that were committed" in problems[0].detail


def test_a_raw_window_deleted_from_its_batch_is_named(ledger_db) -> None:
    engine, db = ledger_db
    wid, bid = engine.execute(f"SELECT window_id, batch_id FROM {db}.raw_windows ORDER BY window_id LIMIT 1")[0]
    seq = engine.execute(f"SELECT seq FROM {db}.ledger_batches WHERE batch_id = '{bid}'")[0][0]
    mutate(engine, f"ALTER TABLE {db}.raw_windows DELETE WHERE window_id = '{wid}'")
    assert [(p.kind, p.seq) for p in verify_ledger(engine, db, *ALL).problems] == [("windows_changed", seq)]


def test_settlement_of_the_pipeline_output_matches_the_statements(ledger_db) -> None:
    from decimal import ROUND_HALF_EVEN, Decimal

    from ledger.settlement import settle
    from ledger.settlement_report import render_settlement_csv, render_settlement_html

    engine, db = ledger_db
    s = settle(engine, db, "2026-10", "2026-11")
    cfg_members = {"KR", "CA", "GB", "DE", "SG", "FR"}
    # every configured member, with or without usage (October has no usage: nothing booked, nothing owed)
    assert set(s.balances) == cfg_members and s.months == ["2026-10", "2026-11"]
    assert sum(s.balances.values()) == 0
    november = settle(engine, db, "2026-11", "2026-11")
    for member in cfg_members:  # the same balance as the member's statement, to the cent
        st = build_statement(engine, db, member, "2026-11")
        # and the statement lists the month's transfers this member pays or receives
        assert st.transfers == [t for t in november.transfers if member in t[:2]]
        assert abs(s.balances[member] - st.balance) <= Decimal("0.01")
        exact = s.exact(member)
        assert st.balance == (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
            Decimal("0.01"), ROUND_HALF_EVEN)
    # the members with no usage in this ledger pay nothing and are paid their contribution's worth
    idle = [m for m in cfg_members if build_statement(engine, db, m, "2026-11").total.normalised_gpu_hours == 0]
    assert idle and all(s.balances[m] < 0 for m in idle)
    for member, balance in s.balances.items():
        assert sum(a for p, _, a in s.transfers if p == member) == max(balance, 0)
        assert sum(a for _, q, a in s.transfers if q == member) == max(-balance, 0)
    text = render_settlement_csv(s)
    assert text.startswith("settlement,2026-10,2026-11,EUR\nmember,name,2026-10,2026-11,period_balance\n")
    assert "rounding_rule" in text and all(f"{p},{q},{a},EUR" in text for p, q, a in s.transfers)
    assert "Settlement 2026-10 to 2026-11 (EUR)" in render_settlement_html(s)


def test_a_period_statement_is_the_sum_of_its_months(ledger_db, tmp_path) -> None:
    from decimal import Decimal

    from pypdf import PdfReader

    from ledger.period_statement import build_period_statement
    from ledger.statement_render import render_period_csv, render_period_html, render_period_pdf

    engine, db = ledger_db
    p = build_period_statement(engine, db, "KR", "2026-10", "2026-11")
    nov = build_statement(engine, db, "KR", "2026-11")
    assert [s.month for s in p.statements] == ["2026-11"] and p.empty_months == ["2026-10"]
    assert (p.balance, p.normalised_gpu_hours, p.cost) == (nov.balance, nov.total.normalised_gpu_hours,
                                                            nov.total.cost_eur)
    assert p.ytd_months == [f"2026-{m:02d}" for m in range(1, 12)] and p.ytd_balance == nov.balance
    import csv

    from ledger.statement import figure as _fmt

    text = render_period_csv(p)
    rows = list(csv.reader(text.splitlines()))
    assert rows[1] == ["month", "normalised_gpu_hours", "cost", "usage_share", "contribution_share", "balance"]
    assert rows[2] == ["2026-10", "0.000", "0.00", "", "", "0.00"] and rows[3][0] == "2026-11"
    assert rows[4] == ["period_total", _fmt(nov.total.normalised_gpu_hours, 3), _fmt(nov.total.cost_eur), "", "",
                       _fmt(nov.balance)]
    assert rows[5] == ["year_to_date 2026-01..2026-11", "", "", "", "", _fmt(nov.balance)]
    assert "statement,KR,Republic of Korea,2026-11" in text  # the month in full follows
    assert "year to date (2026-01 to\n2026-11)" in render_period_html(p)
    render_period_pdf(p, tmp_path / "kr.pdf")
    words = " ".join(" ".join(pg.extract_text().split()) for pg in PdfReader(tmp_path / "kr.pdf").pages)
    assert "2026-10 to 2026-11" in words and "Republic of Korea (KR), 2026-11" in words
    assert sum((s.balance for s in p.statements), Decimal(0)) == p.balance


# FOCUS 1.2's rules for the mandatory columns (FOCUS_Spec v1.2, specification/columns and attributes)
_FOCUS_NOT_NULL = ("BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart",
                   "ChargeCategory", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost", "EffectiveCost",
                   "InvoiceIssuerName", "ListCost", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName")
_FOCUS_SERVICE_CATEGORIES = {
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
    "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media", "Migration",
    "Mobile", "Networking", "Security", "Storage", "Web", "Other"}


def test_focus_export_meets_the_specs_rules_and_adds_up(ledger_db) -> None:
    import csv
    import json
    from decimal import Decimal

    from ledger.corrections import move_entry
    from ledger.focus import MANDATORY, focus_rows, render_focus_csv

    engine, db = ledger_db
    eid = engine.execute(f"SELECT entry_id FROM {db}.ledger WHERE account_kind = 'job' AND member = 'KR' "
                         f"ORDER BY entry_id LIMIT 1")[0][0]
    # written within November (the test's own clock: the real one has left November)
    move_entry(engine, db, eid, "gb-protein", "wrong account", "test", now=datetime(2026, 11, 28, 12, 0))
    text = render_focus_csv(focus_rows(engine, db, "2026-11", "AI bridge consortium"))
    rows = list(csv.DictReader(text.splitlines()))
    assert rows and set(MANDATORY) <= set(rows[0])
    numeric = re.compile(r"^-?\d+(\.\d+)?$")
    stamp = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    for r in rows:
        assert all(r[c] != "" for c in _FOCUS_NOT_NULL), r
        assert all(numeric.match(r[c]) for c in ("BilledCost", "EffectiveCost", "ContractedCost", "ListCost",
                                                 "PricingQuantity"))
        assert all(stamp.match(r[c]) for c in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
                                               "ChargePeriodEnd"))
        assert r["BillingPeriodStart"] == "2026-11-01T00:00:00Z" and r["BillingPeriodEnd"] == "2026-12-01T00:00:00Z"
        assert r["BillingPeriodStart"] <= r["ChargePeriodStart"] < r["ChargePeriodEnd"] <= r["BillingPeriodEnd"]
        assert r["ChargeCategory"] == "Usage" and r["ChargeClass"] in ("", "Correction")
        assert r["ServiceCategory"] in _FOCUS_SERVICE_CATEGORIES and re.match(r"^[A-Z]{3}$", r["BillingCurrency"])
        assert (r["PricingUnit"] == "") == (r["PricingQuantity"] == "") and r["PricingUnit"] == "GPU-Hours"
        assert r["BilledCost"] == r["EffectiveCost"] == r["ContractedCost"] == r["ListCost"]
        assert json.loads(r["Tags"])["member"] == r["BillingAccountId"]
    # the export adds up to the ledger's billed usage, member by member
    billed = dict(engine.execute(f"SELECT member, sum(cost_eur) FROM {db}.ledger WHERE member != '' "
                                 f"AND toYYYYMM(window_start) = 202611 GROUP BY member"))
    for member, cost in billed.items():
        assert sum(Decimal(r["BilledCost"]) for r in rows if r["BillingAccountId"] == member) == Decimal(str(cost))
    hours = engine.execute(f"SELECT sum(normalised_gpu_hours) FROM {db}.ledger WHERE member != '' "
                           f"AND toYYYYMM(window_start) = 202611")[0][0]
    assert sum(Decimal(r["PricingQuantity"]) for r in rows) == Decimal(str(hours))
    # a correction written within the billing period is no "Correction" in FOCUS's sense (ChargeClass null) ...
    assert not any(r["ChargeClass"] for r in rows)
    # ... one written after November ended corrects an invoiced period
    mutate(engine, f"ALTER TABLE {db}.ledger_entries UPDATE written_at = toDateTime('2026-12-03 10:00:00') "
                   f"WHERE corrects = '{eid}'")
    late = list(csv.DictReader(render_focus_csv(focus_rows(engine, db, "2026-11", "x")).splitlines()))
    marked = [r for r in late if r["ChargeClass"] == "Correction"]
    assert {r["BillingAccountId"] for r in marked} == {"KR", "GB"}  # the reversal and the re-booking
    assert sum(Decimal(r["BilledCost"]) for r in marked) == 0  # a move between members costs nothing in all
    assert all(r["ChargeDescription"].startswith("Correction: ") for r in marked)


def test_apel_accelerator_records_carry_what_apel_requires_and_add_up(ledger_db) -> None:
    import json
    from decimal import Decimal

    from ledger.apel import REQUIRED, apel_message, apel_records

    engine, db = ledger_db
    records = apel_records(engine, db, "2026-11")
    assert records
    for r in records:
        assert all(r[k] is not None and r[k] != "" for k in REQUIRED), r
        assert (r["MeasurementMonth"], r["MeasurementYear"], r["AssociatedRecordType"], r["Type"]) == (
            11, 2026, "job", "GPU")
        assert r["FQAN"] == "/" + r["FQAN"].lstrip("/") and r["Count"] > 0 and r["AvailableDuration"] > 0
        assert r["ActiveDuration"] == r["AvailableDuration"] and r["BenchmarkType"] == "H100-equivalent"
    # a job by hand: its GPU-seconds and its windows' wall time, from the ledger
    r = max(records, key=lambda x: x["Count"] * x["AvailableDuration"])
    site, project = r["SiteName"], r["FQAN"][1:]
    gpu_ms, = engine.execute(f"SELECT sum(gpu_ms) FROM {db}.ledger WHERE job_id = %(j)s AND site_id = %(s)s "
                             f"AND project = %(p)s AND account_kind = 'job'",
                             {"j": r["AssociatedRecord"], "s": site, "p": project})[0]
    windows, = engine.execute(f"SELECT uniqExact(window_id) FROM {db}.ledger WHERE job_id = %(j)s "
                              f"AND site_id = %(s)s AND project = %(p)s AND account_kind = 'job'",
                              {"j": r["AssociatedRecord"], "s": site, "p": project})[0]
    assert r["AvailableDuration"] == windows * 10  # 10-second windows
    assert Decimal(str(r["Count"])) == (Decimal(int(gpu_ms)) / 1000 / r["AvailableDuration"]).quantize(
        Decimal("0.001"))
    # over all records, GPU-equivalents × wall time is the ledger's job GPU time (to the rounding of Count)
    total_s = Decimal(int(engine.execute(f"SELECT sum(gpu_ms) FROM {db}.ledger WHERE account_kind = 'job' "
                                         f"AND job_id != ''")[0][0])) / 1000
    booked = sum(Decimal(str(x["Count"])) * x["AvailableDuration"] for x in records)
    assert abs(booked - total_s) <= sum(Decimal("0.0005") * x["AvailableDuration"] for x in records) + len(records)
    doc = json.loads(apel_message(records))
    assert doc["Type"] == "APEL-accelerator-message" and doc["Version"] == "0.1"
    assert all("Cores" not in u for u in doc["UsageRecords"])  # nulls are left out


def test_apel_names_sites_and_projects_as_the_config_maps_them(ledger_db, monkeypatch) -> None:
    import ledger.apel as apel
    from ledger.configs import all_configs

    engine, db = ledger_db
    real = all_configs(engine, db)

    def mapped(client, database):
        out = {}
        for h, cfg in real.items():
            sites = [s.model_copy(update={"grid_site": f"EGI-{s.id.upper()}"}) for s in cfg.sites]
            projects = [p.model_copy(update={"fqan": f"/vo.{p.id}.example/Role=NULL"}) for p in cfg.projects]
            out[h] = cfg.model_copy(update={"sites": sites, "projects": projects})
        return out

    monkeypatch.setattr(apel, "all_configs", mapped)
    records = apel.apel_records(engine, db, "2026-11")
    assert records and all(r["SiteName"].startswith("EGI-") and r["FQAN"].startswith("/vo.") for r in records)
    assert {r["SiteName"] for r in records} <= {"EGI-KR-DAEJEON", "EGI-DE-JUELICH", "EGI-CA-MONTREAL"}


def test_idle_borne_by_the_host_shows_on_its_statement_and_settles(chdb_engine, trace_dir) -> None:
    from decimal import Decimal
    from fractions import Fraction as F

    from ledger.settlement import settle
    from schemas.consortium import parse_config

    text = (ROOT / "deploy" / "consortium.example.yaml").read_bytes().replace(
        b'    grid_gco2_per_kwh: "436"\n', b'    grid_gco2_per_kwh: "436"\n    idle_policy: host\n', 1)
    cfg, digest = parse_config(text)
    assert cfg.site("kr-daejeon").idle_policy == "host"
    db = f"bl_idle{next(_counter)}"
    apply_migrations(chdb_engine, db)
    sink = ClickHouseSink(chdb_engine, db)
    sink.record_config(digest, cfg.version, text, [(m.code, m.name, m.contribution_share) for m in cfg.members])
    pub = MemoryPublisher()
    replay_trace(trace_dir, pub, site_id="kr-daejeon", node="r1",
                 accounts=ROOT / "deploy" / "replay-accounts.example.yaml")
    book_messages(pub.messages, WindowProcessor(cfg, digest), sink)
    idle = chdb_engine.execute(f"SELECT member, sum(cost_eur) FROM {db}.ledger WHERE account_kind = 'idle' "
                               f"GROUP BY member")
    assert idle and [m for m, _ in idle] == ["KR"]  # the trace's idle GPU time is KR's, the hosting member
    (month,) = {r[0] for r in chdb_engine.execute(f"SELECT formatDateTime(window_start, '%Y-%m') FROM {db}.ledger")}
    kr = build_statement(chdb_engine, db, "KR", month)
    idle_cost = Decimal(str(idle[0][1]))
    assert kr.idle_borne == kr.consortium_idle_cost == idle_cost > 0
    assert any(line.project == "idle:kr-daejeon" for line in kr.lines)
    assert "site kr-daejeon: idle GPU time borne by the hosting member (KR)" in kr.source_notes()
    # the balance by the rule, from the statement's own figures: KR bears all idle cost members bear
    expected = (kr.usage_share - kr.contribution_share) * kr.consortium_cost + idle_cost * (1 - kr.contribution_share)
    assert kr.balance == expected.quantize(Decimal("0.01"))
    s = settle(chdb_engine, db, month, month)
    assert sum(s.balances.values()) == 0 and abs(s.balances["KR"] - kr.balance) <= Decimal("0.01")
    for member in s.balances:  # members that ran nothing here are owed their share of the idle cost too
        st_m = build_statement(chdb_engine, db, member, month)
        if member != "KR":
            assert st_m.idle_borne == 0
        if st_m.usage_share == 0:
            share = F(str(st_m.contribution_share))
            assert s.exact(member) == -share * (F(str(kr.consortium_cost)) + F(str(idle_cost)))

    # the Finance dashboard says the same: panel 1's balances and panel 8's transfers

    from dashboards.build import expand
    from dashboards.specs import DASHBOARDS

    finance = next(d for d in DASHBOARDS if d.uid == "bl-finance")
    panels = {p.id: p for p in finance.panels}

    def run(sql: str, variables: dict[str, list[str]]) -> list[tuple[object, ...]]:
        sql = expand(sql, 1_793_491_200, 1_796_083_199, variables)  # November 2026
        return chdb_engine.execute(qualify(sql, db))

    members = sorted(s.balances)
    sites = [r[0] for r in chdb_engine.execute(f"SELECT DISTINCT site_id FROM {db}.ledger")]
    shown = {r[0]: r[4] for r in run(panels[1].sql, {"member": members, "site": sites})}
    for member in members:
        exact = s.exact(member)
        assert abs(float(shown[member]) - float(exact)) < 1e-6, member
    # panel 8: the unrounded proportional transfers of the exact balances (the command rounds them to cents)
    transfers = {(r[0], r[1]): float(r[2]) for r in run(panels[8].sql, {})}
    exact = {m: s.exact(m) for m in members}
    owed = -sum(v for v in exact.values() if v < 0)
    expected = {(p, q): exact[p] * -exact[q] / owed for p in members for q in members if exact[p] > 0 > exact[q]}
    assert set(transfers) == set(expected)
    assert all(abs(transfers[k] - float(v)) < 1e-6 for k, v in expected.items())


def test_pledged_hours_by_hand() -> None:
    from datetime import datetime as dt

    from schemas.consortium import Pledge

    pledges = [Pledge(member="KR", period="2026", normalised_gpu_hours=Decimal("87600")),
               Pledge(member="KR", period="2026-11", normalised_gpu_hours=Decimal("500")),
               Pledge(member="DE", period="2026-11", normalised_gpu_hours=Decimal("9"))]
    from ledger.capacity import pledged_hours

    # November: 30 of 2026's 365 days of the yearly pledge (87600 x 30/365 = 7200) plus the monthly 500
    assert pledged_hours(pledges, "KR", dt(2026, 11, 1), dt(2026, 12, 1)) == 7700
    # October to December: 92 days of the year (22080) and the whole of November's 500
    assert pledged_hours(pledges, "KR", dt(2026, 10, 1), dt(2027, 1, 1)) == 22580
    assert pledged_hours(pledges, "DE", dt(2026, 12, 1), dt(2027, 1, 1)) == 0  # not its month


def test_delivered_capacity_is_the_ledgers_gpu_time_and_an_outage_costs_availability(chdb_engine,
                                                                                    config_and_hash) -> None:
    from datetime import UTC
    from datetime import datetime as dt

    from agents.publisher import MemoryPublisher
    from ledger.capacity import capacity
    from schemas.consortium import parse_config

    text = (ROOT / "deploy" / "consortium.example.yaml").read_bytes().replace(
        b'    grid_gco2_per_kwh: "380"\n', b'    grid_gco2_per_kwh: "380"\n    gpus: 2\n', 1) + (
        b'\npledges: [{member: DE, period: "2026-11", normalised_gpu_hours: "0.5", availability_target: "0.9"}]\n')
    cfg, digest = parse_config(text)
    assert cfg.site("de-juelich").gpus == 2
    db = f"bl_pledges{next(_counter)}"
    apply_migrations(chdb_engine, db)
    sink = ClickHouseSink(chdb_engine, db)
    sink.record_config(digest, cfg.version, text, [(m.code, m.name, m.contribution_share) for m in cfg.members])
    start = 1_794_999_600 * 10**9  # a whole hour (the panel counts whole hours): 60 windows of 10 s from here
    pub = MemoryPublisher()
    clock = FleetClock(start)
    fleet = build_sim_fleet(cfg, pub, clock, start_ns=start, horizon_ns=600 * 10**9, nodes_per_site=1,
                            gpus_per_node=2, window_s=10, seed=5, sites=["de-juelich"])
    run_fleet(fleet, pub, clock, until_ns=start + 600 * 10**9)
    # the agent was down for two minutes: windows 20..31 never reached the centre
    down = [m for m in pub.messages if m[0] == WINDOWS_TOPIC and 20 <= decode_window(m[2]).seq <= 31]
    assert len(down) == 12
    book_messages([m for m in pub.messages if m not in down], WindowProcessor(cfg, digest), sink)
    t0, t1 = (dt.fromtimestamp(t // 10**9, UTC).replace(tzinfo=None) for t in (start, start + 600 * 10**9))
    (de,) = [mc for mc in capacity(chdb_engine, db, cfg, t0, t1) if mc.member == "DE"]
    (site,) = de.sites
    # delivered and used are the ledger's own GPU time at the site, exactly
    all_h, job_h = chdb_engine.execute(
        f"SELECT sum(normalised_gpu_hours), sumIf(normalised_gpu_hours, account_kind = 'job') FROM {db}.ledger "
        f"WHERE site_id = 'de-juelich'")[0]
    assert (site.delivered_h, site.used_h) == (Decimal(str(all_h)), Decimal(str(job_h)))
    # 48 of 60 windows x 10 s x 2 GPUs reported, of 2 GPUs x 600 s: 80 %
    assert (site.reported_gpu_s, site.calendar_gpu_s) == (960, 1200) and site.availability == Decimal("0.8")
    assert de.availability == Decimal("0.8") < de.target == Decimal("0.9") and de.short
    # the pledge of November, 10 minutes of its 30 days: 0.5 h x 600 / 2,592,000 s
    assert de.pledged_h == Decimal("0.5") * 600 / 2_592_000
    assert de.in_kind_value == de.delivered_h * Decimal("1.20")
    kr = next(mc for mc in capacity(chdb_engine, db, cfg, t0, t1) if mc.member == "KR")
    assert kr.pledged_h == 0 and kr.delivered_share is None and kr.sites[0].availability is None  # no inventory
    # DE's statement shows its in-kind contribution; KR, which pledged nothing, gets today's statement
    from ledger.statement_render import render_csv

    de_st = build_statement(chdb_engine, db, "DE", "2026-11")
    assert de_st.capacity is not None and de_st.capacity.pledged_h == Decimal("0.5")
    # drawn up to an earlier batch (what a signed statement's checkpoint covers), the in-kind figures
    # are those batches' only, as the rest of the statement is: drawn again later, it is the same
    ((chain, last),) = chdb_engine.execute(f"SELECT chain_id, max(seq) FROM {db}.ledger_batches GROUP BY chain_id")
    covered = f"batch_id IN (SELECT batch_id FROM {db}.ledger_batches WHERE seq <= {last // 2})"
    ((h,),) = chdb_engine.execute(f"SELECT sum(normalised_gpu_hours) FROM {db}.ledger_entries WHERE {covered} "
                                  f"AND site_id = 'de-juelich'")
    ((gpu_ns,),) = chdb_engine.execute(f"SELECT sum(gpu_count * (window_end_ns - window_start_ns)) "
                                       f"FROM {db}.raw_windows WHERE {covered}")
    half = build_statement(chdb_engine, db, "DE", "2026-11", cover={chain: last // 2})
    (early,) = half.capacity.sites
    assert early.delivered_h == Decimal(str(h)) < site.delivered_h
    assert early.reported_gpu_s == int(gpu_ns) // 10**9 < site.reported_gpu_s
    note = de_st.capacity_notes()[0]
    assert note.startswith("in kind: pledged 0.50 normalised GPU-hours") and note.endswith("UNDER-DELIVERED")
    assert note in render_csv(de_st)
    assert build_statement(chdb_engine, db, "KR", "2026-11").capacity_notes() == []
    # the Finance dashboard's in-kind panel says the same over the same range
    from dashboards.build import expand
    from dashboards.specs import DASHBOARDS

    panel = next(p for d in DASHBOARDS if d.uid == "bl-finance" for p in d.panels if p.id == 9)
    sql = expand(panel.sql, start // 10**9, start // 10**9 + 600, {"member": ["DE", "KR"]})
    shown = {r[0]: [float(v) for v in r[1:]] for r in chdb_engine.execute(qualify(sql, db))}
    pledged, delivered, delivered_pct, availability_pct = shown["DE"]
    assert abs(pledged - float(de.pledged_h)) < 1e-9 and abs(delivered - float(de.delivered_h)) < 1e-9
    assert abs(availability_pct - 80.0) < 1e-9 and abs(delivered_pct - 100 * float(de.delivered_share)) < 1e-6
    assert shown["KR"][3] == 0  # no declared inventory: no availability figure


def test_the_contributed_value_rule_weighs_cash_and_in_kind_and_still_settles_to_zero(chdb_engine, trace_dir) -> None:
    from datetime import datetime as dt
    from fractions import Fraction as F

    from ledger.balance import member_balance
    from ledger.capacity import contributions
    from ledger.settlement import settle
    from schemas.consortium import parse_config

    text = (ROOT / "deploy" / "consortium.example.yaml").read_bytes() + (
        b'\nbalance_rule: contributed_value\ncash_budgets: [{period: "2026", amount: "365000"}]\n')
    cfg, digest = parse_config(text)
    db = f"bl_rule{next(_counter)}"
    apply_migrations(chdb_engine, db)
    sink = ClickHouseSink(chdb_engine, db)
    sink.record_config(digest, cfg.version, text, [(m.code, m.name, m.contribution_share) for m in cfg.members])
    from tests.conftest import ledger_messages

    book_messages(ledger_messages(trace_dir, cfg), WindowProcessor(cfg, digest), sink)
    (month,) = {r[0] for r in chdb_engine.execute(f"SELECT formatDateTime(window_start, '%Y-%m') FROM {db}.ledger")}
    assert month == "2026-11"  # 30 days: the yearly cash budget of 365,000 puts 30,000 in it
    start, end = dt(2026, 11, 1), dt(2026, 12, 1)
    # by hand: each member's cash is 30,000 x its budget key; in kind, the normalised GPU-hours its sites
    # delivered (every entry there) x the 1.20 rate: kr-daejeon for KR, de-juelich for DE, none for the rest
    hours = {s: F(str(h)) for s, h in chdb_engine.execute(
        f"SELECT site_id, sum(normalised_gpu_hours) FROM {db}.ledger GROUP BY site_id")}
    assert set(hours) == {"kr-daejeon", "de-juelich"}
    cash = {m.code: 30_000 * F(m.contribution_share) for m in cfg.members}
    in_kind = {"KR": hours["kr-daejeon"] * F("1.2"), "DE": hours["de-juelich"] * F("1.2")}
    total = 30_000 + in_kind["KR"] + in_kind["DE"]
    expected = {m: (cash[m] + in_kind.get(m, 0)) / total for m in cash}
    c = contributions(chdb_engine, db, cfg, start, end)
    assert c.shares == expected and c.cash == cash and c.in_kind == {**{m: 0 for m in cash}, **in_kind}
    # a member hosting nothing keeps only its cash's part: less than its budget key once others host capacity
    assert c.shares["FR"] == F("0.14") * 30_000 / total < F("0.14")
    assert c.shares["KR"] == (F("0.24") * 30_000 + in_kind["KR"]) / total
    # statements balance with those shares; the settlement adds up to zero and settles them
    s = settle(chdb_engine, db, month, month)
    assert sum(s.balances.values()) == 0
    job_h, job_cost, mine = {}, F(0), {}
    for member, h, cost in chdb_engine.execute(
            f"SELECT member, sum(normalised_gpu_hours), sum(cost_eur) FROM {db}.ledger WHERE account_kind = 'job' "
            f"GROUP BY member"):
        job_h[member], job_cost = F(str(h)), job_cost + F(str(cost))
    for m in cfg.members:
        mine[m.code] = member_balance(job_h.get(m.code, F(0)), sum(job_h.values()), job_cost, expected[m.code])
        st = build_statement(chdb_engine, db, m.code, month)
        assert st.balance == Decimal(mine[m.code].numerator / mine[m.code].denominator).quantize(Decimal("0.01"))
        assert abs(s.balances[m.code] - st.balance) <= Decimal("0.01")
        assert st.contribution_notes()[0].startswith("balance rule contributed_value: contributed ")
    assert sum(mine.values()) == 0
    # the same ledger under the budget-key rule gives the shares of the config
    plain = cfg.model_copy(update={"balance_rule": "contribution_share"})
    assert contributions(chdb_engine, db, plain, start, end).shares == {
        m.code: F(m.contribution_share) for m in cfg.members}


def test_the_audits_read_in_chunks_and_give_what_one_pass_gives(ledger_db, monkeypatch) -> None:
    """verify reads a few batches at a time and reconcile/recompute a slice of hours at a time
    (bounded memory at a year of data): chunks as small as one batch and a few windows must find
    exactly what one pass finds, damage across a chunk boundary included."""
    import ledger.audit as audit_mod
    import ledger.verify as verify_mod

    engine, db = ledger_db
    eid, energy = one_entry(engine, db)
    mutate(engine, f"ALTER TABLE {db}.ledger_entries UPDATE energy_mj = {energy + 1} WHERE entry_id = '{eid}'")
    mutate(engine, f"ALTER TABLE {db}.ledger_batches DELETE WHERE seq = 3")

    def run() -> tuple[object, ...]:
        seen: list[tuple[int, int]] = []
        v = verify_ledger(engine, db, *ALL, progress=lambda d, t: seen.append((d, t)))
        r = reconcile(engine, db, *ALL, progress=lambda d, t: seen.append((d, t)))
        rc = recompute(engine, db, *ALL, progress=lambda d, t: seen.append((d, t)))
        return ((v.batches, v.entries, sorted(p.line() for p in v.problems)),
                (r.windows, r.gpu_windows, r.residuals, r.gaps), (rc.windows, rc.entries, sorted(rc.differences)),
                seen[-1])

    whole = run()
    assert whole[1][2] and whole[2][2] and {"broken_link", "entry_changed"} <= {
        line.split(": ")[1] for line in whole[0][2]}
    monkeypatch.setattr(verify_mod, "CHUNK_BATCHES", 1)
    monkeypatch.setattr(audit_mod, "SLICE_WINDOWS", 3)
    slices = audit_mod.time_slices(engine, db, *ALL)
    assert len(slices) >= 3 and sum(n for _, _, n in slices) == whole[1][0]  # cut at whole hours
    assert all(a < b for a, b, _ in slices) and all(x[1] == y[0] for x, y in zip(slices, slices[1:], strict=False))
    chunked = run()
    assert chunked[:3] == whole[:3]
    assert chunked[3] == (whole[1][0], whole[1][0])  # the last progress call: all windows of all


def test_time_slices_take_the_drivers_time_zone_aware_hours_as_utc() -> None:
    """clickhouse-driver may return DateTime values time-zone aware (the server's zone); the
    period's bounds are naive UTC. Slices cut at the same instants either way."""
    from datetime import UTC, timedelta, timezone
    from datetime import datetime as dt

    from ledger.audit import time_slices

    seoul = timezone(timedelta(hours=9))

    class Aware:
        def execute(self, sql: str, params: dict) -> list:
            return [(dt(2026, 11, 1, 9, tzinfo=seoul), 3), (dt(2026, 11, 1, 10, tzinfo=seoul), 3),
                    (dt(2026, 11, 1, 11, tzinfo=seoul), 1)]

    got = time_slices(Aware(), "db", dt(2026, 11, 1), dt(2026, 11, 2), target=3)
    # 09:00 +09:00 is 00:00 UTC: cut after each full hour, the rest up to the end
    assert [(a.hour, b.hour if b.day == 1 else 24, n) for a, b, n in got] == [(0, 1, 3), (1, 2, 3), (2, 24, 1)]
    assert time_slices(Aware(), "db", dt(2026, 11, 1, tzinfo=UTC), dt(2026, 11, 2, tzinfo=UTC), target=3) == got


def test_a_periods_verify_checks_the_whole_chains_records_and_the_periods_manifests(ledger_db) -> None:
    """verify --from --to reads the manifests (the large columns) of the period's batches
    only; the links and batch records of every batch are checked all the same."""
    engine, db = ledger_db
    lo, hi = engine.execute(f"SELECT min_window_start, max_window_start FROM {db}.ledger_batches "
                            f"WHERE chain_id = 'main' ORDER BY max_window_start LIMIT 1")[0]
    period = (lo, hi + timedelta(seconds=1))  # the windows of the earliest batch
    (outside,) = engine.execute(f"SELECT seq FROM {db}.ledger_batches WHERE chain_id = 'main' "
                                f"AND min_window_start > toDateTime('{hi}') ORDER BY seq LIMIT 1")[0]
    # that batch's manifest rewritten: its own hash no longer matches
    mutate(engine, f"ALTER TABLE {db}.ledger_batches UPDATE entry_digests = arrayReverse(entry_digests) "
                   f"WHERE chain_id = 'main' AND seq = {outside}")
    whole = verify_ledger(engine, db, *ALL).problems  # the manifest, and the entries it no longer pairs
    assert whole[0].kind == "bad_entries_hash" and {p.kind for p in whole} == {"bad_entries_hash", "entry_changed"}
    assert {p.seq for p in whole} == {outside}
    assert verify_ledger(engine, db, *period).ok  # outside the period: not read
    # a batch record altered outside the period is found by the period's verify too
    mutate(engine, f"ALTER TABLE {db}.ledger_batches UPDATE energy_mj = energy_mj + 1 "
                   f"WHERE chain_id = 'main' AND seq = {outside}")
    assert [(p.kind, p.seq) for p in verify_ledger(engine, db, *period).problems] == [("bad_batch_hash", outside)]
