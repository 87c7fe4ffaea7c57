"""A member's statement over several months: a line per month, the period's
total, the year to date, then each month's statement in full.

Each month is the monthly statement (ledger/statement.py), with its own
config and balance; the period's balance is the sum of its months' balances
(as the settlement adds them, ledger/settlement.py) and the year-to-date line
adds the months from January of the last month's year up to that month,
including months before the period. A month without entries has no
statement and counts nothing.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger import LedgerError
from ledger.settlement import month_range
from ledger.statement import Statement, _fmt, build_statement, render_csv, render_html

__all__ = ["PeriodStatement", "build_period_statement", "render_period_csv", "render_period_html",
           "render_period_pdf"]


@dataclass
class PeriodStatement:
    member: str
    member_name: str
    from_month: str
    to_month: str
    currency: str
    statements: list[Statement]  # the months with entries, in order
    empty_months: list[str]
    ytd_months: list[str]
    ytd_balance: Decimal

    @property
    def balance(self) -> Decimal:
        return sum((s.balance for s in self.statements), Decimal(0))

    @property
    def normalised_gpu_hours(self) -> Decimal:
        return sum((s.total.normalised_gpu_hours for s in self.statements), Decimal(0))

    @property
    def cost(self) -> Decimal:
        return sum((s.total.cost_eur for s in self.statements), Decimal(0))


def _month_statement(client: Any, db: str, member: str, month: str, cover: Mapping[str, int] | None,
                     ) -> Statement | None:
    try:
        return build_statement(client, db, member, month, cover)
    except LedgerError as exc:
        if "has no entries" in str(exc):
            return None
        raise


def build_period_statement(client: Any, db: str, member: str, from_month: str, to_month: str,
                           cover: Mapping[str, int] | None = None) -> PeriodStatement:
    months = month_range(from_month, to_month)
    statements, empty = [], []
    for month in months:
        st = _month_statement(client, db, member, month, cover)
        if st is None:
            empty.append(month)
        else:
            statements.append(st)
    if not statements:
        raise LedgerError(f"the ledger has no entries from {from_month} to {to_month}")
    ytd = month_range(f"{to_month[:4]}-01", to_month)
    by_month = {s.month: s for s in statements}
    ytd_balance = Decimal(0)
    for month in ytd:
        st = by_month.get(month) or _month_statement(client, db, member, month, cover)
        if st is not None:
            ytd_balance += st.balance
    last = statements[-1]
    return PeriodStatement(member, last.member_name, from_month, to_month, last.currency, statements, empty, ytd,
                           ytd_balance)


def _rows(p: PeriodStatement) -> list[list[str]]:
    rows = [[s.month, _fmt(s.total.normalised_gpu_hours, 3), _fmt(s.total.cost_eur), f"{s.usage_share:.4f}",
             f"{s.contribution_share:.4f}", _fmt(s.balance)] for s in p.statements]
    rows += [[m, "0.000", "0.00", "", "", "0.00"] for m in p.empty_months]
    rows.sort(key=lambda r: r[0])
    rows.append(["period_total", _fmt(p.normalised_gpu_hours, 3), _fmt(p.cost), "", "", _fmt(p.balance)])
    rows.append([f"year_to_date {p.ytd_months[0]}..{p.ytd_months[-1]}", "", "", "", "", _fmt(p.ytd_balance)])
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
<p>Balance over the period {_fmt(p.balance)} {e(p.currency)}; year to date ({p.ytd_months[0]} to
{p.ytd_months[-1]}) {_fmt(p.ytd_balance)} {e(p.currency)}. Positive: the member used more than it contributed.</p>
<table><tr>{''.join(f'<th>{h}</th>' for h in HEADER)}</tr>{table}</table>
{months}
</body></html>
"""


def render_period_pdf(p: PeriodStatement, path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table

    from ledger.statement import _pdf_story

    ss = getSampleStyleSheet()
    story: list[Any] = [
        Paragraph(f"Member statement: {html.escape(p.member_name)} ({p.member}), {p.from_month} to {p.to_month}",
                  ss["Title"]),
        Paragraph(f"Balance over the period {_fmt(p.balance)} {p.currency}; year to date ({p.ytd_months[0]} to "
                  f"{p.ytd_months[-1]}) {_fmt(p.ytd_balance)} {p.currency}.", ss["Heading3"]),
        Spacer(1, 8), Table([HEADER, *_rows(p)], repeatRows=1)]
    for st in p.statements:
        story += [PageBreak(), *_pdf_story(st)]
    SimpleDocTemplate(str(path), pagesize=A4,
                      title=f"bridgeledger statement {p.member} {p.from_month} to {p.to_month}").build(story)
