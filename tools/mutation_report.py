"""Per-module mutation scores of the accounting core, after `mutmut run`.

    .venv/bin/python tools/mutation_report.py

Reads `mutmut results --all true`, leaves out the surviving mutants judged
equivalent in tools/mutation_equivalent.txt (name, then why, one a line),
prints killed / (all - equivalent) per module and the survivors left, and
exits 1 if a module scores under TARGET or a survivor is neither killed nor
judged (docs/testing.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.90
KILLED = {"killed", "timeout"}


def equivalents() -> dict[str, str]:
    out = {}
    for line in (ROOT / "tools" / "mutation_equivalent.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.partition(" ")
            out[name] = why.strip()
    return out


def main() -> int:
    text = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"], cwd=ROOT,
                          capture_output=True, text=True, check=False).stdout
    status: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    judged = equivalents()
    for m in re.finditer(r"^\s+([\w.]+)__mutmut_\d+: (\w[\w ]*)$", text, re.M):
        name = m.group(0).split(":")[0].strip()
        module = name.split(".x_")[0].split(".x\u01c1")[0]
        module = ".".join(p for p in module.split(".") if not p.startswith("x"))
        kind = m.group(2).strip()
        if kind in KILLED:
            status[module]["killed"] += 1
        elif kind == "not checked":  # the run was stopped before it: neither killed nor survived
            status[module]["unchecked"] += 1
        elif name in judged:
            status[module]["equivalent"] += 1
        else:
            status[module][kind] += 1
            survivors[module].append(f"{name}: {kind}")
    if not status:
        print("no mutmut results: run `make mutation` (or `.venv/bin/mutmut run`) first")
        return 1
    ok = True
    print(f"{'module':<22}{'mutants':>8}{'killed':>8}{'equiv.':>8}{'left':>6}  score (target {TARGET:.0%})")
    for module, c in sorted(status.items()):
        total = sum(c.values())
        counted = total - c["equivalent"] - c["unchecked"]
        score = c["killed"] / counted if counted else 1.0
        left = counted - c["killed"]
        ok &= score >= TARGET and not c["unchecked"]
        unchecked = f" ({c['unchecked']} not run yet)" if c["unchecked"] else ""
        print(f"{module:<22}{total:>8}{c['killed']:>8}{c['equivalent']:>8}{left:>6}  {score:.1%}{unchecked}")
    for module, names in sorted(survivors.items()):
        print(f"\nsurvivors in {module} (`mutmut show NAME`):")
        for n in names:
            print(f"  {n}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
