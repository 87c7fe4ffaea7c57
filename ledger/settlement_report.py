"""The settlement as files: CSV for finance tools, HTML to read and sign off."""

from __future__ import annotations

import csv
import html
import io
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from ledger.settlement import Settlement

__all__ = ["render_settlement_csv", "render_settlement_html"]

RULE = ("balances: the period's exact balances, rounded to the cent by largest remainder so that they sum to "
        "zero; transfers: debtors pay creditors in proportion, each row rounded by largest remainder, single cents "
        "moved within rows until every creditor receives its balance (ledger/settlement.py)")


def _money(x: Fraction | Decimal) -> str:
    d = Decimal(x.numerator) / Decimal(x.denominator) if isinstance(x, Fraction) else x
    return str(d.quantize(Decimal("0.01"), ROUND_HALF_EVEN))


def render_settlement_csv(s: Settlement) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["settlement", s.from_month, s.to_month, s.currency])
    w.writerow(["member", "name", *s.months, "period_balance"])
    for m, bal in s.balances.items():
        w.writerow([m, s.names.get(m, ""), *(_money(s.monthly[m][month]) for month in s.months), str(bal)])
    w.writerow([])
    w.writerow(["payer", "payee", "amount", "currency"])
    for payer, payee, amount in s.transfers:
        w.writerow([payer, payee, str(amount), s.currency])
    w.writerow([])
    w.writerow(["rounding_rule", RULE])
    return buf.getvalue()


def render_settlement_html(s: Settlement) -> str:
    e = html.escape
    members = list(s.balances)
    head = "".join(f"<th>{e(m)}</th>" for m in s.months)
    rows = "".join(
        f"<tr><td>{e(m)}</td><td>{e(s.names.get(m, ''))}</td>"
        + "".join(f"<td>{_money(s.monthly[m][month])}</td>" for month in s.months)
        + f"<td><b>{s.balances[m]}</b></td></tr>" for m in members)
    paid = {(p, q): a for p, q, a in s.transfers}
    matrix = "".join(
        f"<tr><td>{e(p)} pays</td>" + "".join(f"<td>{paid.get((p, q), '')}</td>" for q in members) + "</tr>"
        for p in members if s.balances[p] > 0)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bridgeledger settlement {s.from_month} to {s.to_month}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #cbd5e0;padding:.3em .6em;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body>
<h1>Settlement {s.from_month} to {s.to_month} ({e(s.currency)})</h1>
<p>A positive balance: the member used more than it contributed and pays; negative: it is paid.</p>
<table><tr><th>member</th><th>name</th>{head}<th>period</th></tr>{rows}</table>
<h2>Transfers</h2>
<table><tr><th></th>{''.join(f'<th>to {e(q)}</th>' for q in members)}</tr>{matrix or '<tr><td>none</td></tr>'}</table>
<p><small>{e(RULE)}</small></p>
</body></html>
"""
