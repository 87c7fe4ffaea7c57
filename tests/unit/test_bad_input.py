"""Ten thousand broken, forged, replayed and implausible windows interleaved with
valid ones: each broken one is rejected with its reason, the worker keeps
going, and every valid one is accounted to the millijoule."""

from __future__ import annotations

import json
import random
from collections import Counter

import yaml

from schemas.consortium import parse_config
from schemas.signing import sign_document
from streams.processing import WindowProcessor
from streams.sink import MemorySink
from streams.worker import LedgerWorker
from tests.unit.test_telemetry import window

KEY = b"s" * 32


def processor() -> WindowProcessor:
    from pathlib import Path

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "consortium.example.yaml").read_bytes())
    doc["sites"][1]["key_ids"] = ["ca-1"]  # ca-montreal must sign
    cfg, digest = parse_config(yaml.safe_dump(doc).encode())
    return WindowProcessor(cfg, digest, {"ca-1": KEY})


def valid(rng: random.Random, seq: int) -> dict:
    doc = window(seq=seq, agent_id=f"a{rng.randrange(5)}")
    doc["gpus"][0]["energy_mj"] = rng.randrange(0, 5_000_000)
    return doc


BREAKERS = {
    "malformed_json": lambda d, r: json.dumps(d)[: r.randrange(1, 40)].encode(),
    "unsupported_version": lambda d, r: json.dumps({**d, "schema_version": r.choice([0, 2, "1", None])}).encode(),
    "schema_invalid": lambda d, r: json.dumps({**d, r.choice(["seq", "gpus", "node", "window_end_ns"]):
                                                r.choice([-5, None, [], {}])}).encode(),
    "oversized": lambda d, r: (json.dumps({**d, "gpus": [{**d["gpus"][0], "uuid": f"GPU-{i}"}
                                                         for i in range(r.choice([65, 3000]))]}).encode()),
    "unknown_site": lambda d, r: json.dumps({**d, "site_id": f"nowhere-{r.randrange(99)}"}).encode(),
    "unsigned": lambda d, r: json.dumps({**d, "site_id": "ca-montreal"}).encode(),
    "bad_signature": lambda d, r: json.dumps(sign_document({**d, "site_id": "ca-montreal"}, "ca-1",
                                                           bytes([r.choice(range(0, 115))]) * 32)).encode(),
    "implausible_energy": lambda d, r: json.dumps({**d, "gpus": [{**d["gpus"][0], "energy_mj": 10**12}]}).encode(),
}


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
            raw = json.dumps(doc).encode()
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
