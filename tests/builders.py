"""What tests feed the worker: telemetry windows as agents put them on the wire
(valid ones signed with the example config's public demo keys), the ways to
break them, and the poison classes the worker must dead-letter."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from schemas.consortium import parse_config
from schemas.signing import new_key, sign_window
from schemas.telemetry import MAX_DEPTH, MAX_TIME_NS
from streams.processing import MAX_MESSAGE_BYTES, WindowProcessor

ROOT = Path(__file__).resolve().parents[1]
# A minute after window()'s window ends: the clock the tests' workers run on.
NOW_NS = 10**18 + 60 * 10**9
# Every instant a test ledger holds, for verify/reconcile/recompute.
ALL = (datetime(1970, 1, 1), datetime(2100, 1, 1))


def window(**over) -> dict:
    doc = {
        "schema_version": 1, "agent_id": "a1", "site_id": "kr-daejeon", "node": "n1",
        "boot_id": "b1", "epoch": "e1", "seq": 3, "window_start_ns": 10**18, "window_end_ns": 10**18 + 10**10,
        "gpus": [{"uuid": "GPU-1", "model": "NVIDIA H100 80GB HBM3", "energy_mj": 5000,
                  "gpu_seconds": 10.0, "util_gpu": 50, "mem_used_bytes": 1, "power_avg_mw": 500,
                  "processes": [{"pid": 1, "job_id": "7", "sm_share": 0.5}]}],
    }
    doc.update(over)
    return doc


def wire(doc: dict, sign: bool = True) -> bytes:
    """A window as an agent sends it: compact JSON, signed with its site's public demo
    key (the example config lists those keys; schemas/signing.py). Strings go out as
    they are (surrogates too), as a hostile producer could send them."""
    from schemas.signing import demo_key, sign_window

    site = doc.get("site_id")
    if not sign or "signature" in doc or not isinstance(site, str) or not site.isascii():
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    key_id, key = demo_key(site)
    body = json.dumps({**doc, "key_id": key_id}, ensure_ascii=False, separators=(",", ":"))
    return sign_window(body.encode("utf-8", "surrogatepass"), key)


def raw(seq: int | None = None, energy: int | None = None, **over: Any) -> bytes:
    """window(**over) with this seq and first-GPU energy if given, signed."""
    doc = window(**over) if seq is None else window(seq=seq, **over)
    if energy is not None:
        doc["gpus"][0]["energy_mj"] = energy
    return wire(doc)


def good(seq: int = 1, **over: Any) -> bytes:
    return wire(window(seq=seq, **over))


OTHER_KEY = new_key()  # a key no config lists


def processor() -> WindowProcessor:
    """The example config (every site signs, with the public demo keys)."""
    doc = yaml.safe_load((ROOT / "deploy" / "consortium.example.yaml").read_bytes())
    cfg, digest = parse_config(yaml.safe_dump(doc).encode())
    return WindowProcessor(cfg, digest)


def forged(d: dict, r: random.Random) -> bytes:
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
    # 65 GPUs: more than a window may hold; 1,300: about 280 KB, over MAX_MESSAGE_BYTES (256 KiB)
    # and no larger than that needs (the 10,000-message tests send a few hundred of them)
    "oversized": lambda d, r: (json.dumps({**d, "gpus": [{**d["gpus"][0], "uuid": f"GPU-{i}"}
                                                         for i in range(r.choice([65, 1300]))]}).encode()),
    "unknown_site": lambda d, r: wire({**d, "site_id": f"nowhere-{r.randrange(99)}"}),
    "unsigned": lambda d, r: wire({**d, "site_id": r.choice(["ca-montreal", "kr-daejeon"])}, sign=False),
    "unknown_key": lambda d, r: sign_window(json.dumps({**d, "site_id": "ca-montreal", "key_id": "kr-daejeon-demo"},
                                                       separators=(",", ":")).encode(), OTHER_KEY),
    "bad_signature": forged,
    "implausible_energy": lambda d, r: wire({**d, "gpus": [{**d["gpus"][0], "energy_mj": 10**12}]}),
}


class LostAck:
    """A client whose next ledger_batches insert reaches the server but whose
    acknowledgement is lost (the driver raises after the server stored it)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lose_next_commit = False

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        out = self.client.execute(query, *args, **kwargs)
        self._after(query)
        return out

    def insert_native(self, query: str, encode: Any) -> None:
        from streams.clickhouse import insert_native

        insert_native(self.client, query, encode)
        self._after(query)

    def _after(self, query: str) -> None:
        if self.lose_next_commit and "INSERT INTO" in query and ".ledger_batches" in query:
            self.lose_next_commit = False
            raise ConnectionResetError("connection reset after the insert")


def set_field(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    gpu = doc["gpus"][0]
    if path.startswith("gpus."):
        gpu[path[5:]] = [value] if path == "gpus.flags" else value
    elif path.startswith("processes."):
        gpu["processes"][0][path[10:]] = value
    else:
        doc[path] = value
    return doc


POISON = {
    "invalid UTF-8 in a string value": (good()[:-2] + b',"node":"n\xff"}', "malformed_json"),
    "invalid UTF-8 in an unknown field": (good()[:-1] + b',"x":"\xc3("}', "malformed_json"),
    "5,000 levels of nesting": (good()[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}", "too_deep"),
    "100 levels in an unknown field (the fast decoder would skip it)": (
        good()[:-1] + b',"x":' + b"[" * 100 + b"]" * 100 + b"}", "too_deep"),
    "lone surrogate escape in an unknown field": (good()[:-1] + b',"x":"\\ud800"}', "malformed_json"),
    "non-ASCII signature": (wire({**window(), "key_id": "ca-1", "signature": "\u00e9" * 64}), "schema_invalid"),
    "energy 10^30 with a self-declared limit of 10^30": (
        wire(set_field(set_field(window(), "gpus.energy_mj", 10**30), "gpus.power_limit_mw", 10**30)),
        "schema_invalid"),
    "energy under the schema bound but over the config's limit, window claims a huge limit": (
        wire(set_field(set_field(window(), "gpus.energy_mj", 10**12), "gpus.power_limit_mw", 10**9)),
        "implausible_energy"),
    "seq 2^64": (wire(set_field(window(), "seq", 2**64)), "schema_invalid"),
    "window after 2106": (wire({**window(), "window_start_ns": 2**62, "window_end_ns": 2**62 + 10**10}),
                          "schema_invalid"),
    "energy as a string": (wire(set_field(window(), "gpus.energy_mj", "5000000")), "schema_invalid"),
    "energy as a boolean": (wire(set_field(window(), "gpus.energy_mj", True)), "schema_invalid"),
    "schema_version 1.0": (wire(window(schema_version=1.0)), "unsupported_version"),
    "schema_version true": (wire(window(schema_version=True)), "unsupported_version"),
    "a window from 1970": (wire({**window(), "window_start_ns": 0, "window_end_ns": 10**10}), "schema_invalid"),
    "a window eight days old": (wire({**window(), "window_start_ns": NOW_NS - 8 * 86_400 * 10**9,
                                         "window_end_ns": NOW_NS - 8 * 86_400 * 10**9 + 10**10}), "too_old"),
    "a node name with a slash": (wire(window(node="a/b")), "schema_invalid"),
    "an agent id with a control character": (wire(window(agent_id="a\x07")), "schema_invalid"),
    "a site id with surrounding space": (wire(window(site_id=" kr-daejeon")), "schema_invalid"),
    "a tombstone": (None, "empty"),
    "an empty value": (b"", "malformed_json"),
    "oversized": (b"[" + b"1," * (MAX_MESSAGE_BYTES // 2) + b"1]", "oversized"),
}


# -- hostile messages (hypothesis strategies) --------------------------------------------------------------------------
def _mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(5)
        i = rnd.randrange(len(b) + 1)
        if op == 0 and b:  # flip a byte
            b[min(i, len(b) - 1)] = rnd.randrange(256)
        elif op == 1:  # truncate
            del b[i:]
        elif op == 2:  # insert an edge-case token
            b[i:i] = rnd.choice([b"\\ud800", b"\xff", b"\xc3(", b"\x00", b"NaN", b"1e400", b"-0", b'"', b"[" * 40,
                                 b"18446744073709551616", b"true", b"1.0", b"\\u0000", b"\xed\xa0\x80"])
        elif op == 3 and b:  # duplicate a slice
            j = rnd.randrange(len(b))
            b[i:i] = b[j:j + rnd.randrange(1, 64)]
        else:  # drop a slice
            del b[i:i + rnd.randrange(1, 32)]
    return bytes(b)


EDGE_NUMBERS = st.sampled_from([-1, 0, 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63),
                                MAX_TIME_NS, MAX_TIME_NS + 1, 1.0, 0.5, 1e308, -0.0, True, False, "5000000", None])
FIELDS = ["seq", "window_start_ns", "window_end_ns", "schema_version", "gpus.energy_mj", "gpus.gpu_seconds",
          "gpus.power_limit_mw", "gpus.mem_used_bytes", "gpus.util_gpu", "processes.pid", "processes.sm_share"]
TEXTS = st.one_of(st.text(max_size=40), st.sampled_from(["", " a", "a ", "a/b", "a\nb", "\x00", "\ud800", "é",
                                                         "x" * 129, "GPU-1", "\u202e", "a\tb"]))
TEXT_FIELDS = ["agent_id", "site_id", "node", "boot_id", "epoch", "gpus.uuid", "gpus.model", "processes.job_id",
               "processes.account", "signature", "key_id", "gpus.flags"]


KINDS = ["bytes", "mutated", "number", "text", "deep", "wide", "unknown", "empty"]


@st.composite
def hostile(draw: st.DrawFn, kinds: tuple[str, ...] = tuple(KINDS)) -> bytes | None:
    """A hostile message. Documents are signed by their site as they are (any code
    point, as a hostile producer can send them), so the checks after the signature
    are reached."""
    kind = draw(st.sampled_from(kinds))
    seq = draw(st.integers(0, 50))
    if kind == "bytes":
        return draw(st.binary(max_size=600))
    if kind == "mutated":
        return _mutate(good(seq), random.Random(draw(st.integers())))
    if kind == "number":
        return wire(set_field(window(seq=seq), draw(st.sampled_from(FIELDS)), draw(EDGE_NUMBERS)))
    if kind == "text":
        return wire(set_field(window(seq=seq), draw(st.sampled_from(TEXT_FIELDS)), draw(TEXTS)))
    if kind == "deep":
        n = draw(st.integers(MAX_DEPTH - 2, 5000))
        inner = b"[" * n + b"]" * n
        return good(seq)[:-1] + b',"extra":' + inner + b"}"
    if kind == "wide":
        n = draw(st.sampled_from([65, 1025, 20_000]))
        doc = window(seq=seq)
        doc["gpus"][0]["processes"] = [{"pid": i, "sm_share": 0.0} for i in range(n)]
        return wire(doc)
    if kind == "unknown":
        return wire({**window(seq=seq), draw(TEXTS): draw(st.one_of(TEXTS, EDGE_NUMBERS))})
    return draw(st.sampled_from([None, b"", b" ", b"null", b"{}", b"[]", b"\n"]))
