"""The chain's text forms: what an auditor re-implements byte for byte."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.chain import (
    GENESIS,
    batch_hash,
    decimal_text,
    entries_hash,
    entry_digest,
    entry_line,
    entry_line_fixed,
    fixed,
    windows_hash,
)


@pytest.mark.parametrize(("units", "scale", "text"), [
    (0, 9, "0.000000000"), (5, 9, "0.000000005"), (278, 9, "0.000000278"), (1_362_624, 6, "1.362624"),
    (321_860, 3, "321.860"), (-5, 6, "-0.000005"), (-1_500, 3, "-1.500"), (10**12, 3, "1000000000.000"),
])
def test_fixed_point_never_has_an_exponent(units: int, scale: int, text: str) -> None:
    assert fixed(units, scale) == text
    assert decimal_text(Decimal(text), scale) == text


def test_stored_decimals_print_like_the_stream_prints_them() -> None:
    # What ClickHouse hands back for a zero or a tiny Decimal(18, 9): Python would print 0E-9, 5E-9
    assert decimal_text(Decimal(0) / 10**9, 9) == "0.000000000"
    assert decimal_text(Decimal(5) / 10**9, 9) == "0.000000005"
    assert decimal_text(-Decimal("0E-9"), 9) == "0.000000000"  # a reversed zero has no sign


def test_entry_line_from_decimals_equals_the_line_from_text() -> None:
    fields = ("e1", "a/b/1", "kr-daejeon", "GPU-1", "", "idle", "idle:kr", "idle:kr", "", "0", "3")
    from_text = entry_line_fixed(*fields, fixed(0, 9), fixed(1, 6), fixed(0, 3), "cfg", "none")
    from_decimals = entry_line("e1", "a/b/1", "kr-daejeon", "GPU-1", None, "idle", "idle:kr", "idle:kr", "", 0, 3,
                               Decimal("0E-9"), Decimal("0.000001"), Decimal("0.000"), "cfg", "none")
    assert from_text == from_decimals == (
        b"e1|a/b/1|kr-daejeon|GPU-1||idle|idle:kr|idle:kr||0|3|0.000000000|0.000001|0.000|cfg|none\n")


# -- published test vectors (docs/chain-vectors.json) -----------------------------------------------
def _window_id(doc: dict[str, object]) -> str:
    """A window's id as docs/ledger.md defines it: site/agent/boot/epoch/seq."""
    return "/".join(str(doc[k]) for k in ("site_id", "agent_id", "boot_id", "epoch", "seq"))


VECTORS = Path(__file__).resolve().parents[3] / "docs" / "chain-vectors.json"


def _independent_line(e: dict[str, str]) -> bytes:
    """The entry line as docs/ledger.md and schemas/chain.py describe it, written
    again without schemas.chain: what an auditor's own implementation does."""
    order = ("entry_id", "window_id", "site_id", "gpu_uuid", "job_id", "account_kind", "account", "project",
             "member", "energy_mj", "gpu_ms", "normalised_gpu_hours", "cost_eur", "carbon_g", "config_hash",
             "account_source")
    return ("|".join(e[k] for k in order) + "\n").encode("utf-8")


def test_the_published_vectors_are_what_the_writer_and_an_independent_reader_compute() -> None:
    doc = json.loads(VECTORS.read_text())
    assert doc["genesis"] == GENESIS == "0" * 64
    prev = doc["genesis"]
    for b in doc["batches"]:
        assert b["prev_hash"] == prev
        for e in b["entries"]:
            line = _independent_line(e["fields"])
            assert line.decode() == e["line"]
            assert hashlib.sha256(line).hexdigest() == e["digest"]
            f = e["fields"]
            ours = entry_line(f["entry_id"], f["window_id"], f["site_id"], f["gpu_uuid"], f["job_id"] or None,
                              f["account_kind"], f["account"], f["project"], f["member"], int(f["energy_mj"]),
                              int(f["gpu_ms"]), Decimal(f["normalised_gpu_hours"]), Decimal(f["cost_eur"]),
                              Decimal(f["carbon_g"]), f["config_hash"], f["account_source"])
            assert ours == line and entry_digest(ours) == e["digest"]
        ordered = [e["digest"] for e in sorted(b["entries"], key=lambda e: e["fields"]["entry_id"])]
        assert hashlib.sha256("".join(ordered).encode()).hexdigest() == b["entries_hash"] == entries_hash(ordered)
        energy = sum(int(e["fields"]["energy_mj"]) for e in b["entries"])
        gpu_ms = sum(int(e["fields"]["gpu_ms"]) for e in b["entries"])
        assert (b["entry_count"], b["energy_mj"], b["gpu_ms"]) == (len(b["entries"]), energy, gpu_ms)
        # the raw windows, byte for byte as they travelled, in window_id order
        by_id = sorted(b["windows"], key=lambda w: _window_id(json.loads(w)))
        w_digests = [hashlib.sha256(w.encode()).hexdigest() for w in by_id]
        assert w_digests == b["window_digests"] and len(by_id) == b["window_count"]
        assert hashlib.sha256("".join(w_digests).encode()).hexdigest() == b["windows_hash"] == windows_hash(
            w_digests)
        text = "|".join((doc["chain_id"], str(b["seq"]), b["batch_id"], b["prev_hash"], b["entries_hash"],
                         str(b["entry_count"]), str(b["energy_mj"]), str(b["gpu_ms"]), b["windows_hash"],
                         str(b["window_count"])))
        assert text == b["batch_hash_input"]
        assert hashlib.sha256(text.encode()).hexdigest() == b["batch_hash"] == batch_hash(
            doc["chain_id"], b["seq"], b["batch_id"], b["prev_hash"], b["entries_hash"], b["entry_count"],
            b["energy_mj"], b["gpu_ms"], b["windows_hash"], b["window_count"])
        prev = b["batch_hash"]
    assert len(doc["batches"]) >= 2


def test_the_vectors_pin_the_known_hashes() -> None:
    # Any change to the bytes (separator, field order or text, the genesis, the
    # hashing of digests) changes these; a change of format is a new version of
    # docs/chain-vectors.json, made on purpose.
    doc = json.loads(VECTORS.read_text())
    assert [b["batch_hash"] for b in doc["batches"]] == KNOWN_BATCH_HASHES


KNOWN_BATCH_HASHES = [
    "bd5e93d8b09f7faab271c95e4fadb7f16ddda4d12ef4d318c3db14ba8f4596fa",
    "74e99e9048aef06c332a70400717bb6c84c22f9139c3ef55779487c368dcc06f",
]


@settings(max_examples=500)
@given(units=st.integers(-(10**18) + 1, 10**18 - 1), scale=st.sampled_from([3, 6, 9]), strip=st.booleans())
def test_fixed_text_of_the_servers_print_is_the_chains_text(units: int, scale: int, strip: bool) -> None:
    # ClickHouse 18.16 prints every digit of the scale; newer servers drop trailing zeros (and the point)
    from schemas.chain import decimal_text, fixed, fixed_text

    text = fixed(units, scale)
    if strip:
        text = text.rstrip("0").rstrip(".")
    assert fixed_text(text, scale) == fixed(units, scale) == decimal_text(Decimal(text), scale)
