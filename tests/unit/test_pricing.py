from __future__ import annotations

from decimal import Decimal

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


def test_normalisation_factor_scales_gpu_hours(config_and_hash) -> None:
    cfg, _ = config_and_hash
    a100 = cfg.gpu_model("NVIDIA A100-SXM4-80GB")
    p = price_part(0, 1_800_000, a100, cfg.site("ca-montreal"), cfg.pricing)
    assert p.normalised_gpu_hours == Decimal("0.210000000")
    assert p.cost_eur == Decimal("0.252000")
    assert isinstance(p.cost_eur, Decimal)
