"""Who is billed, with hand-worked known answers (streams/attribution.py).

Totals adding up is not enough: each case pins the exact parts, including
which account, project and member pays and where the account came from.
The rules are in docs/attribution.md; the worked arithmetic is in the comments.

Every case runs twice: on the Python rules (the definition, what ``ledger
recompute`` runs) and on the rules compiled in the core (native/src/attribute.rs,
what the stream runs), the GPU attributed through WindowProcessor.attribute_rows.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ConsortiumConfig, GpuWindow, JobEvent, ProcessShare
from streams import attribution
from streams.attribution import ConfigMemo, JobBook, Jobs, Part, attribute_gpu, book_jobs, split_exact
from streams.core import EntryRows
from streams.processing import WindowProcessor

SITE = "kr-daejeon"
H100 = "NVIDIA H100 80GB HBM3"
IDLE = Part("idle", f"idle:{SITE}", f"idle:{SITE}", "", None, 0, 0, "none")


_COMPILED: dict[int, tuple[ConsortiumConfig, WindowProcessor]] = {}


def compiled_attribute_gpu(site_id: str, g: GpuWindow, config: ConsortiumConfig, jobs: Jobs | None = None,
                           window: tuple[int, int] | None = None, memo: ConfigMemo | None = None) -> list[Part]:
    """attribute_gpu's answer from the compiled rules: the GPU alone in a window, through the stream's path."""
    hit = _COMPILED.get(id(config))
    if hit is None or hit[0] is not config:
        hit = _COMPILED[id(config)] = (config, WindowProcessor(config, "0" * 64))
    processor = hit[1]
    assert processor._core is not None
    start, end = window if window is not None else (0, 2**63)  # no window: any time (end > every event here)
    rows = EntryRows(digests=False)
    rows.window("0" * 64, "w", "a", "b", 0, site_id, "n", start, end)
    gco2 = None if processor._grid is None else processor._grid.at(site_id, start)
    assert processor._rules is not None
    processor._rules.use(jobs, processor._core)
    taken = processor._core.attribute([g], site_id, start, end, None if gco2 is None else (str(gco2), gco2), rows)
    assert taken, "the compiled rules left a GPU of these tests to the Python rules"
    return [Part(r[12], r[13], r[14], r[15], r[11] or None, r[16], r[17], r[23]) for r in rows]


@pytest.fixture(scope="module", autouse=True, params=["python", "compiled"])
def rules(request: pytest.FixtureRequest) -> object:
    """Each test on each implementation of the rules (the name attribute_gpu is looked up when called)."""
    if request.param == "compiled":
        globals()["attribute_gpu"] = compiled_attribute_gpu
    yield request.param
    globals()["attribute_gpu"] = attribution.attribute_gpu


def gpu(energy: int, procs: list[tuple[str | None, str | None, float]], seconds: float = 10.0,
        flags: tuple[str, ...] = ()) -> GpuWindow:
    return GpuWindow(
        uuid="GPU-1", model=H100, energy_mj=energy, gpu_seconds=seconds, flags=list(flags),
        processes=[ProcessShare(pid=100 + i, job_id=j, account=a, sm_share=s)
                   for i, (j, a, s) in enumerate(procs)],
    )


def start(job: str, account: str, *, t: int = 1, site: str = SITE, gpus: tuple[str, ...] = (),
          exclusive: bool = False) -> JobEvent:
    return JobEvent(event="start", site_id=site, job_id=job, account=account, gpus=list(gpus),
                    exclusive=exclusive, time_ns=t)


def end(job: str, account: str, t: int, site: str = SITE) -> JobEvent:
    return JobEvent(event="end", site_id=site, job_id=job, account=account, time_ns=t)


def jobs(*pairs: tuple[str, str]) -> JobBook:
    return book_jobs([start(j, a) for j, a in pairs])


def part(kind: str, account: str, project: str, member: str, job: str | None, e: int, ms: int,
         source: str) -> Part:
    return Part(kind, account, project, member, job, e, ms, source)  # type: ignore[arg-type]


# -- the remainder rule --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        # 10·5/7 = 7.14, 10/7 = 1.43, 1.43: floors 7, 1, 1 leave 1 unit; remainders 1/7, 3/7, 3/7:
        # the largest remainder (the second, earlier of the tie) takes it. "Biggest share takes the
        # spare unit" would give [8, 1, 1].
        (10, [5, 1, 1], [7, 2, 1]),
        # 3/5, 6/5, 6/5 -> floors 0, 1, 1, one unit left; remainders 3/5, 1/5, 1/5: the first takes it
        (3, [1, 2, 2], [1, 1, 1]),
        # 30/7, 30/7, 10/7 -> 4, 4, 1, one left; remainders 2/7, 2/7, 3/7: the smallest weight takes it
        (10, [3, 3, 1], [4, 4, 2]),
        (10, [1, 1, 1], [4, 3, 3]),  # ties go by position
        (2, [1, 1, 1], [1, 1, 0]),
        (10, [0, 0], [5, 5]),  # all-zero weights split equally
        (7, [2, 1], [5, 2]),  # 4.67 / 2.33
        (0, [3, 4], [0, 0]),
        (1, [1, 1_000_000], [0, 1]),
        (100, [1], [100]),
        (5, [0, 3], [0, 5]),  # a zero weight gets nothing while another weighs
    ],
)
def test_split_exact_table(total: int, weights: list[int], expected: list[int]) -> None:
    assert split_exact(total, weights) == expected


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_split_exact_is_the_largest_remainder_method(total: int, weights: list[int]) -> None:
    parts = split_exact(total, weights)
    assert sum(parts) == total
    ws = weights if any(weights) else [1] * len(weights)
    whole = sum(ws)
    floors = [total * w // whole for w in ws]
    extra = [p - f for p, f in zip(parts, floors, strict=True)]
    assert all(x in (0, 1) for x in extra)  # every part is its floor or one more
    # the units go to the largest remainders, earlier position first on ties
    rank = sorted(range(len(ws)), key=lambda i: (-(total * ws[i] % whole), i))
    assert [i for i in rank if extra[i]] == rank[:sum(extra)]


@pytest.mark.parametrize(("total", "weights", "words"), [
    (-1, [1], "total must be non-negative"), (-1, [1, 2], "total must be non-negative"),
    (1, [], "at least one weight is needed"), (1, [1, -1], "weights must be non-negative"),
    (1, [-1], "weights must be non-negative")])
def test_split_exact_rejects_bad_input(total: int, weights: list[int], words: str) -> None:
    with pytest.raises(ValueError, match=f"^{words}$"):
        split_exact(total, weights)


# -- who is billed: every account the attribution can bill, exact Part fields --------------------
def test_a_job_with_its_job_event_pays_for_the_whole_window_idle_part_included(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(5000, [("1001", None, 0.3)]), cfg, jobs(("1001", "kr-llm")))
    assert parts == [part("job", "kr-llm", "kr-llm", "KR", "1001", 5000, 10000, "job_event")]


def test_a_second_account_of_a_project_bills_that_project(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(10, [("8", None, 1.0)]), cfg, jobs(("8", "slurm-kr-llm")))
    assert parts == [part("job", "slurm-kr-llm", "kr-llm", "KR", "8", 10, 10000, "job_event")]


def test_two_jobs_split_by_sm_share(config_and_hash) -> None:
    cfg, _ = config_and_hash
    # 9,000 mJ and 10,000 GPU-ms by 0.6 : 0.3 = 2 : 1
    parts = attribute_gpu(SITE, gpu(9000, [("1", None, 0.6), ("2", None, 0.3)]), cfg,
                          jobs(("1", "kr-llm"), ("2", "gb-protein")))
    assert parts == [part("job", "kr-llm", "kr-llm", "KR", "1", 6000, 6667, "job_event"),
                     part("job", "gb-protein", "gb-protein", "GB", "2", 3000, 3333, "job_event")]


def test_two_processes_of_one_job_are_added_together(config_and_hash) -> None:
    cfg, _ = config_and_hash
    # job 1: 0.3 + 0.3 = 0.6 against job 2's 0.3 -> 2 : 1, not 1 : 1
    parts = attribute_gpu(SITE, gpu(9000, [("1", None, 0.3), ("1", None, 0.3), ("2", None, 0.3)]), cfg,
                          jobs(("1", "kr-llm"), ("2", "gb-protein")))
    assert parts == [part("job", "kr-llm", "kr-llm", "KR", "1", 6000, 6667, "job_event"),
                     part("job", "gb-protein", "gb-protein", "GB", "2", 3000, 3333, "job_event")]


def test_a_job_seen_with_and_without_its_claim_is_one_entry(config_and_hash) -> None:
    cfg, _ = config_and_hash
    # job 5's two processes (one names its account, one not) are one tenant after resolution:
    # 0.2 + 0.2 = 0.4 against job 6's 0.4 -> 500 / 500, one entry for job 5
    parts = attribute_gpu(SITE, gpu(1000, [("5", "kr-llm", 0.2), ("5", None, 0.2), ("6", None, 0.4)]), cfg,
                          jobs(("5", "kr-llm"), ("6", "gb-protein")))
    assert parts == [part("job", "kr-llm", "kr-llm", "KR", "5", 500, 5000, "job_event"),
                     part("job", "gb-protein", "gb-protein", "GB", "6", 500, 5000, "job_event")]


def test_a_claim_that_contradicts_the_job_events_is_overridden_and_flagged(config_and_hash) -> None:
    cfg, _ = config_and_hash
    # a KR site's window names de-robotics for job 7; the scheduler says kr-llm: KR pays, flagged
    parts = attribute_gpu(SITE, gpu(700, [("7", "de-robotics", 0.5)]), cfg, jobs(("7", "kr-llm")))
    assert parts == [part("job", "kr-llm", "kr-llm", "KR", "7", 700, 10000, "job_event_overrode_claim")]
    # merged with a process of the same job that made no claim: the entry keeps the flag
    parts = attribute_gpu(SITE, gpu(700, [("7", None, 0.2), ("7", "de-robotics", 0.2), ("9", None, 0.4)]), cfg,
                          jobs(("7", "kr-llm"), ("9", "gb-protein")))
    assert parts == [part("job", "kr-llm", "kr-llm", "KR", "7", 350, 5000, "job_event_overrode_claim"),
                     part("job", "gb-protein", "gb-protein", "GB", "9", 350, 5000, "job_event")]


def test_a_claim_without_a_job_event_is_unresolved_where_the_site_may_not_declare(config_and_hash) -> None:
    cfg, _ = config_and_hash
    assert not cfg.site(SITE).self_declared_accounts
    parts = attribute_gpu(SITE, gpu(400, [("77", "de-robotics", 0.5)]), cfg, JobBook())
    assert parts == [part("unresolved", "de-robotics", f"unresolved:{SITE}", "", "77", 400, 10000, "none")]


def test_a_claim_without_a_job_event_is_used_where_the_site_self_declares(config_and_hash) -> None:
    cfg, _ = config_and_hash
    doc = cfg.model_dump()
    for site in doc["sites"]:
        site["self_declared_accounts"] = site["id"] == SITE
    declaring = type(cfg).model_validate(doc)
    parts = attribute_gpu(SITE, gpu(400, [("77", "de-robotics", 0.5)]), declaring, JobBook())
    assert parts == [part("job", "de-robotics", "de-robotics", "DE", "77", 400, 10000, "self_declared")]
    # the job events still win where they exist
    parts = attribute_gpu(SITE, gpu(400, [("77", "de-robotics", 0.5)]), declaring, jobs(("77", "kr-llm")))
    assert parts == [part("job", "kr-llm", "kr-llm", "KR", "77", 400, 10000, "job_event_overrode_claim")]


def test_a_job_event_account_no_project_claims_is_unresolved(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(100, [("9", None, 1.0)]), cfg, jobs(("9", "no-such-account")))
    assert parts == [part("unresolved", "no-such-account", f"unresolved:{SITE}", "", "9", 100, 10000, "none")]


def test_a_process_with_no_job_is_unresolved(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(1000, [(None, None, 0.5), (None, None, 0.25)]), cfg)
    # two unresolved pids land on one account: one entry with both parts
    assert parts == [part("unresolved", "", f"unresolved:{SITE}", "", None, 1000, 10000, "none")]


def test_a_process_with_no_job_keeps_the_account_it_claimed_for_whoever_corrects_it(config_and_hash) -> None:
    cfg, _ = config_and_hash
    # no job id, so no job event can vouch for it: unresolved, but the claim stays on the entry
    parts = attribute_gpu(SITE, gpu(600, [(None, "kr-llm", 1.0)]), cfg, jobs(("1", "kr-llm")))
    assert parts == [part("unresolved", "kr-llm", f"unresolved:{SITE}", "", None, 600, 10000, "none")]


def test_a_mig_gpu_whose_instances_use_every_slice_has_no_idle_part(config_and_hash) -> None:
    cfg, _ = config_and_hash
    full = GpuWindow(uuid="GPU-1", model=H100, energy_mj=1000, gpu_seconds=10.0, flags=["mig"],
                     processes=[ProcessShare(pid=1, job_id="1", sm_share=0.5, mig_uuid="MIG-a"),
                                ProcessShare(pid=2, job_id="2", sm_share=0.5, mig_uuid="MIG-b")])
    parts = attribute_gpu(SITE, full, cfg, jobs(("1", "kr-llm"), ("2", "kr-sg-bio")))
    assert [p.account_kind for p in parts if p.account_kind == "idle"] == []  # no idle entry, not even of 0 mJ
    assert sum(p.energy_mj for p in parts) == 1000
    # one part per million left unused: idle gets its share of the energy, here 1 mJ of 1,000,000
    nearly = full.model_copy(update={"energy_mj": 1_000_000, "processes": [
        ProcessShare(pid=1, job_id="1", sm_share=0.5, mig_uuid="MIG-a"),
        ProcessShare(pid=2, job_id="2", sm_share=0.499999, mig_uuid="MIG-b")]})
    parts = attribute_gpu(SITE, nearly, cfg, jobs(("1", "kr-llm"), ("2", "kr-sg-bio")))
    assert [(p.account_kind, p.energy_mj) for p in parts if p.account_kind == "idle"] == [("idle", 1)]


def test_a_window_with_no_process_goes_to_the_site_idle_account(config_and_hash) -> None:
    cfg, _ = config_and_hash
    assert attribute_gpu(SITE, gpu(1234, []), cfg) == [IDLE._replace(energy_mj=1234, gpu_ms=10000)]
    # another site's idle account for another site's GPU
    (other,) = attribute_gpu("de-juelich", gpu(5, []), cfg)
    assert (other.account, other.project, other.member) == ("idle:de-juelich", "idle:de-juelich", "")


def test_an_idle_gpu_held_exclusively_is_billed_to_its_holder_while_held(config_and_hash) -> None:
    cfg, _ = config_and_hash
    alloc = start("42", "ca-climate", t=1, gpus=("GPU-1",), exclusive=True)
    book = book_jobs([alloc])
    held = part("job", "ca-climate", "ca-climate", "CA", "42", 800, 10000, "job_event")
    assert attribute_gpu(SITE, gpu(800, []), cfg, book, (10, 20)) == [held]
    book_jobs([end("42", "ca-climate", 15)], book)
    assert attribute_gpu(SITE, gpu(800, []), cfg, book, (10, 20)) == [held]  # held for part of the window
    assert attribute_gpu(SITE, gpu(800, []), cfg, book, (20, 30)) == [IDLE._replace(energy_mj=800, gpu_ms=10000)]
    # another GPU, or the same GPU at another site, is not held by it
    assert attribute_gpu("de-juelich", gpu(800, []), cfg, book, (10, 20))[0].account_kind == "idle"


def test_two_exclusive_holders_of_one_gpu_bill_nobody_by_guess(config_and_hash) -> None:
    cfg, _ = config_and_hash
    book = book_jobs([start("1", "kr-llm", gpus=("GPU-1",), exclusive=True),
                      start("2", "gb-protein", gpus=("GPU-1",), exclusive=True)])
    assert attribute_gpu(SITE, gpu(80, []), cfg, book, (10, 20)) == [IDLE._replace(energy_mj=80, gpu_ms=10000)]


def test_a_shared_allocation_does_not_bill_an_idle_gpu(config_and_hash) -> None:
    cfg, _ = config_and_hash
    book = book_jobs([start("1", "kr-llm", gpus=("GPU-1",), exclusive=False)])
    assert attribute_gpu(SITE, gpu(80, []), cfg, book, (10, 20))[0].account_kind == "idle"


def test_unused_mig_slices_are_the_site_idle_account(config_and_hash) -> None:
    cfg, _ = config_and_hash
    g = GpuWindow(uuid="GPU-1", model=H100, energy_mj=1000, gpu_seconds=10.0, flags=["mig"],
                  processes=[ProcessShare(pid=1, job_id="1", sm_share=0.25, mig_uuid="MIG-a")])
    # the job's slice is a quarter; the three unused quarters are idle
    assert attribute_gpu(SITE, g, cfg, jobs(("1", "kr-llm"))) == [
        part("job", "kr-llm", "kr-llm", "KR", "1", 250, 2500, "job_event"),
        IDLE._replace(energy_mj=750, gpu_ms=7500)]
    # one process alone on a MIG GPU is still only its slice (not the single-tenant fast path)
    assert len(attribute_gpu(SITE, g, cfg, jobs(("1", "kr-llm")))) == 2


def _with_idle_policy(cfg, policy: str, site: str = SITE):
    return cfg.model_copy(update={"sites": [s.model_copy(update={"idle_policy": policy}) if s.id == site else s
                                            for s in cfg.sites]})


def test_idle_borne_by_the_hosting_member(config_and_hash) -> None:
    cfg = _with_idle_policy(config_and_hash[0], "host")
    # kr-daejeon is in KR: its idle GPU is KR's; another site keeps today's rule (apart: nobody)
    assert attribute_gpu(SITE, gpu(1234, []), cfg) == [IDLE._replace(member="KR", energy_mj=1234, gpu_ms=10000)]
    assert attribute_gpu("de-juelich", gpu(5, []), cfg)[0].member == ""


def test_idle_shared_by_contribution_share(config_and_hash) -> None:
    cfg = _with_idle_policy(config_and_hash[0], "shared")
    # shares KR .24, CA .18, GB .16, DE .18, SG .10, FR .14 of 1,000,000 mJ and 10,000 GPU-ms: exact, no remainder
    assert attribute_gpu(SITE, gpu(1_000_000, []), cfg) == [
        IDLE._replace(member=m, energy_mj=e, gpu_ms=g) for m, e, g in (
            ("KR", 240_000, 2400), ("CA", 180_000, 1800), ("GB", 160_000, 1600), ("DE", 180_000, 1800),
            ("SG", 100_000, 1000), ("FR", 140_000, 1400))]
    # 7 mJ: 1.68, 1.26, 1.12, 1.26, 0.70, 0.98 -> floors 1,1,1,1,0,0 leave 3 units; the largest remainders
    # .98 (FR), .70 (SG), .68 (KR) take them
    assert [(p.member, p.energy_mj) for p in attribute_gpu(SITE, gpu(7, []), cfg)] == [
        ("KR", 2), ("CA", 1), ("GB", 1), ("DE", 1), ("SG", 1), ("FR", 1)]


def test_the_idle_slices_of_a_mig_gpu_follow_the_idle_policy(config_and_hash) -> None:
    cfg = _with_idle_policy(config_and_hash[0], "host")
    g = GpuWindow(uuid="GPU-1", model=H100, energy_mj=1000, gpu_seconds=10.0, flags=["mig"],
                  processes=[ProcessShare(pid=1, job_id="1", sm_share=0.25, mig_uuid="MIG-a")])
    assert attribute_gpu(SITE, g, cfg, jobs(("1", "gb-protein"))) == [
        part("job", "gb-protein", "gb-protein", "GB", "1", 250, 2500, "job_event"),
        IDLE._replace(member="KR", energy_mj=750, gpu_ms=7500)]


def test_a_host_policy_needs_a_hosting_member(config_and_hash) -> None:
    from schemas import ConfigError
    from schemas.consortium import ConsortiumConfig

    cfg = config_and_hash[0]
    doc = cfg.model_dump(mode="json")
    doc["sites"][0] = {**doc["sites"][0], "country": "JP", "idle_policy": "host"}
    with pytest.raises((ValueError, ConfigError), match="idle_policy host but its country JP is not a member"):
        ConsortiumConfig.model_validate(doc)


def test_a_joint_project_splits_among_its_owner_members(config_and_hash) -> None:
    cfg, _ = config_and_hash
    # kr-sg-bio: KR 0.6, SG 0.4. 1,001 mJ -> 600.6 / 400.4: floors 600, 400, the unit to the larger remainder
    parts = attribute_gpu(SITE, gpu(1001, [("7", None, 1.0)]), cfg, jobs(("7", "kr-sg-bio")))
    assert parts == [part("job", "kr-sg-bio", "kr-sg-bio", "KR", "7", 601, 6000, "job_event"),
                     part("job", "kr-sg-bio", "kr-sg-bio", "SG", "7", 400, 4000, "job_event")]
    # fr-de-fusion: FR 0.5, DE 0.5; 3 mJ -> 1.5 / 1.5: the tie goes to the first owner
    parts = attribute_gpu(SITE, gpu(3, [("8", None, 1.0)], seconds=0.001), cfg, jobs(("8", "fr-de-fusion")))
    assert parts == [part("job", "fr-de-fusion", "fr-de-fusion", "FR", "8", 2, 1, "job_event"),
                     part("job", "fr-de-fusion", "fr-de-fusion", "DE", "8", 1, 0, "job_event")]


def test_processes_without_samples_weigh_equally(config_and_hash) -> None:
    cfg, _ = config_and_hash
    parts = attribute_gpu(SITE, gpu(10, [("1", None, 0.0), ("2", None, 0.0)]), cfg,
                          jobs(("1", "kr-llm"), ("2", "gb-protein")))
    assert [(p.project, p.energy_mj, p.gpu_ms) for p in parts] == [("kr-llm", 5, 5000), ("gb-protein", 5, 5000)]


def test_the_job_events_of_another_site_do_not_name_this_sites_job(config_and_hash) -> None:
    cfg, _ = config_and_hash
    book = book_jobs([start("1", "gb-protein", site="de-juelich")])
    (p,) = attribute_gpu(SITE, gpu(10, [("1", None, 1.0)]), cfg, book)
    assert (p.account_kind, p.member) == ("unresolved", "")


# -- job books from events in every order ---------------------------------------------------------
EVENTS = [start("1", "kr-llm", t=10, gpus=("GPU-1",), exclusive=True), end("1", "kr-llm", 50)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(2))))
def test_a_job_book_is_the_same_in_any_event_order(order: tuple[int, ...]) -> None:
    book = book_jobs([EVENTS[i] for i in order])
    span = book[(SITE, "1")]
    assert (span.start.time_ns, span.end_ns, span.start.account) == (10, 50, "kr-llm")
    assert [s.start.job_id for s in book.exclusive_on(SITE, "GPU-1")] == ["1"]
    assert span.overlaps(40, 60) and not span.overlaps(50, 60) and not span.overlaps(0, 10)


def test_a_late_start_never_erases_a_known_end() -> None:
    book = book_jobs([EVENTS[1]])
    assert book[(SITE, "1")].end_ns == 50
    assert book[(SITE, "1")].start.time_ns == 0  # the start is unknown: from the beginning
    book_jobs([EVENTS[0]], book)  # the start arrives late
    assert (book[(SITE, "1")].start.time_ns, book[(SITE, "1")].end_ns) == (10, 50)
    book_jobs([EVENTS[0]], book)  # and again (a resent event)
    assert book[(SITE, "1")].end_ns == 50


def test_an_end_whose_start_was_never_seen_still_names_the_account(config_and_hash) -> None:
    cfg, _ = config_and_hash
    book = book_jobs([end("3", "fr-speech", 99)])
    span = book[(SITE, "3")]
    assert (span.start.event, span.start.time_ns, span.end_ns) == ("start", 0, 99)
    (p,) = attribute_gpu(SITE, gpu(10, [("3", None, 1.0)]), cfg, book)
    assert (p.project, p.member, p.account_source) == ("fr-speech", "FR", "job_event")


def test_forgetting_one_of_two_holders_keeps_the_other_in_the_index() -> None:
    book = book_jobs([start("1", "kr-llm", gpus=("GPU-1",), exclusive=True),
                      start("2", "gb-protein", gpus=("GPU-1",), exclusive=True)])
    del book[(SITE, "1")]
    assert [s.start.job_id for s in book.exclusive_on(SITE, "GPU-1")] == ["2"]
    del book[(SITE, "2")]
    assert book.exclusive_on(SITE, "GPU-1") == []


def test_a_plain_mapping_of_jobs_finds_the_same_exclusive_holder(config_and_hash) -> None:
    # the pure function also takes any mapping (tests, callers without a JobBook): the same rule
    cfg, _ = config_and_hash
    spans = dict(book_jobs([start("42", "ca-climate", gpus=("GPU-1",), exclusive=True),
                            start("43", "gb-protein", gpus=("GPU-2",), exclusive=True),
                            start("44", "fr-speech", gpus=("GPU-1",), exclusive=False),
                            start("45", "kr-llm", site="de-juelich", gpus=("GPU-1",), exclusive=True)]))
    (p,) = attribute_gpu(SITE, gpu(800, []), cfg, spans, (10, 20))
    assert (p.project, p.job_id) == ("ca-climate", "42")
    (q,) = attribute_gpu("de-juelich", gpu(800, []), cfg, spans, (10, 20))
    assert (q.project, q.job_id) == ("kr-llm", "45")
    other_gpu = GpuWindow(uuid="GPU-3", model=H100, energy_mj=800, gpu_seconds=10.0)
    (r,) = attribute_gpu(SITE, other_gpu, cfg, spans, (10, 20))
    assert r.account_kind == "idle"


def test_forgetting_a_job_removes_it_from_the_exclusive_index() -> None:
    book = book_jobs([EVENTS[0]])
    del book[(SITE, "1")]
    assert book.exclusive_on(SITE, "GPU-1") == []
    book[(SITE, "1")] = book_jobs([EVENTS[0]])[(SITE, "1")]
    assert len(book.exclusive_on(SITE, "GPU-1")) == 1


# -- invariants -----------------------------------------------------------------------------------
ACCOUNTS = ["kr-llm", "gb-protein", "fr-de-fusion", "kr-sg-bio", "unknown-acct", None]
proc_st = st.tuples(st.sampled_from(["1", "2", "3", None]), st.sampled_from(ACCOUNTS),
                    st.floats(0, 0.25, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.floats(0.001, 3600, allow_nan=False), st.lists(proc_st, max_size=4),
       st.booleans())
def test_conservation_of_energy_and_gpu_time(config_and_hash, energy, seconds, procs, with_events) -> None:
    cfg, _ = config_and_hash
    g = gpu(energy, procs, seconds)
    book = jobs(("1", "kr-llm"), ("2", "kr-sg-bio")) if with_events else None
    parts = attribute_gpu(SITE, g, cfg, book)
    assert sum(p.energy_mj for p in parts) == energy
    assert sum(p.gpu_ms for p in parts) == g.gpu_ms
    assert all(p.energy_mj >= 0 and p.gpu_ms >= 0 for p in parts)
    # one entry per (kind, account, project, member, job): entry ids never collide
    assert len({p[:5] for p in parts}) == len(parts)
    # nobody is billed without a job event: no member for any part whose job has none
    assert all(p.member == "" for p in parts if p.job_id not in (book or {}) and p.job_id not in ("1", "2"))
    assert attribute_gpu(SITE, g, cfg, book) == parts  # deterministic


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.lists(proc_st, max_size=3)), min_size=1, max_size=6))
def test_a_configs_memo_never_changes_who_pays(config_and_hash, windows) -> None:
    # The stream keeps one memo per config; the rules must give what they give afresh,
    # window after window, and a memo of another config must not be used at all.
    cfg, _ = config_and_hash
    host = cfg.model_copy(update={"sites": [s.model_copy(update={"idle_policy": "host"}) for s in cfg.sites]})
    book = jobs(("1", "kr-llm"), ("2", "kr-sg-bio"))
    memo = ConfigMemo(cfg)
    for energy, procs in windows:
        g = gpu(energy, procs)
        assert attribute_gpu(SITE, g, cfg, book, None, memo) == attribute_gpu(SITE, g, cfg, book)
        assert attribute_gpu(SITE, g, host, book, None, memo) == attribute_gpu(SITE, g, host, book)
    assert memo.config is cfg and all(t.owners != ((host.site(SITE).country, 1),) for t in memo.idle.values())


def test_owner_shares_are_exact_decimals(config_and_hash) -> None:
    cfg, _ = config_and_hash
    joint = next(p for p in cfg.projects if p.id == "fr-de-fusion")
    assert sum(o.share for o in joint.owners) == Decimal(1)
