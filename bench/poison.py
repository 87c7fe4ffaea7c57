"""The input classes of tests/unit/streams/test_poison.py, counted: how many messages of
each class went through the worker's per-message path and how each was handled.

    .venv/bin/python bench/poison.py [--per-class 2000]

Prints the table that docs/reliability.md shows. Not a timing benchmark: it
lives here because it prints figures rather than asserting them (the tests
assert that nothing escapes).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.unit.streams.test_poison import KINDS, NOW_NS, accounted, hostile, worker  # noqa: E402

LABELS = {
    "bytes": "arbitrary bytes (0-600)",
    "mutated": "valid window, 1-4 mutations (flips, cuts, edge tokens)",
    "number": "numeric edges in every numeric field",
    "text": "unicode edges in every string field",
    "deep": "nesting 30-5,000 deep",
    "wide": "65 / 1,025 / 20,000 processes",
    "unknown": "unknown field with hostile name or value",
    "empty": "tombstone, empty, null, {}, [], blanks",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=2000)
    args = ap.parse_args()
    table: dict[str, Counter[str]] = defaultdict(Counter)
    escaped = 0
    t0 = time.monotonic()
    for kind in KINDS:
        @settings(max_examples=args.per_class, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(hostile(kinds=(kind,)), st.just(kind))
        def run(message: bytes | None, k: str) -> None:
            nonlocal escaped
            w = worker()
            try:
                booked, rejections = accounted(w, [message])
            except Exception:  # the tests forbid this; counted here so the table would show it
                escaped += 1
                table[k]["ESCAPED"] += 1
                return
            if booked:
                table[k]["booked"] += 1
            for r in rejections:
                table[k][r.reason] += 1
            if not booked and not rejections:
                table[k]["resend"] += 1

        run()
    print(f"{'input class':<56}{'messages':>9}  handled as")
    for kind in KINDS:
        c = table[kind]
        print(f"{LABELS[kind]:<56}{sum(c.values()):>9}  " + ", ".join(f"{r} {n}" for r, n in c.most_common()))
    print(f"escaped the worker: {escaped}; {time.monotonic() - t0:.0f} s; broker time {NOW_NS}")


if __name__ == "__main__":
    main()
