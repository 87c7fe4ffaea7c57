"""Statements on paper: a month's or a period's statement as CSV, HTML (with a
chart) and PDF. Only formatting here; every figure comes built from
ledger/statement.py and ledger/period_statement.py."""

from __future__ import annotations

import csv
import html
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.period_statement import PeriodStatement
from ledger.statement import Statement, figure

__all__ = ["render_csv", "render_html", "render_pdf", "render_period_csv", "render_period_html",
           "render_period_pdf"]


def render_csv(st: Statement) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["statement", st.member, st.member_name, st.month, f"configs {' '.join(st.config_versions)}"])
    w.writerow([])
    w.writerow(["site", "project", "gpu_hours", "normalised_gpu_hours", "energy_kwh", f"cost_{st.currency.lower()}",
                "carbon_kg"])
    for x in [*st.lines, st.total]:
        w.writerow([x.site, x.project, figure(x.gpu_hours, 3), figure(x.normalised_gpu_hours, 3),
                    figure(x.energy_kwh, 3), figure(x.cost_eur, 2), figure(x.carbon_kg, 3)])
    w.writerow([])
    w.writerow(["contribution_share", "usage_share", "consortium_normalised_gpu_hours",
                f"consortium_cost_{st.currency.lower()}", f"balance_{st.currency.lower()}"])
    w.writerow([f"{st.contribution_share:.4f}", f"{st.usage_share:.4f}", figure(st.consortium_normalised_hours, 3),
                figure(st.consortium_cost), figure(st.balance)])
    w.writerow([])
    w.writerow(["correction_entry", "corrects", "project", "energy_kwh", "cost", "reason"])
    for c in st.corrections:
        w.writerow([c[0], c[1], c[2], figure(c[3], 3), figure(c[4]), c[5]])
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
        w.writerow(["account_source", src, figure(hours)])
    for note in st.idle_notes() + st.capacity_notes() + st.contribution_notes() + st.carbon_notes():
        w.writerow(["note", note, ""])
    w.writerow([])
    w.writerow(["settlement_payer", "payee", f"amount_{st.currency.lower()}"])
    for payer, payee, amount in st.transfers:
        w.writerow([payer, payee, figure(amount)])
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
        f"<tr><td>{e(x.site)}</td><td>{e(x.project)}</td><td>{figure(x.gpu_hours)}</td>"
        f"<td>{figure(x.normalised_gpu_hours)}</td><td>{figure(x.energy_kwh)}</td><td>{figure(x.cost_eur)}</td>"
        f"<td>{figure(x.carbon_kg)}</td></tr>" for x in st.lines)
    t = st.total
    owes = "owes" if st.balance > 0 else "is owed"
    corr = "".join(f"<tr><td>{e(c[1][:16])}…</td><td>{e(c[2])}</td><td>{figure(c[3], 3)}</td><td>{figure(c[4])}</td>"
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
balance <b>{figure(st.balance)} {e(st.currency)}</b> ({e(st.member)} {owes} this amount).</p>
<p>The consortium's job usage this month: {figure(st.consortium_normalised_hours)} normalised GPU-hours,
{figure(st.consortium_cost)} {e(st.currency)}.</p>
<h2>Usage by site and project</h2>
<table><tr><th>site</th><th>project</th><th>GPU-hours</th><th>normalised GPU-hours</th><th>energy kWh</th>
<th>cost</th><th>CO2 kg</th></tr>{rows}
<tr><th>total</th><th></th><th>{figure(t.gpu_hours)}</th><th>{figure(t.normalised_gpu_hours)}</th>
<th>{figure(t.energy_kwh)}</th><th>{figure(t.cost_eur)}</th><th>{figure(t.carbon_kg)}</th></tr></table>
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

    SimpleDocTemplate(str(path), pagesize=A4, title=f"bridgeledger statement {st.member} {st.month}",
                      invariant=1).build(  # no timestamp or random id: the same statement, the same bytes
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
                  f"balance {figure(st.balance)} {st.currency} ({st.member} {owes} this amount).", ss["Heading3"]),
    ]
    data = [["site", "project", "GPU-h", "norm. GPU-h", "kWh", "cost", "CO2 kg"]]
    for x in [*st.lines, st.total]:
        data.append([x.site, x.project, figure(x.gpu_hours), figure(x.normalised_gpu_hours), figure(x.energy_kwh),
                     figure(x.cost_eur), figure(x.carbon_kg)])
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
    story += [Paragraph(f"{c[2]}: {figure(c[3], 3)} kWh, {figure(c[4])} {st.currency} (corrects {c[1][:16]}…): "
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


def _rows(p: PeriodStatement) -> list[list[str]]:
    rows = [[s.month, figure(s.total.normalised_gpu_hours, 3), figure(s.total.cost_eur), f"{s.usage_share:.4f}",
             f"{s.contribution_share:.4f}", figure(s.balance)] for s in p.statements]
    rows += [[m, "0.000", "0.00", "", "", "0.00"] for m in p.empty_months]
    rows.sort(key=lambda r: r[0])
    rows.append(["period_total", figure(p.normalised_gpu_hours, 3), figure(p.cost), "", "", figure(p.balance)])
    rows.append([f"year_to_date {p.ytd_months[0]}..{p.ytd_months[-1]}", "", "", "", "", figure(p.ytd_balance)])
    return rows


HEADER = ["month", "normalised_gpu_hours", "cost", "usage_share", "contribution_share", "balance"]


def render_period_csv(p: PeriodStatement) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["period_statement", p.member, p.member_name, p.from_month, p.to_month, p.currency])
    w.writerow(HEADER)
    w.writerows(_rows(p))
    for st in p.statements:
        w.writerow([])
        out.write(render_csv(st))
    return out.getvalue()


def render_period_html(p: PeriodStatement) -> str:
    e = html.escape
    table = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in _rows(p))
    months = "".join(
        "<section>" + render_html(st).split("<body>", 1)[1].rsplit("</body>", 1)[0] + "</section>"
        for st in p.statements)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>bridgeledger statement {e(p.member)} {p.from_month} to {p.to_month}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#1a202c}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #cbd5e0;padding:.3em .5em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}section{{border-top:3px solid #2d3748;margin-top:2em}}</style></head>
<body><h1>{e(p.member_name)} ({e(p.member)}), {p.from_month} to {p.to_month}</h1>
<p>Balance over the period {figure(p.balance)} {e(p.currency)}; year to date ({p.ytd_months[0]} to
{p.ytd_months[-1]}) {figure(p.ytd_balance)} {e(p.currency)}. Positive: the member used more than it contributed.</p>
<table><tr>{''.join(f'<th>{h}</th>' for h in HEADER)}</tr>{table}</table>
{months}
</body></html>
"""


def render_period_pdf(p: PeriodStatement, path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table

    ss = getSampleStyleSheet()
    story: list[Any] = [
        Paragraph(f"Member statement: {html.escape(p.member_name)} ({p.member}), {p.from_month} to {p.to_month}",
                  ss["Title"]),
        Paragraph(f"Balance over the period {figure(p.balance)} {p.currency}; year to date ({p.ytd_months[0]} to "
                  f"{p.ytd_months[-1]}) {figure(p.ytd_balance)} {p.currency}.", ss["Heading3"]),
        Spacer(1, 8), Table([HEADER, *_rows(p)], repeatRows=1)]
    for st in p.statements:
        story += [PageBreak(), *_pdf_story(st)]
    SimpleDocTemplate(str(path), pagesize=A4, title=f"bridgeledger statement {p.member} {p.from_month} to {p.to_month}",
                      invariant=1).build(story)
