"""The commit path on a current ClickHouse engine (chdb): a lost acknowledgement,
conflicting duplicates across batches, dead letters of any bytes, and the
chain lease. The same cases run on the Debian 18.16 server in
tests/integration/test_poison_stack.py."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import pytest

from ledger.migrate import apply_migrations
from ledger.verify import verify_ledger
from streams.lease import ChainLease, LeaseError
from streams.processing import Rejection, WindowProcessor
from streams.sink import ClickHouseSink
from streams.worker import LedgerWorker
from tests.builders import ALL, NOW_NS, LostAck, raw

_n = itertools.count()


@pytest.fixture()
def db(chdb_engine: Any) -> tuple[Any, str]:
    name = f"bl_commit{next(_n)}"
    apply_migrations(chdb_engine, name)
    return chdb_engine, name


def test_a_commit_whose_acknowledgement_is_lost_is_kept_exactly_once(db, config_and_hash) -> None:
    engine, name = db
    client = LostAck(engine)
    w = LedgerWorker(WindowProcessor(*config_and_hash), ClickHouseSink(client, name), clock_ns=lambda: NOW_NS)
    first = w.prepare([raw(1), raw(2)])
    client.lose_next_commit = True
    with pytest.raises(Exception, match="connection reset"):
        w.write(first)
    w.write(first)  # the retry: both windows are already committed, nothing is written twice
    w.handle_windows([raw(3)])  # the next batch must not delete the batch whose ack was lost
    w.handle_windows([raw(4)])
    booked = engine.execute(f"SELECT window_id, sum(energy_mj) FROM {name}.ledger GROUP BY window_id "
                            f"ORDER BY window_id")
    assert [(r[0].rsplit("/", 1)[1], int(r[1])) for r in booked] == [("1", 5000), ("2", 5000), ("3", 5000),
                                                                      ("4", 5000)]
    report = verify_ledger(engine, name, *ALL)
    assert report.ok, [p.line() for p in report.problems]
    assert report.batches == 3


def test_a_conflicting_duplicate_across_batches_is_dead_lettered_with_both_hashes(db, config_and_hash) -> None:
    engine, name = db
    import hashlib

    w = LedgerWorker(WindowProcessor(*config_and_hash), ClickHouseSink(engine, name), clock_ns=lambda: NOW_NS)
    original, forged = raw(7, 5000), raw(7, 900_000)
    assert w.handle_windows([original]) == []
    assert w.handle_windows([original]) == []  # a resend: skipped, not a conflict
    [rejection] = w.handle_windows([forged])
    assert rejection.reason == "conflicting_duplicate"
    assert hashlib.sha256(original).hexdigest() in rejection.detail
    assert hashlib.sha256(forged).hexdigest() in rejection.detail
    assert int(engine.execute(f"SELECT sum(energy_mj) FROM {name}.ledger")[0][0]) == 5000
    rows = engine.execute(f"SELECT reason, raw_sha256 FROM {name}.dlq_records")
    assert rows == [("conflicting_duplicate", hashlib.sha256(forged).hexdigest())]


class CountingLookups:
    """The engine, counting the resend check's lookups of windows by id in raw_windows."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.lookups = inner, 0

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.lookups += "PREWHERE window_id IN" in query
        return self.inner.execute(query, *args, **kwargs)

    def insert_native(self, query: str, encode: Any) -> None:
        self.inner.insert_native(query, encode)


def test_the_resend_check_looks_up_by_id_only_the_windows_inside_a_booked_run(db, config_and_hash) -> None:
    """The agent runs' seq ranges settle new windows without a lookup by id; a window
    inside its run's range is looked up (a conflict in the middle of the run is found),
    and one in a gap is booked, like one below the range or of another epoch."""
    engine, name = db
    client = CountingLookups(engine)
    w = LedgerWorker(WindowProcessor(*config_and_hash), ClickHouseSink(client, name), clock_ns=lambda: NOW_NS)
    assert w.handle_windows([raw(s) for s in (10, 11, 12, 14)]) == []
    assert w.handle_windows([raw(15), raw(16)]) == []  # above the run's range: new, settled without a lookup
    assert client.lookups == 0
    [conflict] = w.handle_windows([raw(11, 900_000)])
    assert (conflict.reason, client.lookups) == ("conflicting_duplicate", 1)
    assert w.handle_windows([raw(11)]) == [] and client.lookups == 2  # a resend: looked up, skipped
    assert w.handle_windows([raw(13), raw(9), raw(11, epoch="e2")]) == []  # the gap is looked up: not there
    assert client.lookups == 3
    booked = engine.execute(f"SELECT window_id, sum(energy_mj) FROM {name}.ledger GROUP BY window_id")
    assert sorted(r[0].split("/", 3)[3] for r in booked) == ["e1/10", "e1/11", "e1/12", "e1/13", "e1/14", "e1/15",
                                                            "e1/16", "e1/9", "e2/11"]
    assert {int(r[1]) for r in booked} == {5000}
    report = verify_ledger(engine, name, *ALL)
    assert report.ok, [p.line() for p in report.problems]


def test_windows_booked_before_the_seq_ranges_existed_are_still_found(chdb_engine, config_and_hash) -> None:
    """Migration 0011 fills the ranges from the windows already booked: after the
    upgrade, a resend of one of them is skipped and a forgery of one is refused."""
    from datetime import datetime

    from ledger.migrate import load_migrations

    name = f"bl_commit{next(_n)}"
    apply_migrations(chdb_engine, name, load_migrations()[:10])  # a ledger from before 0011
    sink = ClickHouseSink(chdb_engine, name)
    w = LedgerWorker(WindowProcessor(*config_and_hash), sink, clock_ns=lambda: NOW_NS)
    batch = w.prepare([raw(5), raw(6)])
    sink.commit_batch(batch.entries, batch.accepted, datetime(2026, 1, 1))  # written as the old worker did
    assert apply_migrations(chdb_engine, name) == ["0011_window_seq_ranges"]
    assert w.handle_windows([raw(5), raw(7)]) == []  # the resend skipped, the new window booked
    [conflict] = w.handle_windows([raw(6, 900_000)])
    assert conflict.reason == "conflicting_duplicate"
    booked = chdb_engine.execute(f"SELECT window_id, count() FROM {name}.windows GROUP BY window_id")
    assert sorted((r[0].rsplit("/", 1)[1], int(r[1])) for r in booked) == [("5", 1), ("6", 1), ("7", 1)]


def test_dead_letters_of_any_bytes_are_stored_as_they_are(db) -> None:
    engine, name = db
    sink = ClickHouseSink(engine, name)
    odd = [b"\xff\xfe\x00", b'{"site_id":"kr-daejeon","x":"\xc3("}', b"", "\ud800".encode("utf-8", "surrogatepass")]
    rejections = [Rejection.of("malformed_json", "detail with a lone surrogate \ud800 and \x00", r) for r in odd]
    sink.write([], [], rejections)
    rows = engine.execute(f"SELECT hex(raw), site_id, detail FROM {name}.dlq_records ORDER BY raw_sha256")
    assert sorted(r[0] for r in rows) == sorted(r.hex().upper() for r in odd)
    assert {r[1] for r in rows} == {"", "kr-daejeon"}
    assert all("\\ud800" in r[2] for r in rows)


# -- the chain lease -------------------------------------------------------------------------
def test_a_second_worker_on_a_held_chain_refuses_to_start(db) -> None:
    engine, name = db
    first = ChainLease(engine, name, "main", holder="remote-host:1:aaaa")
    first.acquire(wait_s=0)
    second = ChainLease(engine, name, "main", holder="other-host:2:bbbb", sleep=lambda s: None)
    with pytest.raises(LeaseError, match=r"held by another live worker \(remote-host:1:aaaa"):
        second.acquire(wait_s=0)
    ChainLease(engine, name, "other-chain", holder="other-host:2:bbbb").acquire(wait_s=0)  # another chain: fine
    first.release()
    second.acquire(wait_s=0)
    with pytest.raises(LeaseError, match="no longer holds"):
        first.renew(force=True)


def test_a_dead_holder_on_this_host_is_taken_over_at_once(db) -> None:
    import socket

    engine, name = db
    dead = ChainLease(engine, name, "main", holder=f"{socket.gethostname()}:999999:dead")
    dead.acquire(wait_s=0)
    new = ChainLease(engine, name, "main", alive=lambda pid: pid == os.getpid())
    new.acquire(wait_s=0)
    new.renew(force=True)  # the dead one's unexpired lease must not count against the new holder
    assert [h.holder for h in new.holders()] == [new.holder]
    # and a worker on another host, which cannot see the dead pid, sees the chain as the new holder's
    remote = ChainLease(engine, name, "main", holder="remote-host:1:cccc", sleep=lambda s: None)
    with pytest.raises(LeaseError, match=new.holder):
        remote.acquire(wait_s=0)


def test_an_expired_lease_is_taken_over_and_its_old_holder_stops(db) -> None:
    engine, name = db
    old = ChainLease(engine, name, "main", holder="remote-host:1:aaaa", ttl_s=2)
    old.acquire(wait_s=0)
    time.sleep(3.2)
    ChainLease(engine, name, "main", holder="remote-host:2:bbbb").acquire(wait_s=0)
    with pytest.raises(LeaseError):
        old.renew(force=True)


def test_the_sink_checks_its_lease_before_every_batch(db, config_and_hash) -> None:
    engine, name = db
    lease = ChainLease(engine, name, "main", holder="remote-host:1:aaaa", ttl_s=2)
    lease.acquire(wait_s=0)
    w = LedgerWorker(WindowProcessor(*config_and_hash), ClickHouseSink(engine, name, lease=lease),
                     clock_ns=lambda: NOW_NS)
    w.handle_windows([raw(1)])
    time.sleep(3.2)
    ChainLease(engine, name, "main", holder="remote-host:2:bbbb").acquire(wait_s=0)
    with pytest.raises(LeaseError):
        w.handle_windows([raw(2)])
    assert int(engine.execute(f"SELECT count() FROM {name}.ledger_entries")[0][0]) == 1


class CountingHeads(LostAck):
    """LostAck, counting the writer's reads of its chain's head."""

    heads = 0

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.heads += "ORDER BY seq DESC LIMIT 1" in query
        return super().execute(query, *args, **kwargs)


def test_under_a_lease_the_writer_knows_its_head_and_reads_it_again_after_a_failure(db, config_and_hash) -> None:
    """The chain's only writer (it holds the lease) asks for the head once, then chains each
    batch to the one it committed; after a write whose acknowledgement was lost it asks
    again (the record did land), so the chain stays unbroken. Without a lease it always asks."""
    engine, name = db
    lease = ChainLease(engine, name, "main", holder="remote-host:1:aaaa", ttl_s=30)
    lease.acquire(wait_s=0)
    client = CountingHeads(engine)
    w = LedgerWorker(WindowProcessor(*config_and_hash), ClickHouseSink(client, name, lease=lease),
                     clock_ns=lambda: NOW_NS)
    w.handle_windows([raw(1)])
    w.handle_windows([raw(2)])
    assert client.heads == 1
    client.lose_next_commit = True
    with pytest.raises(Exception, match="connection reset"):
        w.handle_windows([raw(3)])
    w.handle_windows([raw(3)])  # the retry: booked already, nothing written
    w.handle_windows([raw(4)])
    w.handle_windows([raw(5)])
    assert client.heads == 2
    unleased = CountingHeads(engine)
    w2 = LedgerWorker(WindowProcessor(*config_and_hash), ClickHouseSink(unleased, name, chain_id="other"),
                      clock_ns=lambda: NOW_NS)
    w2.handle_windows([raw(6)])
    w2.handle_windows([raw(7)])
    assert unleased.heads == 2
    report = verify_ledger(engine, name, *ALL)
    assert report.ok, [p.line() for p in report.problems]
    assert report.batches == 7
    seqs = engine.execute(f"SELECT chain_id, seq FROM {name}.ledger_batches ORDER BY chain_id, seq")
    assert seqs == [("main", 0), ("main", 1), ("main", 2), ("main", 3), ("main", 4), ("other", 0), ("other", 1)]


def test_a_lease_that_expired_while_nobody_took_it_is_taken_again(db) -> None:
    # ClickHouse unreachable for longer than the TTL: the worker carries on afterwards
    engine, name = db
    lease = ChainLease(engine, name, "main", holder="remote-host:1:aaaa", ttl_s=2)
    lease.acquire(wait_s=0)
    time.sleep(3.2)
    assert lease.holders() == []
    lease.renew(force=True)
    assert [h.holder for h in lease.holders()] == ["remote-host:1:aaaa"]
    with pytest.raises(LeaseError):
        ChainLease(engine, name, "main", holder="remote-host:2:bbbb", sleep=lambda s: None).acquire(wait_s=0)


def test_the_clickhouse_dead_letter_writer_takes_any_bytes_and_any_detail(chdb_engine) -> None:
    """The dead-letter row (the Kafka record is in tests/unit/streams/test_poison.py) cannot fail on
    content: hypothesis over arbitrary original bytes and arbitrary detail text."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    name = f"bl_dlq{next(_n)}"
    apply_migrations(chdb_engine, name)
    sink = ClickHouseSink(chdb_engine, name)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.binary(max_size=400), st.text(max_size=600)), min_size=1, max_size=4))
    def write(messages: list[tuple[bytes, str]]) -> None:
        import hashlib

        rejections = [Rejection.of("malformed_json", detail, data) for data, detail in messages]
        sink.write([], [], rejections)
        for data, _ in messages:
            rows = chdb_engine.execute(f"SELECT hex(raw) FROM {name}.dlq_records WHERE raw_sha256 = %(h)s",
                                       {"h": hashlib.sha256(data).hexdigest()})
            assert rows and rows[0][0] == data.hex().upper()

    write()


class _FailingWindows:
    """A second connection whose raw-windows insert fails (a dropped connection)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def insert_native(self, query: str, encode: Any) -> None:
        raise ConnectionResetError(f"connection reset during {query.split()[2]}")


def _ledger(engine: Any, name: str) -> list[tuple[Any, ...]]:
    return engine.execute(f"SELECT entry_id, window_id, member, energy_mj, gpu_ms, cost_eur FROM {name}.ledger "
                          f"ORDER BY entry_id")


def test_raw_windows_inserted_beside_the_entries_commit_the_same_ledger(chdb_engine, config_and_hash) -> None:
    """With a second connection the windows' insert runs beside the entries'; the ledger,
    its windows and its chain are those of one connection, and a window insert that
    fails leaves the batch uncommitted (no record), so the retry books it once."""
    books = []
    for beside in (False, True):
        name = f"bl_beside{next(_n)}"
        apply_migrations(chdb_engine, name)
        sink = ClickHouseSink(chdb_engine, name, windows_client=chdb_engine if beside else None)
        w = LedgerWorker(WindowProcessor(*config_and_hash), sink, clock_ns=lambda: NOW_NS)
        batch = w.prepare([raw(1), raw(2), raw(3)])
        if beside:
            sink.windows_client = _FailingWindows(chdb_engine)
            with pytest.raises(Exception, match="connection reset during"):
                w.write(batch)
            assert chdb_engine.execute(f"SELECT count() FROM {name}.ledger_batches") == [(0,)]
            assert _ledger(chdb_engine, name) == []
            sink.windows_client = chdb_engine
        w.write(batch)
        windows = chdb_engine.execute(f"SELECT window_id, payload FROM {name}.windows ORDER BY window_id")
        assert len(windows) == 3
        report = verify_ledger(chdb_engine, name, *ALL)
        assert report.ok and report.batches == 1, [p.line() for p in report.problems]
        books.append((_ledger(chdb_engine, name), windows))
    assert books[0] == books[1]
