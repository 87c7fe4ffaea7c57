"""The witnessed chain: checkpoints signed by the ledger, kept by members, checked against the database."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.witness import Witness, compare
from schemas.chain import GENESIS
from schemas.checkpoint import Checkpoint, CheckpointError, checkpoint_id, decode_checkpoint, encode_checkpoint
from schemas.signing import demo_key, new_key, public_key_hex, verifier
from streams.chain_writer import ChainHead
from streams.checkpoints import ChainMismatch, Checkpointer, MemoryCheckpointLog, ledger_signer

KEY_ID, KEY = demo_key("ledger")
KEYS = {KEY_ID: verifier(public_key_hex(KEY))}
T = 1_795_000_000 * 10**9


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> int:
        return self.now


def batch(seq: int, energy: int = 1000) -> ChainHead:
    if seq < 0:
        return ChainHead("main", -1, GENESIS, 0, 0, 0, 0)  # an empty chain's head
    return ChainHead("main", seq, f"{seq:064x}", entries=3, windows=2, energy_mj=energy, gpu_ms=10)


def checkpointer(log: MemoryCheckpointLog, interval_s: float = 0.0, clock: Clock | None = None,
                 chain: str = "main") -> Checkpointer:
    return Checkpointer(chain, KEY_ID, KEY, KEYS, log, interval_s, clock or Clock())


def decoded(log: MemoryCheckpointLog) -> list[Checkpoint]:
    return [decode_checkpoint(m, KEYS) for _, m in log.messages]


# -- the message ---------------------------------------------------------------------------
def test_a_checkpoint_round_trips_and_any_changed_byte_is_refused() -> None:
    cp = Checkpoint("main", 4, "ab" * 32, 10, 4, 123, 45, kind="checkpoint", prev="cd" * 32, time_ns=T,
                    reason="interval", key_id=KEY_ID)
    raw = encode_checkpoint(cp, KEY)
    assert decode_checkpoint(raw, KEYS) == cp
    forged = raw.replace(b'"energy_mj":123', b'"energy_mj":124')
    with pytest.raises(CheckpointError, match="bad signature"):
        decode_checkpoint(forged, KEYS)
    other_id, other = "ledger-other", new_key()
    with pytest.raises(CheckpointError, match="not a ledger key"):
        decode_checkpoint(encode_checkpoint(replace(cp, key_id=other_id), other), KEYS)
    with pytest.raises(ValueError):
        encode_checkpoint(Checkpoint("main", -1, GENESIS, 0, 0, 0, 0, kind="register", prev="ab" * 32, time_ns=T,
                                     reason="start", key_id=KEY_ID),
                          KEY)


@pytest.mark.parametrize("field", ["chain_id", "key_id", "batch_hash", "prev"])
def test_an_identifier_or_hash_with_a_final_newline_is_not_a_checkpoint(field: str) -> None:
    cp = Checkpoint("main", 4, "ab" * 32, 10, 4, 123, 45, kind="checkpoint", prev="cd" * 32, time_ns=T,
                    reason="interval", key_id=KEY_ID)
    with pytest.raises(ValueError, match=f"{field} does not match"):
        encode_checkpoint(replace(cp, **{field: getattr(cp, field) + "\n"}), KEY)
    doc = {"schema_version": 1, **{k: getattr(cp, k) for k in cp.__dataclass_fields__}}
    doc[field] += "\n"
    from schemas.signing import sign_window

    raw = sign_window(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), KEY)
    with pytest.raises(CheckpointError, match=f"{field} does not match"):
        decode_checkpoint(raw, None)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=5000))
def test_any_bytes_on_the_topic_are_an_alarm_never_a_crash(tmp_path: Path, raw: bytes) -> None:
    w = Witness(tmp_path / "w", KEYS)
    alarm = w.accept(0, raw)
    assert alarm is not None and alarm.kind == "bad_signature"
    assert not w.chains


@pytest.mark.parametrize("raw", [b"[" * 8000, b'{"chain_id":' * 3000, b"\xff" * 4096, b"{}" * 3000, b""])
def test_deep_huge_or_empty_messages_are_alarms(tmp_path: Path, raw: bytes) -> None:
    assert Witness(tmp_path / "w", KEYS).accept(7, raw).kind == "bad_signature"


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_a_signed_checkpoint_with_one_byte_changed_is_refused(tmp_path: Path, where: int, value: int) -> None:
    log = MemoryCheckpointLog()
    checkpointer(log).start(batch(-1), lambda s: None)
    raw = bytearray(log.messages[0][1])
    i = where % len(raw)
    if raw[i] == value:
        return
    raw[i] = value
    w = Witness(tmp_path / "w", KEYS)
    assert w.accept(0, bytes(raw)) is not None


# -- the stream's checkpointer --------------------------------------------------------------
def test_a_new_chain_is_registered_then_each_checkpoint_names_the_one_before() -> None:
    log = MemoryCheckpointLog()
    cp = checkpointer(log)
    cp.start(ChainHead("main", -1, GENESIS, 0, 0, 0, 0), lambda s: None)
    for seq in range(3):
        cp.committed(batch(seq))
    cps = decoded(log)
    assert [(c.kind, c.seq) for c in cps] == [("register", -1), ("checkpoint", 0), ("checkpoint", 1),
                                              ("checkpoint", 2)]
    assert [c.prev for c in cps] == [GENESIS] + [checkpoint_id(m) for _, m in log.messages[:-1]]
    assert (cps[-1].entries, cps[-1].windows, cps[-1].energy_mj, cps[-1].gpu_ms) == (9, 6, 3000, 30)
    assert cps[-1].batch_hash == batch(2).batch_hash


def test_checkpoints_follow_the_interval_and_a_clean_stop_witnesses_the_head() -> None:
    log, clock = MemoryCheckpointLog(), Clock()
    cp = checkpointer(log, interval_s=60, clock=clock)
    cp.start(ChainHead("main", -1, GENESIS, 0, 0, 0, 0), lambda s: None)
    for seq in range(5):  # within a minute of the registration: none due
        clock.now += 5 * 10**9
        cp.committed(batch(seq))
    assert [c.seq for c in decoded(log)] == [-1]
    clock.now += 60 * 10**9
    cp.tick()
    assert [c.seq for c in decoded(log)] == [-1, 4]
    cp.committed(batch(5))
    cp.tick()  # not due yet
    cp.stop()
    assert [(c.seq, c.reason) for c in decoded(log)][-1] == (5, "stop")
    cp.stop()  # nothing new: nothing published
    assert len(log.messages) == 3


def test_a_restarted_stream_continues_the_chain_of_checkpoints() -> None:
    log = MemoryCheckpointLog()
    first = checkpointer(log)
    first.start(batch(-1), lambda s: None)
    first.committed(batch(0))
    first.committed(batch(1))
    second = checkpointer(log)
    hashes = {0: batch(0).batch_hash, 1: batch(1).batch_hash}
    second.start(ChainHead("main", 1, batch(1).batch_hash, 6, 4, 2000, 20), hashes.get)
    assert len(log.messages) == 3  # the head was checkpointed already
    second.committed(batch(2))
    w = Witness_in_memory(log)
    assert not w.new_alarms and w.chains["main"].last.seq == 2


def Witness_in_memory(log: MemoryCheckpointLog, tmp: Path | None = None) -> Witness:  # noqa: N802
    import tempfile

    w = Witness(tmp or Path(tempfile.mkdtemp()), KEYS)
    for offset, (_, raw) in enumerate(log.messages):
        w.accept(offset, raw)
    return w


def test_the_stream_refuses_a_database_that_lost_or_rewrote_checkpointed_batches() -> None:
    log = MemoryCheckpointLog()
    cp = checkpointer(log)
    cp.start(batch(-1), lambda s: None)
    for seq in range(4):
        cp.committed(batch(seq))
    truncated = ChainHead("main", 1, batch(1).batch_hash, 6, 4, 2000, 20)
    with pytest.raises(ChainMismatch, match="batch 3 was checkpointed .* chain ends at seq 1"):
        checkpointer(log).start(truncated, lambda s: batch(s).batch_hash)
    with pytest.raises(ChainMismatch, match="batch 3 in the database is not the batch that was checkpointed"):
        checkpointer(log).start(batch(3), lambda s: "ff" * 32)
    recreated = ChainHead("main", -1, GENESIS, 0, 0, 0, 0)
    with pytest.raises(ChainMismatch, match="chain ends at seq -1"):
        checkpointer(log).start(recreated, lambda s: None)


def test_the_ledger_key_must_be_one_the_config_lists(tmp_path: Path, config_and_hash) -> None:
    cfg, _ = config_and_hash
    key_id, key, demo = ledger_signer(cfg, None)  # the example config lists the public demo ledger key
    assert demo and key_id == "ledger-demo"
    path = tmp_path / "ledger.key"
    path.write_text(bytes(new_key()).hex())
    path.chmod(0o600)
    with pytest.raises(Exception, match="not one of the config's ledger_keys"):
        ledger_signer(cfg, path)
    with pytest.raises(Exception, match="lists no ledger_keys"):
        ledger_signer(cfg.model_copy(update={"ledger_keys": []}), None)


# -- the witness -----------------------------------------------------------------------------
def test_the_witness_keeps_its_copy_across_runs_and_names_forks_and_rollbacks(tmp_path: Path) -> None:
    log = MemoryCheckpointLog()
    cp = checkpointer(log)
    cp.start(batch(-1), lambda s: None)
    cp.committed(batch(0))
    cp.committed(batch(1))
    w = Witness(tmp_path, KEYS)
    for offset, (_, raw) in enumerate(log.messages):
        assert w.accept(offset, raw) is None
    w.save()
    again = Witness(tmp_path, KEYS)  # the next run: from where it stopped, with the chain it knew
    assert again.offset == 3 and again.chains["main"].last.seq == 1

    # a second history of the chain, signed by the (compromised) ledger key: a fork at seq 1
    fork = checkpointer(MemoryCheckpointLog())
    fork.log.messages.extend(log.messages[:2])  # shares the registration and seq 0
    fork.start(batch(0), {0: batch(0).batch_hash}.get)
    fork.committed(ChainHead("main", 1, "ee" * 32, 3, 2, 5, 10))
    alarm = again.accept(3, fork.log.messages[-1][1])
    assert alarm is not None and (alarm.kind, alarm.chain_id, alarm.seq) == ("fork", "main", 1)
    # going back to seq 0, chained to the real head: a rollback
    back = Checkpoint("main", 0, batch(0).batch_hash, 3, 2, 1000, 10, kind="checkpoint",
                      prev=again.chains["main"].last_id, time_ns=T, reason="interval", key_id=KEY_ID)
    assert again.accept(4, encode_checkpoint(back, KEY)).kind == "rollback"
    reg = Checkpoint("main", -1, GENESIS, 0, 0, 0, 0, kind="register", prev=GENESIS, time_ns=T, reason="start",
                     key_id=KEY_ID)
    assert again.accept(5, encode_checkpoint(reg, KEY)).kind == "registered_twice"
    stray = Checkpoint("other", 3, "aa" * 32, 1, 1, 1, 1, kind="checkpoint", prev="bb" * 32, time_ns=T,
                       reason="interval", key_id=KEY_ID)
    assert again.accept(6, encode_checkpoint(stray, KEY)).kind == "unregistered"
    assert again.chains["main"].last.seq == 1 and again.chains["main"].last.batch_hash == batch(1).batch_hash
    alarms = [json.loads(line)["kind"] for line in (tmp_path / "alarms.jsonl").read_text().splitlines()]
    assert alarms == ["fork", "rollback", "registered_twice", "unregistered"]


def _db_rows(n: int, chain: str = "main", change: dict[int, str] | None = None) -> list[tuple[object, ...]]:
    change = change or {}
    return [(chain, s, change.get(s, batch(s).batch_hash), 3, 2, 1000, 10) for s in range(n)]


def test_compare_names_the_first_batch_that_differs_from_the_witness(tmp_path: Path) -> None:
    log = MemoryCheckpointLog()
    cp = checkpointer(log)
    cp.start(batch(-1), lambda s: None)
    for seq in range(6):
        cp.committed(batch(seq))
    w = Witness_in_memory(log, tmp_path)
    assert compare(w, _db_rows(6)) == []
    assert compare(w, _db_rows(8)) == []  # batches after the last checkpoint: not yet witnessed, not wrong
    [p] = compare(w, _db_rows(6, change={3: "ab" * 32, 4: "cd" * 32, 5: "ef" * 32}))
    assert (p.kind, p.seq) == ("differs_from_witness", 3)
    [p] = compare(w, _db_rows(4))
    assert (p.kind, p.seq) == ("witnessed_batch_missing", 4) and "ends at seq 3" in p.detail
    [p] = compare(w, _db_rows(6) + _db_rows(2, chain="fr-bills"))
    assert (p.kind, p.chain_id) == ("chain_not_registered", "fr-bills")
    rows = _db_rows(6)
    rows[2] = (*rows[2][:5], 999, 10)  # same hashes, other energy: the totals give it away
    [p] = compare(w, rows)
    assert (p.kind, p.seq) == ("differs_from_witness", 2) and "running totals" in p.detail


def test_sparse_checkpoints_bound_where_the_change_is(tmp_path: Path) -> None:
    log, clock = MemoryCheckpointLog(), Clock()
    cp = checkpointer(log, interval_s=60, clock=clock)
    cp.start(batch(-1), lambda s: None)
    for seq in range(10):
        clock.now += 20 * 10**9  # a checkpoint every third batch
        cp.committed(batch(seq))
    w = Witness_in_memory(log, tmp_path)
    seen = [s for s, _, _ in w.chains["main"].seen]
    assert seen == [2, 5, 8]
    [p] = compare(w, _db_rows(10, change={s: "ab" * 32 for s in range(4, 10)}))
    assert (p.seq, p.kind) == (5, "differs_from_witness") and "batches 3..5" in p.detail


def test_the_worker_says_at_start_what_trust_the_config_gives_away(config_and_hash) -> None:
    from streams.service import start_warnings

    cfg, _ = config_and_hash
    said = start_warnings(cfg, demo_ledger_key=True)
    # the example config: every site lists its public demo key; no site may send unsigned windows
    assert sum("lists the PUBLIC DEMO KEY" in w for w in said) == len(cfg.sites)
    assert not any("UNSIGNED" in w for w in said)
    assert said[-1].startswith("the ledger signs its checkpoints with the PUBLIC DEMO LEDGER KEY")
    opted_out = cfg.model_copy(update={"sites": [cfg.sites[0].model_copy(update={"allow_unsigned": True})]})
    assert f"site {cfg.sites[0].id} may send UNSIGNED windows" in start_warnings(opted_out, False)[0]


def test_the_witness_run_reads_its_chains_retries_when_following_and_stops_on_an_alarm(tmp_path: Path) -> None:
    from ledger import LedgerError
    from ledger.witness import run_witness

    log = MemoryCheckpointLog()
    cp = checkpointer(log)
    cp.start(batch(-1), lambda s: None)
    cp.committed(batch(0))
    topic = [(i, key.encode() if isinstance(key, str) else key, raw) for i, (key, raw) in enumerate(log.messages)]
    other = encode_checkpoint(Checkpoint("other", -1, GENESIS, 0, 0, 0, 0, kind="register", prev=GENESIS, time_ns=T,
                                         reason="start", key_id=KEY_ID), KEY)
    topic.append((len(topic), b"other", other))  # another ledger's chain on the same topic
    said: list[str] = []
    calls: list[int] = []

    class Down(Exception):
        pass

    def read(offset: int):
        calls.append(offset)
        if len(calls) == 1:
            raise Down("broker away")
        return [m for m in topic if m[0] >= offset]

    w = Witness(tmp_path, KEYS)
    # not following: a failed read is an error naming where, and nothing is lost
    with pytest.raises(LedgerError, match="cannot read the checkpoints at broker:9093: broker away"):
        run_witness(w, read, "broker:9093", ["main"], False, 1.0, said.append, said.append, (Down,),
                    sleep=lambda s: None)
    # the next read: only chain main is taken, the other ledger's offset passed over, no alarm
    n = run_witness(w, read, "broker:9093", ["main"], False, 1.0, said.append, said.append, (Down,),
                    sleep=lambda s: None)
    assert n == 0 and w.offset == len(topic) and set(w.chains) == {"main"}
    assert said[-1].startswith("2 new checkpoint(s) witnessed; heads: main seq 0")
    # seq 0 again with another batch hash, chained to the head (a history rewritten): an alarm, and a
    # following run stops on it
    back = Checkpoint("main", 0, "ee" * 32, 3, 2, 1000, 10, kind="checkpoint",
                      prev=w.chains["main"].last_id, time_ns=T, reason="interval", key_id=KEY_ID)
    topic.append((len(topic), b"main", encode_checkpoint(back, KEY)))
    retried: list[float] = []
    flaky = iter([Down("again"), None])

    def read_flaky(offset: int):
        err = next(flaky)
        if err is not None:
            raise err
        return [m for m in topic if m[0] >= offset]

    assert run_witness(w, read_flaky, "broker:9093", ["main"], True, 7.0, said.append, said.append, (Down,),
                       sleep=retried.append) == 1
    assert retried == [7.0] and [line for line in said if line.startswith("ALARM ")]
