"""Evasion attack strength and speed side by side: our PGD and APGD against ART's PGD and
torchattacks' PGD and APGD, on one Fashion-MNIST MLP, the same records and the same epsilons.

Target: a 784-256-10 MLP (Adam, 5 epochs, batch 128) trained on 20,000 Fashion-MNIST training
images flattened to 784 features in [0, 1]; the attacks run on the first ``--n`` test images
under L∞ with input box [0, 1]. Every tool gets the same step budget; PGD gets the same step
size (2.5·eps/steps) in every tool, APGD none (it has no step size). A record counts as broken
only if our model misclassifies the example the tool returned and the example lies inside the
ball and the box (`norms.inside`), so a tool cannot gain by leaving the ball.

Runs in the peers' virtualenv (torchattacks 3.5.1 and ART 1.20.1 installed without
dependencies, next to the main environment's packages, so that torchattacks cannot downgrade
``requests``):

    python3.11 -m venv .venv-peers
    echo /path/to/main/.venv/lib/python3.11/site-packages > \\
        .venv-peers/lib/python3.11/site-packages/main-venv.pth
    .venv-peers/bin/pip install --no-deps torchattacks==3.5.1 \\
        adversarial-robustness-toolbox==1.20.1 six==1.17.0 tqdm==4.67.1
    PYTHONPATH=src .venv-peers/bin/python bench/bench_robustness.py [--n 1000]
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import write_result

from unmeasured.audits.robustness.attacks import apgd, default_pgd_step, pgd
from unmeasured.audits.robustness.norms import inside
from unmeasured.data import load_builtin


def train_target(seed: int) -> nn.Module:
    records = load_builtin("fashion_mnist", part="train", flatten=True)
    torch.manual_seed(seed)
    order = torch.randperm(len(records))[:20_000]
    x, y = torch.from_numpy(records.x)[order], torch.from_numpy(records.y)[order]
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(5):
        for batch in torch.randperm(len(x)).split(128):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def ours(steps: int) -> dict[str, Callable]:
    def run_pgd(model, x, y, eps):
        generator = torch.Generator().manual_seed(0)
        return pgd(model, x, y, eps=eps, steps=steps, bounds=(0.0, 1.0), generator=generator).x_adv

    def run_apgd(model, x, y, eps):
        generator = torch.Generator().manual_seed(0)
        return apgd(model, x, y, eps=eps, steps=steps, bounds=(0.0, 1.0), generator=generator).x_adv

    return {"unmeasured PGD": run_pgd, "unmeasured APGD-CE": run_apgd}


def peers(steps: int) -> dict[str, Callable]:
    import torchattacks
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    def art_pgd(model, x, y, eps):
        classifier = PyTorchClassifier(
            model=model,
            loss=nn.CrossEntropyLoss(),
            input_shape=(784,),
            nb_classes=10,
            clip_values=(0.0, 1.0),
        )
        attack = ProjectedGradientDescentPyTorch(
            classifier,
            norm=np.inf,
            eps=eps,
            eps_step=float(default_pgd_step(eps, steps)),
            max_iter=steps,
            num_random_init=1,
            batch_size=len(x),
            verbose=False,
        )
        return torch.from_numpy(attack.generate(x.numpy(), y.numpy()))

    def torchattacks_pgd(model, x, y, eps):
        attack = torchattacks.PGD(
            model,
            eps=eps,
            alpha=float(default_pgd_step(eps, steps)),
            steps=steps,
            random_start=True,
        )
        return attack(x, y)

    def torchattacks_apgd(model, x, y, eps):
        # its APGD expects image batches: give it 1×28×28 images and a flattening model
        as_images = nn.Sequential(nn.Flatten(), model)
        attack = torchattacks.APGD(as_images, norm="Linf", eps=eps, steps=steps, loss="ce", seed=0)
        return attack(x.reshape(-1, 1, 28, 28), y).reshape(len(x), -1)

    return {
        "ART 1.20.1 PGD": art_pgd,
        "torchattacks 3.5.1 PGD": torchattacks_pgd,
        "torchattacks 3.5.1 APGD-CE": torchattacks_apgd,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="test records attacked")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--eps", default="0.02,0.05,0.1", help="L∞ radii, comma-separated")
    args = parser.parse_args()
    epsilons = [float(e) for e in args.eps.split(",")]

    started = time.perf_counter()
    model = train_target(seed=0)
    training_s = time.perf_counter() - started
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    test = load_builtin("fashion_mnist", part="test", flatten=True)
    x, y = torch.from_numpy(test.x[: args.n]), torch.from_numpy(test.y[: args.n])
    with torch.no_grad():
        clean = (model(x).argmax(dim=1) == y).float().mean().item()
    print(f"clean accuracy {clean:.3f} on {args.n} records (trained in {training_s:.0f}s)")

    rows = []
    for name, attack in {**ours(args.steps), **peers(args.steps)}.items():
        for eps in epsilons:
            torch.manual_seed(0)
            tic = time.perf_counter()
            x_adv = attack(model, x, y, eps).detach()
            seconds = time.perf_counter() - tic
            valid = inside(x_adv, x, eps, "linf", (0.0, 1.0))
            with torch.no_grad():
                broken = (model(x_adv).argmax(dim=1) != y) & valid
            row = {
                "attack": name,
                "eps": eps,
                "steps": args.steps,
                "robust_accuracy": round(1 - broken.float().mean().item(), 4),
                "outside_ball_or_box": int((~valid).sum()),
                "seconds": round(seconds, 3),
            }
            rows.append(row)
            print(row)
    write_result(
        "robustness_fmnist",
        {
            "target": "784-256-10 MLP, Adam lr 1e-3, 5 epochs, batch 128, 20,000 training images",
            "records": args.n,
            "clean_accuracy": round(clean, 4),
            "norm": "linf",
            "bounds": [0.0, 1.0],
            "pgd_step_size": "2.5*eps/steps in every tool, one random start",
            "training_seconds": round(training_s, 1),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
