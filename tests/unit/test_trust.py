"""Signed windows: a site reports only with its own keys; tampering and
forgery are rejected with their own reasons; keys rotate and are revoked by
config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from schemas.consortium import parse_config
from schemas.signing import sign_document
from streams.processing import WindowProcessor
from streams.settings import load_keyring
from tests.unit.test_telemetry import window

ROOT = Path(__file__).resolve().parents[2]
KR_OLD, KR_NEW, CA = b"k" * 32, b"n" * 32, b"c" * 32


def processor(kr_keys: list[str]) -> WindowProcessor:
    doc = yaml.safe_load((ROOT / "deploy" / "consortium.example.yaml").read_bytes())
    doc["sites"][0]["key_ids"] = kr_keys  # kr-daejeon
    doc["sites"][1]["key_ids"] = ["ca-1"]
    cfg, digest = parse_config(yaml.safe_dump(doc).encode())
    return WindowProcessor(cfg, digest, {"kr-1": KR_OLD, "kr-2": KR_NEW, "ca-1": CA})


def signed(key_id: str, key: bytes, **over) -> bytes:
    return json.dumps(sign_document(window(**over), key_id, key)).encode()


def reason(p: WindowProcessor, raw: bytes, now_ns: int | None = None) -> str | None:
    out = p.process(raw, now_ns=now_ns)
    return out.rejection.reason if out.rejection else None


def test_valid_signature_is_accepted() -> None:
    assert reason(processor(["kr-1"]), signed("kr-1", KR_OLD)) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (json.dumps(window()).encode(), "unsigned"),
        (signed("ca-1", CA), "unknown_key"),  # Canada's key cannot report for a Korean site
        (signed("kr-9", b"z" * 32), "unknown_key"),
        (signed("kr-1", b"x" * 32), "bad_signature"),  # forged with a guessed key
    ],
)
def test_rejections(raw: bytes, expected: str) -> None:
    assert reason(processor(["kr-1"]), raw) == expected


def test_tampered_energy_fails_the_signature() -> None:
    doc = json.loads(signed("kr-1", KR_OLD))
    doc["gpus"][0]["energy_mj"] *= 2
    assert reason(processor(["kr-1"]), json.dumps(doc).encode()) == "bad_signature"


def test_rotation_and_revocation_by_config() -> None:
    both = processor(["kr-1", "kr-2"])  # changeover: both keys valid
    assert reason(both, signed("kr-1", KR_OLD)) is None
    assert reason(both, signed("kr-2", KR_NEW)) is None
    revoked = processor(["kr-2"])
    assert reason(revoked, signed("kr-1", KR_OLD)) == "unknown_key"


def test_window_from_the_future_is_clock_skew() -> None:
    p = processor([])
    end = window()["window_end_ns"]
    assert reason(p, json.dumps(window()).encode(), now_ns=end) is None
    assert reason(p, json.dumps(window()).encode(), now_ns=end - 3600 * 10**9) == "clock_skew"


def test_keyring_refuses_readable_keys(tmp_path: Path) -> None:
    from streams import StreamError

    (tmp_path / "kr-1.key").write_bytes(KR_OLD)
    (tmp_path / "kr-1.key").chmod(0o600)
    assert load_keyring(tmp_path) == {"kr-1": KR_OLD}
    (tmp_path / "kr-2.key").write_bytes(KR_NEW)
    (tmp_path / "kr-2.key").chmod(0o644)
    with pytest.raises(StreamError, match="chmod 600"):
        load_keyring(tmp_path)
