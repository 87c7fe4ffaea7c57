"""The consortium config: members, sites, GPU models, projects, accounts, prices.

One versioned YAML file. Its content hash (SHA-256 of the file bytes, so an
auditor can check it with ``sha256sum``) goes on every ledger entry, and the
file itself is stored in the ledger under that hash.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import ConfigError
from schemas.grid import GridSeries, parse_grid_series
from schemas.signing import PUBLIC_KEY_PATTERN
from schemas.telemetry import ID_PATTERN

__all__ = [
    "CashBudget",
    "ConsortiumConfig",
    "GpuModel",
    "GridIntensityRef",
    "Member",
    "Owner",
    "Pledge",
    "Pricing",
    "Project",
    "Site",
    "SiteKey",
    "load_config",
    "parse_config",
    "grid_series_for",
    "read_config",
]

Iso2 = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code")]
Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
KeyId = Annotated[str, Field(pattern=ID_PATTERN)]  # the wire contract's identifiers
# Shares become integer weights in parts per million (streams/attribution.py
# SHARE_SCALE): a share with more than six decimals would be rounded silently.
Share = Annotated[Decimal, Field(gt=0, le=1, decimal_places=6)]
# Shares are written with a few decimals by people; exact Decimal sums must hit 1.
_ONE = Decimal(1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(_Strict):
    code: Iso2
    name: str = Field(min_length=1)
    contribution_share: Share


class SiteKey(_Strict):
    """A public key that may sign a site's windows (schemas/signing.py)."""

    id: KeyId
    ed25519: str = Field(pattern=PUBLIC_KEY_PATTERN, description="the public key, 64 hex digits")


class Site(_Strict):
    id: Ident
    country: Iso2
    energy_price_eur_per_kwh: Decimal = Field(ge=0)
    pue: Decimal = Field(ge=1, le=3)
    grid_gco2_per_kwh: Decimal = Field(ge=0)
    # The public keys that may sign this site's windows: one per node is allowed,
    # two during a rotation; removing one revokes it.
    keys: list[SiteKey] = Field(default_factory=list)
    # Windows without a signature are refused (reason unsigned) unless the
    # config opts the site out here, by name; the worker logs every opted-out
    # site at start and statements say so.
    allow_unsigned: bool = False
    # Who pays is the scheduler's word (job events). Only a site named here may
    # have a window's own account claim used, for jobs no job event describes;
    # such entries say so (account_source self_declared) and statements show the share.
    self_declared_accounts: bool = False
    # Who bears the site's idle GPU time and energy (streams/attribution.py rule 4):
    # apart: nobody, an entry of its own (idle:<site>, no member); host: the member
    # hosting the site (its country); shared: every member by contribution share.
    idle_policy: Literal["apart", "host", "shared"] = "apart"
    # GPUs the site declares (its inventory): the base of its availability (ledger/capacity.py).
    gpus: int | None = Field(default=None, ge=1, le=1_000_000)
    # The site's name in the grid's accounting (APEL SiteName, e.g. GOCDB); default: the id.
    grid_site: str | None = Field(default=None, min_length=1, max_length=255)


class GpuModel(_Strict):
    key: Ident
    # NVML device names (nvmlDeviceGetName) that are this model.
    names: list[str] = Field(min_length=1)
    # H100-equivalents per GPU-hour, the consortium's unit of normalised usage.
    normalisation_factor: Decimal = Field(gt=0)
    power_limit_w: int = Field(gt=0, le=10_000)


class Owner(_Strict):
    member: Iso2
    share: Share


class Project(_Strict):
    id: Ident
    name: str = Field(min_length=1)
    owners: list[Owner] = Field(min_length=1)
    # Scheduler accounts / Kubernetes namespaces whose jobs belong to this project.
    accounts: list[str] = Field(min_length=1)
    # The project's VO / FQAN in grid accounting (APEL FQAN, e.g. /vo.example.org/Role=NULL);
    # default: /<project id>.
    fqan: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _owner_shares(self) -> Project:
        total = sum((o.share for o in self.owners), Decimal(0))
        if total != _ONE:
            raise ValueError(f"owner shares sum to {total}, must be exactly 1")
        if len({o.member for o in self.owners}) != len(self.owners):
            raise ValueError("an owner member is listed twice")
        return self


class Pledge(_Strict):
    """Capacity a member pledges at its own sites (in kind), for a month or a year."""

    member: Iso2
    period: str = Field(pattern=r"^\d{4}(-(0[1-9]|1[0-2]))?$", description="YYYY or YYYY-MM")
    # normalised (H100-equivalent) GPU-hours its sites make available over the period
    normalised_gpu_hours: Decimal = Field(ge=0)
    # the share of calendar time its declared GPUs should be up and reporting
    availability_target: Decimal = Field(default=Decimal("0.95"), ge=0, le=1)


class GridIntensityRef(_Strict):
    """The hourly grid-intensity series (schemas/grid.py): its file, relative to the
    config file, and the SHA-256 of its bytes, so the config's hash pins the series."""

    file: str = Field(min_length=1, max_length=255, pattern=r"^[^/\x00][^\x00]*$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class CashBudget(_Strict):
    """Money the members pay in for a period (a month or a year), each by its budget key
    (its ``contribution_share``): counted under the ``contributed_value`` balance rule."""

    period: str = Field(pattern=r"^\d{4}(-(0[1-9]|1[0-2]))?$", description="YYYY or YYYY-MM")
    amount: Decimal = Field(ge=0)


class Pricing(_Strict):
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    # Capacity price per normalised (H100-equivalent) GPU-hour, on top of energy.
    gpu_hour_rate: Decimal = Field(ge=0)


class ConsortiumConfig(_Strict):
    version: str = Field(min_length=1)
    members: list[Member] = Field(min_length=1)
    sites: list[Site] = Field(min_length=1)
    gpu_models: list[GpuModel] = Field(min_length=1)
    projects: list[Project] = Field(default_factory=list)
    pricing: Pricing
    # The public keys of the ledger itself: the stream signs its checkpoints and
    # the statements with one of them (schemas/checkpoint.py), and every
    # member's witness checks them. Two during a rotation; removing one revokes it.
    ledger_keys: list[SiteKey] = Field(default_factory=list)
    # In-kind contributions: capacity members pledge at their sites (ledger/capacity.py).
    pledges: list[Pledge] = Field(default_factory=list)
    # How a member's contribution is weighed against its usage (ledger/balance.py):
    # contribution_share: the budget key above; contributed_value: its share of what all
    # contributed in the month, cash (cash_budgets by the budget key) plus the in-kind value
    # its sites delivered (ledger/capacity.py) — docs/contributions.md.
    balance_rule: Literal["contribution_share", "contributed_value"] = "contribution_share"
    cash_budgets: list[CashBudget] = Field(default_factory=list)
    # Hourly grid carbon intensity per site (schemas/grid.py); without it every window
    # is priced with its site's static grid_gco2_per_kwh.
    grid_intensity: GridIntensityRef | None = None

    @model_validator(mode="after")
    def _references(self) -> ConsortiumConfig:
        codes = [m.code for m in self.members]
        if len(set(codes)) != len(codes):
            raise ValueError("members: a member code is listed twice")
        total = sum((m.contribution_share for m in self.members), Decimal(0))
        if total != _ONE:
            raise ValueError(f"members: contribution_share values sum to {total}, must be 1")
        _unique("sites", [s.id for s in self.sites])
        _unique("gpu_models", [g.key for g in self.gpu_models])
        _unique("gpu_models names", [n for g in self.gpu_models for n in g.names])
        _unique("projects", [p.id for p in self.projects])
        _unique("projects accounts", [a for p in self.projects for a in p.accounts])
        # a key that signs for two sites would let one site report as the other
        _unique("sites keys id (a key belongs to one site)", [k.id for site in self.sites for k in site.keys])
        _unique("sites keys ed25519 (a key belongs to one site)", [k.ed25519 for site in self.sites for k in site.keys])
        # the ledger's keys sign checkpoints and statements, never windows
        _unique("ledger_keys / sites keys (a key has one role)",
                [k.ed25519 for k in self.ledger_keys] + [k.ed25519 for site in self.sites for k in site.keys])
        _unique("ledger_keys id", [k.id for k in self.ledger_keys])
        for site in self.sites:
            if not site.keys and not site.allow_unsigned:
                raise ValueError(f"sites: {site.id} lists no public keys, so none of its windows could be "
                                 f"booked; add its keys (bridgeledger agent keygen) or set allow_unsigned: true")
        for pledge in self.pledges:
            if pledge.member not in codes:
                raise ValueError(f"pledges: {pledge.member} is not a member")
        _unique("pledges (member, period)", [f"{x.member} {x.period}" for x in self.pledges])
        _unique("cash_budgets period", [x.period for x in self.cash_budgets])
        for site in self.sites:
            if site.idle_policy == "host" and site.country not in codes:
                raise ValueError(f"sites: {site.id} has idle_policy host but its country {site.country} is not a "
                                 f"member, so nobody would bear its idle time")
        for p in self.projects:
            for o in p.owners:
                if o.member not in codes:
                    raise ValueError(f"projects: {p.id} owner {o.member} is not a member")
        return self

    def with_grid_series(self, series: GridSeries) -> ConsortiumConfig:
        """Attach the series the config names (checked against its hash); returns self."""
        ref = self.grid_intensity
        if ref is None or series.sha256 != ref.sha256:
            raise ConfigError(f"config {self.version}: grid-intensity series {series.name} (sha256 "
                              f"{series.sha256[:12]}…) is not the one the config names")
        object.__setattr__(self, "_grid", series)
        return self

    def grid_series(self) -> GridSeries | None:
        """The hourly series, if the config names one; ConfigError if it was not loaded with it."""
        ref = self.grid_intensity
        if ref is None:
            return None
        series: GridSeries | None = self.__dict__.get("_grid")
        if series is None or series.sha256 != ref.sha256:
            raise ConfigError(f"config {self.version} names the grid-intensity series {ref.file} (sha256 "
                              f"{ref.sha256[:12]}…), which was not loaded with it")
        return series

    def grid_gco2_at(self, site_id: str, t_ns: int) -> Decimal | None:
        """The hourly intensity of ``t_ns``'s hour at the site; None: the site's static figure applies."""
        series = self.grid_series()
        return None if series is None else series.at(site_id, t_ns)

    # Lookups used on the hot path; built once per config object.
    def site(self, site_id: str) -> Site | None:
        return self._index()[0].get(site_id)

    def gpu_model(self, nvml_name: str) -> GpuModel | None:
        return self._index()[1].get(nvml_name)

    def project_for_account(self, account: str) -> Project | None:
        return self._index()[2].get(account)

    def _index(self) -> tuple[dict[str, Site], dict[str, GpuModel], dict[str, Project]]:
        # kept with the id of the object it was built for: a model_copy (which copies
        # __dict__) with other sites or projects must not answer from the original's index
        cached = self.__dict__.get("_idx")
        if cached is None or cached[0] != id(self):
            cached = (id(self), (
                {s.id: s for s in self.sites},
                {n: g for g in self.gpu_models for n in g.names},
                {a: p for p in self.projects for a in p.accounts},
            ))
            object.__setattr__(self, "_idx", cached)
        return cached[1]


def _unique(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{what}: {v!r} is listed twice")
        seen.add(v)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping: YAML
    keeps the last silently, so two members could read one file two ways."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"key {key!r} appears twice in one mapping (lines {seen[key]} and {line}); "
                                  f"keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_config(text: bytes, source: str = "<config>") -> tuple[ConsortiumConfig, str]:
    """Parse config bytes; return the config and its content hash (hex SHA-256)."""
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        cfg = ConsortiumConfig.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = re.sub(r"^Value error, ", "", first["msg"])
        raise ConfigError(
            f"{source}: field {where}: {msg} (fix the file; {len(exc.errors())} error(s) in all)"
        ) from exc
    return cfg, hashlib.sha256(text).hexdigest()


def load_config(path: str | Path) -> tuple[ConsortiumConfig, str]:
    cfg, digest, _ = read_config(path)
    return cfg, digest


def read_config(path: str | Path) -> tuple[ConsortiumConfig, str, bytes]:
    """The config, its hash, and the very bytes hashed (read once: what is
    stored in the ledger under the hash is what was parsed)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read consortium config: {exc.strerror}") from exc
    cfg, digest = parse_config(text, str(p))
    ref = cfg.grid_intensity
    if ref is not None:
        csv_path = p.parent / ref.file
        try:
            content = csv_path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: field grid_intensity.file: cannot read {csv_path}: {exc.strerror}") from exc
        cfg.with_grid_series(grid_series_for(cfg, content, str(csv_path)))
    return cfg, digest, text


def grid_series_for(cfg: ConsortiumConfig, content: bytes, source: str) -> GridSeries:
    """The series file a config names, checked against the config's hash of it and parsed."""
    ref = cfg.grid_intensity
    if ref is None:
        raise ConfigError(f"config {cfg.version} names no grid-intensity series")
    series = parse_grid_series(content, source, {s.id for s in cfg.sites})
    if series.sha256 != ref.sha256:
        raise ConfigError(f"{source}: its sha256 is {series.sha256}, the config (grid_intensity.sha256) says "
                          f"{ref.sha256}: the file changed since the config was written; a new series needs a "
                          f"new config version")
    return series
