"""Signed windows (Ed25519): a site reports only with its own keys; the centre
holds public keys only; tampering, forgery, revoked keys and unsigned windows
are refused with their own reasons; keys rotate by config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from schemas import ConfigError
from schemas.consortium import parse_config
from schemas.signing import (
    SigningKey,
    new_key,
    public_key_hex,
    read_signing_key,
    sign_window,
    split_signature,
    verifier,
    verify_window,
)
from streams.processing import WindowProcessor
from tests.builders import window

ROOT = Path(__file__).resolve().parents[3]
KR_OLD, KR_NEW, CA = new_key(), new_key(), new_key()


def processor(kr_keys: dict[str, SigningKey], kr_unsigned: bool = False) -> WindowProcessor:
    doc = yaml.safe_load((ROOT / "deploy" / "consortium.example.yaml").read_bytes())
    doc["sites"][0]["keys"] = [{"id": k, "ed25519": public_key_hex(v)} for k, v in kr_keys.items()]  # kr-daejeon
    doc["sites"][0]["allow_unsigned"] = kr_unsigned
    doc["sites"][1]["keys"] = [{"id": "ca-1", "ed25519": public_key_hex(CA)}]  # ca-montreal
    cfg, digest = parse_config(yaml.safe_dump(doc).encode())
    return WindowProcessor(cfg, digest)


def altered_signature(doc: bytes) -> bytes:
    """The same message with the signature's last hex digit changed (always a change:
    the keys are random, so a fixed replacement digit is sometimes the digit itself)."""
    last = doc[-3:-2]
    return doc[:-3] + (b"1" if last == b"0" else b"0") + doc[-2:]


def signed(key_id: str, key: SigningKey, **over: object) -> bytes:
    body = json.dumps({**window(**over), "key_id": key_id}, sort_keys=True, separators=(",", ":")).encode()
    return sign_window(body, key)


def reason(p: WindowProcessor, raw: bytes, now_ns: int | None = None) -> str | None:
    out = p.process(raw, now_ns=now_ns)
    return out.rejection.reason if out.rejection else None


def test_a_window_signed_by_its_sites_key_is_accepted() -> None:
    assert reason(processor({"kr-1": KR_OLD}), signed("kr-1", KR_OLD)) is None


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: json.dumps(window()).encode(), "unsigned"),
        (lambda: signed("ca-1", CA), "unknown_key"),  # Canada's key cannot report for a Korean site
        (lambda: signed("kr-9", new_key()), "unknown_key"),  # a key the config does not list
        (lambda: signed("kr-1", new_key()), "bad_signature"),  # forged under a listed key id
        (lambda: altered_signature(signed("kr-1", KR_OLD)), "bad_signature"),  # the signature itself altered
    ],
)
def test_rejections(make, expected: str) -> None:
    assert reason(processor({"kr-1": KR_OLD}), make()) == expected


@pytest.mark.parametrize("field", ["energy_mj", "gpu_seconds", "uuid", "job_id"])
def test_a_window_altered_by_one_byte_after_signing_is_refused(field: str) -> None:
    raw = bytearray(signed("kr-1", KR_OLD))
    at = raw.index(f'"{field}":'.encode()) + len(field) + 3
    at += raw[at] == ord('"')  # inside a string value
    raw[at] = ord("8") if raw[at] != ord("8") else ord("7")
    assert reason(processor({"kr-1": KR_OLD}), bytes(raw)) == "bad_signature"


def test_the_same_content_re_serialised_is_refused() -> None:
    # the signature covers the bytes that travel, not a canonical form: a relay
    # that re-serialises (here, with spaces) breaks it
    raw = signed("kr-1", KR_OLD)
    respaced = json.dumps(json.loads(raw)).encode()
    assert json.loads(respaced) == json.loads(raw)
    assert reason(processor({"kr-1": KR_OLD}), respaced) == "bad_signature"


def test_rotation_and_revocation_by_config() -> None:
    both = processor({"kr-1": KR_OLD, "kr-2": KR_NEW})  # changeover: both keys valid
    assert reason(both, signed("kr-1", KR_OLD)) is None
    assert reason(both, signed("kr-2", KR_NEW)) is None
    revoked = processor({"kr-2": KR_NEW})
    assert reason(revoked, signed("kr-1", KR_OLD)) == "unknown_key"


def test_an_opted_out_site_may_send_unsigned_windows_but_not_forged_ones() -> None:
    p = processor({"kr-1": KR_OLD}, kr_unsigned=True)
    assert reason(p, json.dumps(window()).encode()) is None
    assert reason(p, signed("kr-1", new_key())) == "bad_signature"


def test_a_site_without_keys_must_be_opted_out_by_name() -> None:
    doc = yaml.safe_load((ROOT / "deploy" / "consortium.example.yaml").read_bytes())
    doc["sites"][0]["keys"] = []
    with pytest.raises(ConfigError, match="kr-daejeon lists no public keys"):
        parse_config(yaml.safe_dump(doc).encode())
    doc["sites"][0]["allow_unsigned"] = True
    parse_config(yaml.safe_dump(doc).encode())


def test_a_public_key_listed_for_two_sites_is_refused() -> None:
    doc = yaml.safe_load((ROOT / "deploy" / "consortium.example.yaml").read_bytes())
    doc["sites"][1]["keys"] = [{"id": "ca-x", "ed25519": doc["sites"][0]["keys"][0]["ed25519"]}]
    with pytest.raises(ConfigError, match="a key belongs to one site"):
        parse_config(yaml.safe_dump(doc).encode())


def test_the_wire_format_is_checkable_without_our_code() -> None:
    raw = signed("kr-1", KR_OLD)
    assert raw.endswith(b'"}') and b',"signature":"' in raw
    body, signature = split_signature(raw)  # type: ignore[misc]
    assert body == raw[:raw.rindex(b',"signature":')] + b"}" and len(signature) == 64
    KR_OLD.verify_key.verify(body, signature)  # plain Ed25519 over the bytes before the member
    assert verify_window(raw, verifier(public_key_hex(KR_OLD)))
    assert not verify_window(raw, verifier(public_key_hex(KR_NEW)))
    assert split_signature(b'{"a":1}') is None


def test_window_from_the_future_is_clock_skew() -> None:
    p = processor({"kr-1": KR_OLD})
    end = window()["window_end_ns"]
    assert reason(p, signed("kr-1", KR_OLD), now_ns=end) is None
    assert reason(p, signed("kr-1", KR_OLD), now_ns=end - 3600 * 10**9) == "clock_skew"


def test_keygen_makes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    from bridgeledger.cli import cli

    out = tmp_path / "node.key"
    r = CliRunner().invoke(cli, ["agent", "keygen", "--out", str(out), "--key-id", "kr-daejeon-n01-2026"])
    assert r.exit_code == 0, r.output
    assert out.stat().st_mode & 0o777 == 0o600
    key = read_signing_key(out)
    assert f"ed25519: {public_key_hex(key)}" in r.output and "kr-daejeon-n01-2026" in r.output
    again = CliRunner().invoke(cli, ["agent", "keygen", "--out", str(out), "--key-id", "x"])
    assert again.exit_code != 0 and "never overwritten" in again.output
    out.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        read_signing_key(out)
