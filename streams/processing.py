"""From wire bytes to ledger entries: validate, attribute, price. Pure.

``WindowProcessor.process`` is what the Faust agent calls per message and
what ``bridgeledger attribute`` calls per line, so the live ledger and any
offline recomputation run the very same code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from schemas import ConsortiumConfig, LedgerEntry, TelemetryWindow, WireError, decode_window
from streams.attribution import JobBook, attribute_gpu
from streams.pricing import price_part

__all__ = ["Outcome", "Rejection", "WindowProcessor", "entry_id"]

# Energy may exceed limit × time by this factor before a window is called
# implausible: power limits are enforced over a moving average, and the
# counter and the window clock are read a few milliseconds apart.
ENERGY_TOLERANCE = 1.25
MAX_WINDOW_S = 3600.0


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
    def __init__(self, config: ConsortiumConfig, config_hash: str) -> None:
        self.config = config
        self.config_hash = config_hash

    def process(self, raw: bytes, jobs: JobBook | None = None) -> Outcome:
        try:
            window = decode_window(raw)
            self._validate(window)
        except WireError as exc:
            return Outcome(None, rejection=Rejection(exc.reason, exc.detail, raw))
        return Outcome(window, self.attribute(window, jobs))

    def _validate(self, w: TelemetryWindow) -> None:
        site = self.config.site(w.site_id)
        if site is None:
            raise WireError("unknown_site", f"site_id {w.site_id!r} is not in config {self.config.version}")
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
            for part in attribute_gpu(w.site_id, g, self.config, jobs):
                price = price_part(part.energy_mj, part.gpu_ms, model, site, self.config.pricing)
                entries.append(
                    LedgerEntry(
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
                    )
                )
        return entries
