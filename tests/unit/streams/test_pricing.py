from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pricing import price_part


def test_price_of_one_h100_hour_at_700_w(config_and_hash) -> None:
    cfg, _ = config_and_hash
    site = cfg.site("de-juelich")  # 0.192 EUR/kWh, PUE 1.21, 380 g/kWh
    model = cfg.gpu_model("NVIDIA H100 80GB HBM3")  # factor 1.0
    p = price_part(energy_mj=2_520_000_000, gpu_ms=3_600_000, model=model, site=site,
                   pricing=cfg.pricing)
    # 0.7 kWh at the meter × 1.21 = 0.847 kWh; 1.20 + 0.847 × 0.192 = 1.362624
    assert p.normalised_gpu_hours == Decimal("1.000000000")
    assert p.cost_eur == Decimal("1.362624")
    assert p.carbon_g == Decimal("321.860")
    # the same hour priced with an hourly grid intensity of 100 g/kWh (schemas/grid.py): 0.847 kWh × 100 = 84.7 g;
    # the cost does not depend on the grid
    hourly = price_part(energy_mj=2_520_000_000, gpu_ms=3_600_000, model=model, site=site, pricing=cfg.pricing,
                        grid_gco2=Decimal(100))
    assert (hourly.carbon_g, hourly.cost_eur) == (Decimal("84.700"), Decimal("1.362624"))


def test_normalisation_factor_scales_gpu_hours(config_and_hash) -> None:
    cfg, _ = config_and_hash
    a100 = cfg.gpu_model("NVIDIA A100-SXM4-80GB")
    p = price_part(0, 1_800_000, a100, cfg.site("ca-montreal"), cfg.pricing)
    assert p.normalised_gpu_hours == Decimal("0.210000000")
    assert p.cost_eur == Decimal("0.252000")
    assert isinstance(p.cost_eur, Decimal)


def _exact(energy_mj: int, gpu_ms: int, model, site, pricing) -> tuple[int, int, int]:
    """The rule of docs/attribution.md in rationals, rounded half-even once (Python's round)."""
    from fractions import Fraction as F

    hours = F(gpu_ms, 3_600_000) * F(model.normalisation_factor)
    kwh = F(energy_mj, 3_600_000_000) * F(site.pue)
    cost = hours * F(pricing.gpu_hour_rate) + kwh * F(site.energy_price_eur_per_kwh)
    return round(hours * 10**9), round(cost * 10**6), round(kwh * F(site.grid_gco2_per_kwh) * 10**3)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 10**10), st.integers(0, 4 * 3_600_000), st.integers(0, 10), st.integers(0, 10))
def test_integer_pricing_is_the_exact_rule(config_and_hash, energy_mj, gpu_ms, site_i, model_i) -> None:
    from streams.pricing import Tariff

    cfg, _ = config_and_hash
    site = cfg.sites[site_i % len(cfg.sites)]
    model = cfg.gpu_models[model_i % len(cfg.gpu_models)]
    assert Tariff.of(model, site, cfg.pricing).price(energy_mj, gpu_ms) == _exact(energy_mj, gpu_ms, model, site,
                                                                                   cfg.pricing)


def test_ties_round_to_even() -> None:
    from streams.pricing import round_half_even

    assert [round_half_even(n, 2) for n in (1, 3, 5, -1, -3, 4)] == [0, 2, 2, 0, -2, 2]
