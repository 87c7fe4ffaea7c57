"""The ledger's hash chain: byte-exact formats an auditor can recompute in any language.

Entry line (UTF-8, one per ledger entry, fields joined by ``|``, ending ``\\n``)::

    entry_id|window_id|site_id|gpu_uuid|job_id|account_kind|account|project|member|
    energy_mj|gpu_ms|normalised_gpu_hours|cost_eur|carbon_g|config_hash|account_source

(one line; integers in decimal, ``job_id`` empty when none, decimals in
plain fixed-point with exactly their stored scale, 9, 6 and 3 places, never
an exponent: ``0.002777778``, ``1.362624``, ``321.860``, ``0.000000000``,
``-0.000005``; a minus sign only for a value below zero).

- entry digest   = SHA-256(entry line), hex
- entries hash   = SHA-256 of the batch's entry digests (hex, concatenated,
                   in ascending entry_id order), hex
- window digest  = SHA-256(the window message's bytes exactly as received,
                   signature included), hex
- windows hash   = SHA-256 of the batch's window digests (hex, concatenated,
                   in ascending window_id order), hex; a batch without windows
                   (a correction) hashes the empty string
- batch hash     = SHA-256 of ``chain_id|seq|batch_id|prev_hash|entries_hash|
                   entry_count|energy_mj|gpu_ms|windows_hash|window_count``, hex
- prev_hash of the first batch of a chain (seq 0) = 64 zeros.

The raw windows are covered by the batch hash, so a payload edited in the
database breaks the chain, like an edited entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "CARBON_SCALE", "COST_SCALE", "GENESIS", "HOURS_SCALE", "as_decimal", "batch_hash", "decimal_text",
    "entries_hash", "entry_digest", "entry_line", "entry_line_fixed", "fixed", "fixed_text", "to_units",
    "window_digest", "windows_hash",
]

GENESIS = "0" * 64
# Decimal places the ledger stores (and the chain prints) for each decimal figure.
HOURS_SCALE = 9  # normalised GPU-hours
COST_SCALE = 6  # EUR
CARBON_SCALE = 3  # g CO2


def fixed(units: int, scale: int) -> str:
    """An integer count of 10^-scale as plain fixed-point text: fixed(5, 3) == "0.005"."""
    form, power = _FIXED[scale]
    if units >= 0:
        return form % divmod(units, power)
    return "-" + form % divmod(-units, power)


_FIXED = {k: (f"%d.%0{k}d", 10**k) for k in range(1, 19)}


def as_decimal(v: Decimal | str | int) -> Decimal:
    """A stored decimal as the driver gives it (a Decimal, or text on some engines) as a Decimal."""
    return v if type(v) is Decimal else Decimal(str(v))


def to_units(v: Decimal | str | int, scale: int) -> int:
    """A stored decimal (already at its scale, as ClickHouse returns it) in units of 10^-scale."""
    return int(as_decimal(v).scaleb(scale).to_integral_value())


def decimal_text(v: Decimal | str | int, scale: int) -> str:
    return fixed(to_units(v, scale), scale)


def fixed_text(text: str, scale: int) -> str:
    """A stored decimal as ClickHouse's ``toString`` prints it (every digit of its
    scale, or, on newer servers, without trailing zeros) as the chain's text: the
    same as :func:`decimal_text` of its value, without a Decimal in between."""
    dot = text.find(".")
    if dot > 0 and len(text) - dot - 1 == scale:
        return text  # every digit of the scale: already the chain's text
    whole, _, frac = text.partition(".")
    if text.isascii() and whole.lstrip("-").isdigit() and len(frac) < scale and (not frac or frac.isdigit()):
        return f"{whole}.{frac.ljust(scale, '0')}"
    return decimal_text(text, scale)


def entry_line(entry_id: str, window_id: str, site_id: str, gpu_uuid: str, job_id: str | None,
               account_kind: str, account: str, project: str, member: str, energy_mj: int, gpu_ms: int,
               normalised_gpu_hours: Decimal | str, cost_eur: Decimal | str, carbon_g: Decimal | str, config_hash: str,
               account_source: str, *, to_text: Callable[[Any, int], str] = decimal_text) -> bytes:
    """``to_text``: how a decimal becomes the chain's text (:func:`fixed_text` for the
    server's print of a stored decimal)."""
    hours, cost, carbon = (to_text(normalised_gpu_hours, HOURS_SCALE), to_text(cost_eur, COST_SCALE),
                           to_text(carbon_g, CARBON_SCALE))
    return entry_line_fixed(entry_id, window_id, site_id, gpu_uuid, job_id or "", account_kind, account, project,
                            member, str(int(energy_mj)), str(int(gpu_ms)), hours, cost, carbon, config_hash,
                            account_source)


def entry_line_fixed(*fields: str) -> bytes:
    """The line from its fields already as text (decimals through :func:`fixed`), in ENTRY_FIELDS order."""
    return ("|".join(fields) + "\n").encode()


def entry_digest(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def entries_hash(digests_in_entry_id_order: Iterable[str]) -> str:
    """SHA-256 of the digests' texts one after the other (hashed in one call: the same bytes)."""
    return hashlib.sha256("".join(digests_in_entry_id_order).encode()).hexdigest()


def window_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def windows_hash(digests_in_window_id_order: Iterable[str]) -> str:
    return entries_hash(digests_in_window_id_order)  # the same construction over the window digests


def batch_hash(chain_id: str, seq: int, batch_id: str, prev_hash: str, entries_hash_: str,
               entry_count: int, energy_mj: int, gpu_ms: int, windows_hash_: str, window_count: int) -> str:
    text = "|".join((chain_id, str(seq), batch_id, prev_hash, entries_hash_, str(entry_count),
                     str(energy_mj), str(gpu_ms), windows_hash_, str(window_count)))
    return hashlib.sha256(text.encode()).hexdigest()


ENTRY_FIELDS: Sequence[str] = (
    "entry_id", "window_id", "site_id", "gpu_uuid", "job_id", "account_kind", "account", "project", "member",
    "energy_mj", "gpu_ms", "normalised_gpu_hours", "cost_eur", "carbon_g", "config_hash", "account_source",
)
