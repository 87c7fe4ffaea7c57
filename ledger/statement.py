"""The monthly member statement: what a finance committee signs off.

Usage by site and project (GPU-hours, normalised GPU-hours, energy, cost,
carbon), contribution share against usage share and the resulting balance,
corrections, data-quality notes (gaps, dead letters) and the range of chain
batches covering the month, so the statement can be checked against the
chain. Rendered as CSV, HTML (with a chart) and PDF.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from ledger import LedgerError
from ledger.balance import member_balance
from ledger.configs import config_by_hash, period_config_hashes
from schemas import units

__all__ = ["Statement", "build_statement", "render_csv", "render_html", "render_pdf"]

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

    def transfer_lines(self) -> list[str]:
        return [f"{payer} pays {payee} {_fmt(amount)} {self.currency}" for payer, payee, amount in self.transfers]

    def capacity_notes(self) -> list[str]:
        c = self.capacity
        if c is None:
            return []

        def pct(x: Any) -> str:
            return f"{x:.1%}" if x is not None else "unknown"

        return [f"in kind: pledged {_fmt(c.pledged_h)} normalised GPU-hours, delivered {_fmt(c.delivered_h)} "
                f"({pct(c.delivered_share)}), availability {pct(c.availability)} against a target of "
                f"{pct(c.target)}, worth {_fmt(c.in_kind_value)} {self.currency} at the consortium's rate"
                + ("; UNDER-DELIVERED" if c.short else "")]

    def idle_notes(self) -> list[str]:
        says = {"apart": "billed to no member (shown apart)", "host": "borne by the hosting member ({})",
                "shared": "shared by all members by contribution share"}
        notes = [f"site {site}: idle GPU time {says.get(policy, policy).format(country)}"
                 for site, policy, country in self.idle_policies]
        if self.consortium_idle_cost:
            notes.append(f"idle cost borne by this member {_fmt(self.idle_borne)} of {_fmt(self.consortium_idle_cost)} "
                         f"borne by all members; in the balance against its contribution share")
        return notes

    def checkpoint_notes(self) -> list[str]:
        return [f"chain {c} up to batch {seq}, as signed in checkpoint {sha}" for c, seq, sha in self.covered]

    def source_notes(self) -> list[str]:
        """How much of the usage the scheduler vouched for, and what was self-declared or overridden."""
        total = sum((h for _, h in self.sources), Decimal(0))
        notes = [f"site {s} may send UNSIGNED windows (allow_unsigned in the config)" for s in self.unsigned_sites]
        notes += self.idle_notes() + self.capacity_notes()
        notes += [f"site {s} may name accounts itself where no job event exists (self_declared_accounts)"
                  for s in self.self_declaring_sites]
        if not total:
            return notes
        return notes + [f"account source {src or 'unrecorded'}: {_fmt(h)} normalised GPU-hours ({h / total:.1%})"
                        for src, h in self.sources]


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError as exc:
        raise LedgerError(f"month {month!r}: expected YYYY-MM") from exc
    end = datetime(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


def _line(site: str, project: str, gpu_ms: Any, ngh: Any, mj: Any, cost: Any, carbon_g: Any) -> Line:
    return Line(site, project, Decimal(int(gpu_ms)) / MS_PER_H, Decimal(str(ngh)),
                Decimal(int(mj)) / MJ_PER_KWH, Decimal(str(cost)), Decimal(str(carbon_g)) / 1000)


def _sources(db: str, cover: Mapping[str, int] | None, p: dict[str, Any]) -> tuple[str, str, str]:
    """What the statement reads: the ledger, windows and batch records, all of
    them or (``cover``: chain -> last seq) only batches up to those seqs."""
    if cover is None:
        return f"{db}.ledger", f"{db}.windows", f"{db}.ledger_batches"
    terms = []
    for i, (chain, seq) in enumerate(sorted(cover.items())):
        p[f"cc{i}"], p[f"cs{i}"] = chain, seq
        terms.append(f"(chain_id = %(cc{i})s AND seq <= %(cs{i})s)")
    where = " OR ".join(terms) or "0"
    ids = f"SELECT batch_id FROM {db}.ledger_batches WHERE {where}"
    return (f"(SELECT * FROM {db}.ledger_entries WHERE batch_id IN ({ids}))",
            f"(SELECT * FROM {db}.raw_windows WHERE batch_id IN ({ids}))",
            f"(SELECT * FROM {db}.ledger_batches WHERE {where})")


def build_statement(client: Any, db: str, member: str, month: str, cover: Mapping[str, int] | None = None,
                    ) -> Statement:
    """``cover``: draw the statement up to these batches (chain -> seq), the
    ones its signature's checkpoints name; None: all the database holds."""
    start, end = _month_bounds(month)
    p: dict[str, Any] = {"m": member, "start": start, "end": end}
    led, win, bat = _sources(db, cover, p)
    rows = client.execute(
        f"SELECT site_id, project, sum(gpu_ms), sum(normalised_gpu_hours), sum(energy_mj), sum(cost_eur), "
        f"sum(carbon_g) FROM {led} WHERE member = %(m)s AND window_start >= %(start)s "
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
    exact = member_balance(Fraction(job_h), Fraction(c_ngh), Fraction(c_cost), Fraction(m.contribution_share),
                           Fraction(Decimal(str(m_idle or 0))), Fraction(Decimal(str(c_idle or 0))))
    balance = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(CENT, ROUND_HALF_EVEN)
    st = Statement(member, m.name, month, start, end, cfg.pricing.currency, versions, lines, total, c_ngh, c_cost,
                   m.contribution_share, usage, balance)
    st.idle_policies = [(x.id, x.idle_policy, x.country) for x in cfg.sites]
    from ledger.settlement import settle

    settlement = settle(client, db, month, month, led, p)
    st.transfers = [(payer, payee, amount) for payer, payee, amount in settlement.transfers if member in (payer, payee)]
    if any(x.member == member for x in cfg.pledges):
        from ledger.capacity import capacity

        st.capacity = next(c for c in capacity(client, db, cfg, start, end) if c.member == member)
    st.idle_borne, st.consortium_idle_cost = Decimal(str(m_idle or 0)), Decimal(str(c_idle or 0))
    st.corrections = [
        (eid, corrects, project, Decimal(int(mj)) / MJ_PER_KWH, Decimal(str(cost)), reason)
        for eid, corrects, project, mj, cost, reason in client.execute(
            f"SELECT entry_id, corrects, project, energy_mj, cost_eur, reason FROM {led} "
            f"ANY LEFT JOIN (SELECT corrects, any(reason) AS reason FROM {db}.corrections GROUP BY corrects) "
            f"AS c USING corrects WHERE member = %(m)s AND corrects != '' AND window_start >= %(start)s "
            f"AND window_start < %(end)s ORDER BY corrects, entry_id", p)]
    st.gaps = [(agent, int(missing)) for agent, missing in client.execute(
        f"SELECT agent_id, sum(gap) AS missing FROM (SELECT agent_id, max(seq) - min(seq) + 1 - count() AS gap "
        f"FROM {win} WHERE window_start >= %(start)s AND window_start < %(end)s "
        f"GROUP BY site_id, agent_id, boot_id, splitByChar('/', window_id)[4]) "
        f"GROUP BY agent_id HAVING missing > 0 ORDER BY agent_id", p)]
    st.unsigned_sites = [x.id for x in cfg.sites if x.allow_unsigned]
    st.self_declaring_sites = [x.id for x in cfg.sites if x.self_declared_accounts]
    st.sources = [(src, Decimal(str(h))) for src, h in client.execute(
        f"SELECT account_source, sum(normalised_gpu_hours) AS h FROM {led} WHERE member = %(m)s "
        f"AND account_kind = 'job' AND window_start >= %(start)s AND window_start < %(end)s "
        f"GROUP BY account_source ORDER BY account_source", p)]
    st.dead_letters = [(s or "(unknown)", r, int(n)) for s, r, n in client.execute(
        f"SELECT site_id, reason, count() FROM {db}.dlq_records FINAL WHERE received_at >= %(start)s "
        f"AND received_at < %(end)s GROUP BY site_id, reason ORDER BY site_id, reason", p)]
    st.batches = [(c, int(a), ah, int(b), bh) for c, a, ah, b, bh in client.execute(
        f"SELECT chain_id, min(seq), argMin(batch_hash, seq), max(seq), argMax(batch_hash, seq) "
        f"FROM {bat} WHERE max_window_start >= %(start)s AND min_window_start < %(end)s "
        f"GROUP BY chain_id ORDER BY chain_id", p)]
    hist = client.execute(
        f"SELECT toStartOfMonth(window_start) AS mon, sumIf(normalised_gpu_hours, member = %(m)s), "
        f"sum(normalised_gpu_hours) FROM {led} WHERE account_kind = 'job' AND window_start < %(end)s "
        f"GROUP BY mon ORDER BY mon DESC LIMIT 12", p)
    st.history = [(f"{mon:%Y-%m}", Decimal(str(mine)), Decimal(str(allm)) * m.contribution_share)
                  for mon, mine, allm in reversed(hist)]
    return st


def _fmt(v: Decimal, places: int = 2) -> str:
    return f"{v:,.{places}f}"


def render_csv(st: Statement) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["statement", st.member, st.member_name, st.month, f"configs {' '.join(st.config_versions)}"])
    w.writerow([])
    w.writerow(["site", "project", "gpu_hours", "normalised_gpu_hours", "energy_kwh", f"cost_{st.currency.lower()}",
                "carbon_kg"])
    for x in [*st.lines, st.total]:
        w.writerow([x.site, x.project, _fmt(x.gpu_hours, 3), _fmt(x.normalised_gpu_hours, 3),
                    _fmt(x.energy_kwh, 3), _fmt(x.cost_eur, 2), _fmt(x.carbon_kg, 3)])
    w.writerow([])
    w.writerow(["contribution_share", "usage_share", "consortium_normalised_gpu_hours",
                f"consortium_cost_{st.currency.lower()}", f"balance_{st.currency.lower()}"])
    w.writerow([f"{st.contribution_share:.4f}", f"{st.usage_share:.4f}", _fmt(st.consortium_normalised_hours, 3),
                _fmt(st.consortium_cost), _fmt(st.balance)])
    w.writerow([])
    w.writerow(["correction_entry", "corrects", "project", "energy_kwh", "cost", "reason"])
    for c in st.corrections:
        w.writerow([c[0], c[1], c[2], _fmt(c[3], 3), _fmt(c[4]), c[5]])
    w.writerow([])
    w.writerow(["chain", "first_batch", "first_hash", "last_batch", "last_hash"])
    for b in st.batches:
        w.writerow(list(b))
    for chain, seq, sha in st.covered:
        w.writerow(["checkpoint", chain, seq, sha])
    w.writerow([])
    w.writerow(["data_quality", "what", "count"])
    for agent, missing in st.gaps:
        w.writerow(["gap", agent, missing])
    for site, reason, n in st.dead_letters:
        w.writerow(["dead_letters", f"{site}:{reason}", n])
    for src, hours in st.sources:
        w.writerow(["account_source", src, _fmt(hours)])
    for note in st.idle_notes() + st.capacity_notes():
        w.writerow(["note", note, ""])
    w.writerow([])
    w.writerow(["settlement_payer", "payee", f"amount_{st.currency.lower()}"])
    for payer, payee, amount in st.transfers:
        w.writerow([payer, payee, _fmt(amount)])
    return out.getvalue()


def _chart_svg(history: list[tuple[str, Decimal, Decimal]], width: int = 640, height: int = 220) -> str:
    if not history:
        return ""
    top = max(max(u, e) for _, u, e in history) or Decimal(1)
    bw = (width - 60) / len(history)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="monthly usage against entitlement">']
    for i, (mon, used, ent) in enumerate(history):
        x = 50 + i * bw
        hu = float(used / top) * (height - 50)
        he = float(ent / top) * (height - 50)
        parts.append(f'<rect x="{x + 4:.1f}" y="{height - 30 - hu:.1f}" width="{bw * 0.45:.1f}" height="{hu:.1f}" '
                     f'fill="#2b6cb0"><title>{mon} used {used:.1f}</title></rect>')
        parts.append(f'<rect x="{x + 4 + bw * 0.45:.1f}" y="{height - 30 - he:.1f}" width="{bw * 0.35:.1f}" '
                     f'height="{he:.1f}" fill="#a0aec0"><title>{mon} entitlement {ent:.1f}</title></rect>')
        parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - 12}" font-size="11" text-anchor="middle">{mon}</text>')
    parts.append(f'<text x="50" y="14" font-size="12">normalised GPU-hours: used (blue) vs entitlement (grey); '
                 f'max {top:.1f}</text></svg>')
    return "".join(parts)


def render_html(st: Statement) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(x.site)}</td><td>{e(x.project)}</td><td>{_fmt(x.gpu_hours)}</td>"
        f"<td>{_fmt(x.normalised_gpu_hours)}</td><td>{_fmt(x.energy_kwh)}</td><td>{_fmt(x.cost_eur)}</td>"
        f"<td>{_fmt(x.carbon_kg)}</td></tr>" for x in st.lines)
    t = st.total
    owes = "owes" if st.balance > 0 else "is owed"
    corr = "".join(f"<tr><td>{e(c[1][:16])}…</td><td>{e(c[2])}</td><td>{_fmt(c[3], 3)}</td><td>{_fmt(c[4])}</td>"
                   f"<td>{e(c[5])}</td></tr>" for c in st.corrections) or "<tr><td colspan=5>none</td></tr>"
    dq = "".join(f"<li>agent {e(a)}: {n} window(s) missing</li>" for a, n in st.gaps)
    dq += "".join(f"<li>site {e(s)}: {n} message(s) rejected ({e(r)})</li>" for s, r, n in st.dead_letters)
    dq += "".join(f"<li>{e(n)}</li>" for n in st.source_notes())
    settle_html = "".join(f"<li>{e(line)}</li>" for line in st.transfer_lines()) or "<li>no transfer</li>"
    chain = "".join(f"<li>chain <code>{e(c)}</code>: batches {a}–{b}, first hash <code>{ah}</code>, "
                    f"last hash <code>{bh}</code></li>" for c, a, ah, b, bh in st.batches)
    chain += "".join(f"<li>{e(n)}</li>" for n in st.checkpoint_notes())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bridgeledger statement {e(st.member)} {st.month}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#1a202c}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #cbd5e0;padding:.3em .5em;text-align:right}}
td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){{text-align:left}}.big{{font-size:1.3em}}</style></head>
<body>
<h1>Member statement: {e(st.member_name)} ({e(st.member)}), {st.month}</h1>
<p>Period {st.start:%Y-%m-%d} to {st.end:%Y-%m-%d} (UTC, end exclusive). Consortium config(s):
{", ".join(e(v) for v in st.config_versions)}. Amounts in {e(st.currency)}.</p>
<p class="big">Usage share {st.usage_share:.2%} against contribution share {st.contribution_share:.2%}:
balance <b>{_fmt(st.balance)} {e(st.currency)}</b> ({e(st.member)} {owes} this amount).</p>
<p>The consortium's job usage this month: {_fmt(st.consortium_normalised_hours)} normalised GPU-hours,
{_fmt(st.consortium_cost)} {e(st.currency)}.</p>
<h2>Usage by site and project</h2>
<table><tr><th>site</th><th>project</th><th>GPU-hours</th><th>normalised GPU-hours</th><th>energy kWh</th>
<th>cost</th><th>CO2 kg</th></tr>{rows}
<tr><th>total</th><th></th><th>{_fmt(t.gpu_hours)}</th><th>{_fmt(t.normalised_gpu_hours)}</th>
<th>{_fmt(t.energy_kwh)}</th><th>{_fmt(t.cost_eur)}</th><th>{_fmt(t.carbon_kg)}</th></tr></table>
<h2>Monthly usage against entitlement</h2>
{_chart_svg(st.history)}
<h2>Corrections</h2>
<table><tr><th>corrects entry</th><th>project</th><th>energy kWh</th><th>cost</th><th>reason</th></tr>{corr}</table>
<h2>Data quality</h2><ul>{dq or "<li>no gaps, no rejected messages</li>"}</ul>
<h2>Settlement of the month</h2><ul>{settle_html}</ul>
<h2>Chain</h2><ul>{chain}</ul>
<p>Check: <code>bridgeledger ledger verify --from {st.start:%Y-%m-%d} --to {st.end:%Y-%m-%d}</code></p>
</body></html>
"""


def render_pdf(st: Statement, path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import SimpleDocTemplate

    SimpleDocTemplate(str(path), pagesize=A4, title=f"bridgeledger statement {st.member} {st.month}").build(
        _pdf_story(st))


def _pdf_story(st: Statement) -> list[Any]:
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

    ss = getSampleStyleSheet()
    owes = "owes" if st.balance > 0 else "is owed"
    story: list[Any] = [
        Paragraph(f"Member statement: {html.escape(st.member_name)} ({st.member}), {st.month}", ss["Title"]),
        Paragraph(f"Period {st.start:%Y-%m-%d} to {st.end:%Y-%m-%d} UTC. Config(s): "
                  f"{', '.join(st.config_versions)}. Amounts in {st.currency}.", ss["Normal"]),
        Spacer(1, 8),
        Paragraph(f"Usage share {st.usage_share:.2%} against contribution share {st.contribution_share:.2%}: "
                  f"balance {_fmt(st.balance)} {st.currency} ({st.member} {owes} this amount).", ss["Heading3"]),
    ]
    data = [["site", "project", "GPU-h", "norm. GPU-h", "kWh", "cost", "CO2 kg"]]
    for x in [*st.lines, st.total]:
        data.append([x.site, x.project, _fmt(x.gpu_hours), _fmt(x.normalised_gpu_hours), _fmt(x.energy_kwh),
                     _fmt(x.cost_eur), _fmt(x.carbon_kg)])
    table = Table(data, repeatRows=1)
    table.setStyle(TableStyle([("FONTSIZE", (0, 0), (-1, -1), 8), ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
                               ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                               ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.black)]))
    story += [Spacer(1, 8), Paragraph("Usage by site and project", ss["Heading2"]), table]
    if st.history:
        d = Drawing(460, 180)
        chart = VerticalBarChart()
        chart.x, chart.y, chart.width, chart.height = 40, 30, 400, 130
        chart.data = [[float(u) for _, u, _ in st.history], [float(en) for _, _, en in st.history]]
        chart.categoryAxis.categoryNames = [mon for mon, _, _ in st.history]
        chart.bars[0].fillColor, chart.bars[1].fillColor = colors.HexColor("#2b6cb0"), colors.HexColor("#a0aec0")
        chart.valueAxis.valueMin = 0  # bars start at zero, or small usage disappears
        d.add(chart)
        story += [Paragraph("Monthly normalised GPU-hours: used (blue) vs entitlement (grey)", ss["Heading2"]), d]
    story.append(Paragraph("Corrections", ss["Heading2"]))
    story += [Paragraph(f"{c[2]}: {_fmt(c[3], 3)} kWh, {_fmt(c[4])} {st.currency} (corrects {c[1][:16]}…): "
                        f"{html.escape(c[5])}", ss["Normal"]) for c in st.corrections] or [
        Paragraph("none", ss["Normal"])]
    story.append(Paragraph("Data quality", ss["Heading2"]))
    notes = [f"agent {a}: {n} window(s) missing" for a, n in st.gaps]
    notes += [f"site {s}: {n} message(s) rejected ({r})" for s, r, n in st.dead_letters]
    notes += st.source_notes()
    story += [Paragraph(n, ss["Normal"]) for n in notes] or [Paragraph("no gaps, no rejected messages", ss["Normal"])]
    story.append(Paragraph("Settlement of the month", ss["Heading2"]))
    story += [Paragraph(line, ss["Normal"]) for line in st.transfer_lines()] or [Paragraph("no transfer", ss["Normal"])]
    story.append(Paragraph("Chain", ss["Heading2"]))
    story += [Paragraph(f"chain {c}: batches {a} to {b}; first hash {ah}; last hash {bh}", ss["Code"])
              for c, a, ah, b, bh in st.batches]
    story += [Paragraph(n, ss["Code"]) for n in st.checkpoint_notes()]
    return story
