"""`memorization.overlearning`: what a model's layers reveal about an attribute it was never
trained to predict (overlearning, Song & Shmatikov, ICLR 2020).

For each named layer, scikit-learn probes (logistic regression and a small MLP, each behind a
standard scaler, and a PCA when the layer is wider than ``max_features``) are fitted on the
layer's features of part of the records and predict the ``sensitive`` column of the rest
(``cross_val_predict`` over stratified folds, so every record is predicted by a probe that never
saw it). Each layer is compared with its twin in the same architecture with random weights:
the model is deep-copied and every submodule with ``reset_parameters`` is re-initialised from a
seeded generator. A layer that beats its twin learned the attribute from training; one that
merely matches it reveals only what any network of that shape passes on from its input.

Intervals: accuracy is a proportion of held-out records (Clopper–Pearson); the macro
one-vs-rest AUC has a percentile bootstrap interval over records; a gain (trained minus random
accuracy on the same records) is a paired mean difference with a normal interval, and the
largest gain's interval is Bonferroni-adjusted for the number of layer × probe comparisons it
was chosen from, so the concern it raises is not an artefact of picking the best of many.

The probes run with one BLAS thread: these problems are small and dense, and on a busy 2-core
machine two threads made a logistic fit 40 times slower.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.stats import norm
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from unmeasured.audits.base import AuditContext, Constraint, interval, options
from unmeasured.audits.memorization.base import ProbeAudit
from unmeasured.audits.registry import register
from unmeasured.errors import ConfigError, TargetError
from unmeasured.results import AuditResult
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import proportion
from unmeasured.targets.torch import TorchTarget

PROBE_KINDS = ("logistic", "mlp")
PROBE_ROLES = ("test", "population", "nonmembers", "members", "train_sample")
#: layers that only reshape or drop out: their features repeat the layer before them
_PASS_THROUGH = (nn.Flatten, nn.Unflatten, nn.Identity, nn.modules.dropout._DropoutNd)
AUC_RESAMPLES = 200


@register
class Overlearning(ProbeAudit):
    """Probes on each layer's features for the ``sensitive`` column, against the same layer with
    random weights, the raw inputs and the majority rate.

    Args:
        role: the data role whose records are probed (default ``test``: records the model was
            not trained on); it must carry the ``sensitive`` column.
        layers: names from the model's ``named_modules()``; default: its top-level children
            except those that only reshape or drop out (``Flatten``, ``Dropout``, ``Identity``).
        probes: the probe kinds, ``logistic`` (logistic regression) and ``mlp`` (one hidden
            layer of 64 units).
        folds: stratified cross-validation folds; values of the attribute with fewer records
            than this are left out (and said so in the details).
        max_records: at most this many records (a seeded subsample).
        max_features: a layer wider than this is reduced by PCA inside each fold.
        embedding_points: points in the 2-D embedding figure (PCA and t-SNE of the layer with
            the largest gain); 0 for none.
    """

    name = "memorization.overlearning"
    summary = "probes on layer features for a sensitive attribute vs random weights and inputs"
    constraints: ClassVar[dict[str, Constraint]] = {
        "role": options(*PROBE_ROLES),
        "layers": Constraint(
            lambda v: (
                v is None
                or (
                    isinstance(v, (list, tuple))
                    and len(v) > 0
                    and all(isinstance(n, str) and n for n in v)
                )
            ),
            "None or a non-empty list of layer names",
        ),
        "probes": Constraint(
            lambda v: (
                isinstance(v, (list, tuple))
                and len(v) > 0
                and len(set(v)) == len(v)
                and all(p in PROBE_KINDS for p in v)
            ),
            "a non-empty list of distinct probe kinds from 'logistic', 'mlp'",
        ),
        "folds": interval(2, 20, closed="both", kind=int),
        "max_records": interval(10, 10**7, closed="both", kind=int),
        "max_features": interval(1, 10**5, closed="both", kind=int),
        "embedding_points": interval(0, 5000, closed="both", kind=int),
    }

    def __init__(
        self,
        *,
        role: str = "test",
        layers: Sequence[str] | None = None,
        probes: Sequence[str] = PROBE_KINDS,
        folds: int = 5,
        max_records: int = 2000,
        max_features: int = 128,
        embedding_points: int = 500,
    ) -> None:
        self.role = role
        self.layers = layers
        self.probes = probes
        self.folds = folds
        self.max_records = max_records
        self.max_features = max_features
        self.embedding_points = embedding_points
        self.validate()

    def probe_layers(self, ctx: AuditContext) -> list[str]:
        module = _module(ctx)
        if self.layers is not None:
            return list(self.layers)
        names = [n for n, child in module.named_children() if not isinstance(child, _PASS_THROUGH)]
        if not names:
            raise ConfigError(
                f"layers: {type(module).__name__} has no child layers to probe; name the "
                "layers to probe (audits.layers)"
            )
        return names

    def probe(self, kind: str, n_features: int, n_train: int, seed: int) -> Any:
        steps: list[tuple[str, Any]] = [("scale", StandardScaler())]
        width = min(self.max_features, n_train)
        if n_features > width:
            steps.append(("pca", PCA(width, random_state=seed)))
        if kind == "logistic":
            steps.append(("probe", LogisticRegression(max_iter=1000)))
        else:
            steps.append(
                (
                    "probe",
                    MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, random_state=seed),
                )
            )
        return Pipeline(steps)

    def run(self, ctx: AuditContext) -> AuditResult:
        names = self.probe_layers(ctx)
        records = ctx.records(self.role)
        rng = ctx.rng(f"{self.audit_id()}/records")
        index = np.arange(len(records))
        if len(index) > self.max_records:
            index = np.sort(rng.choice(len(index), self.max_records, replace=False))
        values, codes = np.unique(
            np.asarray(records.columns["sensitive"])[index].astype(str), return_inverse=True
        )
        counts = np.bincount(codes, minlength=len(values))
        dropped = [str(v) for v, c in zip(values, counts, strict=True) if c < self.folds]
        keep = counts[codes] >= self.folds
        index, codes = index[keep], codes[keep]
        kept_values = [str(v) for v, c in zip(values, counts, strict=True) if c >= self.folds]
        codes = np.unique(codes, return_inverse=True)[1]
        x, task = records.x[index], records.y[index]
        details: dict[str, Any] = {
            "role": self.role,
            "n_records": len(index),
            "sensitive_values": kept_values,
            "dropped_values": dropped,
            "probes": list(self.probes),
            "folds": self.folds,
            "layers": names,
        }
        n, m = len(codes), len(kept_values)
        majority = proportion(int(np.bincount(codes).max()) if n else 0, n, ctx.confidence)
        if m < 2:
            reason = (
                f"the sensitive column has {m} value(s) with at least {self.folds} records "
                f"(folds) in data.{self.role}; a probe needs two"
            )
            metrics = {
                k: Estimate.not_estimable(reason, n, ctx.confidence) for k in self.metric_names()
            }
            metrics["baseline_accuracy"] = majority
            return AuditResult(name=self.name, metrics=metrics, details=details)

        trained = ctx.target.features(x, names)  # type: ignore[attr-defined]
        twin, not_reset = random_twin(_module(ctx), int(ctx.rng("random-twin").integers(2**31)))
        details["parameters_not_reinitialised"] = not_reset
        twin_target = TorchTarget(
            twin,
            num_classes=ctx.target.num_classes,
            output=ctx.target.output,
            batch_size=getattr(ctx.target, "batch_size", 512),
            device=getattr(ctx.target, "device", "cpu"),
        )
        random = twin_target.features(x, names)
        details["layer_widths"] = {k: int(v.shape[1]) for k, v in trained.items()}

        seed = int(ctx.rng(f"{self.audit_id()}/probes").integers(2**31))
        folds = StratifiedKFold(self.folds, shuffle=True, random_state=seed)
        resamples = ctx.rng(f"{self.audit_id()}/bootstrap").integers(0, n, (AUC_RESAMPLES, n))
        scorer = _Scorer(codes, resamples, ctx.confidence)

        def fit(features: np.ndarray, kind: str) -> np.ndarray:
            return _held_out_probabilities(
                self.probe(kind, features.shape[1], n - -(-n // self.folds), seed),
                features,
                codes,
                folds,
            )

        groups: dict[str, dict[str, Estimate]] = {}
        correct: dict[tuple[str, str, str], np.ndarray] = {}  # (layer, probe, weights)
        proba: dict[tuple[str, str, str], np.ndarray] = {}
        total = (1 + 2 * len(names)) * len(self.probes)
        with ctx.progress.task(self.audit_id(), total=total) as step:
            flat = x.reshape(n, -1).astype(np.float64)
            groups["input"] = {}
            for kind in self.probes:
                p = fit(flat, kind)
                proba[("input", kind, "trained")] = p
                correct[("input", kind, "trained")] = p.argmax(axis=1) == codes
                groups["input"][f"{kind}_accuracy"] = scorer.accuracy(p)
                groups["input"][f"{kind}_auc"] = scorer.auc(p)
                step(1)
            for layer in names:
                g = groups[f"layer={layer}"] = {}
                for kind in self.probes:
                    for weights, feats in (("trained", trained[layer]), ("random", random[layer])):
                        p = fit(feats, kind)
                        proba[(layer, kind, weights)] = p
                        correct[(layer, kind, weights)] = p.argmax(axis=1) == codes
                        prefix = "" if weights == "trained" else "random_"
                        g[f"{prefix}{kind}_accuracy"] = scorer.accuracy(p)
                        g[f"{prefix}{kind}_auc"] = scorer.auc(p)
                        step(1)
                    g[f"{kind}_gain"] = scorer.gain(
                        correct[(layer, kind, "trained")], correct[(layer, kind, "random")], 1
                    )

        best_input = max(self.probes, key=lambda k: correct[("input", k, "trained")].sum())
        best_layer, best_probe = max(
            ((layer, kind) for layer in names for kind in self.probes),
            key=lambda lk: correct[(lk[0], lk[1], "trained")].sum(),
        )
        gains = {
            (layer, kind): correct[(layer, kind, "trained")].mean()
            - correct[(layer, kind, "random")].mean()
            for layer in names
            for kind in self.probes
        }
        gain_layer, gain_probe = max(gains, key=lambda lk: gains[lk])
        comparisons = len(gains)
        gain = scorer.gain(
            correct[(gain_layer, gain_probe, "trained")],
            correct[(gain_layer, gain_probe, "random")],
            comparisons,
        )
        details |= {
            "best_layer": best_layer,
            "best_probe": best_probe,
            "gain_layer": gain_layer,
            "gain_probe": gain_probe,
            "gain_comparisons": comparisons,
        }
        metrics = {
            "baseline_accuracy": majority,
            "input_probe_accuracy": groups["input"][f"{best_input}_accuracy"],
            "input_probe_auc": groups["input"][f"{best_input}_auc"],
            "probe_accuracy": groups[f"layer={best_layer}"][f"{best_probe}_accuracy"],
            "probe_auc": groups[f"layer={best_layer}"][f"{best_probe}_auc"],
            "random_probe_accuracy": groups[f"layer={best_layer}"][f"random_{best_probe}_accuracy"],
            "random_probe_auc": groups[f"layer={best_layer}"][f"random_{best_probe}_auc"],
            "probe_gain": gain,
        }
        arrays = {
            "record_index": index.astype(np.int64),
            "sensitive": codes.astype(np.int64),
            "predicted": proba[(gain_layer, gain_probe, "trained")].argmax(axis=1).astype(np.int64),
        }
        if self.embedding_points:
            arrays |= _embedding(
                trained[gain_layer], task, codes, self.embedding_points, ctx.rng("embedding")
            )
            details["embedding_layer"] = gain_layer
        return AuditResult(
            name=self.name, metrics=metrics, groups=groups, arrays=arrays, details=details
        )


def _module(ctx: AuditContext) -> nn.Module:
    module = getattr(ctx.target, "module", None)
    if not isinstance(module, nn.Module):
        raise TargetError(
            f"target: {ctx.target.description} gives no torch module, so no random-weights "
            "twin can be built; use a torch target"
        )
    return module


def random_twin(module: nn.Module, seed: int) -> tuple[nn.Module, int]:
    """The same architecture with fresh random weights: a deep copy of ``module`` in which
    every submodule that has ``reset_parameters`` is re-initialised (batch-norm statistics
    included) from a generator seeded with ``seed``; ``module`` itself is untouched.

    Returns:
        The copy (in eval mode) and the number of parameter tensors no submodule could reset
        (they keep their trained values).

    Example:
        >>> twin, kept = random_twin(nn.Linear(3, 2), 0)
        >>> kept
        0
    """
    twin = copy.deepcopy(module)
    reset: set[int] = set()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for sub in twin.modules():
            if callable(getattr(sub, "reset_parameters", None)):
                sub.reset_parameters()
                reset.update(id(p) for p in sub.parameters())
    kept = sum(1 for p in twin.parameters() if id(p) not in reset)
    return twin.eval(), kept


def _held_out_probabilities(
    probe: Any, features: np.ndarray, codes: np.ndarray, folds: StratifiedKFold
) -> np.ndarray:
    """Each record's class probabilities from a probe fitted on the other folds."""
    with threadpool_limits(1), warnings.catch_warnings():
        # an MLP probe stopped at its iteration cap is still a valid (weaker) probe
        warnings.simplefilter("ignore", ConvergenceWarning)
        return np.asarray(
            cross_val_predict(probe, features, codes, cv=folds, method="predict_proba"),
            dtype=np.float64,
        )


class _Scorer:
    """Accuracy, AUC and paired gains of held-out probe predictions of one attribute, with
    the bootstrap resamples shared by every probe (so intervals are comparable)."""

    def __init__(self, codes: np.ndarray, resamples: np.ndarray, confidence: float) -> None:
        self.codes, self.confidence = codes, confidence
        self.weights = np.zeros((len(resamples), len(codes)))
        np.add.at(self.weights, (np.arange(len(resamples))[:, None], resamples), 1.0)

    def accuracy(self, proba: np.ndarray) -> Estimate:
        hits = int((proba.argmax(axis=1) == self.codes).sum())
        return proportion(hits, len(self.codes), self.confidence)

    def auc(self, proba: np.ndarray) -> Estimate:
        value = macro_auc(self.codes, proba)
        draws = macro_auc(self.codes, proba, self.weights)
        draws = draws[np.isfinite(draws)]
        if not np.isfinite(value) or len(draws) < len(self.weights) // 2:
            return Estimate.not_estimable(
                "too few records of some value for an AUC", len(self.codes), self.confidence
            )
        tail = (1 - self.confidence) / 2
        low, high = np.quantile(draws, [tail, 1 - tail])
        return Estimate(float(value), (float(low), float(high)), len(self.codes), self.confidence)

    def gain(self, trained: np.ndarray, random: np.ndarray, comparisons: int) -> Estimate:
        """Mean paired difference of correctness, with a normal interval whose coverage is
        Bonferroni-adjusted for ``comparisons``."""
        diff = trained.astype(np.float64) - random.astype(np.float64)
        n = len(diff)
        mean = float(diff.mean())
        z = float(norm.ppf(1 - (1 - self.confidence) / (2 * comparisons)))
        half = z * float(diff.std(ddof=1)) / np.sqrt(n) if n > 1 else np.inf
        return Estimate(mean, (max(-1.0, mean - half), min(1.0, mean + half)), n, self.confidence)


def macro_auc(codes: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """Macro-averaged one-vs-rest ROC AUC (the positive-class AUC for two values).

    With ``weights`` of shape ``(B, n)`` (each record's count in each of ``B`` bootstrap
    resamples), one AUC per resample, all from one sort per class (Mann–Whitney with ties
    counted half); without, a float that agrees with scikit-learn's
    ``roc_auc_score(codes, proba, multi_class="ovr", average="macro")``. NaN where some value
    has no record, or every record.
    """
    w = np.ones((1, len(codes))) if weights is None else np.asarray(weights, dtype=np.float64)
    m = proba.shape[1]
    classes = [1] if m == 2 else list(range(m))
    aucs = np.stack([_weighted_auc(proba[:, k], codes == k, w) for k in classes])
    with np.errstate(invalid="ignore"):
        out = aucs.mean(axis=0)
    return float(out[0]) if weights is None else out


def _weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    order = np.argsort(score, kind="stable")
    s, pos, w = score[order], positive[order], weights[:, order]
    w_pos, w_neg = w * pos, w * ~pos
    before = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w_neg, axis=1)], axis=1)
    starts = np.concatenate([[0], np.flatnonzero(s[1:] != s[:-1]) + 1])
    ends = np.concatenate([starts[1:], [len(s)]])
    group = np.repeat(np.arange(len(starts)), ends - starts)
    below = before[:, starts][:, group]
    tied = (before[:, ends] - before[:, starts])[:, group]
    wins = (w_pos * (below + 0.5 * tied)).sum(axis=1)
    pairs = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def _embedding(
    features: np.ndarray,
    task: np.ndarray,
    sensitive: np.ndarray,
    points: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """2-D PCA and t-SNE coordinates of at most ``points`` records' features (standardised)."""
    n = len(features)
    pick = np.sort(rng.choice(n, min(points, n), replace=False))
    z = StandardScaler().fit_transform(features[pick])
    out = {
        "embedding_index": pick.astype(np.int64),
        "embedding_task": np.asarray(task)[pick].astype(np.int64),
        "embedding_sensitive": sensitive[pick].astype(np.int64),
    }
    if len(pick) < 5 or z.shape[1] < 2:
        return out
    seed = int(rng.integers(2**31))
    with threadpool_limits(1):
        out["embedding_pca"] = PCA(2, random_state=seed).fit_transform(z)
        perplexity = float(min(30.0, (len(pick) - 1) / 3))
        out["embedding_tsne"] = TSNE(
            2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(z)
    return out
