"""Pricing: normalised GPU-hours, cost and carbon of one attributed part. Pure.

Money and carbon are Decimal, never float. Rounding happens once per entry,
half-even, at the precision the ledger stores (cost 1e-6, carbon 1e-3 g,
normalised GPU-hours 1e-9).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from schemas import GpuModel, Site
from schemas.consortium import Pricing

__all__ = ["Price", "price_part"]

MJ_PER_KWH = Decimal(3_600_000_000)
MS_PER_HOUR = Decimal(3_600_000)
Q_HOURS = Decimal("0.000000001")
Q_COST = Decimal("0.000001")
Q_CARBON = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Price:
    normalised_gpu_hours: Decimal
    cost_eur: Decimal
    carbon_g: Decimal


def price_part(energy_mj: int, gpu_ms: int, model: GpuModel, site: Site, pricing: Pricing) -> Price:
    """Capacity at the consortium GPU-hour rate plus facility energy (meter × PUE)."""
    norm_hours = Decimal(gpu_ms) / MS_PER_HOUR * model.normalisation_factor
    facility_kwh = Decimal(energy_mj) / MJ_PER_KWH * site.pue
    cost = norm_hours * pricing.gpu_hour_rate + facility_kwh * site.energy_price_eur_per_kwh
    carbon = facility_kwh * site.grid_gco2_per_kwh
    return Price(
        normalised_gpu_hours=norm_hours.quantize(Q_HOURS, ROUND_HALF_EVEN),
        cost_eur=cost.quantize(Q_COST, ROUND_HALF_EVEN),
        carbon_g=carbon.quantize(Q_CARBON, ROUND_HALF_EVEN),
    )
