"""From wire bytes to ledger entries: validate, attribute, price. Pure.

``WindowProcessor`` is what the stream worker calls per message and what
``bridgeledger attribute`` calls per line: the same validation, and the same
rules, which the stream runs compiled in the core (``compiled_rules``) and
``ledger recompute`` runs as defined in Python, so an audit compares the two.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from schemas import ConsortiumConfig, LedgerEntry, WireError
from schemas.consortium import GpuModel, Site
from schemas.ledger import entry_from_row
from schemas.signing import VerifyKey, verifier, verify_window
from schemas.telemetry import Window, decode_window_fast
from streams.attribution import ConfigMemo, Tenant, attribute_gpu, idle_tenant, procless_tenant, tenant_for_job
from streams.core import Attributor, EntryRows
from streams.core import entry_id as _entry_id
from streams.job_book import JobBook, Jobs
from streams.pricing import Tariff

__all__ = ["Outcome", "Rejection", "Screened", "WindowProcessor", "bad_signature", "conflicting_duplicate", "entry_id"]

# Energy may exceed limit × time by this factor before a window is called
# implausible: power limits are enforced over a moving average, and the
# counter and the window clock are read a few milliseconds apart.
ENERGY_TOLERANCE = 1.25
MAX_WINDOW_S = 3600.0
# No honest window is larger than this: a bigger message is refused before it is parsed.
MAX_MESSAGE_BYTES = 256 * 1024
# A window may not end later than this after the broker appended it (the
# topic's LogAppendTime): an agent clock that runs ahead would book usage in
# the future.
MAX_FUTURE_SKEW_NS = 120 * 1_000_000_000
# A window that started longer ago than this is refused (``too_old``): closed
# months stay closed; a correction books what arrives that late.
DEFAULT_MAX_AGE_NS = 7 * 86_400 * 1_000_000_000
# Detail texts of rejections are cut to this (they may quote hostile input).
MAX_DETAIL_CHARS = 500


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused message: machine-readable reason, bounded printable detail, original bytes."""

    reason: str
    detail: str
    raw: bytes

    @classmethod
    def of(cls, reason: str, detail: str, raw: bytes | None) -> Rejection:
        """Detail cut to MAX_DETAIL_CHARS and made encodable (no lone surrogates),
        so that writing the dead letter can never fail on its content."""
        text = detail[:MAX_DETAIL_CHARS].encode("utf-8", "backslashreplace").decode("utf-8")
        return cls(reason, text, b"" if raw is None else bytes(raw))

    @classmethod
    def internal(cls, exc: BaseException, raw: bytes | None) -> Rejection:
        """An unexpected error inside the per-message path: a dead letter, never a crash."""
        return cls.of("internal_error", f"{type(exc).__name__}: {exc}", raw)


def conflicting_duplicate(window_id: str, raw: bytes, booked: bytes | str) -> Rejection:
    """A window whose identity is taken by other content: never booked, never silent."""
    first = booked if isinstance(booked, str) else hashlib.sha256(booked).hexdigest()
    return Rejection.of("conflicting_duplicate", f"window {window_id}: content sha256 "
                        f"{hashlib.sha256(raw).hexdigest()} differs from the first one, {first}", raw)


@dataclass(slots=True)
class Outcome:
    window: Window | None
    entries: list[LedgerEntry] = field(default_factory=list)
    rejection: Rejection | None = None


def present(raw: bytes | None) -> bytes:
    if raw is None:
        raise WireError("empty", "a record without a value (tombstone)")
    return raw


def bad_signature(w: Window) -> WireError:
    return WireError("bad_signature", f"signature of {w.window_id} does not verify with {w.key_id}")


@dataclass(frozen=True, slots=True)
class Screened:
    """A decoded window before its signature is checked (:meth:`WindowProcessor.screen`)."""

    window: Window
    key: VerifyKey | None  # None: unsigned, and its site may send unsigned windows
    refusal: WireError | None  # refused for another reason, if its signature verifies


def entry_id(window_id: str, gpu_uuid: str, account_kind: str, account: str, job_id: str | None,
             member: str) -> str:
    """Deterministic: the same inputs always give the same id, so replays dedup. SHA-256
    of the six joined by U+001F (docs/attribution.md), computed by the core as every entry's is."""
    return _entry_id(window_id, gpu_uuid, account_kind, account, job_id or "", member)


class WindowProcessor:
    """Validation, attribution and pricing of one message.

    Every window must be signed (Ed25519, schemas/signing.py) with one of the
    public keys the config lists for *its* site, so no site can report for
    another and nobody without the site's private key can make a window; a
    site the config opts out (``allow_unsigned``) may also send unsigned
    windows. ``now_ns`` (the broker's append time of the message, or the
    worker's clock) enables the time checks: a window may end at most
    MAX_FUTURE_SKEW_NS after it and start at most ``max_age_ns`` before it.
    Offline recomputation passes none.

    Two ways in: :meth:`process` (one message to an :class:`Outcome` with
    LedgerEntry objects; offline tools, tests) and, for the stream's hot path,
    :meth:`check` then :meth:`attribute_rows` (entries into the compiled core's
    :class:`~streams.core.EntryRows`, read back as the tuples schemas/ledger.py
    ``ENTRY_ROW_FIELDS`` describes). Both run the same code.

    ``compiled_rules`` (the default, the stream's): attribute_rows runs the
    rules compiled in the core (native/src/attribute.rs), which give the same
    entries as streams/attribution.py and streams/pricing.py
    (tests/unit/streams/test_core_rules.py) and leave to them any window they
    cannot take exactly. False: the Python rules alone, the definition, which
    ``ledger recompute`` runs so that an audit compares the stream's booking
    with it.
    """

    def __init__(self, config: ConsortiumConfig, config_hash: str, max_age_ns: int = DEFAULT_MAX_AGE_NS,
                 compiled_rules: bool = True) -> None:
        self.config = config
        self.config_hash = config_hash
        # (site, key id) -> public key: a key verifies only its own site's windows
        self.keys: dict[tuple[str, str], VerifyKey] = {
            (site.id, k.id): verifier(k.ed25519) for site in config.sites for k in site.keys}
        self.max_age_ns = max_age_ns
        self._tariffs: dict[tuple[str, str], tuple[str, Tariff]] = {}
        # the config's hourly grid intensity, if it names a series: a tariff per (model, site, value)
        self._grid = config.grid_series()
        self._hourly: dict[tuple[str, str, Decimal], Tariff] = {}
        self._memo = ConfigMemo(config)
        self._models: dict[str, GpuModel] = {}  # by NVML name, the config's models found so far
        # the rules compiled in the core, for the stream; without (``ledger recompute``), the Python rules
        self._rules = _RulesForCore(self) if compiled_rules else None
        self._core = Attributor(self._rules) if self._rules is not None else None

    def process(self, raw: bytes | None, jobs: Jobs | None = None, now_ns: int | None = None) -> Outcome:
        """One message to its entries or its rejection; never raises on content."""
        try:
            window = self.check(raw, now_ns)
            return Outcome(window, self.attribute(window, jobs))
        except WireError as exc:
            return Outcome(None, rejection=Rejection.of(exc.reason, exc.detail, raw))
        except Exception as exc:  # a bug must cost one message, not the ledger
            return Outcome(None, rejection=Rejection.internal(exc, raw))

    def check(self, raw: bytes | None, now_ns: int | None = None) -> Window:
        """The window in a message, or :class:`WireError` naming why it is refused."""
        raw = present(raw)
        window = self._decode(raw)
        self._validate(raw, window, now_ns)
        return window

    @staticmethod
    def _decode(raw: bytes) -> Window:
        if len(raw) > MAX_MESSAGE_BYTES:
            raise WireError("oversized", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
        return decode_window_fast(raw)

    def check_signature(self, raw: bytes, w: Window, site: Site) -> None:
        """WireError unless the window is signed, over its exact bytes, by a key
        the config lists for its site (or the site may send unsigned windows)."""
        key = self.signature_key(w, site)
        if key is not None and not verify_window(raw, key):
            raise bad_signature(w)

    def signature_key(self, w: Window, site: Site) -> VerifyKey | None:
        """The key that must have signed ``w`` (None: an unsigned window its site may send),
        or WireError (``unsigned``, ``unknown_key``)."""
        if w.signature is None:
            if site.allow_unsigned:
                return None
            raise WireError("unsigned", f"site {w.site_id} must sign its windows")
        key = self.keys.get((w.site_id, w.key_id or ""))
        if key is None:
            raise WireError("unknown_key", f"key {w.key_id!r} is not a key of site {w.site_id} in config "
                                           f"{self.config.version} (unknown, revoked, or another site's)")
        return key

    def screen(self, raw: bytes | None, now_ns: int | None = None) -> Screened:
        """:meth:`check` with the signature left to the caller (who checks it before
        booking anything: streams/worker.py runs the checks of a batch beside its
        attribution). WireError for what is refused before the key is known; a
        later refusal comes back in ``refusal``, to be reported only if the
        signature verifies (a forged message is ``bad_signature`` whatever else
        is wrong with it, as with :meth:`check`)."""
        window = self._decode(present(raw))
        key = self.signature_key(window, self._site(window))
        try:
            self._plausible(window, now_ns)
        except WireError as exc:
            return Screened(window, key, exc)
        return Screened(window, key, None)

    def _site(self, w: Window) -> Site:
        site = self.config.site(w.site_id)
        if site is None:
            raise WireError("unknown_site", f"site_id {w.site_id!r} is not in config {self.config.version}")
        return site

    def _validate(self, raw: bytes, w: Window, now_ns: int | None) -> None:
        self.check_signature(raw, w, self._site(w))
        self._plausible(w, now_ns)

    def _plausible(self, w: Window, now_ns: int | None) -> None:
        """The checks after the signature: time, size, GPUs, energy."""
        if now_ns is not None:
            if w.window_end_ns > now_ns + MAX_FUTURE_SKEW_NS:
                ahead = (w.window_end_ns - now_ns) / 1e9
                raise WireError("clock_skew", f"window ends {ahead:.0f} s after the broker received it")
            if w.window_start_ns < now_ns - self.max_age_ns:
                age_h = (now_ns - w.window_start_ns) / 3.6e12
                raise WireError("too_old", f"window started {age_h:.1f} h before the broker received it "
                                           f"(limit {self.max_age_ns / 3.6e12:.0f} h); book it with a correction")
        window_s = w.window_s
        if window_s > MAX_WINDOW_S:
            raise WireError("implausible_window", f"window of {window_s:.0f} s > {MAX_WINDOW_S:.0f} s")
        seen: set[str] = set()
        models = self._models
        for g in w.gpus:
            if g.uuid in seen:
                raise WireError("schema_invalid", f"GPU {g.uuid} appears twice in one window")
            seen.add(g.uuid)
            model = models.get(g.model)
            if model is None:
                model = self.config.gpu_model(g.model)
                if model is None:
                    raise WireError("unknown_gpu_model", f"GPU model {g.model!r} is not in the config")
                models[g.model] = model
            if g.gpu_seconds > window_s * 1.001 + 0.001:
                raise WireError(
                    "implausible_window", f"GPU {g.uuid}: {g.gpu_seconds} GPU-s in a {window_s} s window"
                )
            # the config's limit, never the window's own claim: a site cannot raise its ceiling
            limit_mw = model.power_limit_w * 1000
            ceiling = limit_mw * window_s * ENERGY_TOLERANCE
            if g.energy_mj > ceiling:
                raise WireError(
                    "implausible_energy",
                    f"GPU {g.uuid}: {g.energy_mj} mJ in {window_s:.3f} s exceeds "
                    f"{limit_mw / 1000:.0f} W (config, {model.key}) × {ENERGY_TOLERANCE}",
                )

    def attribute(self, w: Window, jobs: Jobs | None = None) -> list[LedgerEntry]:
        rows = EntryRows()
        self.attribute_rows(w, jobs, rows)
        return [entry_from_row(r) for r in rows]

    def _model_site(self, model_name: str, site_id: str) -> tuple[GpuModel, Site]:
        model, site = self.config.gpu_model(model_name), self.config.site(site_id)
        if model is None or site is None:  # validate() refused such a window before this
            raise WireError("unknown_gpu_model" if model is None else "unknown_site",
                            f"{model_name!r} at {site_id!r} is not in config {self.config.version}")
        return model, site

    def _tariff(self, model_name: str, site_id: str) -> tuple[str, Tariff]:
        """(model key, tariff) of a GPU model, by the name NVML gives it, at a site."""
        hit = self._tariffs.get((model_name, site_id))
        if hit is None:
            model, site = self._model_site(model_name, site_id)
            hit = self._tariffs[(model_name, site_id)] = (model.key, Tariff.of(model, site, self.config.pricing))
        return hit

    def _hourly_tariff(self, model_name: str, site_id: str, gco2: Decimal) -> Tariff:
        """The tariff with an hour's grid intensity from the config's series."""
        hit = self._hourly.get((model_name, site_id, gco2))
        if hit is None:
            if len(self._hourly) > 100_000:  # models × sites × distinct hourly values: bounded anyway
                self._hourly.clear()
            model, site = self._model_site(model_name, site_id)
            hit = self._hourly[(model_name, site_id, gco2)] = Tariff.of(model, site, self.config.pricing, gco2)
        return hit

    def _tariff_at(self, model_name: str, site_id: str, gco2: Decimal | None) -> tuple[str, Tariff]:
        """(model key, tariff) of a GPU model at a site, with the hour's grid intensity
        ``gco2`` where the config has a series."""
        model_key, tariff = self._tariffs.get((model_name, site_id)) or self._tariff(model_name, site_id)
        if gco2 is not None:
            tariff = self._hourly_tariff(model_name, site_id, gco2)
        return model_key, tariff

    def attribute_rows(self, w: Window, jobs: Jobs | None, rows: EntryRows) -> None:
        """Add the window's ledger entries to ``rows`` (a validated window): the rules
        decide each entry's account, member and figures; ``rows`` gives it its id and
        chain digest (none where ``rows`` is made without, as ``ledger recompute``
        does: it compares the fields, not the digest)."""
        config_hash = self.config_hash
        site_id = w.site_id
        start = w.window_start_ns
        span = (start, w.window_end_ns)
        config, memo = self.config, self._memo
        # the hour the window starts in prices its carbon, where the config has an hourly series
        gco2 = self._grid.at(site_id, start) if self._grid is not None else None
        rows.window(config_hash, w.window_id, w.agent_id, w.boot_id, w.seq, site_id, w.node, start, w.window_end_ns)
        core, rules = self._core, self._rules
        if core is not None and rules is not None:
            rules.use(jobs, core)
            try:
                taken = core.attribute(w.gpus, site_id, start, w.window_end_ns,
                                       None if gco2 is None else (str(gco2), gco2), rows)
            except Exception:
                raise
            except BaseException as exc:  # a panic in the core is a BaseException (pyo3's PanicException)
                if type(exc).__name__ != "PanicException":
                    raise
                raise RuntimeError(f"the compiled rules failed: {exc}") from exc  # one window, not the worker
            if taken:
                return
            # a window the compiled rules leave to these (a figure beyond 64 bits): the same rules, in Python
        add, on_gpu = rows.add, rows.gpu
        for g in w.gpus:
            model_key, tariff = self._tariff_at(g.model, site_id, gco2)
            on_gpu(g.uuid, model_key)
            price = tariff.price
            for kind, account, project, member, job, energy_mj, gpu_ms, source in attribute_gpu(
                    site_id, g, config, jobs, span, memo):
                add(kind, account, project, member, job or "", energy_mj, gpu_ms, *price(energy_mj, gpu_ms), source)


_NO_JOBS = JobBook()  # what attribution sees where no job book is given; never changed


def _tenant(t: Tenant) -> tuple[str, str, str, tuple[tuple[str, int], ...], str | None, str]:
    return t.account_kind, t.account, t.project, t.owners, t.job_id, t.source


class _RulesForCore:
    """What the compiled rules (native/src/attribute.rs) ask of the Python rules:
    what depends on the config and the job book, worked out by the very functions
    :func:`~streams.attribution.attribute_gpu` calls. The core remembers the
    answers; it forgets those that depend on the job book when the book changes
    (:meth:`use`: another book, or a :class:`JobBook` whose ``generation`` moved;
    a plain mapping is never trusted to stay the same)."""

    __slots__ = ("generation", "jobs", "processor")

    def __init__(self, processor: WindowProcessor) -> None:
        self.processor = processor
        self.jobs: Jobs = _NO_JOBS
        self.generation: int | None = _NO_JOBS.generation

    def use(self, jobs: Jobs | None, core: Attributor) -> None:
        """Before the core attributes a window with ``jobs``."""
        book = _NO_JOBS if jobs is None else jobs
        generation = book.generation if isinstance(book, JobBook) else None
        if book is not self.jobs or generation is None or generation != self.generation:
            core.forget_jobs()
            self.jobs, self.generation = book, generation

    def tenant(self, site_id: str, job_id: str | None, claim: str | None) -> tuple[object, ...]:
        return _tenant(tenant_for_job(site_id, job_id, claim, self.jobs, self.processor._memo))

    def procless(self, site_id: str, gpu_uuid: str, start_ns: int, end_ns: int) -> tuple[tuple[object, ...], bool]:
        tenant, timeless = procless_tenant(site_id, gpu_uuid, self.jobs, (start_ns, end_ns), self.processor._memo)
        return _tenant(tenant), timeless

    def idle(self, site_id: str) -> tuple[object, ...]:
        return _tenant(idle_tenant(site_id, self.processor._memo))

    def tariff(self, model_name: str, site_id: str, gco2: Decimal | None) -> tuple[object, ...]:
        """(model key, den, hours_g, gpu_cost_per_ms, energy_cost_per_mj, carbon_e): a Tariff's ratios."""
        model_key, t = self.processor._tariff_at(model_name, site_id, gco2)
        return model_key, t.den, t.hours_g, t.gpu_cost_per_ms, t.energy_cost_per_mj, t.carbon_e
