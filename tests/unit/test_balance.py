"""The balance rule (ledger/balance.py) with hand-worked answers, and idle policies end to end on chdb."""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction as F
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ledger.balance import member_balance

ROOT = Path(__file__).resolve().parents[2]


def test_the_balance_by_hand() -> None:
    # KR ran 30 of the month's 100 normalised job GPU-hours, which cost 1000; it contributes 24 %:
    # (0.30 - 0.24) x 1000 = 60 owed
    assert member_balance(F(30), F(100), F(1000), F("0.24")) == 60
    # it also bears 50 of the 80 of idle cost that members bear (its site's idle, policy host):
    # + 50 - 0.24 x 80 = + 30.8, so 90.8 in all
    assert member_balance(F(30), F(100), F(1000), F("0.24"), F(50), F(80)) == F("90.8")
    # a member that ran nothing and bears no idle is owed its share of both
    assert member_balance(F(0), F(100), F(1000), F("0.10"), F(0), F(80)) == F(-108)
    # no job usage at all in the month: only the idle term
    assert member_balance(F(0), F(0), F(0), F("0.5"), F(10), F(10)) == 5


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 100), st.integers(0, 10**5)), min_size=1,
                max_size=8), st.integers(0, 10**7))
def test_balances_of_all_members_sum_to_zero(members: list[tuple[int, int, int]], cost: int) -> None:
    hours = [F(h) for h, _, _ in members]
    weight = sum(w for _, w, _ in members)
    shares = [F(w, weight) for _, w, _ in members]
    idle = [F(i) for _, _, i in members]
    total = sum(member_balance(h, sum(hours), F(cost), s, i, sum(idle)) for h, s, i in zip(hours, shares, idle,
                                                                                       strict=True))
    # with no job hours at all the job term is -share x cost for everyone: -cost in all, which no month has
    # (a month with job cost has job hours); otherwise exactly zero
    assert total == (-cost if sum(hours) == 0 else 0)


_counter = itertools.count()


def test_idle_borne_by_the_host_shows_on_its_statement_and_settles(chdb_engine, trace_dir) -> None:
    from agents.publisher import MemoryPublisher
    from agents.runner import replay_trace
    from ledger.migrate import apply_migrations
    from ledger.settlement import settle
    from ledger.statement import build_statement
    from schemas.consortium import parse_config
    from streams.processing import WindowProcessor
    from streams.sink import ClickHouseSink
    from tests.helpers import book_messages

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
    import re

    from dashboards.build import expand
    from dashboards.specs import DASHBOARDS

    finance = next(d for d in DASHBOARDS if d.uid == "bl-finance")
    panels = {p.id: p for p in finance.panels}

    def run(sql: str, variables: dict[str, list[str]]) -> list[tuple[object, ...]]:
        sql = expand(sql, 1_793_491_200, 1_796_083_199, variables)  # November 2026
        for t in ("config_members", "ledger"):
            sql = re.sub(rf"\b(FROM|JOIN)\s+{t}\b", rf"\1 {db}.{t}", sql)
        return chdb_engine.execute(sql)

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
