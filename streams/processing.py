"""From wire bytes to ledger entries: validate, attribute, price. Pure.

``WindowProcessor.process`` is what the Faust agent calls per message and
what ``bridgeledger attribute`` calls per line, so the live ledger and any
offline recomputation run the very same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas import ConsortiumConfig, LedgerEntry, TelemetryWindow, WireError
from schemas.signing import verify_document
from schemas.telemetry import parse_window
from streams.attribution import JobBook, attribute_gpu
from streams.pricing import price_part

__all__ = ["Outcome", "Rejection", "WindowProcessor", "entry_id"]

# Energy may exceed limit × time by this factor before a window is called
# implausible: power limits are enforced over a moving average, and the
# counter and the window clock are read a few milliseconds apart.
ENERGY_TOLERANCE = 1.25
MAX_WINDOW_S = 3600.0
# No node has more GPUs than this, and no honest window is larger than this:
# a bigger message is refused before it is parsed.
MAX_GPUS = 64
MAX_MESSAGE_BYTES = 256 * 1024
# A window may not end later than this after the time Kafka stamped it: an
# agent clock that runs ahead would book usage in the future.
MAX_FUTURE_SKEW_NS = 120 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    raw: bytes


@dataclass(slots=True)
class Outcome:
    window: TelemetryWindow | None
    entries: list[LedgerEntry] = field(default_factory=list)
    rejection: Rejection | None = None


def entry_id(window_id: str, gpu_uuid: str, account_kind: str, account: str, job_id: str | None,
             member: str) -> str:
    """Deterministic: the same inputs always give the same id, so replays dedup."""
    key = "\x1f".join((window_id, gpu_uuid, account_kind, account, job_id or "", member))
    return hashlib.sha256(key.encode()).hexdigest()


class WindowProcessor:
    """Validation, attribution and pricing of one message.

    ``keys`` maps key ids to site keys; a site with ``key_ids`` in the config
    must sign its windows with one of *its* keys, so no site can report for
    another. ``now_ns`` (the broker's timestamp of the message) enables the
    clock-skew check; offline recomputation passes none.
    """

    def __init__(self, config: ConsortiumConfig, config_hash: str,
                 keys: Mapping[str, bytes] | None = None) -> None:
        self.config = config
        self.config_hash = config_hash
        self.keys = dict(keys or {})

    def process(self, raw: bytes, jobs: JobBook | None = None, now_ns: int | None = None) -> Outcome:
        try:
            if len(raw) > MAX_MESSAGE_BYTES:
                raise WireError("oversized", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
            doc, window = parse_window(raw)
            self._validate(doc, window, now_ns)
        except WireError as exc:
            return Outcome(None, rejection=Rejection(exc.reason, exc.detail, raw))
        return Outcome(window, self.attribute(window, jobs))

    def _check_signature(self, doc: dict[str, Any], w: TelemetryWindow, site_keys: list[str]) -> None:
        if not site_keys:
            return  # this site is not required to sign (development, migration)
        if w.signature is None or w.key_id is None:
            raise WireError("unsigned", f"site {w.site_id} must sign its windows")
        if w.key_id not in site_keys:
            raise WireError("unknown_key", f"key {w.key_id!r} is not a key of site {w.site_id}")
        key = self.keys.get(w.key_id)
        if key is None:
            raise WireError("unknown_key", f"key {w.key_id!r} is not in the centre's keyring")
        if not verify_document(doc, key):
            raise WireError("bad_signature", f"signature of {w.window_id} does not verify with {w.key_id}")

    def _validate(self, doc: dict[str, Any], w: TelemetryWindow, now_ns: int | None) -> None:
        site = self.config.site(w.site_id)
        if site is None:
            raise WireError("unknown_site", f"site_id {w.site_id!r} is not in config {self.config.version}")
        if len(w.gpus) > MAX_GPUS:
            raise WireError("oversized", f"{len(w.gpus)} GPUs in one window > {MAX_GPUS}")
        self._check_signature(doc, w, site.key_ids)
        if now_ns is not None and w.window_end_ns > now_ns + MAX_FUTURE_SKEW_NS:
            ahead = (w.window_end_ns - now_ns) / 1e9
            raise WireError("clock_skew", f"window ends {ahead:.0f} s after the broker received it")
        window_s = w.window_s
        if window_s > MAX_WINDOW_S:
            raise WireError("implausible_window", f"window of {window_s:.0f} s > {MAX_WINDOW_S:.0f} s")
        seen: set[str] = set()
        for g in w.gpus:
            if g.uuid in seen:
                raise WireError("schema_invalid", f"GPU {g.uuid} appears twice in one window")
            seen.add(g.uuid)
            model = self.config.gpu_model(g.model)
            if model is None:
                raise WireError("unknown_gpu_model", f"GPU model {g.model!r} is not in the config")
            if g.gpu_seconds > window_s * 1.001 + 0.001:
                raise WireError(
                    "implausible_window", f"GPU {g.uuid}: {g.gpu_seconds} GPU-s in a {window_s} s window"
                )
            limit_mw = g.power_limit_mw or model.power_limit_w * 1000
            ceiling = limit_mw * window_s * ENERGY_TOLERANCE
            if g.energy_mj > ceiling:
                raise WireError(
                    "implausible_energy",
                    f"GPU {g.uuid}: {g.energy_mj} mJ in {window_s:.3f} s exceeds "
                    f"{limit_mw / 1000:.0f} W × {ENERGY_TOLERANCE}",
                )

    def attribute(self, w: TelemetryWindow, jobs: JobBook | None = None) -> list[LedgerEntry]:
        site = self.config.site(w.site_id)
        assert site is not None  # validated
        entries: list[LedgerEntry] = []
        for g in w.gpus:
            model = self.config.gpu_model(g.model)
            assert model is not None  # validated
            for part in attribute_gpu(w.site_id, g, self.config, jobs, (w.window_start_ns, w.window_end_ns)):
                price = price_part(part.energy_mj, part.gpu_ms, model, site, self.config.pricing)
                # model_construct: every field is computed here from validated input,
                # so validating again would only cost time on the hot path
                entries.append(
                    LedgerEntry.model_construct(
                        entry_id=entry_id(w.window_id, g.uuid, part.account_kind, part.account,
                                          part.job_id, part.member),
                        window_id=w.window_id,
                        agent_id=w.agent_id,
                        boot_id=w.boot_id,
                        seq=w.seq,
                        site_id=w.site_id,
                        node=w.node,
                        gpu_uuid=g.uuid,
                        gpu_model=model.key,
                        window_start_ns=w.window_start_ns,
                        window_end_ns=w.window_end_ns,
                        job_id=part.job_id,
                        account_kind=part.account_kind,
                        account=part.account,
                        project=part.project,
                        member=part.member,
                        energy_mj=part.energy_mj,
                        gpu_ms=part.gpu_ms,
                        normalised_gpu_hours=price.normalised_gpu_hours,
                        cost_eur=price.cost_eur,
                        carbon_g=price.carbon_g,
                        config_hash=self.config_hash,
                        corrects=None,
                    )
                )
        return entries
