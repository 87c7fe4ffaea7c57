"""Reports read from the ledger: the per-member usage table."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from schemas.units import MJ_PER_KWH, MS_PER_HOUR

__all__ = ["MemberRow", "format_member_table", "member_summary"]

# Shares are of normalised GPU-hours across all accounts (idle and unresolved included),
# so the column sums to 100 % and shows how much of the pool no member used.
MEMBER_SUMMARY_SQL = """
SELECT
    if(member = '', concat('(', account_kind, ')'), member) AS who,
    sum(gpu_ms)                    AS gpu_ms,
    sum(normalised_gpu_hours)      AS norm_gpu_hours,
    sum(energy_mj)                 AS energy_mj,
    sum(cost_eur)                  AS cost_eur,
    sum(carbon_g)                  AS carbon_g
FROM {db}.ledger
WHERE window_start >= toDateTime(%(start)s) AND window_start < toDateTime(%(end)s)
GROUP BY who
ORDER BY norm_gpu_hours DESC
"""


@dataclass(frozen=True)
class MemberRow:
    member: str
    gpu_hours: float
    norm_gpu_hours: Decimal
    energy_kwh: float
    cost_eur: Decimal
    carbon_kg: Decimal
    share: float


def member_summary(client: Any, database: str, start_s: int = 0, end_s: int = 4_102_444_800) -> list[MemberRow]:
    rows = client.execute(MEMBER_SUMMARY_SQL.format(db=database), {"start": start_s, "end": end_s})
    total = sum((Decimal(r[2]) for r in rows), Decimal(0))
    out = []
    # Sums come back as integers and Decimals; units are converted here, exactly.
    for who, gpu_ms, ngh, energy_mj, cost, carbon_g in rows:
        share = float(Decimal(ngh) / total) if total else 0.0
        out.append(MemberRow(who, int(gpu_ms) / MS_PER_HOUR, Decimal(ngh), int(energy_mj) / MJ_PER_KWH,
                             Decimal(cost), Decimal(carbon_g) / 1000, share))
    return out


def format_member_table(rows: list[MemberRow], currency: str = "EUR") -> str:
    head = (f"{'member':<12}{'GPU-h':>12}{'norm. GPU-h':>14}{'energy kWh':>13}"
            f"{'cost ' + currency:>14}{'CO2 kg':>11}{'share':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.member:<12}{r.gpu_hours:>12.2f}{r.norm_gpu_hours:>14.2f}{r.energy_kwh:>13.2f}"
            f"{r.cost_eur:>14.2f}{r.carbon_kg:>11.2f}{r.share:>8.1%}"
        )
    if rows:
        lines.append("-" * len(head))
        lines.append(
            f"{'total':<12}{sum(r.gpu_hours for r in rows):>12.2f}"
            f"{sum(r.norm_gpu_hours for r in rows):>14.2f}{sum(r.energy_kwh for r in rows):>13.2f}"
            f"{sum(r.cost_eur for r in rows):>14.2f}{sum(r.carbon_kg for r in rows):>11.2f}{1:>8.0%}"
        )
    return "\n".join(lines)
