"""The ledger's units, defined once: energy in millijoules, GPU time in milliseconds."""

from __future__ import annotations

__all__ = ["MJ_PER_KWH", "MS_PER_HOUR"]

MS_PER_HOUR = 3_600_000  # GPU-milliseconds in a GPU-hour
MJ_PER_KWH = 3_600_000_000  # millijoules in a kilowatt-hour
