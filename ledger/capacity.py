"""In-kind contributions: the capacity members pledged at their sites against what the sites delivered.

For a period and each site (its member is the site's country):

- **delivered**: normalised (H100-equivalent) GPU-hours of every ledger entry
  at the site (used by jobs, idle, unresolved; corrections net out) — the
  site's GPUs present and reporting, from the same entries the audits check;
- **used**: the part booked to consortium jobs; **utilisation** = used /
  delivered;
- **availability**: GPU-seconds the site's agents reported (its committed raw
  windows: GPUs × window length) / (its declared GPUs, ``gpus`` in the
  config, × the period's seconds). A window missing from an agent's sequence
  was not reported, so it counts as unavailable. Unknown without a declared
  inventory.

Per member: **pledged** normalised GPU-hours (the config's ``pledges``: a
monthly pledge counts in full for its month; a yearly one by the share of the
year the period covers), delivered (and %), availability against the pledge's
target, and the **in-kind value** of what was delivered at the consortium's
GPU-hour rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ledger.balance import contributed_shares
from ledger.months import prorated
from ledger.periods import period_source, sums_source
from schemas.consortium import ConsortiumConfig, Pledge

__all__ = ["Contributions", "MemberCapacity", "SiteCapacity", "capacity", "config_of_period", "contributions",
           "pledged_hours", "site_hours"]


@dataclass(frozen=True)
class SiteCapacity:
    site: str
    member: str
    gpus: int | None
    delivered_h: Decimal
    used_h: Decimal
    reported_gpu_s: int
    calendar_gpu_s: int | None

    @property
    def utilisation(self) -> Decimal | None:
        return self.used_h / self.delivered_h if self.delivered_h else None

    @property
    def availability(self) -> Decimal | None:
        return Decimal(self.reported_gpu_s) / Decimal(self.calendar_gpu_s) if self.calendar_gpu_s else None


@dataclass
class MemberCapacity:
    member: str
    name: str
    pledged_h: Decimal
    target: Decimal | None
    rate: Decimal
    sites: list[SiteCapacity] = field(default_factory=list)

    @property
    def delivered_h(self) -> Decimal:
        return sum((s.delivered_h for s in self.sites), Decimal(0))

    @property
    def used_h(self) -> Decimal:
        return sum((s.used_h for s in self.sites), Decimal(0))

    @property
    def delivered_share(self) -> Decimal | None:
        return self.delivered_h / self.pledged_h if self.pledged_h else None

    @property
    def availability(self) -> Decimal | None:
        declared = [s for s in self.sites if s.calendar_gpu_s]
        if not declared:
            return None
        return Decimal(sum(s.reported_gpu_s for s in declared)) / Decimal(sum(s.calendar_gpu_s or 0 for s in declared))

    @property
    def in_kind_value(self) -> Decimal:
        return self.delivered_h * self.rate

    @property
    def short(self) -> bool:
        """Under-delivered: less than pledged, or below its availability target."""
        low = self.delivered_share is not None and self.delivered_share < 1
        avail = self.availability
        return low or (self.target is not None and avail is not None and avail < self.target)


def pledged_hours(pledges: list[Pledge], member: str, start: datetime, end: datetime) -> Decimal:
    """A member's pledged hours over [start, end): each pledge by the share of its own period covered."""
    total = prorated([(p.period, p.normalised_gpu_hours) for p in pledges if p.member == member], start, end)
    return Decimal(total.numerator) / Decimal(total.denominator)


def config_of_period(client: Any, db: str, start: datetime, end: datetime) -> ConsortiumConfig:
    """The config most of the period's entries carry (the statements' rule)."""
    from ledger import LedgerError
    from ledger.configs import config_by_hash, period_config_hashes

    hashes = period_config_hashes(client, db, start, end)
    cfg = config_by_hash(client, db, hashes[0]) if hashes else None
    if cfg is None:
        raise LedgerError(f"the ledger has no entries from {start:%Y-%m-%d} to {end:%Y-%m-%d}")
    return cfg


def site_hours(client: Any, source: str, start: datetime, end: datetime,
               params: dict[str, Any] | None = None) -> dict[str, tuple[Decimal, Decimal]]:
    """Per site, the normalised GPU-hours of [start, end) in ``source`` (the ledger, or a statement's
    checkpoint-covered view of it): every entry (delivered), and those of jobs (used)."""
    return {site: (Decimal(str(all_h)), Decimal(str(job_h))) for site, all_h, job_h in client.execute(
        f"SELECT site_id, sum(normalised_gpu_hours), sumIf(normalised_gpu_hours, account_kind = 'job') "
        f"FROM {source} WHERE window_start >= %(start)s AND window_start < %(end)s GROUP BY site_id",
        {**(params or {}), "start": start, "end": end})}


def capacity(client: Any, db: str, cfg: ConsortiumConfig, start: datetime, end: datetime,
             source: str | None = None, windows: str | None = None,
             params: dict[str, Any] | None = None) -> list[MemberCapacity]:
    """``source``/``windows``/``params``: the entries' sums and the raw windows to read (a
    statement's checkpoint-covered views, ledger/statement.py), instead of everything committed."""
    p = {**(params or {}), "start": start, "end": end}
    delivered = site_hours(client, source or sums_source(db, start, end), start, end, params)
    reported = {site: int(ns) // 10**9 for site, ns in client.execute(
        f"SELECT site_id, sum(gpu_count * (window_end_ns - window_start_ns)) "
        f"FROM {windows or period_source(db, 'raw_windows')} WHERE window_start >= %(start)s "
        f"AND window_start < %(end)s GROUP BY site_id", p)}
    seconds = int((end - start).total_seconds())
    members = {m.code: m for m in cfg.members}
    out: dict[str, MemberCapacity] = {}
    for m in cfg.members:
        targets = [x.availability_target for x in cfg.pledges if x.member == m.code]
        out[m.code] = MemberCapacity(m.code, m.name, pledged_hours(cfg.pledges, m.code, start, end),
                                     min(targets) if targets else None, cfg.pricing.gpu_hour_rate)
    for site in cfg.sites:
        if site.country not in members:
            continue  # a site of no member hosts no in-kind contribution
        all_h, job_h = delivered.get(site.id, (Decimal(0), Decimal(0)))
        out[site.country].sites.append(SiteCapacity(
            site.id, site.country, site.gpus, all_h, job_h, reported.get(site.id, 0),
            site.gpus * seconds if site.gpus else None))
    return list(out.values())


@dataclass(frozen=True)
class Contributions:
    """What each member contributed in a period under the config's balance rule, and so its share."""

    rule: str
    shares: dict[str, Fraction]
    cash: dict[str, Fraction]  # contributed_value: the period's cash budget by the budget key
    in_kind: dict[str, Fraction]  # contributed_value: its sites' delivered hours × the GPU-hour rate


def contributions(client: Any, db: str, cfg: ConsortiumConfig, start: datetime, end: datetime,
                  source: str | None = None, params: dict[str, Any] | None = None) -> Contributions:
    """Each member's contribution share for [start, end) (one month: the balance's unit) under the
    config's ``balance_rule``; ``source``/``params`` as in the statements (a checkpoint-covered view)."""
    key = {m.code: Fraction(m.contribution_share) for m in cfg.members}
    if cfg.balance_rule == "contribution_share":
        return Contributions(cfg.balance_rule, key, {}, {})
    budget = prorated([(b.period, b.amount) for b in cfg.cash_budgets], start, end)
    cash = {m: budget * share for m, share in key.items()}
    rate = Fraction(cfg.pricing.gpu_hour_rate)
    hosts = {site.id: site.country for site in cfg.sites if site.country in key}
    in_kind = {m: Fraction(0) for m in key}
    delivered = site_hours(client, source or sums_source(db, start, end), start, end, params)
    for site, (hours, _) in delivered.items():
        if site in hosts:  # delivered: every entry at the member's sites, as ``capacity`` counts it
            in_kind[hosts[site]] += Fraction(hours) * rate
    return Contributions(cfg.balance_rule, contributed_shares(cash, in_kind, key), cash, in_kind)
