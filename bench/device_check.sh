#!/usr/bin/env bash
# Real-GPU check for sessions lent an NVIDIA machine (run through the device
# tool, from the repository root). Reads NVML only; changes no GPU setting.
#
# That machine has no network: the few packages the agent needs beyond the
# image's (Python 3.12 there) travel as wheels in .whl/, fetched here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     pydantic pydantic_core pydantic-settings annotated-types typing-inspection \
#     typing_extensions python-dotenv kafka-python msgspec
# (same versions as .venv; .whl/ is not committed). The check prints:
#   - `agent doctor` with the real NvmlReader;
#   - bench/agent.py --reader nvml: CPU per sample with real NVML readings;
#   - tests/gpu (marked gpu) on the real device;
#   - a 70-second `agent run` (10 s windows, 1 Hz) spooling to disk (no Kafka
#     there: the windows stay in the spool) while a PyTorch matmul load runs
#     for ~30 s under SLURM_JOB_ID=4242, so the windows show idle, busy and
#     idle phases and the load's process resolved to its job;
#   - the spooled windows against NVML's energy counter read directly.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
SITE=/tmp/blsite
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
fi
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
BL="python3 -m bridgeledger.cli"
nvidia-smi --query-gpu=name,uuid,driver_version,power.limit --format=csv | tee "$OUT/gpu.txt"
cat > /tmp/agent.yaml <<YAML
agent_id: device-check
site_id: kr-daejeon
reader: nvml
window_s: 10
sample_s: 1
kafka_bootstrap: 127.0.0.1:9
spool_path: /tmp/spool.sqlite
YAML
$BL agent doctor --config /tmp/agent.yaml 2>&1 | tee "$OUT/doctor.txt"
python3 bench/agent.py --reader nvml --samples 2000 2>&1 | tee "$OUT/agent-bench.txt"
python3 -m pytest -q --noconftest -p no:cacheprovider tests/gpu 2>&1 | tail -5 | tee "$OUT/pytest-gpu.txt"

counter() {
  python3 -c 'import pynvml as n; n.nvmlInit(); h=n.nvmlDeviceGetHandleByIndex(0); print(n.nvmlDeviceGetTotalEnergyConsumption(h))'
}
E0=$(counter)
$BL agent run --config /tmp/agent.yaml > "$OUT/run.log" 2>&1 &
AGENT=$!
sleep 20
SLURM_JOB_ID=4242 timeout 30 python3 - <<'PY' &
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
t_end = time.time() + 28
while time.time() < t_end:
    b = a @ a
torch.cuda.synchronize()
PY
LOAD=$!
sleep 50
kill -INT $AGENT; wait $AGENT; wait $LOAD
E1=$(counter)
tail -5 "$OUT/run.log"
python3 - "$E0" "$E1" <<'PY' | tee "$OUT/spool-summary.txt"
import json, sqlite3, sys
e0, e1 = int(sys.argv[1]), int(sys.argv[2])
db = sqlite3.connect("/tmp/spool.sqlite")
ws = [json.loads(v) for (v,) in db.execute("SELECT value FROM windows ORDER BY id")]
print(f"{len(ws)} windows spooled; seq {ws[0]['seq']}..{ws[-1]['seq']}" if ws else "no windows")
total = 0
for w in ws:
    for g in w["gpus"]:
        total += g["energy_mj"]
        jobs = sorted({(p.get("job_id"), round(p["sm_share"], 3)) for p in g["processes"]}, key=str)
        print(f"seq {w['seq']} {g['uuid'][:16]} {g['energy_mj']:>9} mJ avg {g['power_avg_mw'] / 1000:7.1f} W "
              f"util {g['util_gpu']:5.1f} gpu_s {g['gpu_seconds']:.3f} flags {g.get('flags')} jobs {jobs}")
print(f"windows' energy {total} mJ; NVML counter delta over the whole run {e1 - e0} mJ "
      f"(the agent's windows cover a sub-interval of it)")
PY
