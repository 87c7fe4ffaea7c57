"""GPU readers behind one small interface."""

from __future__ import annotations

from agents.readers.base import GpuReader, GpuSample, ProcessUtil

__all__ = ["GpuReader", "GpuSample", "ProcessUtil"]
