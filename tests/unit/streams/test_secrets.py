"""Every secret file is mode-checked like the site key: a password readable by
the group or others stops the process at start, naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agents import AgentError
from agents.settings import KafkaSecurity
from streams.clickhouse import ClickHouseSettings
from streams.settings import StreamSettings


def secret(tmp_path: Path, mode: int, text: str = "s3cret\n") -> Path:
    f = tmp_path / f"pw-{mode:o}"
    f.write_text(text)
    f.chmod(mode)
    return f


def test_clickhouse_password_file(tmp_path: Path) -> None:
    ok = ClickHouseSettings(password_file=secret(tmp_path, 0o600))
    assert ok.password.get_secret_value() == "s3cret"
    with pytest.raises(ValidationError, match=r"readable by group or others \(mode 644\); run: chmod 600"):
        ClickHouseSettings(password_file=secret(tmp_path, 0o644))
    with pytest.raises(ValidationError, match="file is empty"):
        ClickHouseSettings(password_file=secret(tmp_path, 0o400, ""))


def test_stream_kafka_password_file(tmp_path: Path) -> None:
    assert StreamSettings(kafka_username="stream", kafka_password_file=secret(tmp_path, 0o600)).kafka_password() == \
        "s3cret"
    with pytest.raises(ValueError, match="mode 640"):
        StreamSettings(kafka_username="stream", kafka_password_file=secret(tmp_path, 0o640)).kafka_password()


def test_agent_kafka_password_file(tmp_path: Path) -> None:
    def options(mode: int) -> dict[str, object]:
        return KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="site",
                             password_file=secret(tmp_path, mode)).producer_options()

    assert options(0o600)["sasl_plain_password"] == "s3cret"
    with pytest.raises(AgentError, match="kafka_security.password_file: .*mode 604"):
        options(0o604)
