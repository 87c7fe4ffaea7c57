"""Ten thousand broken, forged, replayed and implausible windows interleaved with
valid ones: each broken one is rejected with its reason, the worker keeps
going, and every valid one is accounted to the millijoule. Valid windows are
signed with their site's key, as production agents sign them."""

from __future__ import annotations

import json
import random
from collections import Counter

import yaml

from schemas.consortium import parse_config
from schemas.signing import new_key, sign_window
from streams.processing import WindowProcessor
from streams.sink import MemorySink
from streams.worker import LedgerWorker
from tests.unit.test_telemetry import window, wire

OTHER_KEY = new_key()  # a key no config lists


def processor() -> WindowProcessor:
    """The example config (every site signs, with the public demo keys)."""
    from pathlib import Path

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "consortium.example.yaml").read_bytes())
    cfg, digest = parse_config(yaml.safe_dump(doc).encode())
    return WindowProcessor(cfg, digest)


def _forged(d: dict, r: random.Random) -> bytes:
    """Signed, but not by the site's key, or altered by one byte after signing."""
    if r.random() < 0.5:
        body = json.dumps({**d, "key_id": "kr-daejeon-demo"}, separators=(",", ":")).encode()
        return sign_window(body, OTHER_KEY)
    raw = bytearray(wire(d))
    i = raw.index(b'"energy_mj":') + len(b'"energy_mj":')
    raw[i] = ord("9") if raw[i] != ord("9") else ord("8")
    return bytes(raw)


def valid(rng: random.Random, seq: int) -> dict:
    doc = window(seq=seq, agent_id=f"a{rng.randrange(5)}")
    doc["gpus"][0]["energy_mj"] = rng.randrange(0, 5_000_000)
    return doc


BREAKERS = {
    "malformed_json": lambda d, r: wire(d)[: r.randrange(1, 40)],
    "unsupported_version": lambda d, r: json.dumps({**d, "schema_version": r.choice([0, 2, "1", None])}).encode(),
    "schema_invalid": lambda d, r: json.dumps({**d, r.choice(["seq", "gpus", "node", "window_end_ns"]):
                                                r.choice([-5, None, [], {}])}).encode(),
    "oversized": lambda d, r: (json.dumps({**d, "gpus": [{**d["gpus"][0], "uuid": f"GPU-{i}"}
                                                         for i in range(r.choice([65, 3000]))]}).encode()),
    "unknown_site": lambda d, r: wire({**d, "site_id": f"nowhere-{r.randrange(99)}"}),
    "unsigned": lambda d, r: wire({**d, "site_id": r.choice(["ca-montreal", "kr-daejeon"])}, sign=False),
    "unknown_key": lambda d, r: sign_window(json.dumps({**d, "site_id": "ca-montreal", "key_id": "kr-daejeon-demo"},
                                                       separators=(",", ":")).encode(), OTHER_KEY),
    "bad_signature": _forged,
    "implausible_energy": lambda d, r: wire({**d, "gpus": [{**d["gpus"][0], "energy_mj": 10**12}]}),
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
