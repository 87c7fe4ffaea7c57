"""Ten thousand broken, forged, replayed and implausible windows interleaved with
valid ones: each broken one is rejected with its reason, the worker keeps
going, and every valid one is accounted to the millijoule. Valid windows are
signed with their site's key, as production agents sign them."""

from __future__ import annotations

import random
from collections import Counter

from streams.sink import MemorySink
from streams.worker import LedgerWorker
from tests.builders import BREAKERS, processor, valid, wire


def test_ten_thousand_bad_windows_interleaved_with_good_ones() -> None:
    rng = random.Random(20261126)
    sink = MemorySink()
    worker = LedgerWorker(processor(), sink, clock_ns=lambda: 10**18 + 60 * 10**9)
    expected_energy = 0
    expected_reasons: Counter[str] = Counter()
    batch: list[bytes] = []
    seq = 0
    for i in range(12_200):
        doc = valid(rng, seq)
        seq += 1
        if i % 6 == 0:  # a valid window, sometimes resent (a replay must not count twice)
            raw = wire(doc)
            batch += [raw, raw] if rng.random() < 0.2 else [raw]
            expected_energy += doc["gpus"][0]["energy_mj"]
        else:
            kind = rng.choice(list(BREAKERS))
            batch.append(BREAKERS[kind](doc, rng))
            expected_reasons[kind] += 1
        if len(batch) >= 500:
            worker.handle_windows(batch)
            batch = []
    worker.handle_windows(batch)
    got = Counter(r.reason for r in sink.rejections)
    assert sum(got.values()) >= 10_000
    assert got == expected_reasons
    assert sum(e.energy_mj for e in sink.entries) == expected_energy
    assert all(r.raw for r in sink.rejections)
