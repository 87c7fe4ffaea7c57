"""The stream worker's compiled core (native/, Rust): entry rows, their chain texts and
digests, a batch's chain summary, the ClickHouse Native block of its insert.

The rules are defined in Python (streams/attribution.py, streams/pricing.py); the
stream runs them compiled (``Attributor``, native/src/attribute.rs: the per-GPU and
per-entry work, asking the Python rules for what depends on the config and the job
book), and ``ledger recompute`` runs the Python definition on the stored windows, so
the two are compared on every audit as well as by
tests/unit/streams/test_core_rules.py. The core also does the per-entry mechanics
(and, for the raw windows of a batch, their hash and their insert's block) that made
the worker's Python the bottleneck (docs/benchmarks.md); and it checks a batch's
signatures off the interpreter lock (streams/verifier.py). It is a separate package,
``bridgeledger-core``, built from native/ with cargo (``make install`` runs ``pip
install ./native``); only the centre's stream worker and ledger tools import it,
never a GPU node's agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from bridgeledger_core import (
        SOURCE_SHA256,
        Attributor,
        EntryRows,
        encode_windows_native,
        entry_id,
        fixed,
        verify_signed,
        verify_signed_cpu,
        windows_hash,
    )
except ImportError as exc:  # pragma: no cover - a deployment without the core
    raise ImportError(
        "bridgeledger's compiled core is not installed: `pip install ./native` from the repository "
        "(needs Rust's cargo; `make install` does it)") from exc

__all__ = ["SOURCE_SHA256", "Attributor", "EntryRows", "encode_windows_native", "entry_id", "entry_rows", "fixed",
           "verify_signed", "verify_signed_cpu", "windows_hash"]


def entry_rows(rows: Iterable[tuple[Any, ...]]) -> EntryRows:
    """Entries given whole (schemas/ledger.py ``row_from_entry``: corrections, tests) as
    a batch for the chain writer; each row's digest is checked against its fields."""
    out = EntryRows()
    for row in rows:
        out.push_row(row)
    return out
