#!/usr/bin/env bash
# Real-GPU check for sessions lent an NVIDIA machine (run through the device
# tool, from the repository root). Reads NVML only; changes no GPU setting.
# Prints `agent doctor` and a 60-second `agent run` with the real NvmlReader,
# spooling to disk (no Kafka there: the windows stay in the spool), then the
# spooled windows' totals against the energy counter.
set -uo pipefail
OUT=${OUT:-/tmp/out}
python3 -m venv /tmp/blvenv && /tmp/blvenv/bin/pip install -q -e '.[agent]' pytest
cat > /tmp/agent.yaml <<YAML
agent_id: device-check
site_id: kr-daejeon
reader: nvml
window_s: 10
sample_s: 1
kafka_bootstrap: 127.0.0.1:9
spool_path: /tmp/spool.sqlite
YAML
/tmp/blvenv/bin/bridgeledger agent doctor --config /tmp/agent.yaml | tee "$OUT/doctor.txt"
/tmp/blvenv/bin/python -m pytest -q tests/gpu 2>&1 | tail -3 | tee "$OUT/pytest-gpu.txt"
timeout -s INT 60 /tmp/blvenv/bin/bridgeledger agent run --config /tmp/agent.yaml > "$OUT/run.log" 2>&1
tail -5 "$OUT/run.log"
/tmp/blvenv/bin/python - <<'PY' | tee "$OUT/spool-summary.txt"
import json, sqlite3
db = sqlite3.connect("/tmp/spool.sqlite")
ws = [json.loads(v) for (v,) in db.execute("SELECT value FROM windows ORDER BY id")]
print(f"{len(ws)} windows spooled; seq {ws[0]['seq']}..{ws[-1]['seq']}" if ws else "no windows")
for w in ws:
    for g in w["gpus"]:
        print(w["seq"], g["uuid"][:12], g["energy_mj"], g["power_avg_mw"], g.get("flags"), len(g["processes"]))
PY
