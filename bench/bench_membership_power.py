"""Attack strength side by side: our loss, LiRA (offline/online) and RMIA (offline) against
sacroml's LiRA and ART's shadow-model black-box attack, on one torch target and one split, in
one process.

Target: `MLPRecipe(hidden=(256,), epochs=30, batch_size=128)` (784-256-10, Adam) trained on
5,000 Fashion-MNIST records (members); 5,000 non-members; a population of 10,000 for offline
reference models, RMIA's comparison records and ART's shadow models. Every tool attacks this
very model object: sacroml through its own `PytorchModel` wrapper (its shadow models are built
and trained from `bench/sacroml_torch.py`, the same architecture and recipe), ART through its
`PyTorchClassifier`. Every tool's per-record scores become metrics through the same code
(`unmeasured.stats.membership_metrics`; ours are read from the `RunResult`, which uses it), so
the numbers and intervals are comparable.

Runs in the peers' virtualenv (sacroml 2.0.1, ART 1.20.1, this package installed without
dependencies); the result is written after every row, so an interrupted run keeps what finished:

    .venv-peers/bin/python bench/bench_membership_power.py [--quick] [--ks 1,2,4,16,64]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import load_average, write_result

from unmeasured.api import audit
from unmeasured.data import load_builtin
from unmeasured.stats import membership_metrics
from unmeasured.training import MLPRecipe

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

METRICS = ("auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01")


def row_from(tool, attack, mode, k, metrics, seconds, **extra) -> dict:  # type: ignore[no-untyped-def]
    row = {
        "tool": tool,
        "attack": attack,
        "mode": mode,
        "num_models": k,
        "seconds": round(seconds, 1),
        **extra,
    }
    for key in METRICS:
        row[key] = metrics[key].to_dict()
    print(
        f"{tool:9s} {attack:22s} {mode or '-':15s} K={k!s:4s}",
        "  ".join(f"{key}={metrics[key].format()}" for key in METRICS),
        f"{seconds:.1f}s",
        flush=True,
    )
    return row


def peer_row(tool, attack, mode, k, scores, is_member, seconds, **extra) -> dict:  # type: ignore[no-untyped-def]
    scores = np.asarray(scores, dtype=np.float64)
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        print(tool, attack, mode, k, f"{bad} non-finite scores", flush=True)
        return {
            "tool": tool,
            "attack": attack,
            "mode": mode,
            "num_models": k,
            "seconds": round(seconds, 1),
            "failed": f"{bad} of {len(scores)} scores are NaN or infinite",
            **extra,
        }
    return row_from(tool, attack, mode, k, membership_metrics(scores, is_member), seconds, **extra)


# ------------------------------------------------------------------------------------- ours


def ours_specs(ks) -> list[tuple[str, dict, int | None]]:  # type: ignore[no-untyped-def]
    specs: list[tuple[str, dict, int | None]] = [("membership.loss", {}, None)]
    for k in ks:
        # offline LiRA first: it trains the offline plan, which RMIA offline then reads from
        # the cache (the same plan: same masks and seeds for the same K)
        specs.append(("membership.lira", {"mode": "offline", "num_models": k}, k))
        specs.append(("membership.rmia", {"mode": "offline", "num_models": k}, k))
        if k >= 2:
            specs.append(("membership.lira", {"mode": "online", "num_models": k}, k))
    return specs


def run_ours(spec, target, split, recipe, cache) -> dict:  # type: ignore[no-untyped-def]
    name, params, k = spec
    (xm, ym), (xn, yn), (xp, yp) = split
    start = time.perf_counter()
    run = audit(
        target,
        members=(xm, ym),
        nonmembers=(xn, yn),
        population=(xp, yp),
        recipe=recipe,
        cache_dir=cache,
        audits=[(name, params)],
        seed=0,
    )
    seconds = time.perf_counter() - start
    result = run.audits[0]
    if result.status != "ok" and not result.metrics:
        print(name, params, "FAILED", result.reason, flush=True)
        return {
            "tool": "unmeasured",
            "attack": name,
            "mode": params.get("mode"),
            "num_models": k,
            "seconds": round(seconds, 1),
            "failed": result.reason,
        }
    extra = {}
    if name == "membership.rmia":
        extra["rmia_a"] = result.details.get("a")
        extra["note"] = "reference models from the cache of the offline LiRA row at this K"
    return row_from("unmeasured", name, params.get("mode"), k, result.metrics, seconds, **extra)


# ----------------------------------------------------------------------------------- sacroml


def run_sacroml(target, split, epochs, ks, workdir, previous=0) -> list[dict]:  # type: ignore[no-untyped-def]
    from sacroml.attacks.likelihood_attack import LIRAAttack
    from sacroml.attacks.model_pytorch import PytorchModel

    (xm, ym), (xn, yn), _ = split
    with torch.no_grad():
        proba = lambda x: torch.softmax(target(torch.from_numpy(x)), 1).double().numpy()  # noqa: E731
        pm, pn = proba(xm), proba(xn)
    is_member = np.r_[np.ones(len(xm), np.int8), np.zeros(len(xn), np.int8)]
    from sacroml_torch import MLP

    # sacroml rebuilds shadow models from the wrapped model's class name: hand it the target's
    # very weights inside the class that bench/sacroml_torch.py defines
    wrapped = MLP(d_in=xm.shape[1])
    wrapped.net.load_state_dict(target.state_dict())
    wrapped.eval()
    out_dir = workdir / "sacroml"  # one directory: sacroml reuses saved shadow models 0..K-1
    rows = []
    for k in ks:
        for mode in ("offline", "online-carlini"):
            if mode == "online-carlini" and k < 2:
                continue
            shadow = PytorchModel(
                model=wrapped,
                model_module_path="bench/sacroml_torch.py",
                model_name="MLP",
                model_params={"d_in": xm.shape[1], "hidden": 256, "num_classes": 10},
                train_module_path="bench/sacroml_torch.py",
                train_params={"epochs": epochs, "lr": 1e-3},
                batch_size=128,
            )
            captured: dict = {}
            attack = LIRAAttack(
                output_dir=str(out_dir),
                write_report=False,
                n_shadow_models=k,
                mode=mode,
                fix_variance=True,
            )
            attack._save_attack_metrics = lambda s, *a, c=captured: c.setdefault("s", s)
            start = time.perf_counter()
            attack._run(shadow, xm, ym, pm, xn, yn, pn)
            seconds = time.perf_counter() - start
            # sacroml's per-record [pr_in, pr_out]; column 1 is the member score in both modes
            # (offline: CDF of the target's logit under OUT; online: log LR in/out)
            scores = np.asarray(captured["s"])[:, 1]
            rows.append(
                peer_row(
                    "sacroml",
                    "LIRAAttack",
                    mode + ", fix_variance",
                    k,
                    scores,
                    is_member,
                    seconds,
                    shadow_models_trained_in_this_row=max(0, k - previous),
                )
            )
            previous = max(previous, k)
    return rows


# --------------------------------------------------------------------------------------- ART


def run_art(target, split, epochs, k) -> dict:  # type: ignore[no-untyped-def]
    from art.attacks.inference.membership_inference import (
        MembershipInferenceBlackBox,
        ShadowModels,
    )
    from art.estimators.classification import PyTorchClassifier
    from sacroml_torch import MLP

    class Classifier(PyTorchClassifier):
        """ART's shadow models call ``fit(x, y)`` with ART's defaults (10 epochs): train them as
        the target was (30 epochs, batch 128)."""

        def fit(self, x, y, batch_size=128, nb_epochs=epochs, **kwargs):  # type: ignore[no-untyped-def]
            return super().fit(x, y, batch_size=128, nb_epochs=epochs, **kwargs)

    def wrap(model):  # type: ignore[no-untyped-def]
        return Classifier(
            model=model,
            loss=torch.nn.CrossEntropyLoss(),
            optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
            input_shape=(784,),
            nb_classes=10,
            clip_values=(0.0, 1.0),
        )

    (xm, ym), (xn, yn), (xp, yp) = split
    onehot = np.eye(10, dtype=np.float32)
    start = time.perf_counter()
    torch.manual_seed(0)
    shadows = ShadowModels(wrap(MLP()), num_shadow_models=k, random_state=0)
    (mx, my, mp), (nx, ny, npred) = shadows.generate_shadow_dataset(xp, onehot[yp])
    attack = MembershipInferenceBlackBox(wrap(target), attack_model_type="rf")
    attack.fit(mx, my, nx, ny, mp, npred)
    x = np.concatenate([xm, xn])
    scores = attack.infer(x, onehot[np.concatenate([ym, yn])], probabilities=True).reshape(-1)
    is_member = np.r_[np.ones(len(xm), np.int8), np.zeros(len(xn), np.int8)]
    return peer_row(
        "ART",
        "ShadowModels + MembershipInferenceBlackBox(rf)",
        None,
        k,
        scores,
        is_member,
        time.perf_counter() - start,
        note="shadow models train on halves of the population; the attack model "
        "sees the models' logits (ART's predict) and the one-hot label",
    )


# -------------------------------------------------------------------------------------- main


def checks(rows) -> dict:  # type: ignore[no-untyped-def]
    def find(tool, attack, mode, k):  # type: ignore[no-untyped-def]
        for r in rows:
            if (r["tool"], r["attack"], r["mode"], r["num_models"]) == (
                tool,
                attack,
                mode,
                k,
            ) and "failed" not in r:
                return r
        return None

    def cmp(a, b):  # type: ignore[no-untyped-def]
        return {
            key: {
                "ours": a[key]["value"],
                "theirs": b[key]["value"],
                "difference": None
                if a[key]["value"] is None or b[key]["value"] is None
                else round(a[key]["value"] - b[key]["value"], 4),
            }
            for key in METRICS
        }

    out: dict = {"lira_vs_sacroml": {}, "rmia_k2_vs_lira_offline_k2": None}
    ks = sorted({r["num_models"] for r in rows if r["tool"] == "sacroml"})
    for k in ks:
        for ours_mode, their_mode in (
            ("offline", "offline, fix_variance"),
            ("online", "online-carlini, fix_variance"),
        ):
            a = find("unmeasured", "membership.lira", ours_mode, k)
            b = find("sacroml", "LIRAAttack", their_mode, k)
            if a and b:
                out["lira_vs_sacroml"][f"{ours_mode} K={k}"] = cmp(a, b)
    a = find("unmeasured", "membership.rmia", "offline", 2)
    b = find("unmeasured", "membership.lira", "offline", 2)
    if a and b:
        out["rmia_k2_vs_lira_offline_k2"] = cmp(a, b)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 members, 3 epochs, K<=2")
    parser.add_argument("--ks", default=None, help="comma-separated K values (default 1,2,4,16,64)")
    parser.add_argument("--art-ks", default="4,16", help="K values for ART's shadow models")
    parser.add_argument("--skip", default="", help="comma-separated: ours,sacroml,art")
    parser.add_argument("--name", default=None, help="result file name (default by --quick)")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add this run's rows (e.g. --ks 64) to the last result file, "
        "which must be of the same settings; the loss row is not repeated",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's own choice, one per core)",
    )
    args = parser.parse_args()
    n_members, epochs = (1000, 3) if args.quick else (5000, 30)
    ks = tuple(int(v) for v in (args.ks or ("1,2" if args.quick else "1,2,4,16,64")).split(","))
    art_ks = tuple(int(v) for v in ("2" if args.quick else args.art_ks).split(","))
    skip = set(filter(None, args.skip.split(",")))
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_builtin("fashion_mnist", flatten=True)
    idx = np.random.default_rng(0).permutation(len(data))
    parts = np.split(idx[: 4 * n_members], [n_members, 2 * n_members])
    split = tuple((np.ascontiguousarray(data.x[p]), data.y[p].astype(np.int64)) for p in parts)
    (xm, ym), (xn, yn), (_xp, _yp) = split

    recipe = MLPRecipe(hidden=(256,), epochs=epochs, batch_size=128)
    start = time.perf_counter()
    target = recipe.fit(xm, ym, num_classes=10, seed=20240)
    train_seconds = time.perf_counter() - start
    acc = {
        "train": float((recipe.predict_logits(target, xm).argmax(1) == ym).mean()),
        "test": float((recipe.predict_logits(target, xn).argmax(1) == yn).mean()),
    }
    print("target", acc, f"{train_seconds:.1f}s", flush=True)

    name = args.name or "membership_power_fmnist" + ("_quick" if args.quick else "")
    settings = {
        "dataset": "Fashion-MNIST (train+test, 70,000), flattened to 784, scaled to [0, 1]; "
        "one permutation (seed 0): members, non-members, population",
        "target": repr(recipe) + " trained with seed 20240",
        "members": n_members,
        "nonmembers": n_members,
        "population": 2 * n_members,
        "target_accuracy": acc,
        "target_train_seconds": round(train_seconds, 1),
        "ks": list(ks),
        "art_ks": list(art_ks),
        "torch_threads": torch.get_num_threads(),
        "reference_recipe": "the target's recipe (ours); sacroml_torch.MLP + train() with the "
        "same architecture, epochs, batch size and Adam lr (sacroml); the same for ART",
        "plans": {
            "unmeasured offline": "K models, each on a balanced half of the 10,000 population "
            "records (5,000 each); never an audited record",
            "unmeasured online": "K models, each on a balanced half of the 10,000 audited "
            "records (5,000 each). The online pool is topped up with population only up to "
            "twice the target's training-set size (10,000), which the audited records already "
            "reach, so no population record is in it",
            "sacroml": "K shadow models, model i on 5,000 records drawn (np.random.seed(i)) from "
            "the 10,000 audited records; offline mode uses each record's OUT models only "
            "(about K/2), online-carlini both; fix_variance=True (one global std over all "
            "records' confidences); shadow models are saved and reused across K and modes, so "
            "a row's seconds include only the shadow models not trained before",
            "ART": "K shadow models, each on a random half of the population; a random forest "
            "on (logits, one-hot label) of shadow members vs non-members",
        },
        "metrics": "AUC, TPR at 0.1% and 1% FPR with 95% intervals from "
        "unmeasured.stats.membership_metrics for every tool",
    }
    rows: list[dict] = []
    t0 = time.perf_counter()
    if args.append:
        import json

        from common import RESULTS

        previous = json.loads((RESULTS / f"{name}.json").read_text())
        old = previous["settings"]
        if old["target_accuracy"] != acc or old["members"] != n_members:
            raise SystemExit("--append: the last result file has other settings")
        rows = previous["rows"]
        settings["ks"] = sorted(set(old["ks"]) | set(ks))
        settings["art_ks"] = sorted(set(old["art_ks"]) | set(art_ks))
        settings["appended_runs"] = [
            *old.get("appended_runs", []),
            {"ks": list(ks), "torch_threads": torch.get_num_threads()},
        ]

    def save() -> None:
        write_result(
            name,
            {
                "settings": settings,
                "rows": rows,
                "checks": checks(rows),
                "total_seconds": round(time.perf_counter() - t0, 1),
                "load_average": load_average(),
            },
        )

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # K by K, every tool, so that an interrupted run still compares them at equal K
        specs = ours_specs(ks)
        if "ours" not in skip and not args.append:
            rows.append(run_ours(specs[0], target, split, recipe, work / "cache"))  # loss
            save()
        trained = 0
        for k in ks:
            if "ours" not in skip:
                for spec in specs[1:]:
                    if spec[2] == k:
                        rows.append(run_ours(spec, target, split, recipe, work / "cache"))
                        save()
            if "sacroml" not in skip:
                import os

                os.chdir(ROOT)  # sacroml imports bench/sacroml_torch.py by a relative path
                rows += run_sacroml(target, split, epochs, [k], work, previous=trained)
                trained = max(trained, k)
                save()
            if "art" not in skip and k in art_ks:
                rows.append(run_art(target, split, epochs, k))
                save()
    save()
    print("wrote", name, f"{time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
