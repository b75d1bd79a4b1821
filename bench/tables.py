"""Print the markdown tables of docs/benchmarks.md from bench/results/*.json."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _est(d: dict) -> str:
    if d.get("value") is None:
        return "n/e"
    return f"{d['value']:.3f} [{d['ci'][0]:.3f}, {d['ci'][1]:.3f}]"


def _machine(d: dict) -> str:
    m = d["machine"]
    return (
        f"Machine: {m['cpu']}, {m['nproc']} CPUs, torch {m['torch']} ({m['torch_threads']} "
        f"threads), numpy {m['numpy']}, Python {m['python']}, {m['platform']}; run {d['date']}."
    )


def speed() -> None:
    d = json.loads((RESULTS / "ensemble_speed_cpu.json").read_text())
    print(_machine(d) + "\n")
    print(
        "| model | K | epochs | chunk | sequential s, median (best) | vmap s, median (best) | "
        "speed-up, median (best) | peak RSS MiB (seq / vmap) | test acc. (seq / vmap) | "
        "max abs logit diff. |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in d["rows"]:
        hidden = r["recipe"].split("hidden=(")[1].split(")")[0].strip(",")
        batch = r["recipe"].split("batch_size=")[1].split(",")[0]
        s, v = r["sequential"], r["vmap"]
        print(
            f"| 784-{hidden}-10, batch {batch} | {r['k']} | {r['epochs']} | "
            f"{r['vmap_chunk_size']} | {s['seconds']} ({min(s['all_seconds'])}) | "
            f"{v['seconds']} ({min(v['all_seconds'])}) | {r['speedup']}x "
            f"({min(s['all_seconds']) / min(v['all_seconds']):.2f}x) | "
            f"{s['peak_rss_mb']:.0f} / {v['peak_rss_mb']:.0f} | "
            f"{s['mean_test_accuracy']:.4f} / {v['mean_test_accuracy']:.4f} | "
            f"{r['max_abs_logit_difference']:.3f} |"
        )


def profile() -> None:
    path = RESULTS / "profile_vmap_cpu.json"
    if not path.exists():
        return
    d = json.loads(path.read_text())
    print(
        "\n| model | models stacked | seq ms/model-step | vmap ms/step/model | speed-up | "
        "vmap phases (share of time) | bmm vs K x mm (ms) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for c in d["cases"]:
        s, q, f = c["stacked"], c["sequential"], c["matmul_floor"]
        phases = ", ".join(f"{k} {v:.0%}" for k, v in s["phases_share"].items())
        print(
            f"| 784-{c['hidden'][0]}-10, batch {c['batch_size']} | {c['models']} | "
            f"{q['ms_per_model_step']:.2f} | {s['ms_per_step'] / c['models']:.2f} | "
            f"{c['speedup']}x | {phases} | {f['stacked_matmuls_ms']:.1f} vs "
            f"{f['single_model_matmuls_ms_times_k']:.1f} |"
        )


def training_peak(name: str = "training_peak_cpu") -> None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return
    d = json.loads(path.read_text())
    m = d["machine"]
    print(
        f"\n{_machine(d)} GPU: {m['gpu'] or 'none available to this run'}. "
        f"{d['threads']} torch thread(s) for every backend and the GEMM peak. "
        f"Best of {d['repeats']} alternating repeats.\n"
    )
    has_process = "process" in d["rows"][0]
    print(
        "| model | optimizer | batch | K | GEMM peak GFLOP/s | sequential models/s (GFLOP/s, "
        "% of peak) | vmap models/s (GFLOP/s, % of peak) | "
        + ("process models/s (GFLOP/s, % of peak) | " if has_process else "")
        + "auto models/s (chose) | vmap / sequential | "
        + ("process / sequential | " if has_process else "")
        + "auto / sequential | bare stacked loop (% of peak) | load before / after |"
    )
    print("| --- " * (13 if has_process else 11) + "|")
    for r in d["rows"]:
        optimizer = r["recipe"].split("optimizer='")[1].split("'")[0]
        batch = r["recipe"].split("batch_size=")[1].split(",")[0]
        s, v, a = r["sequential"], r["vmap"], r["auto"]
        chose = "/".join(sorted(set(r["auto_choices"])))
        process = ""
        if has_process:
            p = r["process"]
            process = (
                f"{p['models_per_second']:.2f} ({p['gflops']:.0f}, {p['fraction_of_peak']:.0%}) | "
            )
        bare = r.get("bare_stacked_loop")
        print(
            f"| {r['model']} | {optimizer} | {batch} | {r['k']} | {r['gemm_peak_gflops']:.0f} | "
            f"{s['models_per_second']:.2f} ({s['gflops']:.0f}, {s['fraction_of_peak']:.0%}) | "
            f"{v['models_per_second']:.2f} ({v['gflops']:.0f}, {v['fraction_of_peak']:.0%}) | "
            + process
            + f"{a['models_per_second']:.2f} ({chose}) | {r['vmap_vs_sequential']:.2f}x | "
            + (f"{r['process_vs_sequential']:.2f}x | " if has_process else "")
            + f"{r['auto_vs_sequential']:.2f}x | "
            + (f"{bare['fraction_of_peak']:.0%} | " if bare else "– | ")
            + f"{r['load_average_before'][0]:.1f} / {r['load_average_after'][0]:.1f} |"
        )
    goals = training_goals(d["rows"])
    print()
    for line in goals:
        print(f"- {line}")


def training_goals(rows: list[dict]) -> list[str]:
    """The issue's goals, computed from the rows (best-of-repeats figures)."""

    def row(model: str, optimizer: str, batch: int) -> dict:
        return next(
            r
            for r in rows
            if r["model"].startswith(model)
            and f"optimizer='{optimizer}'" in r["recipe"]
            and f"batch_size={batch}," in r["recipe"]
        )

    lines: list[str] = []
    models = {r["model"].split()[0] for r in rows}
    if "mlp" in models:
        lines += _mlp_goals(row)
    if "cnn" in models:
        lines += _cnn_goals(row)
    return lines


def _mlp_goals(row: Callable[[str, str, int], dict]) -> list[str]:
    lines = []
    mlp_sgd = row("mlp", "sgd", 64)
    best = max(mlp_sgd["vmap"]["fraction_of_peak"], mlp_sgd["auto"]["fraction_of_peak"])
    if "model_flops_fraction_paired_median" in mlp_sgd["vmap"]:
        paired = {b: mlp_sgd[b]["fraction_of_peak_paired_median"] for b in ("vmap", "auto")}
        model = {b: mlp_sgd[b]["model_flops_fraction_paired_median"] for b in ("vmap", "auto")}
        lines.append(
            "MLP SGD at batch 64, medians of each round against its own GEMM peak: "
            f"stacked {model['vmap']:.0%} in model FLOPs ({paired['vmap']:.0%} executed), "
            f"auto {model['auto']:.0%} ({paired['auto']:.0%}) (goal: at least 70%, in model "
            "FLOPs); best round against the row's first peak: "
            f"{best:.0%} executed"
        )
    else:
        lines.append(f"MLP SGD at batch 64: {best:.0%} of the GEMM peak (goal: at least 70%)")
    for batch in (64, 128):
        adam, sgd = row("mlp", "adam", batch), row("mlp", "sgd", batch)
        ratio = adam["vmap"]["models_per_second"] / sgd["vmap"]["models_per_second"]
        lines.append(
            f"MLP batch {batch}: stacked Adam at {ratio:.2f}x stacked SGD (goal: at least "
            f"0.85x); stacked Adam {adam['vmap_vs_sequential']:.2f}x sequential Adam (goal: "
            "above 1x)"
        )
    return lines


def _cnn_goals(row: Callable[[str, str, int], dict]) -> list[str]:
    lines = []
    for optimizer in ("sgd", "adam"):
        for batch in (64, 128):
            r = row("cnn", optimizer, batch)
            lines.append(
                f"CNN {optimizer} batch {batch}: auto {r['auto_vs_sequential']:.2f}x sequential "
                f"(chose {'/'.join(sorted(set(r['auto_choices'])))}), stacked "
                f"{r['vmap_vs_sequential']:.2f}x; paired (median of the rounds' ratios): auto "
                f"{_paired(r, 'auto'):.2f}x, stacked {_paired(r, 'vmap'):.2f}x (goal: auto at "
                "least 1.0x; never below 0.95x)"
            )
    return lines


def _paired(r: dict, backend: str) -> float:
    """The median over rounds of sequential's seconds over ``backend``'s in the same round
    (each round runs every backend once, in rotated order)."""
    pairs = zip(r["sequential"]["seconds_all"], r[backend]["seconds_all"], strict=True)
    return statistics.median(s / b for s, b in pairs)


def certify(name: str = "certify_fmnist_mlp") -> None:
    """The FGP-against-exact table of one run of ``bench_certify.py``."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return
    d = json.loads(path.read_text())
    p = d["parameters"]
    mode = "pure (no pruning, no screening)" if p.get("pure") else "both sides use CROWN"
    print(
        f"\n{_machine(d)}\n\n{mode}; FGP {p['fgp_timeout']:g} s and {p['fgp_max_regions']:,} "
        f"regions, the exact checker {p['exact_timeout']:g} s; one torch thread.\n"
    )
    print(
        "| network | norm, ε | points | FGP median s | FGP decided | exact median s | exact "
        "decided | speedup at median | hard points: n, FGP / exact median s, speedup, FGP "
        "decided | disagreements | certified IBP / CROWN / Lipschitz | FGP branched (most "
        "nodes) |"
    )
    print("| --- " * 12 + "|")
    for r in d["settings"]:
        f, e, h = r["fgp"], r["exact"], r.get("hard_points")
        hard = "–"
        if h and h["count"]:
            hard = (
                f"{h['count']}, {h['fgp_median_s']:.3g} / {h['exact_median_s']:.3g}, "
                f"{h['speedup_at_median']:g}x, {h['fgp_decided']:.0%}"
            )
        c = r["certified_fraction"]
        branched = f"{f['branched']} ({f['max_nodes']})" if "branched" in f else "–"
        print(
            f"| {r['network']} | {r['norm'].replace('linf', 'L∞').replace('l2', 'L2')} "
            f"{r['eps']:g} | {r['points']} | {f['median_s']:.3g} | {f['decided']:.0%} | "
            f"{e['median_s']:.3g} | {e['decided']:.0%} | {r['speedup_at_median']:g}x | {hard} | "
            f"{r['disagreements']} / {r['both_decided']} | {c['ibp']:.0%} / {c['crown']:.0%} / "
            f"{c['lipschitz']:.0%} | {branched} |"
        )


def power() -> None:
    d = json.loads((RESULTS / "membership_power_fmnist.json").read_text())
    s = d["settings"]
    print(
        f"\n{_machine(d)}\n\nTarget: {s['target']}; {s['members']} members, "
        f"{s['nonmembers']} non-members, population {s['population']}; accuracy train "
        f"{s['target_accuracy']['train']:.3f}, test {s['target_accuracy']['test']:.3f}.\n"
    )
    print("| tool | attack | mode | K | AUC | TPR@0.1%FPR | TPR@1%FPR | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in d["rows"]:
        k = r["num_models"] if r["num_models"] is not None else "–"
        mode = r["mode"] or "–"
        if "failed" in r:
            print(
                f"| {r['tool']} | {r['attack']} | {mode} | {k} | failed: {r['failed']} | | | "
                f"{r['seconds']} |"
            )
            continue
        print(
            f"| {r['tool']} | {r['attack']} | {mode} | {k} | {_est(r['auc'])} | "
            f"{_est(r['tpr_at_fpr_0.001'])} | {_est(r['tpr_at_fpr_0.01'])} | {r['seconds']} |"
        )


if __name__ == "__main__":
    speed()
    profile()
    training_peak()
    training_peak("training_peak_cpu_2threads")
    training_peak("training_peak_cpu_2threads_fork")
    training_peak("training_peak_cpu_2threads_cnn_6epochs")
    training_peak("training_peak_cpu_2threads_cnn_6epochs_v2")
    training_peak("training_peak_cpu_2threads_mlp_6epochs")
    training_peak("training_peak_cpu_2threads_mlp_paired")
    training_peak("training_peak_cpu_2threads_mlp_sgd_by_hand")
    for run in (
        "certify_fmnist_mlp_linf_branch",
        "certify_fmnist_mlp_l2_branch",
        "certify_fmnist_cnn_linf_branch",
        "certify_fmnist_cnn_l2_branch",
        "certify_fmnist_mlp",
        "certify_fmnist_cnn",
        "certify_fmnist_pure_v2",
    ):
        certify(run)
    if (RESULTS / "membership_power_fmnist.json").exists():
        power()
