"""Run every benchmark: the ensemble speed (and its profile) in the project's virtualenv, the
attack-strength comparison in the peers' virtualenv (sacroml, ART), then print the tables.

    .venv/bin/python bench/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    peers = ROOT / ".venv-peers" / "bin" / "python"
    runs = [
        [sys.executable, "bench/bench_ensemble_speed.py"],
        [sys.executable, "bench/profile_vmap.py"],
    ]
    if peers.exists():
        runs.append([str(peers), "bench/bench_membership_power.py"])
    else:
        print(
            "skipping the peer comparison: no .venv-peers (sacroml==2.0.1, "
            "adversarial-robustness-toolbox==1.20.1, this package with --no-deps)",
            file=sys.stderr,
        )
    for cmd in runs:
        print("+", " ".join(cmd), flush=True)
        code = subprocess.call(cmd, cwd=ROOT)
        if code:
            return code
    return subprocess.call([sys.executable, "bench/tables.py"], cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
