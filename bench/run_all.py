"""Run every benchmark: the ensemble speed in the project's virtualenv, the attack-strength
comparison in the peers' virtualenv (``make bench`` creates both)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    peers = ROOT / ".venv-peers" / "bin" / "python"
    runs = [[sys.executable, "bench/bench_ensemble_speed.py"]]
    if peers.exists():
        runs.append([str(peers), "bench/bench_membership_power.py"])
    else:
        print("skipping the peer comparison: no .venv-peers (run `make bench`)", file=sys.stderr)
    for cmd in runs:
        code = subprocess.call(cmd, cwd=ROOT)
        if code:
            return code
    subprocess.call([sys.executable, "bench/tables.py"], cwd=ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
