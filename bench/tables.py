"""Print the markdown tables of docs/benchmarks.md from bench/results/*.json."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _est(d: dict) -> str:
    if d.get("value") is None:
        return "n/e"
    return f"{d['value']:.3f} [{d['ci'][0]:.3f}, {d['ci'][1]:.3f}]"


def speed() -> None:
    d = json.loads((RESULTS / "ensemble_speed_cpu.json").read_text())
    print(
        f"Machine: {d['machine']['cpu']}, {d['machine']['cores']} cores, torch "
        f"{d['machine']['torch']}, {d['date']}.\n"
    )
    print("| model | K | epochs | sequential s | vmap s | speed-up | test accuracy (seq / vmap) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in d["rows"]:
        hidden = r["recipe"].split("hidden=")[1].split(")")[0] + ")"
        batch = r["recipe"].split("batch_size=")[1].split(",")[0]
        print(
            f"| 784-{hidden.strip('(),')}-10, batch {batch} | {r['k']} | {r['epochs']} | "
            f"{r['sequential']['seconds']} | {r['vmap']['seconds']} | {r['speedup']}x | "
            f"{r['sequential']['mean_test_accuracy']} / {r['vmap']['mean_test_accuracy']} |"
        )


def power() -> None:
    d = json.loads((RESULTS / "membership_power_fmnist.json").read_text())
    s = d["settings"]
    print(
        f"\nTarget: {s['target']}; {s['members']} members, {s['nonmembers']} non-members, "
        f"population {s['population']}; accuracy train {s['target_accuracy']['train']:.3f}, "
        f"test {s['target_accuracy']['test']:.3f}.\n"
    )
    print("| attack | K | AUC | TPR@0.1%FPR | TPR@1%FPR | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in d["rows"]:
        if "failed" in r:
            print(
                f"| {r['attack']} | {r['num_models']} | failed: {r['failed']} | | | {r['seconds']} |"
            )
            continue
        print(
            f"| {r['attack']} | {r['num_models'] or '–'} | {_est(r['auc'])} | "
            f"{_est(r['tpr_at_fpr_0.001'])} | {_est(r['tpr_at_fpr_0.01'])} | {r['seconds']} |"
        )


if __name__ == "__main__":
    speed()
    if (RESULTS / "membership_power_fmnist.json").exists():
        power()
