from __future__ import annotations

import json

import pytest

from schemas import WireError, decode_window


def window(**over) -> dict:
    doc = {
        "schema_version": 1, "agent_id": "a1", "site_id": "kr-daejeon", "node": "n1",
        "boot_id": "b1", "seq": 3, "window_start_ns": 10**18, "window_end_ns": 10**18 + 10**10,
        "gpus": [{"uuid": "GPU-1", "model": "NVIDIA H100 80GB HBM3", "energy_mj": 5000,
                  "gpu_seconds": 10.0, "util_gpu": 50, "mem_used_bytes": 1, "power_avg_mw": 500,
                  "processes": [{"pid": 1, "job_id": "7", "sm_share": 0.5}]}],
    }
    doc.update(over)
    return doc


def test_round_trip_keeps_the_contract_names() -> None:
    w = decode_window(json.dumps(window()).encode())
    again = json.loads(w.to_json_bytes())
    for key in ("schema_version", "agent_id", "site_id", "node", "boot_id", "seq",
                "window_start_ns", "window_end_ns", "gpus"):
        assert key in again
    g = again["gpus"][0]
    for key in ("uuid", "model", "energy_mj", "gpu_seconds", "util_gpu", "mem_used_bytes",
                "power_avg_mw", "processes"):
        assert key in g
    assert g["processes"][0] == {"pid": 1, "job_id": "7", "sm_share": 0.5}
    assert w.window_id == "a1/b1/3"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1,2]", "schema_invalid"),
        (json.dumps(window(schema_version=2)).encode(), "unsupported_version"),
        (json.dumps(window(seq=-1)).encode(), "schema_invalid"),
        (json.dumps(window(window_end_ns=10**18)).encode(), "schema_invalid"),
        (json.dumps(window(gpus=[{"uuid": "x"}])).encode(), "schema_invalid"),
    ],
)
def test_bad_messages_get_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(WireError) as err:
        decode_window(raw)
    assert err.value.reason == reason


def test_shares_above_one_are_rejected() -> None:
    doc = window()
    doc["gpus"][0]["processes"] = [{"pid": 1, "sm_share": 0.7}, {"pid": 2, "sm_share": 0.4}]
    with pytest.raises(WireError, match="sum to 1.1"):
        decode_window(json.dumps(doc))


def test_energy_must_be_an_integer() -> None:
    doc = window()
    doc["gpus"][0]["energy_mj"] = 12.5
    with pytest.raises(WireError) as err:
        decode_window(json.dumps(doc))
    assert "energy_mj" in err.value.detail
