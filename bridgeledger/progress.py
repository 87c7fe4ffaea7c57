"""A progress line for long audits on a terminal: a bar, the count, the rate and the time left.

    verify [##########..........]  50.0 %  1,200,000/2,400,000 entries  310,000/s  4 s left

Drawn on stderr only when it is a terminal (redirected output and CI logs stay
clean), at most a few times a second, and ended with a newline by ``done``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressBar", "terminal_progress"]

WIDTH = 20


class ProgressBar:
    def __init__(self, label: str, unit: str, stream: TextIO, clock: Callable[[], float] = time.monotonic,
                 every_s: float = 0.25) -> None:
        self.label, self.unit, self.stream, self.clock, self.every_s = label, unit, stream, clock, every_s
        self.t0 = clock()
        self.last = -every_s
        self.drawn = False

    def line(self, done: int, total: int, now: float | None = None) -> str:
        frac = done / total if total else 1.0
        filled = min(WIDTH, int(frac * WIDTH))
        elapsed = (self.clock() if now is None else now) - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        left = f"{(total - done) / rate:,.0f} s left" if rate > 0 and done < total else "done" if done >= total \
            else "…"
        return (f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {100 * frac:5.1f} %  "
                f"{done:,}/{total:,} {self.unit}  {rate:,.0f}/s  {left}")

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.last < self.every_s and done < total:
            return
        self.last = now
        self.stream.write("\r" + self.line(done, total, now))
        self.stream.flush()
        self.drawn = True

    def done(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def terminal_progress(label: str, unit: str, stream: TextIO | None = None) -> ProgressBar | None:
    """A bar on stderr if it is a terminal, else None (nothing drawn)."""
    out = stream or sys.stderr
    return ProgressBar(label, unit, out) if out.isatty() else None
