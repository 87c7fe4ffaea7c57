"""The rules compiled in the core (native/src/attribute.rs) book what the Python
rules (streams/attribution.py, streams/pricing.py) book, entry for entry.

The stream runs the compiled rules; ``ledger recompute`` runs the Python ones
on the stored windows, so a difference would show there as an audit finding.
These tests look for one first: arbitrary windows (processes of known and
unknown jobs, claims, shares, MIG, idle GPUs, exclusive allocations), job books
that change between windows, configs with each idle policy, self-declaring
sites, owners whose shares leave remainders, prices whose ratios do not fit in
64 bits. Each batch is attributed by both and the rows (ids, figures, chain
digests) compared. test_attribution.py pins the answers themselves, on both.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ConsortiumConfig, JobEvent
from schemas.telemetry import decode_window_fast
from streams.attribution import book_jobs
from streams.core import EntryRows
from streams.job_book import JobBook
from streams.processing import WindowProcessor

T0 = 1_700_000_000 * 10**9
S = 10**9
GPUS = ["GPU-1", "GPU-2", "GPU-3", "GPU-4"]
MODELS = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"]
JOBS = ["1", "2", "3", "4", None]
CLAIMS = ["kr-llm", "fr-de-fusion", "kr-sg-bio", "tri-joint", "unknown-acct", None]
SITES = ["kr-daejeon", "ca-montreal"]


def variant(cfg: ConsortiumConfig, idle_policy: str, declares: bool, rate: str) -> ConsortiumConfig:
    """The example config with this idle policy and self-declaring at every site, this
    GPU-hour rate, and a three-member project whose shares leave remainders."""
    sites = [s.model_copy(update={"idle_policy": idle_policy, "self_declared_accounts": declares})
             for s in cfg.sites]
    joint = cfg.projects[0].model_copy(update={
        "id": "tri-joint", "accounts": ["tri-joint"],
        "owners": [o.model_copy(update={"member": m, "share": Decimal(s)})
                   for o, (m, s) in zip([cfg.projects[0].owners[0]] * 3,
                                        [("KR", "0.333333"), ("GB", "0.333333"), ("CA", "0.333334")], strict=True)]})
    return cfg.model_copy(update={"sites": sites, "projects": [*cfg.projects, joint],
                                  "pricing": cfg.pricing.model_copy(update={"gpu_hour_rate": Decimal(rate)})})


def event(job: str, account: str, t: int, end: bool, exclusive: bool, gpus: list[str], site: str) -> JobEvent:
    return JobEvent(event="end" if end else "start", site_id=site, job_id=job, account=account, time_ns=t,
                    exclusive=exclusive and not end, gpus=[] if end else gpus)


events_st = st.lists(st.builds(
    event, st.sampled_from(["1", "2", "3", "4"]), st.sampled_from([c for c in CLAIMS if c]),
    st.integers(T0 - 100 * S, T0 + 100 * S), st.booleans(), st.booleans(),
    st.lists(st.sampled_from(GPUS), max_size=2, unique=True), st.sampled_from(SITES)), max_size=6)

# a share is a weight out of the GPU's whole, or one whose scaling to parts per million
# is an exact tie (2.5e-6 × 1e6 = 2.5: Python's round() makes it 2, half-even)
TIES = [0.5e-6, 2.5e-6, 4.5e-6, 1.5e-6]
proc_st = st.tuples(st.sampled_from(JOBS), st.sampled_from(CLAIMS), st.integers(0, 1000),
                    st.one_of(st.none(), st.sampled_from(TIES)))
gpu_st = st.tuples(st.sampled_from(MODELS), st.integers(0, 10**13), st.floats(0, 3700, allow_nan=False),
                   st.booleans(), st.lists(proc_st, max_size=5))


@st.composite
def windows_st(draw: Any) -> bytes:
    site = draw(st.sampled_from(SITES))
    start = T0 + draw(st.integers(-50, 50)) * S
    uuids = draw(st.lists(st.sampled_from(GPUS), min_size=1, max_size=4, unique=True))
    gpus = []
    for uuid in uuids:
        model, energy, seconds, mig, procs = draw(gpu_st)
        whole = max(1000, sum(w for _, _, w, _ in procs)) * 2  # shares summing to at most 1
        gpus.append({"uuid": uuid, "model": model, "energy_mj": energy, "gpu_seconds": seconds,
                     "flags": ["mig"] if mig else [],
                     "processes": [{"pid": i + 1, "sm_share": w / whole if tie is None else tie,
                                    **({"job_id": j} if j else {}), **({"account": a} if a else {})}
                                   for i, (j, a, w, tie) in enumerate(procs)]})
    doc = {"schema_version": 1, "agent_id": "a1", "site_id": site, "node": "n1", "boot_id": "b1",
           "epoch": "e1", "seq": draw(st.integers(0, 10**6)), "window_start_ns": start,
           "window_end_ns": start + 10 * S, "gpus": gpus}
    return json.dumps(doc).encode()


def both(cfg: ConsortiumConfig, windows: list[tuple[bytes, list[JobEvent]]]) -> tuple[EntryRows, EntryRows]:
    """The windows attributed by the compiled and by the Python rules, the book growing between them."""
    compiled, python = WindowProcessor(cfg, "c" * 64), WindowProcessor(cfg, "c" * 64, compiled_rules=False)
    assert compiled._core is not None and python._core is None
    out = EntryRows(), EntryRows()
    book = JobBook()
    for raw, events in windows:
        book_jobs(events, book)
        w = decode_window_fast(raw)
        for processor, rows in zip((compiled, python), out, strict=True):
            processor.attribute_rows(w, book, rows)
    return out


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["apart", "host", "shared"]), st.booleans(),
       st.sampled_from(["2.50", "0", "1.000000000000000000000000001"]),
       st.lists(st.tuples(windows_st(), events_st), min_size=1, max_size=5))
def test_the_compiled_rules_book_what_the_python_rules_book(config_and_hash, idle_policy, declares, rate,
                                                            windows) -> None:
    cfg = variant(config_and_hash[0], idle_policy, declares, rate)
    compiled, python = both(cfg, windows)
    assert list(compiled) == list(python)


def doc(site: str, procs: list[dict[str, Any]], start: int = T0, uuid: str = "GPU-1") -> bytes:
    return json.dumps({
        "schema_version": 1, "agent_id": "a1", "site_id": site, "node": "n1", "boot_id": "b1", "epoch": "e1",
        "seq": start // S % 10**6, "window_start_ns": start, "window_end_ns": start + 10 * S,
        "gpus": [{"uuid": uuid, "model": MODELS[0], "energy_mj": 7000, "gpu_seconds": 10.0,
                  "processes": procs}]}).encode()


def who(rows: EntryRows) -> list[tuple[str, str, str, str]]:
    return [(r[12], r[13], r[15], r[23]) for r in rows]  # kind, account, member, source


def test_a_job_event_between_two_windows_changes_who_pays_at_once(config_and_hash) -> None:
    # The core remembers a job's tenant; a job event must make it forget, or job 7 would stay
    # unresolved (or stay KR's) after the scheduler said otherwise.
    cfg = config_and_hash[0]
    p, book = WindowProcessor(cfg, "c" * 64), JobBook()
    rows = EntryRows()
    busy = [{"pid": 1, "job_id": "7", "sm_share": 0.5}]
    p.attribute_rows(decode_window_fast(doc("kr-daejeon", busy)), book, rows)
    book_jobs([JobEvent(event="start", site_id="kr-daejeon", job_id="7", account="kr-llm", time_ns=T0)], book)
    p.attribute_rows(decode_window_fast(doc("kr-daejeon", busy, T0 + 10 * S)), book, rows)
    book_jobs([JobEvent(event="start", site_id="kr-daejeon", job_id="7", account="gb-protein", time_ns=T0)], book)
    p.attribute_rows(decode_window_fast(doc("kr-daejeon", busy, T0 + 20 * S)), book, rows)
    # an exclusive allocation of the idle GPU-2, from the next window on
    p.attribute_rows(decode_window_fast(doc("kr-daejeon", [], T0 + 30 * S, "GPU-2")), book, rows)
    book_jobs([JobEvent(event="start", site_id="kr-daejeon", job_id="8", account="kr-sg-bio", time_ns=T0 + 40 * S,
                        exclusive=True, gpus=["GPU-2"])], book)
    p.attribute_rows(decode_window_fast(doc("kr-daejeon", [], T0 + 40 * S, "GPU-2")), book, rows)
    assert who(rows) == [
        ("unresolved", "", "", "none"),
        ("job", "kr-llm", "KR", "job_event"),
        ("job", "gb-protein", "GB", "job_event"),
        ("idle", "idle:kr-daejeon", "", "none"),
        # kr-sg-bio is KR 0.6, SG 0.4 of job 8's exclusive GPU
        ("job", "kr-sg-bio", "KR", "job_event"), ("job", "kr-sg-bio", "SG", "job_event")]
    assert [r[16] for r in rows][-2:] == [4200, 2800]


def test_an_exclusive_allocation_holds_a_gpu_only_while_it_runs(config_and_hash) -> None:
    # The same book throughout: job 9 holds GPU-3 from 40 s to 60 s. What an idle GPU's
    # tenant is depends on the window's time, so the core must not remember it.
    cfg = config_and_hash[0]
    p, rows = WindowProcessor(cfg, "c" * 64), EntryRows()
    book = book_jobs([
        JobEvent(event="start", site_id="kr-daejeon", job_id="9", account="gb-protein", time_ns=T0 + 40 * S,
                 exclusive=True, gpus=["GPU-3"]),
        JobEvent(event="end", site_id="kr-daejeon", job_id="9", account="gb-protein", time_ns=T0 + 60 * S)])
    for t in (20, 40, 50, 70, 45):
        p.attribute_rows(decode_window_fast(doc("kr-daejeon", [], T0 + t * S, "GPU-3")), book, rows)
    assert [(kind, account) for kind, account, _, _ in who(rows)] == [
        ("idle", "idle:kr-daejeon"), ("job", "gb-protein"), ("job", "gb-protein"), ("idle", "idle:kr-daejeon"),
        ("job", "gb-protein")]


def test_a_price_beyond_64_bits_is_left_to_the_python_rules(config_and_hash) -> None:
    # A rate whose exact ratio needs more than 64 bits: the core declines the window
    # (adds nothing), and attribute_rows books it with the Python rules, to the same result.
    cfg = variant(config_and_hash[0], "apart", False, "1.000000000000000000000000001")
    p = WindowProcessor(cfg, "c" * 64)
    w = decode_window_fast(doc("kr-daejeon", [{"pid": 1, "job_id": "7", "account": "kr-llm", "sm_share": 0.5}]))
    rows = EntryRows()
    rows.window("c" * 64, w.window_id, "a1", "b1", 0, "kr-daejeon", "n1", T0, T0 + 10 * S)
    assert p._core is not None and p._rules is not None
    p._rules.use(JobBook(), p._core)
    assert p._core.attribute(w.gpus, "kr-daejeon", T0, T0 + 10 * S, None, rows) is False
    assert len(rows) == 0
    compiled, python = both(cfg, [(doc("kr-daejeon", [{"pid": 1, "job_id": "7", "sm_share": 0.5}]), [])])
    assert list(compiled) == list(python) and len(compiled) == 1


class PanicException(BaseException):  # what pyo3 raises for a panic in the core: not an Exception
    pass


def test_a_panic_in_the_compiled_rules_costs_one_window_not_the_worker(config_and_hash) -> None:
    from streams.sink import MemorySink
    from streams.worker import LedgerWorker
    from tests.builders import good

    cfg, digest = config_and_hash
    p = WindowProcessor(cfg, digest)
    real = p._core
    assert real is not None

    class Panicking:
        calls = 0

        def forget_jobs(self) -> None:
            real.forget_jobs()

        def attribute(self, gpus: Any, *args: Any) -> bool:
            Panicking.calls += 1
            if Panicking.calls == 2:
                raise PanicException("index out of bounds")
            return real.attribute(gpus, *args)

    p._core = Panicking()  # type: ignore[assignment]
    w = LedgerWorker(p, MemorySink(), clock_ns=lambda: 10**18 + 60 * 10**9)
    batch = w.prepare([good(1), good(2), good(3)])
    assert [r.reason for r in batch.rejections] == ["internal_error"]
    assert "the compiled rules failed: index out of bounds" in batch.rejections[0].detail
    assert len(batch.accepted) == 2
