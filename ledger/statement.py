"""The monthly member statement: what a finance committee signs off.

Usage by site and project (GPU-hours, normalised GPU-hours, energy, cost,
carbon), contribution share against usage share and the resulting balance,
corrections, data-quality notes (gaps, dead letters) and the range of chain
batches covering the month, so the statement can be checked against the
chain. Built here; rendered as CSV, HTML (with a chart) and PDF by
ledger/statement_render.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from ledger import LedgerError
from ledger.balance import member_balance
from ledger.capacity import contributions
from ledger.configs import config_by_hash, period_config_hashes
from ledger.months import month_bounds
from ledger.periods import PERIOD, period_source, rollup_source, sums_source
from schemas import units

__all__ = ["Line", "Statement", "build_statement", "figure"]

MS_PER_H = Decimal(units.MS_PER_HOUR)
MJ_PER_KWH = Decimal(units.MJ_PER_KWH)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Line:
    site: str
    project: str
    gpu_hours: Decimal
    normalised_gpu_hours: Decimal
    energy_kwh: Decimal
    cost_eur: Decimal
    carbon_kg: Decimal


@dataclass
class Statement:
    member: str
    member_name: str
    month: str
    start: datetime
    end: datetime
    currency: str
    config_versions: list[str]
    lines: list[Line]
    total: Line
    consortium_normalised_hours: Decimal
    consortium_cost: Decimal
    contribution_share: Decimal
    usage_share: Decimal
    balance: Decimal
    corrections: list[tuple[str, str, str, Decimal, Decimal, str]] = field(default_factory=list)
    gaps: list[tuple[str, int]] = field(default_factory=list)
    dead_letters: list[tuple[str, str, int]] = field(default_factory=list)
    batches: list[tuple[str, int, str, int, str]] = field(default_factory=list)
    history: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    # the member's job usage (normalised GPU-hours) by where its account came from:
    # job_event, job_event_overrode_claim, self_declared, correction
    sources: list[tuple[str, Decimal]] = field(default_factory=list)
    # sites the config lets send unsigned windows, or name accounts themselves
    unsigned_sites: list[str] = field(default_factory=list)
    self_declaring_sites: list[str] = field(default_factory=list)
    # the checkpoints the statement is drawn up to: (chain, seq, SHA-256 of the
    # signed checkpoint message); empty: everything the database held
    covered: list[tuple[str, int, str]] = field(default_factory=list)
    # each site's idle policy (site, policy, hosting country), the idle cost this member bears, and
    # the idle cost all members bear (ledger/balance.py)
    idle_policies: list[tuple[str, str, str]] = field(default_factory=list)
    idle_borne: Decimal = Decimal(0)
    consortium_idle_cost: Decimal = Decimal(0)
    # in-kind contribution (ledger/capacity.py), when the config has pledges for this member
    capacity: Any = None
    # the month's settlement transfers this member pays or receives (ledger/settlement.py)
    transfers: list[tuple[str, str, Decimal]] = field(default_factory=list)
    # how its carbon figures were made (schemas/grid.py): (method, carbon kg, meter kWh)
    # for method "hourly" (the config's series) and "static" (the site's figure), and the hours
    # a config's series had no value for, per site
    carbon_methods: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    # under balance_rule contributed_value: (its cash, its in-kind value, all members' contributions,
    # its budget key); None under the contribution_share rule
    contributed: tuple[Fraction, Fraction, Fraction, Fraction] | None = None
    series_gaps: list[tuple[str, int]] = field(default_factory=list)

    def transfer_lines(self) -> list[str]:
        return [f"{payer} pays {payee} {figure(amount)} {self.currency}" for payer, payee, amount in self.transfers]

    def capacity_notes(self) -> list[str]:
        c = self.capacity
        if c is None:
            return []

        def pct(x: Any) -> str:
            return f"{x:.1%}" if x is not None else "unknown"

        return [f"in kind: pledged {figure(c.pledged_h)} normalised GPU-hours, delivered {figure(c.delivered_h)} "
                f"({pct(c.delivered_share)}), availability {pct(c.availability)} against a target of "
                f"{pct(c.target)}, worth {figure(c.in_kind_value)} {self.currency} at the consortium's rate"
                + ("; UNDER-DELIVERED" if c.short else "")]

    def idle_notes(self) -> list[str]:
        says = {"apart": "billed to no member (shown apart)", "host": "borne by the hosting member ({})",
                "shared": "shared by all members by contribution share"}
        notes = [f"site {site}: idle GPU time {says.get(policy, policy).format(country)}"
                 for site, policy, country in self.idle_policies]
        if self.consortium_idle_cost:
            notes.append(f"idle cost borne by this member {figure(self.idle_borne)} of "
                         f"{figure(self.consortium_idle_cost)} borne by all members; in the balance against its "
                         "contribution share")
        return notes

    def contribution_notes(self) -> list[str]:
        """How the contribution share was made, under the config's balance rule."""
        if self.contributed is None:
            return []
        cash, in_kind, total, key = (Decimal(x.numerator) / Decimal(x.denominator) for x in self.contributed)
        return [f"balance rule contributed_value: contributed {figure(cash)} {self.currency} in cash (the month's "
                f"budget by its budget key {key:.4f}) + {figure(in_kind)} {self.currency} in kind (delivered "
                f"capacity at the GPU-hour rate) of {figure(total)} {self.currency} contributed by all members: "
                f"contribution share {self.contribution_share:.4f}"]

    def carbon_notes(self) -> list[str]:
        """Which carbon figures follow the grid hour by hour and which use a site's static intensity."""
        by = {method: (kg, kwh) for method, kg, kwh in self.carbon_methods}
        if "hourly" not in by:
            return ["carbon: each site's static grid intensity (grid_gco2_per_kwh in the config)"]
        energy = sum((kwh for _, kwh in by.values()), Decimal(0))
        notes = []
        for method, says in (("hourly", "the hourly grid-intensity series"),
                             ("static", "the site's static intensity, for hours the series has no value")):
            if method in by:
                kg, kwh = by[method]
                share = f"{kwh / energy:.1%}" if energy else "0.0%"
                notes.append(f"carbon: {figure(kg, 3)} kg from {says} ({share} of the energy)")
        notes += [f"site {site}: {n} hour(s) without a grid-intensity value (static figure used)"
                  for site, n in self.series_gaps]
        return notes

    def checkpoint_notes(self) -> list[str]:
        return [f"chain {c} up to batch {seq}, as signed in checkpoint {sha}" for c, seq, sha in self.covered]

    def source_notes(self) -> list[str]:
        """How much of the usage the scheduler vouched for, and what was self-declared or overridden."""
        total = sum((h for _, h in self.sources), Decimal(0))
        notes = [f"site {s} may send UNSIGNED windows (allow_unsigned in the config)" for s in self.unsigned_sites]
        notes += self.idle_notes() + self.capacity_notes() + self.contribution_notes() + self.carbon_notes()
        notes += [f"site {s} may name accounts itself where no job event exists (self_declared_accounts)"
                  for s in self.self_declaring_sites]
        if not total:
            return notes
        return notes + [f"account source {src or 'unrecorded'}: {figure(h)} normalised GPU-hours ({h / total:.1%})"
                        for src, h in self.sources]


def figure(v: Decimal, places: int = 2) -> str:
    """An amount as statements print it: thousands separated, fixed places."""
    return f"{v:,.{places}f}"



def _line(site: str, project: str, gpu_ms: Any, ngh: Any, mj: Any, cost: Any, carbon_g: Any) -> Line:
    return Line(site, project, Decimal(int(gpu_ms)) / MS_PER_H, Decimal(str(ngh)),
                Decimal(int(mj)) / MJ_PER_KWH, Decimal(str(cost)), Decimal(str(carbon_g)) / 1000)


class _Sources:
    """What the statement reads, each a FROM expression whose queries pass %(start)s,
    %(end)s and %(m)s (ledger/periods.py): the sums of the period's committed
    entries (``led``; the member's: ``mine``) and of any time before its end
    (``history``), from the hourly rollup or (``from_rollup`` False) the entries;
    the member's corrections (``corrections``, from the entries), the period's
    raw windows (``windows``) and the batch records (``batches``); of all
    committed batches or (``cover``: chain -> last seq) only of batches up to
    those seqs."""

    def __init__(self, db: str, start: datetime, end: datetime, cover: Mapping[str, int] | None,
                 p: dict[str, Any], from_rollup: bool) -> None:
        ids = None
        self.batches = f"{db}.ledger_batches"
        if cover is not None:
            terms = []
            for i, (chain, seq) in enumerate(sorted(cover.items())):
                p[f"cc{i}"], p[f"cs{i}"] = chain, seq
                terms.append(f"(chain_id = %(cc{i})s AND seq <= %(cs{i})s)")
            where = " OR ".join(terms) or "0"
            ids = f"SELECT batch_id FROM {db}.ledger_batches WHERE {where}"
            self.batches = f"(SELECT * FROM {db}.ledger_batches WHERE {where})"
        self.led = sums_source(db, start, end, ids, rollup=from_rollup)
        self.mine = sums_source(db, start, end, ids, "member = %(m)s", rollup=from_rollup)
        self.windows = period_source(db, "raw_windows", ids)
        # the corrections are read from the entries (they name the entry corrected); the
        # PREWHERE reads the mostly empty `corrects` column, not every column of the member's rows
        self.corrections = period_source(db, "ledger_entries", ids, "member = %(m)s",
                                         period=f"{PERIOD} AND corrects != ''")
        self.history = (rollup_source(db, ids, hours="hour < %(end)s") if from_rollup
                        else period_source(db, "ledger_entries", ids, period="window_start < %(end)s"))


def build_statement(client: Any, db: str, member: str, month: str, cover: Mapping[str, int] | None = None,
                    from_rollup: bool = True, received_before: datetime | None = None) -> Statement:
    """``cover``: draw the statement up to these batches (chain -> seq), the
    ones its signature's checkpoints name; None: all the database holds.
    ``from_rollup``: its sums from the exact hourly rollup (fast; ``reconcile``
    checks the rollup against the entries), or (False) from the chained
    entries themselves, as ``statement-verify --ledger`` draws it again: the
    same statement, byte for byte, while the rollup is intact. ``received_before``:
    count only dead letters received before then (a signed statement: the second
    it was signed, so that drawing it again later counts the same ones)."""
    start, end = month_bounds(month)
    p: dict[str, Any] = {"m": member, "start": start, "end": end,
                         "dl_end": min(end, received_before) if received_before is not None else end}
    src = _Sources(db, start, end, cover, p, from_rollup)
    led, mine = src.led, src.mine
    rows = client.execute(
        f"SELECT site_id, project, sum(gpu_ms), sum(normalised_gpu_hours), sum(energy_mj), sum(cost_eur), "
        f"sum(carbon_g) FROM {mine} WHERE member = %(m)s AND window_start >= %(start)s "
        f"AND window_start < %(end)s GROUP BY site_id, project ORDER BY site_id, project", p)
    lines = [_line(*r) for r in rows]
    hashes = period_config_hashes(client, db, start, end, led, p)
    if not hashes:
        raise LedgerError(f"the ledger has no entries in {month}")
    cfg = config_by_hash(client, db, hashes[0])
    if cfg is None:
        raise LedgerError(f"config {hashes[0]} used in {month} is not in the ledger")
    m = next((x for x in cfg.members if x.code == member), None)
    if m is None:
        raise LedgerError(f"{member} is not a member in config {cfg.version}")
    versions = [f"{h[:12]}" for h in hashes]
    ((c_ngh, c_cost, c_idle, m_ngh, m_idle),) = client.execute(
        f"SELECT sumIf(normalised_gpu_hours, account_kind = 'job'), sumIf(cost_eur, account_kind = 'job'), "
        f"sumIf(cost_eur, account_kind = 'idle' AND member != ''), "
        f"sumIf(normalised_gpu_hours, account_kind = 'job' AND member = %(m)s), "
        f"sumIf(cost_eur, account_kind = 'idle' AND member = %(m)s) FROM {led} "
        f"WHERE window_start >= %(start)s AND window_start < %(end)s", p)
    c_ngh, c_cost = Decimal(str(c_ngh or 0)), Decimal(str(c_cost or 0))
    total = Line("total", "", sum((x.gpu_hours for x in lines), Decimal(0)),
                 sum((x.normalised_gpu_hours for x in lines), Decimal(0)),
                 sum((x.energy_kwh for x in lines), Decimal(0)), sum((x.cost_eur for x in lines), Decimal(0)),
                 sum((x.carbon_kg for x in lines), Decimal(0)))
    job_h = Decimal(str(m_ngh or 0))  # its jobs' hours: idle hours it bears are not usage
    usage = (job_h / c_ngh) if c_ngh else Decimal(0)
    contrib = contributions(client, db, cfg, start, end, led, p)  # the share the config's balance rule gives
    share = contrib.shares[member]
    exact = member_balance(Fraction(job_h), Fraction(c_ngh), Fraction(c_cost), share,
                           Fraction(Decimal(str(m_idle or 0))), Fraction(Decimal(str(c_idle or 0))))
    balance = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(CENT, ROUND_HALF_EVEN)
    st = Statement(member, m.name, month, start, end, cfg.pricing.currency, versions, lines, total, c_ngh, c_cost,
                   Decimal(share.numerator) / Decimal(share.denominator), usage, balance)
    if contrib.rule == "contributed_value":
        st.contributed = (contrib.cash[member], contrib.in_kind[member],
                          sum(contrib.cash.values(), Fraction(0)) + sum(contrib.in_kind.values(), Fraction(0)),
                          Fraction(m.contribution_share))
    st.idle_policies = [(x.id, x.idle_policy, x.country) for x in cfg.sites]
    from ledger.settlement import settle

    settlement = settle(client, db, month, month, led, p)
    st.transfers = [(payer, payee, amount) for payer, payee, amount in settlement.transfers if member in (payer, payee)]
    if any(x.member == member for x in cfg.pledges):
        from ledger.capacity import capacity

        st.capacity = next(c for c in capacity(client, db, cfg, start, end, led, src.windows, p)
                           if c.member == member)
    st.idle_borne, st.consortium_idle_cost = Decimal(str(m_idle or 0)), Decimal(str(c_idle or 0))
    st.corrections = [
        (eid, corrects, project, Decimal(int(mj)) / MJ_PER_KWH, Decimal(str(cost)), reason)
        for eid, corrects, project, mj, cost, reason in client.execute(
            f"SELECT entry_id, corrects, project, energy_mj, cost_eur, reason FROM {src.corrections} AS e "
            f"ANY LEFT JOIN (SELECT corrects, any(reason) AS reason FROM {db}.corrections GROUP BY corrects) "
            f"AS c USING corrects WHERE member = %(m)s AND corrects != '' AND window_start >= %(start)s "
            f"AND window_start < %(end)s ORDER BY corrects, entry_id", p)]
    st.gaps = [(agent, int(missing)) for agent, missing in client.execute(
        f"SELECT agent_id, sum(gap) AS missing FROM (SELECT agent_id, max(seq) - min(seq) + 1 - count() AS gap "
        f"FROM {src.windows} WHERE window_start >= %(start)s AND window_start < %(end)s "
        f"GROUP BY site_id, agent_id, boot_id, splitByChar('/', window_id)[4]) "
        f"GROUP BY agent_id HAVING missing > 0 ORDER BY agent_id", p)]
    st.unsigned_sites = [x.id for x in cfg.sites if x.allow_unsigned]
    st.self_declaring_sites = [x.id for x in cfg.sites if x.self_declared_accounts]
    st.sources = [(src, Decimal(str(h))) for src, h in client.execute(
        f"SELECT account_source, sum(normalised_gpu_hours) AS h FROM {mine} WHERE member = %(m)s "
        f"AND account_kind = 'job' AND window_start >= %(start)s AND window_start < %(end)s "
        f"GROUP BY account_source ORDER BY account_source", p)]
    st.dead_letters = [(s or "(unknown)", r, int(n)) for s, r, n in client.execute(
        f"SELECT site_id, reason, count() FROM {db}.dlq_records FINAL WHERE received_at >= %(start)s "
        f"AND received_at < %(dl_end)s GROUP BY site_id, reason ORDER BY site_id, reason", p)]
    st.batches = [(c, int(a), ah, int(b), bh) for c, a, ah, b, bh in client.execute(
        f"SELECT chain_id, min(seq), argMin(batch_hash, seq), max(seq), argMax(batch_hash, seq) "
        f"FROM {src.batches} WHERE max_window_start >= %(start)s AND min_window_start < %(end)s "
        f"GROUP BY chain_id ORDER BY chain_id", p)]
    st.carbon_methods, st.series_gaps = _carbon_methods(client, db, mine, p, {hashes[0]: cfg})
    hist = client.execute(
        f"SELECT toStartOfMonth(window_start) AS mon, sumIf(normalised_gpu_hours, member = %(m)s), "
        f"sum(normalised_gpu_hours) FROM {src.history} WHERE account_kind = 'job' AND window_start < %(end)s "
        f"GROUP BY mon ORDER BY mon DESC LIMIT 12", p)
    st.history = [(f"{mon:%Y-%m}", Decimal(str(mine)), Decimal(str(allm)) * st.contribution_share)
                  for mon, mine, allm in reversed(hist)]
    return st


def _carbon_methods(client: Any, db: str, led: str, p: dict[str, Any], configs: dict[str, Any],
                    ) -> tuple[list[tuple[str, Decimal, Decimal]], list[tuple[str, int]]]:
    """The member's carbon and energy of the month by how the carbon was priced: each
    (config, site, hour) is hourly where its config's series has the hour, else static. ``configs``:
    those already loaded, by hash (more are loaded as the entries name them)."""
    rows = client.execute(
        f"SELECT config_hash, site_id, toUInt32(toStartOfHour(window_start)) AS hour, sum(carbon_g), "
        f"sum(energy_mj) FROM {led} WHERE member = %(m)s AND window_start >= %(start)s "
        f"AND window_start < %(end)s GROUP BY config_hash, site_id, hour", p)
    configs = dict(configs)
    sums: dict[str, list[Decimal]] = {}
    gaps: dict[str, int] = {}
    for config_hash, site, hour, carbon_g, energy_mj in rows:
        if config_hash not in configs:  # loaded once, found or not
            configs[config_hash] = config_by_hash(client, db, config_hash)
        cfg = configs[config_hash]
        series = cfg.grid_series() if cfg is not None else None
        hourly = series is not None and series.at(site, int(hour) * 10**9) is not None
        if series is not None and not hourly:
            gaps[site] = gaps.get(site, 0) + 1
        acc = sums.setdefault("hourly" if hourly else "static", [Decimal(0), Decimal(0)])
        acc[0] += Decimal(str(carbon_g)) / 1000
        acc[1] += Decimal(int(energy_mj)) / MJ_PER_KWH
    return ([(m, kg, kwh) for m, (kg, kwh) in sorted(sums.items())], sorted(gaps.items()))
