"""Ways to stack K copies of the CNN recipe's network for one training step, timed on this
machine: one model after another (the sequential backend's work), grouped convolutions with the
K models as groups (NCHW and channels_last, written out here, and the trainer's ``grouped``
engine, which is the channels_last form), and ``torch.func.vmap`` (the engine for other
networks). Each variant runs forward, backward and no optimiser step on random data of
the recipe's shapes (1x28x28, channels 16 and 32, 2x2 pooling, a linear classifier); the best
of ``--repeats`` steps is the figure.

    .venv/bin/python bench/bench_conv_stacking.py [--k 8] [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import load_average, write_result

from unmeasured.training import CNNRecipe
from unmeasured.training.ensemble import _ConvStack, _FuncStack


def best_ms(step, repeats: int) -> float:
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def measure(models: list[torch.nn.Module], batch: int, repeats: int) -> dict:
    """One row: the best step time of each variant at this batch size."""
    k = len(models)
    x = torch.rand(k, batch, 1, 28, 28)
    y = torch.randint(0, 10, (k, batch))

    def sequential() -> None:
        for j, model in enumerate(models):
            F.cross_entropy(model(x[j]), y[j]).backward()

    w1 = torch.cat([m[0].weight for m in models]).detach().requires_grad_()
    b1 = torch.cat([m[0].bias for m in models]).detach().requires_grad_()
    w2 = torch.cat([m[3].weight for m in models]).detach().requires_grad_()
    b2 = torch.cat([m[3].bias for m in models]).detach().requires_grad_()
    w3 = torch.stack([m[7].weight.T for m in models]).detach().requires_grad_()
    b3 = torch.stack([m[7].bias[None] for m in models]).detach().requires_grad_()

    def grouped(channels_last: bool) -> None:
        h = x.transpose(0, 1).reshape(batch, k, 28, 28)  # model j's records in channel j
        if channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        h = F.max_pool2d(F.relu(F.conv2d(h, w1, b1, padding=1, groups=k)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2, padding=1, groups=k)), 2)
        h = h.reshape(batch, k, -1).transpose(0, 1)
        logits = torch.baddbmm(b3, h, w3)
        F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1)).backward()

    conv_stack = _ConvStack(models)  # the trainer's "grouped" engine

    def trainer_grouped() -> None:
        logits = conv_stack.forward(x)
        F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1)).backward()

    stack = _FuncStack(models)

    def func_vmap() -> None:
        logits = stack.forward(x)
        F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1)).backward()

    variants = {
        "sequential": sequential,
        "grouped_conv": lambda: grouped(False),
        "grouped_conv_channels_last": lambda: grouped(True),
        "trainer_grouped_engine": trainer_grouped,
        "torch_func_vmap": func_vmap,
    }
    row: dict = {"batch_size": batch, "k": k, "load_average_before": load_average()}
    for name, step in variants.items():
        row[f"{name}_ms"] = round(best_ms(step, repeats), 2)
    row["load_average_after"] = load_average()
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = CNNRecipe(channels=(16, 32))
    models = [recipe.build((1, 28, 28), 10, seed) for seed in range(args.k)]
    rows = []
    for batch in (64, 128):
        row = measure(models, batch, args.repeats)
        rows.append(row)
        print(row, flush=True)
    path = write_result(
        f"conv_stacking_cpu_{torch.get_num_threads()}threads",
        {
            "what": "one forward+backward step of K CNN-recipe networks (1x28x28, channels "
            "16/32): one after another vs grouped convolutions vs torch.func.vmap; best of "
            f"{args.repeats} steps",
            "threads": torch.get_num_threads(),
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
