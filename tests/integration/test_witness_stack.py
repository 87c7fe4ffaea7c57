"""The insider's attacks on a real ledger (Kafka 4.1, ClickHouse 18.16, the real
stream worker), each caught by what a member witnessed outside the database.

A worker of its own writes chain ``witnessed`` to database ``bl_witnessed``
(as ClickHouse's admin: the writer is confined to the ledger database, and
this test drops and re-creates its database) from real traffic, publishing a
checkpoint after every batch. A member runs ``bridgeledger ledger witness``.
Then the insider rewrites the database in each way of issue #14's "Why",
recomputing the chain so that plain ``ledger verify`` passes, and
``ledger verify --witness`` names what was done.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agents.publisher import KafkaPublisher
from streams.clickhouse import ClickHouseSettings, connect
from tests.conftest import ROOT, WorkerProcess
from tests.helpers import wait_for
from tests.insider import dump, put, rechain, restore, rows
from tests.stack_helpers import Recorder, sim_fleet

pytestmark = pytest.mark.integration
DB, CHAIN = "bl_witnessed", "witnessed"


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridgeledger.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def witnessed(stack, ch, tmp_path_factory, config_and_hash):
    """(admin client, env for the CLI on bl_witnessed, the witness dir, the dump of the honest ledger)."""
    admin_settings = ClickHouseSettings(host="127.0.0.1", port=stack.ports.clickhouse_tcp, user="default",
                                        password_file=stack.password_file("default"), database=DB)
    admin = connect(admin_settings, database="system")
    admin.execute(f"DROP DATABASE IF EXISTS {DB}")
    env_db = {"BRIDGELEDGER_CH_USER": "default", "BRIDGELEDGER_CH_PASSWORD_FILE": str(stack.password_file("default")),
              "BRIDGELEDGER_CH_DATABASE": DB}
    tag = uuid.uuid4().hex[:8]
    w = WorkerProcess(stack, tmp_path_factory.mktemp("witnessed") / "worker.log", extra_env={
        **env_db, "BRIDGELEDGER_CHAIN_ID": f"{CHAIN}-{tag}", "BRIDGELEDGER_APP_ID": f"witnessed-{tag}",
        "BRIDGELEDGER_CHECKPOINT_INTERVAL_S": "0"})
    from ledger.migrate import apply_migrations

    apply_migrations(admin, DB)
    w.start()
    w.wait_ready()
    pub = Recorder(KafkaPublisher(stack.kafka_bootstrap))
    sim_fleet(config_and_hash[0], pub, minutes=3, seed=int(time.time()) % 10_000)
    ids = {x.window_id for x in pub.windows()}
    wait_for(lambda: admin.execute(f"SELECT count() FROM {DB}.windows WHERE window_id IN %(i)s",
                                   {"i": tuple(ids)})[0][0] == len(ids), 120, "the fleet's windows booked")
    time.sleep(2)  # the backlog of earlier tests, if any, drains too
    w.kill(15)  # a clean stop: the head after the last batch is checkpointed
    env = {**w.env(), **env_db}
    wdir = tmp_path_factory.mktemp("member") / "witness"
    chain = f"{CHAIN}-{tag}"
    # the topic also carries the session worker's chain, of the other database
    res = cli(env, "ledger", "witness", "--out", str(wdir), "--chain", chain)
    assert res.returncode == 0, res.stdout + res.stderr
    state = json.loads((wdir / "state.json").read_text())
    head = admin.execute(f"SELECT max(seq) FROM {DB}.ledger_batches WHERE chain_id = %(c)s", {"c": chain})[0][0]
    assert state["chains"][chain]["seq"] == head >= 3, (state, head, res.stdout)
    honest = dump(admin, DB)
    yield admin, env, wdir, honest, chain
    admin.execute(f"DROP DATABASE IF EXISTS {DB}")


def verify(env, wdir=None) -> subprocess.CompletedProcess[str]:
    return cli(env, "ledger", "verify", *(("--witness", str(wdir)) if wdir else ()))


def attack(admin, env, wdir, data) -> subprocess.CompletedProcess[str]:
    """Put the insider's ledger in place; plain verify passes, the witnessed one must not."""
    restore(admin, DB, data)
    plain = verify(env)
    assert plain.returncode == 0, "the insider's ledger should verify on its own:\n" + plain.stdout
    res = verify(env, wdir)
    assert res.returncode == 1, res.stdout + res.stderr
    return res


def test_the_honest_ledger_verifies_against_the_witness(witnessed) -> None:
    admin, env, wdir, honest, _ = witnessed
    restore(admin, DB, honest)
    res = verify(env, wdir)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "witnessed checkpoint(s)" in res.stdout


def test_usage_moved_to_another_member_with_the_chain_recomputed_is_caught(witnessed) -> None:
    admin, env, wdir, honest, chain = witnessed
    data = copy.deepcopy(honest)
    entries = rows(data, "ledger_entries")
    others = {e["batch_id"] for e in entries if e["member"] in ("GB", "SG", "DE", "CA", "FR")}
    batches = sorted((b for b in rows(data, "ledger_batches") if b["chain_id"] == chain and b["batch_id"] in others),
                     key=lambda b: b["seq"])
    victim = batches[len(batches) // 2]  # a batch in the middle that bills other members than KR
    moved = 0
    for e in entries:
        if e["batch_id"] == victim["batch_id"] and e["member"] in ("GB", "SG", "DE", "CA", "FR"):
            e["member"] = "KR" if e["member"] != "KR" else e["member"]
            moved += 1
    assert moved
    put(data, "ledger_entries", entries)
    rechain(data, chain)
    res = attack(admin, env, wdir, data)
    assert f"chain {chain} batch {victim['seq']}: differs_from_witness" in res.stdout, res.stdout


def test_an_edited_raw_payload_with_the_chain_recomputed_is_caught(witnessed) -> None:
    admin, env, wdir, honest, chain = witnessed
    data = copy.deepcopy(honest)
    windows = rows(data, "raw_windows")
    target = sorted(windows, key=lambda w: w["window_id"])[0]
    target["payload"] = target["payload"].replace('"seq":', '"seq": ', 1)
    put(data, "raw_windows", windows)
    rechain(data, chain)
    seq = next(b["seq"] for b in rows(data, "ledger_batches") if b["batch_id"] == target["batch_id"])
    res = attack(admin, env, wdir, data)
    assert f"chain {chain} batch {seq}: differs_from_witness" in res.stdout, res.stdout


def test_deleted_tail_batches_are_caught(witnessed) -> None:
    admin, env, wdir, honest, chain = witnessed
    data = copy.deepcopy(honest)
    batches = rows(data, "ledger_batches")
    head = max(b["seq"] for b in batches if b["chain_id"] == chain)
    gone = {b["batch_id"] for b in batches if b["chain_id"] == chain and b["seq"] >= head - 1}
    put(data, "ledger_batches", [b for b in batches if b["batch_id"] not in gone])
    put(data, "ledger_entries", [e for e in rows(data, "ledger_entries") if e["batch_id"] not in gone])
    put(data, "raw_windows", [w for w in rows(data, "raw_windows") if w["batch_id"] not in gone])
    res = attack(admin, env, wdir, data)
    assert f"chain {chain} batch {head - 1}: witnessed_batch_missing" in res.stdout, res.stdout
    assert f"ends at seq {head - 2}" in res.stdout


def test_a_new_chain_billing_another_member_is_caught(witnessed) -> None:
    admin, env, wdir, honest, chain = witnessed
    data = copy.deepcopy(honest)
    batches = rows(data, "ledger_batches")
    first = min((b for b in batches if b["chain_id"] == chain), key=lambda b: b["seq"])
    forged_batch = dict(first, chain_id="fr-pays", seq=0, batch_id="forged-" + uuid.uuid4().hex)
    entries = rows(data, "ledger_entries")
    forged = [dict(e, batch_id=forged_batch["batch_id"], entry_id="f" + e["entry_id"][1:], member="FR")
              for e in entries if e["batch_id"] == first["batch_id"]]
    put(data, "ledger_batches", [*batches, forged_batch])
    put(data, "ledger_entries", entries + forged)
    rechain(data, "fr-pays")
    res = attack(admin, env, wdir, data)
    assert "chain fr-pays: chain_not_registered" in res.stdout, res.stdout


def test_a_dropped_and_recreated_ledger_is_caught(witnessed) -> None:
    # the insider books the same windows again into fresh tables: new batch ids, a
    # chain that verifies on its own, the same totals; none of it was witnessed
    admin, env, wdir, honest, chain = witnessed
    data = copy.deepcopy(honest)
    renamed = {b["batch_id"]: uuid.uuid4().hex for b in rows(data, "ledger_batches")}
    for table in ("ledger_batches", "ledger_entries", "raw_windows", "ledger_intents"):
        put(data, table, [dict(r, batch_id=renamed.get(r["batch_id"], r["batch_id"])) for r in rows(data, table)])
    put(data, "ledger_checkpoints", [])
    rechain(data, chain)
    res = attack(admin, env, wdir, data)
    first_seen = json.loads((wdir / "checkpoints.jsonl").read_text().splitlines()[1])["seq"]
    assert f"chain {chain} batch {first_seen}: differs_from_witness" in res.stdout, res.stdout


def test_the_stream_refuses_to_write_on_a_truncated_chain(witnessed, stack, tmp_path) -> None:
    admin, env, _, honest, chain = witnessed
    data = copy.deepcopy(honest)
    batches = rows(data, "ledger_batches")
    head = max(b["seq"] for b in batches if b["chain_id"] == chain)
    put(data, "ledger_batches", [b for b in batches if not (b["chain_id"] == chain and b["seq"] == head)])
    restore(admin, DB, data)
    res = subprocess.run([sys.executable, "-m", "bridgeledger.cli", "stream", "run"],
                         env={**env, "BRIDGELEDGER_CHAIN_ID": chain, "BRIDGELEDGER_APP_ID": "witnessed-refused"},
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"batch {head} was checkpointed" in res.stderr and f"ends at seq {head - 1}" in res.stderr, res.stderr


def test_signed_statement_verifies_and_a_changed_byte_does_not(witnessed, tmp_path) -> None:
    admin, env, wdir, honest, _ = witnessed
    restore(admin, DB, honest)
    month = admin.execute(f"SELECT formatDateTime(max(window_start), '%Y-%m') FROM {DB}.ledger")[0][0]
    out = tmp_path / "kr.csv"
    res = cli(env, "ledger", "statement", "--member", "KR", "--month", month, "--format", "csv", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    ok = cli(env, "ledger", "statement-verify", str(out), "--witness", str(wdir))
    assert ok.returncode == 0 and "every checkpoint witnessed" in ok.stdout, ok.stdout + ok.stderr
    out.write_bytes(out.read_bytes().replace(b"KR", b"KP", 1))
    bad = cli(env, "ledger", "statement-verify", str(out))
    assert bad.returncode == 1 and "not the statement that was signed" in bad.stdout, bad.stdout
    # a statement that names a checkpoint no member witnessed (an empty witness)
    out2 = tmp_path / "kr2.csv"
    assert cli(env, "ledger", "statement", "--member", "KR", "--month", month, "--format", "csv",
               "--out", str(out2)).returncode == 0
    empty = tmp_path / "empty-witness"
    empty.mkdir()
    unseen = cli(env, "ledger", "statement-verify", str(out2), "--witness", str(empty))
    assert unseen.returncode == 1 and "was not witnessed" in unseen.stdout, unseen.stdout
    # a period statement (a line per month, the year to date, each month in full) is signed the same way
    period = tmp_path / "kr-period.pdf"
    res = cli(env, "ledger", "statement", "--member", "KR", "--from-month", f"{month[:4]}-01", "--to-month", month,
              "--format", "pdf", "--out", str(period))
    assert res.returncode == 0 and f"KR {month[:4]}-01..{month}" in res.stdout, res.stdout + res.stderr
    ok = cli(env, "ledger", "statement-verify", str(period), "--witness", str(wdir))
    assert ok.returncode == 0 and f"KR {month[:4]}-01..{month} statement" in ok.stdout, ok.stdout + ok.stderr


def test_a_statement_drawn_from_an_altered_rollup_is_caught_against_the_ledger(witnessed, tmp_path) -> None:
    """Statements sum the hourly rollup, which is outside the chain: an insider who lowers a
    member's usage there gets a statement signed with the lower figures; `statement-verify
    --ledger` draws it again from the chained entries and names the line, and `reconcile`
    names the rollup group."""
    admin, env, wdir, honest, _ = witnessed
    restore(admin, DB, honest)
    month = admin.execute(f"SELECT formatDateTime(max(window_start), '%Y-%m') FROM {DB}.ledger")[0][0]
    drawn = {}
    for fmt in ("csv", "html", "pdf"):  # an honest statement, drawn again from the entries: the same bytes
        out = drawn[fmt] = tmp_path / f"honest.{fmt}"
        res = cli(env, "ledger", "statement", "--member", "KR", "--month", month, "--format", fmt, "--out", str(out))
        assert res.returncode == 0, res.stdout + res.stderr
        ok = cli(env, "ledger", "statement-verify", str(out), "--ledger")
        assert ok.returncode == 0 and "the ledger's entries give the same statement" in ok.stdout, ok.stdout + ok.stderr
    # a message rejected after the statement was signed (this month still runs) is the next statement's
    time.sleep(1.1)
    admin.execute(f"INSERT INTO {DB}.dlq_records (received_at, reason, detail, site_id, agent_id, raw_sha256, raw) "
                  f"VALUES", [(datetime.now(UTC).replace(tzinfo=None), "malformed_json", "late", "kr-daejeon", "x",
                               "0" * 64, "{")])
    for fmt in ("csv", "pdf"):
        ok = cli(env, "ledger", "statement-verify", str(drawn[fmt]), "--ledger")
        assert ok.returncode == 0, ok.stdout + ok.stderr
    period = tmp_path / "honest-period.csv"
    assert cli(env, "ledger", "statement", "--member", "KR", "--from-month", f"{month[:4]}-01", "--to-month", month,
               "--format", "csv", "--out", str(period)).returncode == 0
    assert cli(env, "ledger", "statement-verify", str(period), "--ledger").returncode == 0
    # the insider: one more rollup row in a committed batch, taking 0.5 normalised GPU-hours and its cost off KR
    key = ("batch_id, hour, site_id, gpu_model, member, project, account_kind, account_source, config_hash, "
           "corrected")
    ((*group, h, cost),) = admin.execute(
        f"SELECT {key}, normalised_gpu_hours, cost_eur FROM {DB}.ledger_hourly WHERE member = 'KR' "
        f"AND account_kind = 'job' ORDER BY normalised_gpu_hours DESC LIMIT 1")
    cut = min(Decimal("0.5"), Decimal(str(h)))
    admin.execute(f"INSERT INTO {DB}.ledger_hourly ({key}, entries, energy_mj, gpu_ms, normalised_gpu_hours, "
                  f"cost_eur, carbon_g) VALUES",
                  [(*group, 0, 0, 0, -cut, -(Decimal(str(cost)) * cut / Decimal(str(h))).quantize(Decimal("0.000001")),
                    Decimal(0))])
    out = tmp_path / "forged.csv"
    res = cli(env, "ledger", "statement", "--member", "KR", "--month", month, "--format", "csv", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert out.read_bytes() != drawn["csv"].read_bytes()  # the statement shows the rollup's lower figures
    signed = cli(env, "ledger", "statement-verify", str(out))
    assert signed.returncode == 0, signed.stdout  # it is what the ledger key signed...
    caught = cli(env, "ledger", "statement-verify", str(out), "--ledger")
    # ...but not what the entries say: the first line that differs is KR's usage at that site and project
    assert caught.returncode == 1 and "give a different statement: line" in caught.stdout, caught.stdout + caught.stderr
    assert f"{group[2]}" in caught.stdout.split("line", 1)[1], caught.stdout
    rec = cli(env, "ledger", "reconcile")
    assert rec.returncode == 1 and "ROLLUP" in rec.stdout, rec.stdout
    restore(admin, DB, honest)
