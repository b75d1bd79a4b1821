"""Speed of the stacked (vmap) ensemble trainer against a sequential loop of the same training.

K reference MLPs on a Fashion-MNIST subset of 5,000 records (read from the Debian package's IDX
files, flattened to 784 features), each model on a balanced random half (`balanced_masks`);
every model is queried on those 5,000 records plus 2,000 held-out test records. Both backends
run in this process with the same recipe, seeds and batch schedule, so they train the same
models: the script checks equal mean test accuracy and reports the largest logit difference.

Configurations: the reference MLP asked for (784-256-10, batches of 128, Adam, 10 epochs) at
K = 16 and K = 64, and a smaller one (784-64-10, batches of 32) where per-step overhead rather
than arithmetic dominates. For each, ``floor_seconds`` is the time of the matrix products
alone (forward and weight-gradient products of every step plus the query pass, stacked, on
this machine): no trainer doing this arithmetic in float32 can beat it, so
``sequential_seconds / floor_seconds`` bounds the speed-up any stacking can give.

After a warm-up, each backend runs ``--repeats`` times, alternating; the median is reported.
Other work on the machine skews timings: the load averages are recorded with each row.

    .venv/bin/python bench/bench_ensemble_speed.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import itertools

from common import RssSampler, load_average, write_result

from unmeasured.audits.membership.reference import balanced_masks
from unmeasured.data import load_builtin
from unmeasured.training import MLPRecipe, TrainingReport, train_ensemble
from unmeasured.training.ensemble import auto_chunk_size
from unmeasured.training.recipes import steps_per_epoch

BACKENDS = ("sequential", "vmap")
CONFIGS = [  # (K, hidden, batch size); epochs from the command line
    (16, (256,), 128),
    (64, (256,), 128),
    (16, (64,), 32),
    (64, (64,), 32),
]


def gemm_floor(recipe: MLPRecipe, k: int, n_train: int, n_query: int, chunk: int) -> float:
    """Seconds of the matrix products alone: per step, every layer's forward and weight-gradient
    product (and the input-gradient product of all but the first layer), stacked ``chunk`` at a
    time; plus the query pass. Measured here with random data of the same shapes."""
    widths = [784, *recipe.hidden, 10]
    bs, steps = recipe.batch_size, steps_per_epoch(n_train, recipe.batch_size) * recipe.epochs
    c = min(chunk, k)
    acts = [torch.rand(c, bs, w) for w in widths]
    weights = [torch.rand(c, a, b) for a, b in itertools.pairwise(widths)]

    def one_step() -> None:
        for i, w in enumerate(weights):
            torch.bmm(acts[i], w)  # forward
            torch.bmm(acts[i].transpose(1, 2), acts[i + 1])  # weight gradient
            if i:
                torch.bmm(acts[i + 1], w.transpose(1, 2))  # input gradient

    one_step()
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        one_step()
    per_step_chunk = (time.perf_counter() - start) / reps
    q = torch.rand(n_query, 784)
    wide = torch.rand(784, widths[1] * c)
    start = time.perf_counter()
    q @ wide  # the first layer of the query pass dominates it
    query = time.perf_counter() - start
    return (per_step_chunk * steps + query) * k / c


def run(
    k: int, hidden: tuple[int, ...], batch_size: int, epochs: int, data: dict, repeats: int
) -> dict:
    x, y, x_test, y_test = data["x"], data["y"], data["x_test"], data["y_test"]
    recipe = MLPRecipe(hidden=hidden, epochs=epochs, batch_size=batch_size, lr=1e-3)
    masks = balanced_masks(k, len(x), np.random.default_rng(0))
    seeds = list(range(k))
    query = np.concatenate([x, x_test])  # one pass; split afterwards
    chunk = auto_chunk_size(recipe, x.shape[1:], 10)
    row: dict = {
        "k": k,
        "model": f"784-{'-'.join(map(str, hidden))}-10",
        "batch_size": batch_size,
        "epochs": epochs,
        "recipe": repr(recipe),
        "n_pool": len(x),
        "n_train_per_model": [int(masks.sum(axis=1).min()), int(masks.sum(axis=1).max())],
        "n_query": len(query),
        "vmap_chunk_size": chunk,
        "load_average_before": load_average(),
    }
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    mems: dict[str, RssSampler] = {}
    reports: dict[str, TrainingReport] = {}
    logits_by: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for backend in BACKENDS:
            report = TrainingReport()
            with RssSampler() as mem:
                start = time.perf_counter()
                logits = train_ensemble(
                    recipe,
                    x,
                    y,
                    masks,
                    query,
                    seeds=seeds,
                    num_classes=10,
                    backend=backend,
                    report=report,
                )
                times[backend].append(time.perf_counter() - start)
            if backend not in mems or mem.peak_mb > mems[backend].peak_mb:
                mems[backend] = mem
            reports[backend], logits_by[backend] = report, logits
    for backend in BACKENDS:
        seconds = float(np.median(times[backend]))
        mem, report, logits = mems[backend], reports[backend], logits_by[backend]
        test_acc = (logits[:, len(x) :].argmax(2) == y_test).mean(axis=1)
        row[backend] = {
            "seconds": round(seconds, 2),
            "all_seconds": [round(t, 2) for t in times[backend]],
            "models_per_minute": round(60 * k / seconds, 1),
            "mean_test_accuracy": round(float(test_acc.mean()), 4),
            "std_test_accuracy": round(float(test_acc.std()), 4),
            "peak_rss_mb": round(mem.peak_mb, 1),
            "rss_increase_mb": round(mem.peak_mb - mem.baseline_mb, 1),
            "backend_used": report.backend,
            "engine": report.engine,
            "notes": report.notes,
        }
    a, b = logits_by["vmap"], logits_by["sequential"]
    row["speedup"] = round(row["sequential"]["seconds"] / row["vmap"]["seconds"], 2)
    row["floor_seconds"] = round(gemm_floor(recipe, k, int(masks[0].sum()), len(query), chunk), 2)
    row["speedup_bound"] = round(row["sequential"]["seconds"] / row["floor_seconds"], 2)
    row["max_abs_logit_difference"] = float(np.abs(a - b).max())
    row["mean_abs_logit_difference"] = float(np.abs(a - b).mean())
    row["prediction_agreement"] = float((a.argmax(2) == b.argmax(2)).mean())
    row["load_average_after"] = load_average()
    print(
        f"K={k} {row['model']} batch {batch_size}: sequential {row['sequential']['seconds']} s, "
        f"vmap {row['vmap']['seconds']} s, speed-up {row['speedup']}x "
        f"(bound {row['speedup_bound']}x), test accuracy "
        f"{row['sequential']['mean_test_accuracy']} / {row['vmap']['mean_test_accuracy']}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 repeat (a smoke run)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    epochs, repeats = (1, 1) if args.quick else (args.epochs, args.repeats)
    records = load_builtin("fashion_mnist", flatten=True)
    idx = np.random.default_rng(0).permutation(len(records))
    data = {
        "x": records.x[idx[:5000]],
        "y": records.y[idx[:5000]],
        "x_test": records.x[idx[5000:7000]],
        "y_test": records.y[idx[5000:7000]],
    }
    # warm-up: the first training of a process pays one-off costs (importing torch._dynamo for
    # fused Adam, kernel selection, allocator growth) that would land on whichever runs first
    warm = MLPRecipe(hidden=(256,), epochs=1)
    wm = balanced_masks(2, 5000, np.random.default_rng(1))
    for backend in BACKENDS:
        train_ensemble(
            warm, data["x"], data["y"], wm, data["x"][:10], seeds=[0, 1], num_classes=10,
            backend=backend,
        )  # fmt: skip
    start = time.perf_counter()
    rows = [run(k, hidden, bs, epochs, data, repeats) for k, hidden, bs in CONFIGS]
    path = write_result(
        "ensemble_speed_cpu" + ("_quick" if args.quick else ""),
        {
            "what": "K MLPs (Adam, lr 1e-3) each on a balanced half of 5,000 Fashion-MNIST "
            "records, queried on those 5,000 + 2,000 held-out test records; "
            "train_ensemble(backend='vmap') vs backend='sequential' in one process, same seeds "
            "and batch schedule; after a warm-up, median of alternating repeats",
            "repeats": repeats,
            "floor_note": "floor_seconds: the float32 matrix products alone (stacked, this "
            "machine); speedup_bound = sequential seconds / floor_seconds",
            "rss_note": "peak_rss_mb: sampled every 10 ms during that backend's runs (max over "
            "repeats); rss_increase_mb: that peak minus the resident memory at its start",
            "rows": rows,
            "total_seconds": round(time.perf_counter() - start, 1),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
