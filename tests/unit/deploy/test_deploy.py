from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agents.settings import AgentSettings, load_agent_settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s" / "agent-daemonset.yaml"


def _daemonsets() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(K8S.read_text()) if d["kind"] == "DaemonSet"}


def test_agent_example_config_is_valid() -> None:
    s = load_agent_settings(ROOT / "deploy" / "agent.example.yaml")
    assert s.reader == "nvml" and s.key_id and s.kafka_security.protocol == "SASL_SSL"


def test_daemonset_mounts_host_proc_read_only_and_its_config_is_valid(monkeypatch) -> None:
    docs = list(yaml.safe_load_all(K8S.read_text()))
    kinds = {d["kind"]: d for d in docs}
    ds = _daemonsets()["bridgeledger-agent"]["spec"]["template"]["spec"]
    (container,) = ds["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["host-proc"]["readOnly"] is True and mounts["host-proc"]["mountPath"] == "/host/proc"
    assert ds["hostPID"] is True
    assert container["args"][:2] == ["agent", "run"]
    cfg = yaml.safe_load(kinds["ConfigMap"]["data"]["agent.yaml"])
    assert cfg["proc_root"] == "/host/proc"
    monkeypatch.setenv("BRIDGELEDGER_AGENT_AGENT_ID", "node-1")
    AgentSettings(**cfg)  # the env fills agent_id as the DaemonSet does


def test_systemd_unit_starts_the_agent_whatever_kafkas_state_hardened() -> None:
    unit = (ROOT / "deploy" / "systemd" / "bridgeledger-agent.service").read_text()
    # doctor is a diagnostic, not a start gate: in a broker outage the agent starts and spools
    assert "ExecStartPre" not in unit.replace("# No `agent doctor` gate", "")
    assert "ExecStart=/opt/bridgeledger/bin/bridgeledger agent run --config /etc/bridgeledger/agent.yaml" in unit
    assert "DeviceAllow=char-nvidia-caps r" in unit
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=bridgeledger"):
        assert line in unit


@pytest.mark.parametrize("name", ["bridgeledger-agent.service", "bridgeledger-jobs.service",
                                  "bridgeledger-sacct.service", "bridgeledger-sacct.timer"])
def test_systemd_analyze_verifies_the_shipped_unit(tmp_path: Path, name: str) -> None:
    """The unit as systemd reads it, with its program path pointed at this checkout's CLI."""
    import shutil
    import subprocess
    import sys

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    cli = Path(sys.executable).parent / "bridgeledger"
    for unit in (ROOT / "deploy" / "systemd").iterdir():  # a timer is verified with the service it starts
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/bridgeledger/bin/bridgeledger", str(cli)))
    r = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if name.split(".")[0] in line and "user" not in line.lower()]
    assert r.returncode == 0 or not problems, r.stdout + r.stderr
    assert not problems, problems


def test_the_daemonset_is_valid_for_a_current_kubernetes() -> None:
    import subprocess
    import sys

    tool = Path(sys.executable).parent / "kubernetes-validate"
    r = subprocess.run([str(tool), "--strict", "-k", "1.34.0", str(K8S)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("passed") + r.stderr.count("passed") == 4  # namespace, configmap, two daemonsets


def test_the_daemonsets_capabilities_take_effect_and_the_secret_mode_passes_the_key_check(tmp_path: Path) -> None:
    from schemas.signing import read_secret_file

    ds = _daemonsets()["bridgeledger-agent"]["spec"]["template"]["spec"]
    sc = ds["containers"][0]["securityContext"]
    # no ambient capabilities in Kubernetes: the added ones work for uid 0 only
    assert sc["runAsUser"] == 0 and sc["capabilities"] == {"drop": ["ALL"], "add": ["SYS_PTRACE", "DAC_READ_SEARCH"]}
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    secret = next(v for v in ds["volumes"] if v["name"] == "secret")["secret"]
    key = tmp_path / "node.key"
    key.write_text("00" * 32)
    key.chmod(secret["defaultMode"])  # as the kubelet writes it: owned by root, the container's user
    assert read_secret_file(key, "signing key")
    key.chmod(0o440)
    with pytest.raises(ValueError, match="readable by group"):
        read_secret_file(key, "signing key")
    # the image the manifest names is the one deploy/docker/Dockerfile builds, whose entrypoint is the CLI
    docker = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["bridgeledger"]' in docker and "'.[agent,streams]'" in docker
    assert ds["containers"][0]["args"][:2] == ["agent", "run"]


def _schedules(pod: dict, labels: dict[str, str]) -> bool:
    """Kubernetes' node selection for what the manifests use: nodeSelector, then
    required nodeAffinity terms (ORed) of In/NotIn/Exists/DoesNotExist expressions (ANDed)."""
    if any(labels.get(k) != v for k, v in pod.get("nodeSelector", {}).items()):
        return False
    terms = pod.get("affinity", {}).get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms")
    if not terms:
        return True
    ops = {"In": lambda v, vs: v in vs, "NotIn": lambda v, vs: v not in vs,
           "Exists": lambda v, vs: v is not None, "DoesNotExist": lambda v, vs: v is None}
    return any(all(ops[e["operator"]](labels.get(e["key"]), e.get("values", [])) for e in t["matchExpressions"])
               for t in terms)


@pytest.mark.parametrize("labels, runs", [
    ({"nvidia.com/gpu.present": "true"}, "bridgeledger-agent"),
    ({"nvidia.com/gpu.present": "true", "bridgeledger.io/mig-monitor": "false"}, "bridgeledger-agent"),
    ({"nvidia.com/gpu.present": "true", "bridgeledger.io/mig-monitor": "true"}, "bridgeledger-agent-mig"),
    ({"bridgeledger.io/mig-monitor": "true"}, None),
    ({}, None),
])
def test_every_gpu_node_runs_exactly_one_agent_and_only_mig_nodes_get_sys_admin(labels, runs) -> None:
    sets = _daemonsets()
    assert set(sets) == {"bridgeledger-agent", "bridgeledger-agent-mig"}
    chosen = [name for name, d in sets.items() if _schedules(d["spec"]["template"]["spec"], labels)]
    assert chosen == ([runs] if runs else [])
    for name, d in sets.items():
        # the selectors must not overlap, or each controller would adopt the other's pods
        assert d["spec"]["selector"]["matchLabels"] == d["spec"]["template"]["metadata"]["labels"] == {"app": name}


def test_the_mig_daemonset_differs_from_the_default_only_in_mig_monitoring() -> None:
    import copy

    sets = _daemonsets()
    base, mig = (copy.deepcopy(sets[n]) for n in ("bridgeledger-agent", "bridgeledger-agent-mig"))
    mc = mig["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in mc["env"]}
    # the NVIDIA runtime injects /dev/nvidia-caps' monitor device on this variable, for whole GPUs
    # (not MIG-scoped NVIDIA_VISIBLE_DEVICES) and only with CAP_SYS_ADMIN in the bounding set
    assert env.pop("NVIDIA_MIG_MONITOR_DEVICES")["value"] == "all"
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert mc["securityContext"]["capabilities"]["add"] == ["SYS_PTRACE", "DAC_READ_SEARCH", "SYS_ADMIN"]
    base_caps = base["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]
    assert "SYS_ADMIN" not in base_caps["add"]
    # everything else is the same pod: drift between the two would be a node class run differently
    mc["env"] = list(env.values())
    mc["securityContext"]["capabilities"]["add"].remove("SYS_ADMIN")
    for d in (base, mig):
        d["metadata"].pop("name")
        d["spec"].pop("selector")
        d["spec"]["template"]["metadata"].pop("labels")
        pod = d["spec"]["template"]["spec"]
        pod.pop("affinity", None)
        pod["nodeSelector"].pop("bridgeledger.io/mig-monitor", None)
    assert base == mig
