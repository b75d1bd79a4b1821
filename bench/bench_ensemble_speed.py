"""Speed of the stacked (vmap) ensemble trainer against a sequential loop of the same training.

K reference MLPs on a Fashion-MNIST subset, each trained on a balanced random half of 5,000
records; both backends run in this process with the same recipe, seeds and batch schedule, so
they train the same models (checked: max logit difference and test accuracy).

    .venv/bin/python bench/bench_ensemble_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import peak_rss_mb, write_result

from unmeasured.audits.membership.reference import balanced_masks
from unmeasured.data import load_builtin
from unmeasured.training import MLPRecipe, TrainingReport, train_ensemble


def run(k: int, epochs: int, x, y, x_test, y_test, hidden=(256,), batch_size=128) -> dict:
    recipe = MLPRecipe(hidden=hidden, epochs=epochs, batch_size=batch_size, lr=1e-3)
    masks = balanced_masks(k, len(x), np.random.default_rng(0))
    seeds = list(range(k))
    row = {"k": k, "epochs": epochs, "recipe": repr(recipe), "n_pool": len(x)}
    outs = {}
    for backend in ("sequential", "vmap"):
        report = TrainingReport()
        start = time.perf_counter()
        logits = train_ensemble(
            recipe, x, y, masks, x_test, seeds=seeds, num_classes=10, backend=backend, report=report
        )
        seconds = time.perf_counter() - start
        outs[backend] = logits
        row[backend] = {
            "seconds": round(seconds, 2),
            "models_per_minute": round(60 * k / seconds, 1),
            "mean_test_accuracy": round(float((logits.argmax(2) == y_test).mean()), 4),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        print(backend, k, row[backend], flush=True)
    row["speedup"] = round(row["sequential"]["seconds"] / row["vmap"]["seconds"], 2)
    row["max_abs_logit_difference"] = float(np.abs(outs["vmap"] - outs["sequential"]).max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer epochs (a smoke run)")
    args = parser.parse_args()
    data = load_builtin("fashion_mnist", flatten=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data))
    x, y = data.x[idx[:5000]], data.y[idx[:5000]]
    x_test, y_test = data.x[idx[5000:7000]], data.y[idx[5000:7000]]
    epochs = (1, 1) if args.quick else (5, 2)
    rows = [
        run(16, epochs[0], x, y, x_test, y_test),
        run(64, epochs[1], x, y, x_test, y_test),
        # a smaller model with small batches: per-step Python overhead dominates
        run(16, epochs[0], x, y, x_test, y_test, hidden=(64,), batch_size=32),
        run(64, epochs[1], x, y, x_test, y_test, hidden=(64,), batch_size=32),
    ]
    path = write_result(
        "ensemble_speed_cpu",
        {
            "what": "K MLPs (784-256-10 with batch 128, and 784-64-10 with batch 32; Adam) each "
            "on a balanced half of 5,000 "
            "Fashion-MNIST records; stacked (vmap) trainer vs a sequential loop, same process, "
            "same seeds and batch schedule",
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
