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


def test_a_second_agent_on_the_same_spool_is_refused_until_the_first_stops(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import pytest

    from agents.spool import SpoolError

    p = tmp_path / "spool.sqlite"
    # the first agent: another process holding the spool, as a pod not yet stopped would
    first = subprocess.Popen(
        [sys.executable, "-c", "import sys, pathlib; from agents.spool import Spool; "
         "s = Spool(pathlib.Path(sys.argv[1]), exclusive=True); print('held', flush=True); sys.stdin.read()", str(p)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[3])
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "held"
        with pytest.raises(SpoolError, match=rf"spool {p} is in use by another agent \(pid {first.pid}\)"):
            Spool(p, exclusive=True)
        reader = Spool(p)  # doctor reads it without the lock
        assert reader.pending() == []
        reader.close()
    finally:
        assert first.stdin is not None
        first.stdin.close()
        first.wait(timeout=30)
    second = Spool(p, exclusive=True)  # the first is gone: its lock went with it
    assert (tmp_path / "spool.sqlite.lock").read_text() == str(os.getpid())
    second.close()
    Spool(p, exclusive=True).close()  # and close() gives it back within a process
