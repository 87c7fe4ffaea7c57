from __future__ import annotations

import logging
from pathlib import Path

from agents.spool import Spool


def msgs(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"node", v.encode()) for v in values]


def test_append_pending_ack_in_order_and_survive_reopen(tmp_path: Path) -> None:
    p = tmp_path / "s.sqlite"
    s = Spool(p)
    s.append("t", msgs("a", "b", "c"), {"seq": 3})
    s.close()
    s = Spool(p)  # a restart
    pending = s.pending()
    assert [m.value for m in pending] == [b"a", b"b", b"c"]
    assert s.checkpoint() == {"seq": 3}
    s.ack([pending[0].rowid, pending[1].rowid])
    assert [m.value for m in s.pending()] == [b"c"]
    assert s.integrity() == "ok"


def test_full_spool_drops_oldest_and_counts(tmp_path: Path, caplog) -> None:
    s = Spool(tmp_path / "s.sqlite", max_windows=2)
    caplog.set_level(logging.ERROR)
    assert s.append("t", msgs("a", "b", "c"), {}) == 1
    assert [m.value for m in s.pending()] == [b"b", b"c"]
    assert s.dropped == 1
    assert "spool full" in caplog.text


def test_full_spool_drop_newest(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.sqlite", max_windows=2, full_policy="drop_newest")
    s.append("t", msgs("a", "b"), {})
    assert s.append("t", msgs("c"), {}) == 1
    assert [m.value for m in s.pending()] == [b"a", b"b"]
    assert s.dropped == 1
