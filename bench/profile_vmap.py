"""Where the stacked (vmap) trainer's time goes, phase by phase, against the sequential loop.

Re-runs the inner loop of `unmeasured.training.ensemble.train_stacked` (same helpers, same
batch schedule) and `TorchRecipe.fit` with timers around each phase, and times the pure
compute of one step (matrix products only) to bound the speed-up stacking can give.

    .venv/bin/python bench/profile_vmap.py
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result

from unmeasured.audits.membership.reference import balanced_masks
from unmeasured.data import load_builtin
from unmeasured.training import MLPRecipe
from unmeasured.training.ensemble import _stacked_mlp, _StackedOptimizer
from unmeasured.training.recipes import batch_schedule


def stacked(recipe, x, y, masks, seeds, num_classes=10) -> dict:
    k = len(seeds)
    t = defaultdict(float)
    models = [recipe.build(x.shape[1:], num_classes, int(s)) for s in seeds]
    params, forward = _stacked_mlp(models)
    for p in params:
        p.requires_grad_(True)
    opt = _StackedOptimizer(recipe, params, k)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    train_index = [np.flatnonzero(m) for m in masks]
    rngs = [np.random.default_rng([int(s), 7]) for s in seeds]
    bs = recipe.batch_size
    steps = 0
    start = time.perf_counter()
    for _ in range(recipe.epochs):
        perms = [
            idx[rng.permutation(len(idx))] for idx, rng in zip(train_index, rngs, strict=False)
        ]
        n_steps = max((len(p) + bs - 1) // bs for p in perms)
        for step in range(n_steps):
            a = time.perf_counter()
            index = np.zeros((k, bs), dtype=np.int64)
            weight = np.zeros((k, bs), dtype=np.float32)
            for j, perm in enumerate(perms):
                batch = perm[step * bs : (step + 1) * bs]
                if len(batch):
                    index[j, : len(batch)] = batch
                    weight[j, : len(batch)] = 1.0 / len(batch)
            it, wt = torch.from_numpy(index), torch.from_numpy(weight)
            b = time.perf_counter()
            xb = xt[it]
            yb = yt[it]
            c = time.perf_counter()
            logits = forward(params, xb)
            ce = nn.functional.cross_entropy(
                logits.reshape(-1, num_classes), yb.reshape(-1), reduction="none"
            ).view(k, bs)
            loss = (ce * wt).sum()
            d = time.perf_counter()
            loss.backward()
            e = time.perf_counter()
            opt.step(wt.sum(dim=1) > 0)
            f = time.perf_counter()
            t["batch_index_python"] += b - a
            t["gather_xt[it]"] += c - b
            t["forward+loss"] += d - c
            t["backward"] += e - d
            t["optimizer"] += f - e
            steps += 1
    total = time.perf_counter() - start
    return {
        "total_s": round(total, 3),
        "steps": steps,
        "phases_s": {n: round(v, 3) for n, v in t.items()},
        "phases_share": {n: round(v / total, 3) for n, v in t.items()},
        "ms_per_step": round(1000 * total / steps, 3),
    }


def sequential(recipe, x, y, masks, seeds, num_classes=10) -> dict:
    t = defaultdict(float)
    steps = 0
    start = time.perf_counter()
    for mask, seed in zip(masks, seeds, strict=False):
        xs, ys = x[mask], y[mask]
        model = recipe.build(xs.shape[1:], num_classes, seed)
        opt = recipe.make_optimizer(model.parameters())
        xt, yt = torch.from_numpy(np.ascontiguousarray(xs)), torch.from_numpy(ys)
        for batch in batch_schedule(len(xt), recipe.batch_size, recipe.epochs, seed):
            b = time.perf_counter()
            idx = torch.from_numpy(batch)
            xb, yb = xt[idx], yt[idx]
            c = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xb), yb)
            d = time.perf_counter()
            loss.backward()
            e = time.perf_counter()
            opt.step()
            f = time.perf_counter()
            t["gather"] += c - b
            t["forward+loss"] += d - c
            t["backward"] += e - d
            t["optimizer"] += f - e
            steps += 1
    total = time.perf_counter() - start
    return {
        "total_s": round(total, 3),
        "model_steps": steps,
        "phases_s": {n: round(v, 3) for n, v in t.items()},
        "phases_share": {n: round(v / total, 3) for n, v in t.items()},
        "ms_per_model_step": round(1000 * total / steps, 3),
    }


def matmul_floor(k: int, bs: int, d_in: int, hidden: int, reps: int = 20) -> dict:
    """Time of the three big matrix products of one step (forward, grad wrt W1, grad wrt h),
    for K models stacked (bmm) and for one model (mm): the compute floor of a step."""

    def bench(fn):
        fn()
        a = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - a) / reps

    xb = torch.randn(k, bs, d_in)
    w = torch.randn(k, d_in, hidden)
    g = torch.randn(k, bs, hidden)
    stacked_s = bench(lambda: (torch.bmm(xb, w), torch.bmm(xb.transpose(1, 2), g)))
    one_s = bench(lambda: (xb[0] @ w[0], xb[0].T @ g[0]))
    adam = [torch.randn(k, d_in, hidden) for _ in range(4)]

    def adam_pass():
        p, gr, m, v = adam
        m.mul_(0.9).add_(gr, alpha=0.1)
        v.mul_(0.999).addcmul_(gr, gr, value=0.001)
        p.addcdiv_(m, v.sqrt().add_(1e-8), value=-1e-3)

    adam_s = bench(adam_pass)
    flops = 2 * 2 * bs * d_in * hidden
    return {
        "k": k,
        "stacked_matmuls_ms": round(1000 * stacked_s, 3),
        "single_model_matmuls_ms_times_k": round(1000 * one_s * k, 3),
        "stacked_gflops": round(k * flops / stacked_s / 1e9, 1),
        "single_gflops": round(flops / one_s / 1e9, 1),
        "adam_pass_over_W1_ms": round(1000 * adam_s, 3),
        "adam_GBps": round(k * d_in * hidden * 4 * 7 / adam_s / 1e9, 2),
    }


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--threads":
        torch.set_num_threads(int(sys.argv[2]))
    data = load_builtin("fashion_mnist", flatten=True)
    idx = np.random.default_rng(0).permutation(len(data))
    x, y = data.x[idx[:5000]], data.y[idx[:5000]]
    torch.manual_seed(0)
    out = {"threads": torch.get_num_threads(), "cases": []}
    # warm-up (oneDNN kernels, allocator)
    rec = MLPRecipe(hidden=(256,), epochs=1)
    m = balanced_masks(4, len(x), np.random.default_rng(0))
    stacked(rec, x, y, m, list(range(4)))
    sequential(rec, x, y, m, list(range(4)))
    for hidden, bs, k, chunk in (
        ((256,), 128, 16, 14),
        ((256,), 128, 64, 64),
        ((256,), 128, 16, 16),
        ((64,), 32, 16, 16),
    ):
        rec = MLPRecipe(hidden=hidden, epochs=1, batch_size=bs)
        masks = balanced_masks(k, len(x), np.random.default_rng(0))[:chunk]
        seeds = list(range(chunk))
        s = stacked(rec, x, y, masks, seeds)
        q = sequential(rec, x, y, masks, seeds)
        case = {
            "hidden": hidden,
            "batch_size": bs,
            "models": chunk,
            "stacked": s,
            "sequential": q,
            "speedup": round(q["total_s"] / s["total_s"], 2),
            "matmul_floor": matmul_floor(chunk, bs, 784, hidden[0]),
        }
        print(case, flush=True)
        out["cases"].append(case)
    write_result("profile_vmap_cpu", out)


if __name__ == "__main__":
    main()
