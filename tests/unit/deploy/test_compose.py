from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers import go_tool

ROOT = Path(__file__).resolve().parents[3]


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


def test_docker_compose_v2s_loader_accepts_the_file_and_wants_the_env(tmp_path: Path) -> None:
    import shutil
    import subprocess

    tool = go_tool("composecheck")
    compose = tmp_path / "docker-compose.yml"
    shutil.copy(ROOT / "docker-compose.yml", compose)
    for rel in ("deploy", "dashboards"):  # what the file mounts and builds, relative to itself
        (tmp_path / rel).symlink_to(ROOT / rel)
    # without .env: refused, naming each password to set
    bare = subprocess.run([str(tool), str(compose)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin"})
    assert bare.returncode == 1 and "set CH_WRITER_PASSWORD in .env" in bare.stderr, bare.stderr
    (tmp_path / ".env").write_text("CH_MIGRATOR_PASSWORD=m\nCH_WRITER_PASSWORD=w\nCH_AUDITOR_PASSWORD=a\n"
                                   "GF_ADMIN_PASSWORD=g\n")
    ok = subprocess.run([str(tool), str(compose)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                        env={"PATH": "/usr/bin:/bin"})
    assert ok.returncode == 0, ok.stderr
    services = dict(line.split()[1:3] for line in ok.stdout.splitlines() if line.startswith("service "))
    assert services["kafka"].startswith("apache/kafka:") and services["clickhouse"].startswith(
        "clickhouse/clickhouse-server:") and services["grafana"].startswith("grafana/grafana:")
    assert {services[s] for s in ("migrate", "stream-worker", "sim-agent")} == {"build:deploy/docker/Dockerfile"}
