"""The stacked MLP's SGD step written out (`_BmmStack.sgd_step`) against autograd with
``torch.optim.SGD`` (fused) on the same stacked weights, side by side in each round.

784-256-10 MLPs, SGD with momentum 0.9, K stacked models (8 is the trainer's chunk on a 2-core
machine, 16 a whole ensemble of the benchmark), batch 64 and 128, random data: ``--steps``
steps of each method per round, the methods' order alternating, the GEMM peak (``torch.mm``
of 2048x2048 float32) measured right before each round. Each round's time is set against its
own peak in model FLOPs (three times the forward products, as in `bench_training_peak`).
Only the step: no data loading, no progress, no query pass.

    .venv/bin/python bench/bench_sgd_step.py [--threads 2] [--rounds 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import load_average, write_result

from unmeasured.training.ensemble import _BmmStack


def gemm_peak() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        best = min(best, (time.perf_counter() - start) / 5)
    return 2 * 2048**3 / best / 1e9


def steps(k: int, batch: int, lr: float, momentum: float) -> tuple[Callable, Callable]:
    """One step of each method on its own copy of the same K stacked MLPs and one batch."""
    torch.manual_seed(0)
    models = [
        nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        for _ in range(k)
    ]
    written, reference = _BmmStack(models), _BmmStack(models)
    opt = torch.optim.SGD(reference.params, lr=lr, momentum=momentum, fused=True)
    x = torch.rand(k, batch, 784)
    y = torch.randint(0, 10, (k, batch))
    weight = torch.full((k, batch), 1.0 / batch)

    def autograd_step() -> None:
        opt.zero_grad(set_to_none=True)
        logits = reference.forward(x).reshape(-1, 10)
        ce = nn.functional.cross_entropy(logits, y.reshape(-1), reduction="none")
        ce.dot(weight.reshape(-1)).backward()
        opt.step()

    def written_step() -> None:
        written.sgd_step(x, y, weight, lr, momentum, 0.0)

    return autograd_step, written_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="sgd_step_cpu_2threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lr, momentum = 0.01, 0.9
    rows = []
    for k in (8, 16):
        for batch in (64, 128):
            autograd_step, written_step = steps(k, batch, lr, momentum)
            methods = {"autograd_torch_sgd": autograd_step, "written_out": written_step}
            for step in methods.values():  # warm-up
                for _ in range(10):
                    step()
            model_flops = 3 * 2 * k * batch * (784 * 256 + 256 * 10) * args.steps
            times: dict[str, list[float]] = {name: [] for name in methods}
            peaks = []
            load_before = load_average()
            for r in range(args.rounds):
                peaks.append(gemm_peak())
                for name in list(methods)[r % 2 :] + list(methods)[: r % 2]:
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        methods[name]()
                    times[name].append(time.perf_counter() - start)
            row: dict = {
                "k": k,
                "batch": batch,
                "steps_per_round": args.steps,
                "gemm_peak_rounds": [round(p, 1) for p in peaks],
                "load_average_before": load_before,
                "load_average_after": load_average(),
            }
            for name in methods:
                fractions = [
                    model_flops / t / 1e9 / p for t, p in zip(times[name], peaks, strict=True)
                ]
                row[name] = {
                    "ms_per_step_rounds": [round(1e3 * t / args.steps, 3) for t in times[name]],
                    "ms_per_step_median": round(
                        1e3 * float(np.median(times[name])) / args.steps, 3
                    ),
                    "model_flops_fraction_rounds": [round(f, 3) for f in fractions],
                    "model_flops_fraction_median": round(float(np.median(fractions)), 3),
                }
            ratios = [
                a / w
                for a, w in zip(times["autograd_torch_sgd"], times["written_out"], strict=True)
            ]
            row["speedup_rounds"] = [round(s, 3) for s in ratios]
            row["speedup_median"] = round(float(np.median(ratios)), 3)
            rows.append(row)
            print(
                f"K={k} batch {batch}: written-out {row['written_out']['ms_per_step_median']} ms "
                f"({row['written_out']['model_flops_fraction_median']:.0%} of peak, model FLOPs), "
                f"autograd + SGD {row['autograd_torch_sgd']['ms_per_step_median']} ms "
                f"({row['autograd_torch_sgd']['model_flops_fraction_median']:.0%}); "
                f"speed-up {row['speedup_median']}x (rounds {row['speedup_rounds']})",
                flush=True,
            )
    path = write_result(
        args.out,
        {
            "description": __doc__.split("\n\n")[0],
            "parameters": vars(args),
            "threads": torch.get_num_threads(),
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
