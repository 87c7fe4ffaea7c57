from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from schemas import ConfigError, load_config
from schemas.consortium import parse_config

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "consortium.example.yaml"


def test_example_config_meets_the_brief() -> None:
    cfg, digest = load_config(EXAMPLE)
    assert len(cfg.members) >= 5
    assert len({s.country for s in cfg.sites}) >= 3
    assert len(cfg.gpu_models) >= 2
    assert digest == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()


def _mutated(mutate) -> bytes:
    doc = yaml.safe_load(EXAMPLE.read_bytes())
    mutate(doc)
    return yaml.safe_dump(doc).encode()


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d["members"][0].update(contribution_share="0.5"), "(top level)", "sum to"),
        (lambda d: d["projects"][0]["owners"][0].update(member="XX"), "(top level)", "not a member"),
        (lambda d: d["projects"][5]["owners"][0].update(share="0.4"), "projects.5", "exactly 1"),
        (lambda d: d["sites"][0].update(pue="0.8"), "sites.0.pue", "greater than or equal"),
        (lambda d: d["members"][0].update(code="Korea"), "members.0.code", "pattern"),
        (lambda d: d["projects"][1].update(accounts=["kr-llm"]), "(top level)", "listed twice"),
        (lambda d: d.pop("pricing"), "pricing", "required"),
        (lambda d: d["sites"][0].update(colour="red"), "sites.0.colour", "not permitted"),
        (lambda d: d["sites"][1]["keys"][0].update(id=d["sites"][0]["keys"][0]["id"]), "(top level)",
         "'kr-daejeon-demo' is listed twice"),
        (lambda d: d["sites"][0]["keys"][0].update(id=""), "sites.0.keys.0.id", "pattern"),
        (lambda d: d["sites"][0]["keys"][0].update(id=" k1"), "sites.0.keys.0.id", "pattern"),
        (lambda d: d["sites"][0]["keys"][0].update(ed25519="ab" * 31), "sites.0.keys.0.ed25519", "pattern"),
        (lambda d: (d["members"][0].update(contribution_share="0.2399999"),
                    d["members"][1].update(contribution_share="0.1800001")), "members.0.contribution_share",
         "6 decimal places"),
        (lambda d: d["projects"][5]["owners"][0].update(share="0.5000001"), "projects.5.owners.0.share",
         "6 decimal places"),
        (lambda d: d["gpu_models"][0].update(power_limit_w=10**30), "gpu_models.0.power_limit_w", "less than"),
    ],
)
def test_bad_config_names_file_and_field(mutate, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_mutated(mutate), "consortium.yaml")
    msg = str(err.value)
    assert msg.startswith("consortium.yaml: field ")
    assert field in msg and words in msg


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("members: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(("text", "key", "lines"), [
    (b'version: "a"\nversion: "b"\n', "'version'", "lines 1 and 2"),
    (b"members:\n  - {code: KR, code: GB}\n", "'code'", "lines 2 and 2"),
])
def test_a_key_written_twice_is_refused_naming_key_and_lines(text: bytes, key: str, lines: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "consortium.yaml")
    msg = str(err.value)
    assert msg.startswith("consortium.yaml: ") and key in msg and lines in msg and "twice" in msg


def test_the_example_has_no_key_twice() -> None:
    load_config(EXAMPLE)  # the strict loader accepts the shipped file
