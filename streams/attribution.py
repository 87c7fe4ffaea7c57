"""Attribution: who used a GPU window. Pure functions, no Faust, no I/O.

These functions are the definition, which ``ledger recompute`` runs. The stream
worker and ``bridgeledger attribute`` run them compiled (native/src/attribute.rs,
through streams/processing.py), which asks them for every tenant and tariff and
gives the same entries (tests/unit/streams/test_core_rules.py); every recompute
of the stored windows checks the stream's entries against them.

Rules (docs/attribution.md has the worked examples):

1. Tenants of a GPU window are the jobs whose processes ran on it. Who pays
   is the scheduler's word: a job's account comes from its job events (keyed
   by site and job). The account a window claims for a process is used only
   where no job event describes the job and the config lets that site
   self-declare; a claim that contradicts the job events is overridden and
   the entry flagged (``account_source``). A process the node could not
   resolve to a job, or a job nobody vouches for, is the tenant "unresolved"
   of the site: kept apart, never guessed.
2. Weights are the tenants' summed SM shares. If processes ran but none has
   a share (NVML had no utilisation samples), the tenants weigh equally.
3. Occupancy: the whole window's energy and GPU time is split among the
   tenants by weight, so the idle part of an occupied GPU is paid by the
   jobs that held it.
   Except on a MIG-partitioned GPU (flag ``mig``): there each process's share
   is its instance's slice of the GPU, and the slices nobody used are idle.
4. A window with no process goes to the job holding an exclusive allocation
   of that GPU (from job events) if there is one, otherwise to the site's idle
   account, which the site's ``idle_policy`` bills: ``apart`` to nobody (an
   entry with no member), ``host`` to the member hosting the site (its
   country), ``shared`` to every member by contribution share (split as in
   rule 6). The idle slices of a MIG GPU are billed the same way.
5. A tenant's part is split again among its project's owner members by their
   configured shares (joint projects).
6. Every split is of integers (millijoules, GPU-milliseconds) by the largest
   remainder method with ties broken by position, so parts always sum to the
   whole and the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from schemas import ConsortiumConfig, JobEvent
from schemas.consortium import Project
from schemas.ledger import AccountKind, AccountSource
from schemas.telemetry import GpuReading
from streams.job_book import JobBook, Jobs, JobSpan, book_jobs

__all__ = ["ConfigMemo", "JobBook", "JobSpan", "Jobs", "Part", "Tenant", "attribute_gpu", "book_jobs", "idle_tenant",
           "owner_weights", "procless_tenant", "split_exact", "tenant_for_job"]

# Shares are turned into integer weights at this resolution (parts per million).
SHARE_SCALE = 1_000_000



class Part(NamedTuple):  # a tuple: built for every entry, so cheap to build (with _new)
    account_kind: AccountKind
    account: str
    project: str
    member: str
    job_id: str | None
    energy_mj: int
    gpu_ms: int
    account_source: AccountSource


# Part(...) without the NamedTuple's generated __new__: a third of the cost, and
# the stream builds one for every entry. Only where the fields are given in order.
_new = tuple.__new__


def split_exact(total: int, weights: Sequence[int]) -> list[int]:
    """Split a non-negative integer by non-negative integer weights, exactly.

    Each part gets floor(total * w / W); the units left over go one each to the
    parts with the largest remainders, earlier position first on ties. With all
    weights zero the split is equal.
    """
    if len(weights) == 1 and total >= 0 and weights[0] >= 0:
        return [total]  # the common case: one tenant, one owner
    if total < 0:
        raise ValueError("total must be non-negative")
    if not weights:
        raise ValueError("at least one weight is needed")
    if min(weights) < 0:
        raise ValueError("weights must be non-negative")
    whole = sum(weights)
    ws = weights if whole else [1] * len(weights)
    whole = whole or len(weights)
    parts: list[int] = []
    remainders: list[int] = []
    for w in ws:
        q, r = divmod(total * w, whole)
        parts.append(q)
        remainders.append(r)
    left = total - sum(parts)
    if left:
        # largest remainder first; sorted is stable, so on ties the earlier position
        order = sorted(range(len(ws)), key=remainders.__getitem__, reverse=True)
        for i in order[:left]:
            parts[i] += 1
    return parts


@dataclass(frozen=True, slots=True)
class Tenant:
    """Who a share of a GPU window is booked to, before the owners' split."""

    account_kind: AccountKind
    account: str
    project: str
    owners: tuple[tuple[str, int], ...]  # (member, weight)
    job_id: str | None
    source: AccountSource


def _unresolved(site_id: str, account: str | None, job_id: str | None, memo: ConfigMemo) -> Tenant:
    # Unknown job, a claim nobody vouches for, or an account no project
    # claims: the site carries it, visibly, until a correction moves it. The
    # account text is what was claimed, for whoever corrects it.
    key = (site_id, account, job_id)
    tenant = memo.unresolved.get(key)
    if tenant is None:
        if len(memo.unresolved) >= MAX_MEMO_TENANTS:
            memo.unresolved.clear()
        tenant = memo.unresolved[key] = Tenant("unresolved", account or "", f"unresolved:{site_id}", _NOBODY,
                                                job_id, "none")
    return tenant


_NOBODY = (("", 1),)


def owner_weights(project: Project) -> tuple[tuple[str, int], ...]:
    """(member, integer weight) of a project's owners (rule 5)."""
    return tuple((o.member, int(o.share * SHARE_SCALE)) for o in project.owners)


def _exclusive_holder(site_id: str, gpu_uuid: str, jobs: Jobs,
                      window: tuple[int, int] | None) -> JobEvent | None:
    if isinstance(jobs, JobBook):
        spans: Iterable[JobSpan] = jobs.exclusive_on(site_id, gpu_uuid)
    else:  # a plain mapping (tests, callers of the pure function): scan it
        spans = [span for (site, _), span in sorted(jobs.items())
                 if site == site_id and span.start.exclusive and gpu_uuid in span.start.gpus]
    holders = [span.start for span in spans if window is None or span.overlaps(*window)]
    # Two exclusive holders of one GPU is a scheduler error; then nobody is guessed.
    return holders[0] if len(holders) == 1 else None


@dataclass(slots=True)
class ConfigMemo:
    """What the rules work out from one config alone (a job's tenant once its account
    is known, an unresolved tenant, a site's idle tenant and whether the site may
    self-declare, a project's owner weights), remembered so the stream's per-entry
    path does not redo it. One per config: the stream's processor keeps one beside
    its config, so a new config never meets a stale memo."""

    config: ConsortiumConfig
    tenants: dict[tuple[str, str | None, str, AccountSource], Tenant] = field(default_factory=dict)
    unresolved: dict[tuple[str, str | None, str | None], Tenant] = field(default_factory=dict)
    idle: dict[str, Tenant] = field(default_factory=dict)
    self_declares: dict[str, bool] = field(default_factory=dict)  # by site
    owners: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)


# One tenant per (site, job, account) is remembered: bounded over months of jobs.
MAX_MEMO_TENANTS = 50_000


def attribute_gpu(
    site_id: str, gpu: GpuReading, config: ConsortiumConfig, jobs: Jobs | None = None,
    window: tuple[int, int] | None = None, memo: ConfigMemo | None = None,
) -> list[Part]:
    """Split one GPU window among accounts; the parts sum exactly to the window.

    ``window`` (start, end ns) limits exclusive allocations to jobs that held
    the GPU during it. ``memo``: the config's memo (streams/processing.py keeps
    one); without it the rules work everything out afresh."""
    m = memo if memo is not None and memo.config is config else ConfigMemo(config)
    book: Jobs = jobs if jobs is not None else {}
    procs = gpu.processes
    energy_mj, gpu_ms = gpu.energy_mj, gpu.gpu_ms
    if not procs:
        return _owner_parts(procless_tenant(site_id, gpu.uuid, book, window, m)[0], energy_mj, gpu_ms)
    if len(procs) == 1 and "mig" not in gpu.flags:  # one tenant holds the whole window
        proc = procs[0]
        return _owner_parts(tenant_for_job(site_id, proc.job_id, proc.account, book, m), energy_mj, gpu_ms)

    weights: dict[tuple[str | None, str | None], int] = {}
    for proc in procs:
        key = (proc.job_id, proc.account)
        weights[key] = weights.get(key, 0) + round(proc.sm_share * SHARE_SCALE)
    tenants = [tenant_for_job(site_id, j, a, book, m) for (j, a) in weights]
    tenant_weights = list(weights.values())
    unused = SHARE_SCALE - sum(tenant_weights)
    if "mig" in gpu.flags and unused > 0:
        tenants.append(idle_tenant(site_id, m))
        tenant_weights.append(unused)
    if len(tenants) == 1:
        return _owner_parts(tenants[0], energy_mj, gpu_ms)
    parts: list[Part] = []
    for tenant, e_mj, g_ms in zip(tenants, split_exact(energy_mj, tenant_weights),
                                  split_exact(gpu_ms, tenant_weights), strict=True):
        parts.extend(_owner_parts(tenant, e_mj, g_ms))
    return _merge(parts)


def procless_tenant(site_id: str, gpu_uuid: str, jobs: Jobs, window: tuple[int, int] | None,
                    memo: ConfigMemo) -> tuple[Tenant, bool]:
    """The tenant of a GPU window with no process (rule 4), and whether it is the
    same at any time while ``jobs`` stays as it is (no job holds that GPU
    exclusively in the book at all: the site's idle account)."""
    holder = _exclusive_holder(site_id, gpu_uuid, jobs, window)
    if holder is None:
        timeless = isinstance(jobs, JobBook) and not jobs.exclusive_on(site_id, gpu_uuid)
        return idle_tenant(site_id, memo), timeless
    return tenant_for_job(site_id, holder.job_id, holder.account, jobs, memo), False


def tenant_for_job(site_id: str, job_id: str | None, claim: str | None, jobs: Jobs, memo: ConfigMemo) -> Tenant:
    """The tenant a job's usage is booked to. ``claim``: the account the window
    names for the process, if any; the job events decide (rule 1)."""
    if job_id is None:
        return _unresolved(site_id, claim, None, memo)
    span = jobs.get((site_id, job_id))
    source: AccountSource
    if span is not None:
        account = span.start.account
        source = "job_event" if claim is None or claim == account else "job_event_overrode_claim"
    elif claim is not None and _self_declares(site_id, memo):
        account, source = claim, "self_declared"
    else:
        return _unresolved(site_id, claim, job_id, memo)
    key = (site_id, job_id, account, source)  # from here the tenant depends on the config alone
    tenant = memo.tenants.get(key)
    if tenant is None:
        if len(memo.tenants) >= MAX_MEMO_TENANTS:
            memo.tenants.clear()
        project = memo.config.project_for_account(account)
        if project is None:
            tenant = _unresolved(site_id, account, job_id, memo)
        else:
            owners = memo.owners.get(project.id)
            if owners is None:
                owners = memo.owners[project.id] = owner_weights(project)
            tenant = Tenant("job", account, project.id, owners, job_id, source)
        memo.tenants[key] = tenant
    return tenant


def _self_declares(site_id: str, memo: ConfigMemo) -> bool:
    hit = memo.self_declares.get(site_id)
    if hit is None:
        site = memo.config.site(site_id)
        hit = memo.self_declares[site_id] = site is not None and site.self_declared_accounts
    return hit


def idle_tenant(site_id: str, memo: ConfigMemo) -> Tenant:
    """The site's idle account, billed as its idle policy says (rule 4)."""
    tenant = memo.idle.get(site_id)
    if tenant is None:
        site = memo.config.site(site_id)
        policy = site.idle_policy if site is not None else "apart"
        if policy == "host" and site is not None:
            owners: tuple[tuple[str, int], ...] = ((site.country, 1),)
        elif policy == "shared":
            owners = tuple((m.code, int(m.contribution_share * SHARE_SCALE)) for m in memo.config.members)
        else:
            owners = _NOBODY
        tenant = memo.idle[site_id] = Tenant("idle", f"idle:{site_id}", f"idle:{site_id}", owners, None, "none")
    return tenant


def _owner_parts(tenant: Tenant, energy_mj: int, gpu_ms: int) -> list[Part]:
    """A tenant's part, split among its project's owners (rule 5)."""
    owners = tenant.owners
    if len(owners) == 1:
        return [_new(Part, (tenant.account_kind, tenant.account, tenant.project, owners[0][0], tenant.job_id,
                            energy_mj, gpu_ms, tenant.source))]
    weights = [w for _, w in owners]
    return _merge([_new(Part, (tenant.account_kind, tenant.account, tenant.project, member, tenant.job_id, e, g,
                               tenant.source))
                   for (member, _), e, g in zip(owners, split_exact(energy_mj, weights), split_exact(gpu_ms, weights),
                                                strict=True)])


# When parts of one account merge, the entry keeps the strongest source flag.
_SOURCE_RANK = {"none": 0, "correction": 0, "self_declared": 1, "job_event": 2, "job_event_overrode_claim": 3}


def _merge(parts: list[Part]) -> list[Part]:
    """Tenants that land on one account (two unresolved pids; one job's processes
    with and without a claim): one entry each, the parts summed."""
    if len(parts) == 1:
        return parts
    merged: dict[tuple[object, ...], Part] = {}
    for p in parts:
        key = p[:5]  # account_kind, account, project, member, job_id
        prev = merged.get(key)
        if prev is None:
            merged[key] = p
        else:
            source = max(prev.account_source, p.account_source, key=_SOURCE_RANK.__getitem__)
            merged[key] = _new(Part, (p.account_kind, p.account, p.project, p.member, p.job_id,
                                      prev.energy_mj + p.energy_mj, prev.gpu_ms + p.gpu_ms, source))
    return list(merged.values())

