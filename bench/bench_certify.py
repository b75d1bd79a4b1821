"""FGP against the exact checker on Fashion-MNIST ReLU MLPs, with IBP, CROWN and Lipschitz margins
on the same points.

Two MLPs, 784-20-20-20-10 and 784-50-50-10, and a small CNN (``cnn-4c-8c``: two 4x4
convolutions of stride 2 with 4 and 8 channels, then a linear layer; 876 ReLUs), trained for a
few epochs with Adam on the 60,000 training images (pixels in [0, 1], the input box). On the first ``--points`` test images, for
L2 ε ∈ {0.05, 0.25} and L∞ ε ∈ {0.01, 0.03}: FGP (`fgp_certify`) and the exact checker
(`exact_certify`: HiGHS MILP for L∞, SCIP MIQCP for L2) each decide every point under its own
time limit. Reported per setting: median and mean seconds per point, the fraction decided
(robust or not robust), disagreements among points both decided, and the fraction that IBP,
CROWN and the Lipschitz margin certify. The same medians are also given over the "hard" points
alone, those CROWN does not certify, where the search and the solver do the work. Goals: FGP ≥ 10× faster than the exact checker at the
median, ≥ 95% decided, zero disagreements.

By default both sides use CROWN: FGP to prune stable neurons and ruled-out rivals, the exact
checker to skip ruled-out rivals (and both for big-M constants). ``--pure`` turns the pruning
and the screening off, which is the comparison of the FGP paper (its search against a MIP
verifier solving every rival).

    PYTHONPATH=src .venv/bin/python bench/bench_certify.py [--points 100] [--exact-timeout 60]
        [--pure --out certify_fmnist_pure]

The result is written after every setting, so an interrupted run keeps what finished.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import load_average, write_result

from unmeasured.audits.robustness.certify.bounds import bound_certify
from unmeasured.audits.robustness.certify.exact import exact_certify
from unmeasured.audits.robustness.certify.fgp import fgp_certify
from unmeasured.audits.robustness.certify.lipschitz import lipschitz_certify
from unmeasured.audits.robustness.certify.network import to_relu_network
from unmeasured.data import load_builtin

BOX = (0.0, 1.0)
ARCHITECTURES = {"784-20-20-20-10": (20, 20, 20), "784-50-50-10": (50, 50), "cnn-4c-8c": None}
SETTINGS = [("l2", 0.05), ("l2", 0.25), ("linf", 0.01), ("linf", 0.03)]


def build(name: str) -> tuple[nn.Sequential, tuple[int, ...]]:
    """The untrained model and the shape of one record it takes. ``cnn-4c-8c``: two 4x4
    convolutions of stride 2 (4 and 8 channels, 676 and 200 ReLUs) and a linear layer."""
    hidden = ARCHITECTURES[name]
    if hidden is None:
        model = nn.Sequential(
            nn.Conv2d(1, 4, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(4, 8, 4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 5 * 5, 10),
        )
        return model, (1, 28, 28)
    sizes = (784, *hidden)
    layers: list[nn.Module] = []
    for k in range(len(hidden)):
        layers += [nn.Linear(sizes[k], sizes[k + 1]), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 10)), (784,)


def train(
    name: str, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int
) -> tuple[nn.Sequential, tuple[int, ...]]:
    torch.manual_seed(seed)
    model, shape = build(name)
    x = x.reshape(len(x), *shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(128):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval(), shape


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(seconds), 5),
        "mean_s": round(statistics.fmean(seconds), 5),
        "max_s": round(max(seconds), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--fgp-timeout", type=float, default=60.0)
    parser.add_argument("--fgp-max-regions", type=int, default=20_000)
    parser.add_argument("--exact-timeout", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pure",
        action="store_true",
        help="FGP without bound pruning and the exact checker without CROWN screening",
    )
    parser.add_argument("--networks", default=",".join(ARCHITECTURES), help="comma-separated")
    parser.add_argument(
        "--settings",
        default=",".join(f"{norm}:{eps}" for norm, eps in SETTINGS),
        help="comma-separated norm:eps pairs",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="certify_fmnist")
    args = parser.parse_args()
    # the networks are small: on a shared machine extra threads only add contention
    torch.set_num_threads(args.threads)

    train_set = load_builtin("fashion_mnist", flatten=True, part="train")
    test_set = load_builtin("fashion_mnist", flatten=True, part="test")
    x_train, y_train = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    points = torch.from_numpy(test_set.x[: args.points]).double()
    point_labels = torch.from_numpy(test_set.y[: args.points])
    rows = []
    payload = {
        "description": __doc__.split("\n\n")[0],
        "parameters": vars(args),
        "settings": rows,
    }
    settings = [
        (item.split(":")[0], float(item.split(":")[1])) for item in args.settings.split(",")
    ]
    for name in args.networks.split(","):
        started = time.perf_counter()
        model, shape = train(name, x_train, y_train, args.epochs, args.seed)
        train_seconds = time.perf_counter() - started
        with torch.no_grad():
            test_x = torch.from_numpy(test_set.x).reshape(-1, *shape)
            test_accuracy = float(
                (model(test_x).argmax(1) == torch.from_numpy(test_set.y)).float().mean()
            )
        network = to_relu_network(model, shape)
        predictions = network(points).argmax(dim=1)
        for norm, eps in settings:
            fgp_verdicts, fgp_seconds, fgp_regions, fgp_nodes = [], [], [], []
            exact_verdicts, exact_seconds = [], []
            for x in points:
                fgp = fgp_certify(
                    network,
                    x,
                    eps,
                    norm,
                    BOX,
                    timeout=args.fgp_timeout,
                    max_regions=args.fgp_max_regions,
                    prune=None if args.pure else "crown",
                )
                exact = exact_certify(
                    network, x, eps, norm, BOX, timeout=args.exact_timeout, screen=not args.pure
                )
                fgp_verdicts.append(fgp.verdict)
                fgp_seconds.append(fgp.seconds)
                fgp_regions.append(fgp.regions)
                fgp_nodes.append(fgp.nodes)
                exact_verdicts.append(exact.verdict)
                exact_seconds.append(exact.seconds)
            decided = {"robust", "not_robust"}
            both = [
                (f, e)
                for f, e in zip(fgp_verdicts, exact_verdicts, strict=True)
                if f in decided and e in decided
            ]
            timings = {}
            for method in ("ibp", "crown"):
                started = time.perf_counter()
                certified = bound_certify(network, points, eps, norm, BOX, method=method).certified
                timings[method] = (certified, time.perf_counter() - started)
            started = time.perf_counter()
            certified = lipschitz_certify(network, points, eps, norm).certified
            timings["lipschitz"] = (certified, time.perf_counter() - started)
            fgp_summary, exact_summary = summary(fgp_seconds), summary(exact_seconds)
            hard = [i for i, ok in enumerate(timings["crown"][0].tolist()) if not ok]
            hard_fgp = statistics.median([fgp_seconds[i] for i in hard]) if hard else None
            hard_exact = statistics.median([exact_seconds[i] for i in hard]) if hard else None
            row = {
                "network": name,
                "test_accuracy": round(test_accuracy, 4),
                "train_seconds": round(train_seconds, 1),
                "norm": norm,
                "eps": eps,
                "points": len(points),
                "points_correct": int((predictions == point_labels).sum()),
                "fgp": {
                    **fgp_summary,
                    "decided": sum(v in decided for v in fgp_verdicts) / len(points),
                    "verdicts": {v: fgp_verdicts.count(v) for v in sorted(set(fgp_verdicts))},
                    "median_regions": statistics.median(fgp_regions),
                    "max_regions": max(fgp_regions),
                    "branched": sum(n > 0 for n in fgp_nodes),
                    "max_nodes": max(fgp_nodes),
                },
                "exact": {
                    **exact_summary,
                    "decided": sum(v in decided for v in exact_verdicts) / len(points),
                    "verdicts": {v: exact_verdicts.count(v) for v in sorted(set(exact_verdicts))},
                },
                "speedup_at_median": round(
                    exact_summary["median_s"] / max(fgp_summary["median_s"], 1e-9), 2
                ),
                "hard_points": {
                    "count": len(hard),
                    "fgp_median_s": None if hard_fgp is None else round(hard_fgp, 5),
                    "exact_median_s": None if hard_exact is None else round(hard_exact, 5),
                    "speedup_at_median": None
                    if hard_fgp is None or hard_exact is None
                    else round(hard_exact / max(hard_fgp, 1e-9), 2),
                    "fgp_decided": None
                    if not hard
                    else round(sum(fgp_verdicts[i] in decided for i in hard) / len(hard), 4),
                },
                "both_decided": len(both),
                "disagreements": sum(f != e for f, e in both),
                "certified_fraction": {
                    method: round(float(c.double().mean()), 4) for method, (c, _) in timings.items()
                },
                "certify_seconds_all_points": {
                    method: round(s, 4) for method, (_, s) in timings.items()
                },
                "load_average": load_average(),
            }
            rows.append(row)
            print(
                f"{name} {norm} eps={eps}: FGP median {fgp_summary['median_s']:.4f}s decided "
                f"{row['fgp']['decided']:.2f}; exact median {exact_summary['median_s']:.4f}s decided "
                f"{row['exact']['decided']:.2f}; speedup {row['speedup_at_median']}x; disagreements "
                f"{row['disagreements']}/{len(both)}; certified {row['certified_fraction']}",
                flush=True,
            )
            write_result(args.out, payload)
    payload["goals"] = {
        "fgp_10x_faster_at_median": all(r["speedup_at_median"] >= 10 for r in rows),
        "fgp_decides_95_percent": all(r["fgp"]["decided"] >= 0.95 for r in rows),
        "zero_disagreements": all(r["disagreements"] == 0 for r in rows),
    }
    print(payload["goals"])
    write_result(args.out, payload)


if __name__ == "__main__":
    main()
