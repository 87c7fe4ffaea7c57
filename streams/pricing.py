"""Pricing: normalised GPU-hours, cost and carbon of one attributed part. Pure.

The rule: each figure is the exact rational value of

    normalised GPU-hours = gpu_ms / 3,600,000 × normalisation factor
    facility kWh         = energy_mj / 3,600,000,000 × PUE
    cost                 = normalised GPU-hours × GPU-hour rate + facility kWh × energy price
    carbon               = facility kWh × grid intensity (the site's static figure,
                           or its hour's value from the config's hourly series)

rounded once, half-even, at the precision the ledger stores (GPU-hours 1e-9,
cost 1e-6 EUR, carbon 1e-3 g). Config values are decimals, so the exact value
is a ratio of integers: :class:`Tariff` precomputes it per (GPU model, site)
and prices a part with two integer products and a division, no Decimal and
no float on the hot path. Results are integers in units of the stored
precision; :func:`price_part` gives the same as Decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import lcm

from schemas import GpuModel, Site
from schemas.chain import CARBON_SCALE, COST_SCALE, HOURS_SCALE
from schemas.consortium import Pricing
from schemas.units import MJ_PER_KWH, MS_PER_HOUR

__all__ = ["MJ_PER_KWH", "MS_PER_HOUR", "Price", "Tariff", "price_part", "round_half_even"]


def round_half_even(num: int, den: int) -> int:
    """num / den rounded to the nearest integer, ties to even (den > 0)."""
    q, r = divmod(num, den)
    twice = 2 * r
    if twice > den or (twice == den and q & 1):
        q += 1
    return q


@dataclass(frozen=True, slots=True)
class Tariff:
    """Exact prices of one GPU model at one site as integer ratios.

    Units: ``hours`` in 1e-9 normalised GPU-hours, ``cost`` in 1e-6 EUR,
    ``carbon`` in 1e-3 g. ``value = (gpu_ms × a + energy_mj × b) / den``.
    """

    den: int
    hours_g: int
    gpu_cost_per_ms: int
    energy_cost_per_mj: int
    carbon_e: int

    @classmethod
    def of(cls, model: GpuModel, site: Site, pricing: Pricing, grid_gco2: Decimal | None = None) -> Tariff:
        """``grid_gco2``: an hour's intensity from the config's series, instead of the site's static one."""
        gco2 = site.grid_gco2_per_kwh if grid_gco2 is None else grid_gco2
        hours_per_ms = Fraction(model.normalisation_factor) / MS_PER_HOUR
        kwh_per_mj = Fraction(site.pue) / MJ_PER_KWH
        coef = {
            "hours_g": hours_per_ms * 10**HOURS_SCALE,
            "gpu_cost_per_ms": hours_per_ms * Fraction(pricing.gpu_hour_rate) * 10**COST_SCALE,
            "energy_cost_per_mj": kwh_per_mj * Fraction(site.energy_price_eur_per_kwh) * 10**COST_SCALE,
            "carbon_e": kwh_per_mj * Fraction(gco2) * 10**CARBON_SCALE,
        }
        den = lcm(*(c.denominator for c in coef.values()))
        return cls(den, **{k: int(c * den) for k, c in coef.items()})

    def price(self, energy_mj: int, gpu_ms: int) -> tuple[int, int, int]:
        """(hours, cost, carbon) in stored units, each rounded half-even once."""
        den = self.den
        return (round_half_even(gpu_ms * self.hours_g, den),
                round_half_even(gpu_ms * self.gpu_cost_per_ms + energy_mj * self.energy_cost_per_mj, den),
                round_half_even(energy_mj * self.carbon_e, den))


@dataclass(frozen=True, slots=True)
class Price:
    normalised_gpu_hours: Decimal
    cost_eur: Decimal
    carbon_g: Decimal


def price_part(energy_mj: int, gpu_ms: int, model: GpuModel, site: Site, pricing: Pricing,
               grid_gco2: Decimal | None = None) -> Price:
    """Capacity at the consortium GPU-hour rate plus facility energy (meter × PUE)."""
    hours, cost, carbon = Tariff.of(model, site, pricing, grid_gco2).price(energy_mj, gpu_ms)
    return Price(Decimal(hours).scaleb(-HOURS_SCALE), Decimal(cost).scaleb(-COST_SCALE),
                 Decimal(carbon).scaleb(-CARBON_SCALE))
