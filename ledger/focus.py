"""The month's priced usage as FinOps FOCUS 1.2 rows (CSV), for a finance team's FinOps tool.

One row per UTC day, member, project, site and GPU model of the month's
billed ledger entries (jobs and their corrections; idle and unresolved usage
is billed to no member and not exported). Every column FOCUS 1.2 makes
mandatory is present (``MANDATORY``), in the spec's types and formats:

============================  ====================================================================
FOCUS column                  from the ledger
============================  ====================================================================
BilledCost, EffectiveCost,    the entries' cost (the consortium's one price: no discount, no
ContractedCost, ListCost      commitment, so the four are equal), plain decimals
BillingAccountId / Name       the member (ISO code / name in the config): who is billed
BillingCurrency               the config's pricing currency
BillingPeriodStart / End      the month (UTC, ``YYYY-MM-DDTHH:mm:ssZ``, end exclusive)
ChargePeriodStart / End       the day of the windows (UTC)
ChargeCategory                ``Usage``
ChargeClass                   ``Correction`` for a correction written after its month ended (a
                              correction of an invoiced period), empty (null) otherwise
ChargeDescription             what was used, in words
InvoiceIssuerName             the consortium (``--issuer``)
ProviderName, PublisherName   the site that hosted the GPUs
ServiceCategory, ServiceName  ``Compute``, ``GPU compute``
PricingQuantity, PricingUnit  normalised (H100-equivalent) GPU-hours, ``GPU-Hours``
============================  ====================================================================

Besides: ``SubAccountId``/``SubAccountName`` (the project), ``Tags`` (a JSON
object: member, project, site, gpu_model) and custom columns ``x_EnergyKWh``,
``x_CarbonKg``, ``x_GpuHours``, ``x_ConfigHash``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.configs import all_configs
from ledger.months import month_bounds
from schemas import units

__all__ = ["COLUMNS", "MANDATORY", "focus_rows", "render_focus_csv"]

MANDATORY = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)
COLUMNS = (*MANDATORY, "SubAccountId", "SubAccountName", "Tags", "x_EnergyKWh", "x_CarbonKg", "x_GpuHours",
           "x_ConfigHash")
MJ_PER_KWH = Decimal(units.MJ_PER_KWH)
MS_PER_H = Decimal(units.MS_PER_HOUR)


def _ts(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(d: Decimal) -> str:
    """FOCUS numeric format: plain decimal, no exponent, no plus sign."""
    text = format(d.normalize(), "f") if d != 0 else "0"
    return text


def focus_rows(client: Any, db: str, month: str, issuer: str) -> list[dict[str, str]]:
    start, end = month_bounds(month)
    configs = all_configs(client, db)
    rows = client.execute(
        f"SELECT toDate(window_start) AS day, member, project, site_id, gpu_model, config_hash, "
        f"corrects != '' AND written_at >= %(end)s AS late_correction, sum(cost_eur), sum(normalised_gpu_hours), "
        f"sum(energy_mj), sum(carbon_g), sum(gpu_ms) FROM {db}.ledger "
        f"WHERE window_start >= %(start)s AND window_start < %(end)s AND member != '' "
        f"GROUP BY day, member, project, site_id, gpu_model, config_hash, late_correction "
        f"ORDER BY day, member, project, site_id, gpu_model, config_hash, late_correction",
        {"start": start, "end": end})
    # per config, once: member names, project names, currency
    labels = {h: ({m.code: m.name for m in cfg.members}, {p.id: p.name for p in cfg.projects}, cfg.pricing.currency)
              for h, cfg in configs.items()}
    out = []
    for day, member, project, site, model, chash, late, cost, ngh, mj, carbon_g, gpu_ms in rows:
        names, projects, currency = labels.get(chash, ({}, {}, "EUR"))
        day_start = datetime(day.year, day.month, day.day)
        cost_d = Decimal(str(cost))
        out.append({
            "BilledCost": _num(cost_d), "EffectiveCost": _num(cost_d), "ContractedCost": _num(cost_d),
            "ListCost": _num(cost_d),
            "BillingAccountId": member, "BillingAccountName": names.get(member, member),
            "BillingCurrency": currency,
            "BillingPeriodStart": _ts(start), "BillingPeriodEnd": _ts(end),
            "ChargePeriodStart": _ts(day_start), "ChargePeriodEnd": _ts(day_start + timedelta(days=1)),
            "ChargeCategory": "Usage", "ChargeClass": "Correction" if late else "",
            "ChargeDescription": (f"{'Correction: ' if late else ''}GPU compute for project {project} at site {site} "
                                  f"({model}), normalised GPU-hours and facility energy"),
            "InvoiceIssuerName": issuer, "ProviderName": site, "PublisherName": site,
            "ServiceCategory": "Compute", "ServiceName": "GPU compute",
            "PricingQuantity": _num(Decimal(str(ngh))), "PricingUnit": "GPU-Hours",
            "SubAccountId": project, "SubAccountName": projects.get(project, project),
            "Tags": json.dumps({"member": member, "project": project, "site": site, "gpu_model": model},
                               sort_keys=True, separators=(",", ":")),
            "x_EnergyKWh": _num(Decimal(int(mj)) / MJ_PER_KWH), "x_CarbonKg": _num(Decimal(str(carbon_g)) / 1000),
            "x_GpuHours": _num(Decimal(int(gpu_ms)) / MS_PER_H), "x_ConfigHash": chash,
        })
    return out


def render_focus_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
