from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents import PublishError
from agents.job_resolver import ProcInfoResolver
from agents.publisher import MemoryPublisher
from agents.readers.replay import ReplayReader
from agents.service import AgentService, encode_window
from agents.settings import AgentConfigError, load_agent_settings, read_key_file
from agents.spool import Spool
from schemas import decode_window
from schemas.signing import new_key, verify_window

KEY = new_key()


class Broker:
    """A MemoryPublisher factory whose broker can be down."""

    def __init__(self) -> None:
        self.pub = MemoryPublisher()
        self.down = False

    def __call__(self) -> MemoryPublisher:
        if self.down:
            raise PublishError("broker unreachable")
        return self.pub

    def fail_flushes(self) -> None:
        self.pub.fail_next_flush = ConnectionError("not acknowledged")


def service(trace: Path, spool: Spool, broker: Broker, reader: ReplayReader | None = None) -> AgentService:
    reader = reader or ReplayReader(trace)
    return AgentService(reader=reader, resolver=ProcInfoResolver.from_file(trace / "proc_info.json"),
                        spool=spool, publisher_factory=broker, agent_id="a1", site_id="kr-daejeon",
                        node="n1", window_s=10, sample_s=0.1, key_id="k1", key=KEY,
                        monotonic=lambda: 1e12)


def test_outage_spools_then_drains_in_order_signed(trace_dir: Path, tmp_path: Path) -> None:
    broker = Broker()
    broker.down = True
    spool = Spool(tmp_path / "s.sqlite")
    svc = service(trace_dir, spool, broker)
    for _ in range(300):
        svc.tick()
    assert svc.metrics.windows_closed >= 3
    assert spool.count() == svc.metrics.windows_closed
    assert broker.pub.messages == []
    broker.down = False
    while not svc.reader.exhausted:  # type: ignore[attr-defined]
        svc.tick()
    svc.shutdown()
    assert spool.count() == 0
    docs = [json.loads(v) for _, _, v in broker.pub.messages]
    assert [d["seq"] for d in docs] == list(range(len(docs)))
    assert all(d["key_id"] == "k1" for d in docs)
    assert all(verify_window(v, KEY.verify_key) for _, _, v in broker.pub.messages)
    reader = svc.reader
    assert sum(g["energy_mj"] for d in docs for g in d["gpus"]) == (
        reader.samples[-1].energy_mj - reader.samples[0].energy_mj)  # type: ignore[attr-defined]


def test_unacknowledged_flush_keeps_the_windows(trace_dir: Path, tmp_path: Path) -> None:
    broker = Broker()
    spool = Spool(tmp_path / "s.sqlite")
    svc = service(trace_dir, spool, broker)
    while svc.metrics.windows_closed == 0:
        broker.fail_flushes()
        svc.tick()
    assert spool.count() == 1 and svc.metrics.send_failures >= 1
    svc.drain(force=True)
    assert spool.count() == 0 and len(broker.pub.messages) == 1


def test_restart_resumes_seq_and_counter(trace_dir: Path, tmp_path: Path) -> None:
    """A crash mid-trace: the restarted agent continues the seq and the energy adds up."""
    broker = Broker()
    path = tmp_path / "s.sqlite"
    reader = ReplayReader(trace_dir)
    svc = service(trace_dir, Spool(path), broker, reader)
    for _ in range(250):
        svc.tick()
    # crash: nothing flushed, the open window is lost from memory
    resumed = ReplayReader(trace_dir)
    resumed._i = reader._i + 40  # the agent was down for 40 readings
    svc2 = service(trace_dir, Spool(path), broker, resumed)
    while not resumed.exhausted:
        svc2.tick()
    svc2.shutdown()
    docs = [decode_window(v) for _, _, v in broker.pub.messages]
    assert [d.seq for d in docs] == list(range(len(docs)))
    assert all(a.window_end_ns == b.window_start_ns for a, b in zip(docs, docs[1:], strict=False))
    assert any("agent_restart" in d.gpus[0].flags for d in docs)
    assert sum(d.gpus[0].energy_mj for d in docs) == reader.samples[-1].energy_mj - reader.samples[0].energy_mj


def test_encode_window_signs_the_bytes_it_sends(trace_dir: Path) -> None:
    from agents.runner import replay_trace
    from schemas.topics import WINDOWS_TOPIC

    pub = MemoryPublisher()
    replay_trace(trace_dir, pub, site_id="s", signer=None)
    w = decode_window(next(v for t, _, v in pub.messages if t == WINDOWS_TOPIC))
    raw = encode_window(w, "k9", KEY)
    assert verify_window(raw, KEY.verify_key) and json.loads(raw)["key_id"] == "k9"
    assert decode_window(raw).signature is not None
    assert not verify_window(raw.replace(b'"energy_mj":', b'"energy_mj":1', 1), KEY.verify_key)
    assert encode_window(decode_window(raw), "k9", KEY) == raw  # re-encoding a decoded window signs it afresh


def test_key_file_must_be_private(tmp_path: Path) -> None:
    key = tmp_path / "site.key"
    key.write_text(bytes(KEY).hex())
    key.chmod(0o644)
    with pytest.raises(AgentConfigError, match="chmod 600"):
        read_key_file(key)
    key.chmod(0o600)
    assert read_key_file(key) == KEY


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("agent_id: a\nsite_id: s\nwindow_s: -1\n", "field window_s"),
        ("agent_id: a\nsite_id: s\nkey_id: k\n", "key_id and key_file go together"),
        ("site_id: s\n", "field agent_id: Field required"),
        ("agent_id: a\nsite_id: s\nreader: gpu\n", "field reader"),
        ("agent_id: a\nsite_id: s\nspool_pth: /x\n", "field spool_pth"),
    ],
)
def test_bad_agent_config_names_the_field(tmp_path: Path, body: str, words: str) -> None:
    f = tmp_path / "agent.yaml"
    f.write_text(body)
    with pytest.raises(AgentConfigError) as err:
        load_agent_settings(f)
    assert str(err.value).startswith(f"{f}: ")
    assert words in str(err.value)
