from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_services_images_and_mounts() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"kafka", "clickhouse", "grafana", "stream-worker", "sim-agent", "migrate"} <= set(services)
    for name, svc in services.items():
        if "image" in svc:
            repo, _, tag = svc["image"].partition(":")
            assert tag and tag != "latest", f"{name}: image tag must be pinned"
        else:
            df = ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
            assert df.is_file(), f"{name}: {df} missing"
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"{name}: mounted path {src} does not exist"
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]


def test_dockerfile_copies_every_package() -> None:
    text = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    for pkg in ("schemas", "agents", "streams", "ledger", "dashboards", "bridgeledger"):
        assert f"COPY {pkg} " in text


def test_grafana_datasource_uses_the_read_only_auditor() -> None:
    ds = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/clickhouse.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["username"] == "auditor"


def test_compose_runs_as_deployed_users_and_keeps_its_data() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    # the image's ENTRYPOINT is bridgeledger: commands are its subcommands
    assert services["migrate"]["command"][:2] == ["ledger", "migrate"]
    assert services["stream-worker"]["command"] == ["stream", "run"]
    assert services["migrate"]["environment"]["BRIDGELEDGER_CH_USER"] == "migrator"
    assert services["stream-worker"]["environment"]["BRIDGELEDGER_CH_USER"] == "writer"
    kafka = services["kafka"]
    (data,) = [v.split(":", 1)[1] for v in kafka["volumes"]]
    assert kafka["environment"]["KAFKA_LOG_DIRS"] == data  # topics and offsets survive the container
    assert (ROOT / "docs" / "docker.md").is_file()
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_image_runs_bridgeledger_unprivileged_where_it_may_write() -> None:
    text = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["bridgeledger"]' in text
    assert "USER nobody" in text and "WORKDIR /var/lib/bridgeledger" in text
    assert "chown nobody:nogroup /var/lib/bridgeledger" in text


def test_the_docker_writer_may_only_insert_and_select() -> None:
    users = (ROOT / "deploy" / "clickhouse" / "docker" / "users.xml").read_text()
    writer = users[users.index("<writer>"):users.index("</writer>")]
    assert "GRANT SELECT, INSERT ON bridgeledger.*" in writer and "ALTER" not in writer and "CREATE" not in writer
    assert "<migrator>" in users
