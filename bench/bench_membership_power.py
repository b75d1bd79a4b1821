"""Attack strength side by side: our loss, LiRA (offline/online) and RMIA against sacroml's LiRA
and ART's shadow-model attack, on one target and one split, in one run.

Target: scikit-learn ``MLPClassifier`` (784-128-10, Adam) trained on 5,000 Fashion-MNIST records
(members); 5,000 non-members; a population of 10,000 for offline reference models and shadow
models. A scikit-learn target lets every tool attack the very same model. Every tool's
per-record scores are turned into metrics by the same code (``unmeasured.stats``), so the
numbers are comparable. Runs in the peers' virtualenv (``.venv-peers``: sacroml 2.0.1, ART
1.20.1, this package installed without dependencies):

    .venv-peers/bin/python bench/bench_membership_power.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, peak_rss_mb, write_result

from unmeasured.api import audit
from unmeasured.data import load_builtin
from unmeasured.stats import membership_metrics
from unmeasured.training import SklearnRecipe

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def estimator(max_iter: int):  # type: ignore[no-untyped-def]
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(128,), max_iter=max_iter, random_state=0)


def summarise(
    name: str, k: int | None, scores: np.ndarray, is_member: np.ndarray, seconds: float
) -> dict:
    row = {"attack": name, "num_models": k, "seconds": round(seconds, 1)}
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        row["failed"] = f"{bad} of {len(scores)} scores are NaN or infinite"
        print(name, k, row["failed"], flush=True)
        return row
    m = membership_metrics(scores, is_member)
    for key in ("auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01"):
        row[key] = m[key].to_dict()
    print(
        name,
        k,
        m["auc"].format(),
        m["tpr_at_fpr_0.001"].format(),
        m["tpr_at_fpr_0.01"].format(),
        f"{seconds:.0f}s",
        flush=True,
    )
    return row


def ours(target, split, recipe, ks, cache) -> list[dict]:  # type: ignore[no-untyped-def]
    members, nonmembers, population = split
    specs = [("membership.loss", {}, None)]
    for k in ks:
        specs.append(("membership.lira", {"mode": "offline", "num_models": k}, k))
        specs.append(("membership.rmia", {"mode": "offline", "num_models": k}, k))
        if k >= 2:
            specs.append(("membership.lira", {"mode": "online", "num_models": k}, k))
    rows = []
    for name, params, k in specs:
        start = time.perf_counter()
        run = audit(
            target,
            members=members,
            nonmembers=nonmembers,
            population=population,
            recipe=recipe,
            cache_dir=cache,
            audits=[(name, params)],
        )
        result = run.audits[0]
        label = name + (f" ({params['mode']})" if "mode" in params else "")
        rows.append(
            summarise(
                label,
                k,
                result.arrays["scores"],
                result.arrays["is_member"],
                time.perf_counter() - start,
            )
        )
    return rows


try:
    from sacroml.attacks.model_sklearn import SklearnModel

    class ClippedModel(SklearnModel):
        """sacroml takes logit(p) without clipping: a single probability of exactly 1 makes its
        global variance NaN and so every score NaN. Clip at 1e-7, as any stable LiRA must."""

        max_iter = 30

        def predict_proba(self, X):  # type: ignore[no-untyped-def]
            return np.clip(super().predict_proba(X), 1e-7, 1 - 1e-7)

        def clone(self):  # type: ignore[no-untyped-def]
            return ClippedModel(estimator(self.max_iter))

except ImportError:  # the project's own virtualenv has no sacroml
    ClippedModel = None  # type: ignore[assignment,misc]


def sacroml_lira(target, split, max_iter, ks, workdir) -> list[dict]:  # type: ignore[no-untyped-def]
    from sacroml.attacks.likelihood_attack import LIRAAttack

    ClippedModel.max_iter = max_iter

    (xm, ym), (xn, yn), _ = split
    clip = lambda p: np.clip(p, 1e-7, 1 - 1e-7)  # noqa: E731
    rows = []
    for k in ks:
        for mode in ("offline", "online-carlini"):
            if mode == "online-carlini" and k < 2:
                continue
            captured = {}
            attack = LIRAAttack(
                output_dir=str(workdir / f"sacroml-{mode}-{k}"),
                write_report=False,
                n_shadow_models=k,
                mode=mode,
                fix_variance=True,
            )
            attack._save_attack_metrics = lambda s, *a, c=captured: c.setdefault("s", s)
            start = time.perf_counter()
            attack._run(
                ClippedModel(estimator(max_iter)),
                xm,
                ym,
                clip(target.predict_proba(xm)),
                xn,
                yn,
                clip(target.predict_proba(xn)),
            )
            scores = np.asarray(captured["s"])[:, 1]  # sacroml's member score column
            is_member = np.r_[np.ones(len(xm), np.int8), np.zeros(len(xn), np.int8)]
            rows.append(
                summarise(
                    f"sacroml LiRA ({mode}, fixed variance)",
                    k,
                    scores,
                    is_member,
                    time.perf_counter() - start,
                )
            )
    return rows


def art_shadow(target, split, max_iter, k) -> dict:  # type: ignore[no-untyped-def]
    from art.attacks.inference.membership_inference import (
        MembershipInferenceBlackBox,
        ShadowModels,
    )
    from art.estimators.classification.scikitlearn import ScikitlearnClassifier

    (xm, ym), (xn, yn), (xp, yp) = split
    start = time.perf_counter()
    onehot = np.eye(10)[yp]
    # ART's template must know its number of classes before it is cloned: fit it once
    template = ScikitlearnClassifier(estimator(max_iter))
    template.fit(xp[:500], np.eye(10)[yp[:500]])
    shadows = ShadowModels(template, num_shadow_models=k)
    (mx, my, mp), (nx, ny, npred) = shadows.generate_shadow_dataset(xp, onehot)
    attack = MembershipInferenceBlackBox(ScikitlearnClassifier(target), attack_model_type="rf")
    attack.fit(mx, my, nx, ny, mp, npred)
    x = np.concatenate([xm, xn])
    y = np.eye(10)[np.concatenate([ym, yn])]
    scores = attack.infer(x, y, probabilities=True).reshape(-1)
    is_member = np.r_[np.ones(len(xm), np.int8), np.zeros(len(xn), np.int8)]
    return summarise(
        "ART shadow models + black-box attack (rf)",
        k,
        scores,
        is_member,
        time.perf_counter() - start,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--peers-only",
        action="store_true",
        help="rerun the peers only, keeping our rows from the last result file",
    )
    parser.add_argument(
        "--add-k",
        type=int,
        help="run every attack at this one K and add the rows to the last result file",
    )
    args = parser.parse_args()
    n_members, max_iter = (1000, 10) if args.quick else (5000, 30)
    ks = (1, 2) if args.quick else (1, 2, 4, 16)
    previous = None
    if args.peers_only or args.add_k:
        previous = json.loads((RESULTS / "membership_power_fmnist.json").read_text())
    if args.add_k:
        ks = (args.add_k,)
    data = load_builtin("fashion_mnist", flatten=True)
    idx = np.random.default_rng(0).permutation(len(data))
    parts = np.split(idx[: 4 * n_members], [n_members, 2 * n_members])
    split = tuple((data.x[p], data.y[p]) for p in parts)
    start = time.perf_counter()
    target = estimator(max_iter).fit(*split[0])
    train_seconds = time.perf_counter() - start
    acc = {"train": float(target.score(*split[0])), "test": float(target.score(*split[1]))}
    print("target", acc, f"{train_seconds:.0f}s", flush=True)
    recipe = SklearnRecipe(estimator=estimator(max_iter))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.add_k:
            new = ours(target, split, recipe, ks, work / "cache")[1:]  # loss is there already
            new += sacroml_lira(target, split, max_iter, ks, work)
            rows = previous["rows"] + new
        else:
            if args.peers_only:
                rows = [r for r in previous["rows"] if r["attack"].startswith("membership.")]
            else:
                rows = ours(target, split, recipe, ks, work / "cache")
            rows += sacroml_lira(target, split, max_iter, ks, work)
            rows.append(art_shadow(target, split, max_iter, 4))
    path = write_result(
        "membership_power_fmnist" + ("_quick" if args.quick else ""),
        {
            "settings": {
                "target": f"sklearn MLPClassifier(hidden_layer_sizes=(128,), max_iter={max_iter})",
                "members": n_members,
                "nonmembers": n_members,
                "population": 2 * n_members,
                "target_accuracy": acc,
                "target_train_seconds": round(train_seconds, 1),
                "note": "sacroml's shadow models train on members + non-members (its data "
                "plan); ours follow the online/offline plans in docs/membership.md; ART's "
                "shadow models train on the population",
            },
            "rows": rows,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
