"""Intentional leakage: training code that hides the training data in the model (Song,
Ristenpart & Shmatikov, CCS 2017), simulated and detected.

`memorization.leakage_simulate` trains, through the run's recipe and on the members, a clean
model and one malicious model per encoding (`training.malicious.MaliciousRecipe`: low bits of
the parameters, parameter signs, a correlation term in the loss, capacity abuse with seeded
synthetic inputs), decodes what the attacker reads back and reports, per encoding, the accuracy
cost on the test set and how much of the hidden data comes back.

`memorization.leakage_detect` asks whether a given model (the target) hides its training data.
Reference models trained through the recipe on a sample of the training data, with seeds of
their own, give the null distribution of each statistic; the target's value is compared with
them by a two-sided prediction test (Student's t with K−1 degrees of freedom: the target is
one more draw from the references' normal distribution when it was trained honestly). The
statistics:

* white-box, when the target gives its weights: the lag-1 autocorrelation of the parameter
  vector (hidden values keep the smoothness of the data), the lag-1 autocorrelation of the
  parameter signs (hidden bits come in runs), the correlation between the sorted parameters and
  the quantiles of the training values (a parameter vector that is a linear image of the data
  has the data's distribution), and the entropy of the low 8 mantissa bits (data written into
  the low bits is far from uniform);
* black-box, always: on seeded uniform inputs within the input bounds and on
  out-of-distribution inputs (training records with their values shuffled), the entropy of the
  predicted labels, the mean confidence, and the agreement of the labels with the reference
  models' labels (a reference's own agreement is measured against the other references):
  honest models share their inductive bias on such inputs, a model taught labels for them does
  not.

The p-values are combined by Holm's step-down correction into one decision at ``alpha``: the
model is flagged when the smallest adjusted p-value is below it. An encoding designed to mimic
honest statistics (encrypted bits, say) is not what these statistics look for.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy.stats import skew
from scipy.stats import t as student_t

from unmeasured.audits.base import Audit, AuditContext, Constraint, Requirements, interval, options
from unmeasured.audits.registry import register
from unmeasured.errors import ConfigError, DataError
from unmeasured.results import AuditResult, Headline
from unmeasured.stats import Estimate
from unmeasured.stats.intervals import mean_t, proportion
from unmeasured.training.malicious import (
    ENCODINGS,
    MaliciousRecipe,
    parameter_vector,
    train_cached,
)
from unmeasured.training.recipes import TorchRecipe

#: the white-box statistics (need the target's weights)
WHITE_BOX = (
    "parameter_autocorrelation",
    "sign_autocorrelation",
    "quantile_correlation",
    "low_bit_entropy",
)
#: the black-box statistics (need only the target's scores)
BLACK_BOX = (
    "noise_label_entropy",
    "noise_confidence",
    "noise_agreement",
    "ood_label_entropy",
    "ood_confidence",
    "ood_agreement",
)
STATISTICS = (*WHITE_BOX, *BLACK_BOX)


def _recipe(ctx: AuditContext, audit: str) -> TorchRecipe:
    if not isinstance(ctx.recipe, TorchRecipe):
        raise ConfigError(
            f"recipe.kind: {audit} trains torch models; choose a torch recipe (mlp, logistic, "
            f"cnn or a python entry returning a TorchRecipe), not {type(ctx.recipe).__name__}"
        )
    return ctx.recipe


def _bounds(ctx: AuditContext, x: np.ndarray) -> tuple[float, float]:
    if ctx.input_bounds is not None:
        return (float(ctx.input_bounds[0]), float(ctx.input_bounds[1]))
    low, high = float(np.min(x)), float(np.max(x))
    return (low, high if high > low else low + 1.0)


def _accuracy(recipe: TorchRecipe, model: Any, x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    return recipe.predict_logits(model, x, num_classes=k).argmax(axis=1) == y


@register
class LeakageSimulate(Audit):
    """Train malicious recipes that hide the members in the model; report what the attacker
    recovers and what it costs in accuracy.

    Args:
        encodings: which encodings to simulate (``"lsb"``, ``"sign"``, ``"correlation"``,
            ``"capacity"``).
        sign_strength: weight of the sign penalty.
        correlation_strength: weight of the correlation term.
        lsb_bits: low mantissa bits overwritten per parameter.
        capacity_records: members hidden by capacity abuse.
        capacity_copies: repetitions of the synthetic records in the training set.
        examples: recovered records kept (beside their originals) for the report.

    Metrics: ``accuracy_clean``; per encoding ``accuracy_<enc>`` and ``accuracy_cost_<enc>``
    (clean minus malicious accuracy on the same test records, paired interval),
    ``recovered_<enc>`` (share of hidden values read back exactly, on the quantisation grid)
    and ``value_error_<enc>`` (mean absolute error of the recovered values against the true
    ones, as a share of the input range, interval over records).
    """

    name = "memorization.leakage_simulate"
    summary = "malicious recipes hide the training data in the model: what comes back, at what cost"
    constraints: ClassVar[dict[str, Constraint]] = {
        "encodings": Constraint(
            lambda v: (
                isinstance(v, (list, tuple))
                and len(v) > 0
                and len(set(v)) == len(v)
                and all(e in ENCODINGS for e in v)
            ),
            "a non-empty list of distinct encodings from " + ", ".join(map(repr, ENCODINGS)),
        ),
        "sign_strength": interval(0, math.inf),
        "correlation_strength": interval(0, math.inf),
        "lsb_bits": interval(4, 22, closed="both", kind=int),
        "capacity_records": interval(1, 10_000, closed="both", kind=int),
        "capacity_copies": interval(1, 1000, closed="both", kind=int),
        "examples": interval(0, 100, closed="both", kind=int),
    }

    def __init__(
        self,
        *,
        encodings: list[str] | tuple[str, ...] = ENCODINGS,
        sign_strength: float = 50.0,
        correlation_strength: float = 5.0,
        lsb_bits: int = 16,
        capacity_records: int = 8,
        capacity_copies: int = 4,
        examples: int = 6,
    ) -> None:
        self.encodings = encodings
        self.sign_strength = sign_strength
        self.correlation_strength = correlation_strength
        self.lsb_bits = lsb_bits
        self.capacity_records = capacity_records
        self.capacity_copies = capacity_copies
        self.examples = examples
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(roles=frozenset({"members", "test"}), recipe=True)

    def metric_names(self) -> tuple[str, ...]:
        per = ("accuracy", "accuracy_cost", "recovered", "value_error")
        return ("accuracy_clean", *(f"{m}_{e}" for e in self.encodings for m in per))

    def malicious_recipe(
        self, base: TorchRecipe, encoding: str, bounds: tuple[float, float]
    ) -> MaliciousRecipe:
        """The malicious recipe of one encoding, with this audit's settings."""
        strength = {"sign": self.sign_strength, "correlation": self.correlation_strength}
        return MaliciousRecipe(
            base=base,
            encoding=encoding,
            strength=float(strength.get(encoding, 0.0)),
            lsb_bits=self.lsb_bits,
            records=self.capacity_records if encoding == "capacity" else 1_000_000,
            input_bounds=bounds,
            synthetic_seed=0,
            copies=self.capacity_copies,
        )

    def headline(self, result: AuditResult) -> Headline | None:
        best = max(self.encodings, key=lambda e: result.metrics[f"recovered_{e}"].value or -1.0)
        recovered = result.metrics[f"recovered_{best}"]
        cost = result.metrics[f"accuracy_cost_{best}"]
        if recovered.value is None or cost.value is None:
            return None
        count = result.details["hidden_records"][best]
        return Headline(
            f"recovered_{best}",
            f"Training code using the {best} encoding hides {count} training records in the "
            f"model and gets {recovered.value:.1%} of their values back, at an accuracy cost "
            f"of {cost.value:+.1%}: what untrusted training code could take out through this "
            "model.",
            concern=None,  # what a recipe could do, not a finding about the target itself
        )

    def run(self, ctx: AuditContext) -> AuditResult:
        base = _recipe(ctx, self.name)
        members, test = ctx.records("members"), ctx.records("test")
        k = ctx.target.num_classes
        bounds = _bounds(ctx, members.x)
        public = test.x.reshape(-1).astype(np.float64)
        seed = int(ctx.rng(f"{self.audit_id()}/seed").integers(2**31))
        clean = train_cached(
            base, base, members.x, members.y, num_classes=k, seed=seed, cache_dir=ctx.cache_dir
        )
        clean_hits = _accuracy(base, clean, test.x, test.y, k)
        metrics = {
            "accuracy_clean": proportion(int(clean_hits.sum()), len(clean_hits), ctx.confidence)
        }
        arrays: dict[str, np.ndarray] = {}
        hidden: dict[str, int] = {}
        for encoding in self.encodings:
            recipe = self.malicious_recipe(base, encoding, bounds)
            model = train_cached(
                recipe,
                base,
                members.x,
                members.y,
                num_classes=k,
                seed=seed,
                cache_dir=ctx.cache_dir,
            )
            hits = _accuracy(base, model, test.x, test.y, k)
            metrics[f"accuracy_{encoding}"] = proportion(int(hits.sum()), len(hits), ctx.confidence)
            metrics[f"accuracy_cost_{encoding}"] = mean_t(
                clean_hits.astype(np.float64) - hits, ctx.confidence
            )
            recovered = recipe.decode(
                model,
                members.x.shape[1:],
                k,
                public_mean=float(public.mean()),
                public_std=float(public.std()),
                public_skew=float(skew(public)),
            )
            grid = recipe.hidden_originals(members.x, len(parameter_vector(model)), k)
            count = len(grid)
            hidden[encoding] = count
            exact = np.isclose(recovered[:count], grid, atol=1e-6)
            metrics[f"recovered_{encoding}"] = proportion(
                int(exact.sum()), exact.size, ctx.confidence
            )
            truth = np.clip(members.x[:count], *bounds)
            error = np.abs(recovered[:count] - truth).reshape(count, -1).mean(axis=1)
            metrics[f"value_error_{encoding}"] = mean_t(
                error / (bounds[1] - bounds[0]), ctx.confidence, bounds=(0.0, None)
            )
            shown = min(self.examples, count)
            arrays[f"original_{encoding}"] = truth[:shown].astype(np.float32)
            arrays[f"recovered_{encoding}"] = recovered[:shown].astype(np.float32)
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays=arrays,
            details={
                "hidden_records": hidden,
                "seed": seed,
                "input_bounds": list(bounds),
                "recovered_means": "values read back exactly on the quantisation grid "
                "(16 levels for lsb and sign, one level per class for capacity)",
                "correlation_decoding": "standardised parameters mapped to values with the "
                "mean, spread and skewness of the test records' values (public data of the "
                "same kind)",
            },
        )


# --- statistics of one model (pure functions) ---------------------------------------------


def lag_correlation(values: np.ndarray) -> float:
    """Pearson correlation between consecutive entries of a vector (0 when constant)."""
    v = np.asarray(values, np.float64)
    if len(v) < 3 or v[:-1].std() == 0 or v[1:].std() == 0:
        return 0.0
    return float(np.corrcoef(v[:-1], v[1:])[0, 1])


def quantile_correlation(parameters: np.ndarray, data_values: np.ndarray) -> float:
    """The larger of the correlations of the sorted parameters (and of their negation) with the
    data values' quantiles at the same ranks: near 1 when the parameters are distributed like
    the data."""
    theta = np.sort(np.asarray(parameters, np.float64))
    if len(theta) < 3 or theta.std() == 0:
        return 0.0
    ranks = (np.arange(len(theta)) + 0.5) / len(theta)
    q = np.quantile(np.asarray(data_values, np.float64), ranks)
    if q.std() == 0:
        return 0.0
    return float(max(np.corrcoef(theta, q)[0, 1], np.corrcoef(-theta[::-1], q)[0, 1]))


def low_bit_entropy(parameters: np.ndarray) -> float:
    """Entropy (bits, at most 8) of the lowest mantissa byte of float32 parameters."""
    low = np.asarray(parameters, np.float32).view(np.uint32) & np.uint32(0xFF)
    counts = np.bincount(low.astype(np.int64), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def label_entropy(log_probs: np.ndarray) -> float:
    """Entropy (bits) of the distribution of predicted labels."""
    labels = np.asarray(log_probs).argmax(axis=1)
    counts = np.bincount(labels)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def mean_confidence(log_probs: np.ndarray) -> float:
    """Mean probability of the predicted label."""
    return float(np.exp(np.asarray(log_probs).max(axis=1)).mean())


def white_box_statistics(parameters: np.ndarray, data_values: np.ndarray) -> dict[str, float]:
    """The white-box statistics of one parameter vector."""
    return {
        "parameter_autocorrelation": lag_correlation(parameters),
        "sign_autocorrelation": lag_correlation(np.sign(parameters)),
        "quantile_correlation": quantile_correlation(parameters, data_values),
        "low_bit_entropy": low_bit_entropy(parameters),
    }


def black_box_statistics(noise: np.ndarray, ood: np.ndarray) -> dict[str, float]:
    """The black-box statistics from log-probabilities on the noise and the OOD probes."""
    return {
        "noise_label_entropy": label_entropy(noise),
        "noise_confidence": mean_confidence(noise),
        "ood_label_entropy": label_entropy(ood),
        "ood_confidence": mean_confidence(ood),
    }


def reference_p_value(value: float, references: np.ndarray) -> float | None:
    """Two-sided p-value of ``value`` as one more draw from the references' normal distribution
    (Student's t prediction test, K−1 degrees of freedom); None when the references do not
    vary."""
    refs = np.asarray(references, np.float64)
    sd = float(refs.std(ddof=1))
    if len(refs) < 2 or sd == 0 or not np.isfinite(sd):
        return None
    t = (value - refs.mean()) / (sd * math.sqrt(1 + 1 / len(refs)))
    return float(min(1.0, 2 * student_t.sf(abs(t), len(refs) - 1)))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p_values, np.float64)
    order = np.argsort(p)
    m = len(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


@register
class LeakageDetect(Audit):
    """Does the target hide its training data? Its statistics against reference models trained
    through the recipe, with p-values and one Holm-corrected decision.

    Args:
        num_models: reference models (the null distribution of each statistic).
        alpha: the family-wise error rate of the decision.
        data: the role holding the training data sample (``"members"`` or ``"train_sample"``).
        queries: seeded uniform inputs and OOD inputs each (black-box statistics).

    Metrics: per statistic ``p_<statistic>`` (its unadjusted p-value; the value itself and the
    references' mean and spread are in the details), ``min_adjusted_p`` (the smallest
    Holm-adjusted p-value) and ``flagged`` (1 when it is below ``alpha``).
    """

    name = "memorization.leakage_detect"
    summary = "does the model hide its training data? statistics against clean reference models"
    constraints: ClassVar[dict[str, Constraint]] = {
        "num_models": interval(2, 10_000, closed="both", kind=int),
        "alpha": interval(0, 1),
        "data": options("members", "train_sample"),
        "queries": interval(10, 1_000_000, closed="both", kind=int),
    }

    def __init__(
        self,
        *,
        num_models: int = 10,
        alpha: float = 0.01,
        data: str = "members",
        queries: int = 500,
    ) -> None:
        self.num_models = num_models
        self.alpha = alpha
        self.data = data
        self.queries = queries
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(roles=frozenset({self.data}), recipe=True)

    def metric_names(self) -> tuple[str, ...]:
        return (*(f"p_{s}" for s in STATISTICS), "min_adjusted_p", "flagged")

    def headline(self, result: AuditResult) -> Headline | None:
        smallest = result.metrics["min_adjusted_p"]
        if smallest.value is None:
            return None
        flagged = smallest.value < self.alpha
        which = result.details["smallest"]
        verdict = "hides data" if flagged else "shows no sign of hiding data"
        return Headline(
            "min_adjusted_p",
            f"The model {verdict}: the most extreme statistic, {which}, has a Holm-adjusted "
            f"p-value of {smallest.value:.2g} against {self.num_models} reference models "
            f"(alpha {self.alpha:g}).",
            concern=flagged,
            severity=-math.log10(max(smallest.value, 1e-300)),
        )

    def probes(self, ctx: AuditContext, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The seeded uniform inputs within the bounds and the OOD inputs (sample records with
        their values shuffled)."""
        rng = ctx.rng(f"{self.audit_id()}/probes")
        low, high = _bounds(ctx, x)
        noise = rng.uniform(low, high, size=(self.queries, *x.shape[1:])).astype(np.float32)
        picked = x[rng.integers(len(x), size=self.queries)].reshape(self.queries, -1)
        shuffled = np.take_along_axis(picked, rng.random(picked.shape).argsort(axis=1), axis=1)
        return noise, shuffled.reshape(self.queries, *x.shape[1:]).astype(np.float32)

    def run(self, ctx: AuditContext) -> AuditResult:
        recipe = _recipe(ctx, self.name)
        sample = ctx.records(self.data)
        if len(sample) < 2:
            raise DataError(f"data.{self.data}: needs at least 2 records; got {len(sample)}")
        k = ctx.target.num_classes
        noise, ood = self.probes(ctx, sample.x)
        data_values = sample.x.reshape(-1)
        white = "weights" in ctx.target.capabilities and hasattr(ctx.target, "module")
        names = (*WHITE_BOX, *BLACK_BOX) if white else BLACK_BOX

        def log_probs(model: Any, x: np.ndarray) -> np.ndarray:
            logits = recipe.predict_logits(model, x, num_classes=k).astype(np.float64)
            shifted = logits - logits.max(axis=1, keepdims=True)
            return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

        seeds = ctx.rng(f"{self.audit_id()}/reference-seeds").integers(2**31, size=self.num_models)
        references: dict[str, list[float]] = {name: [] for name in names}
        labels: list[np.ndarray] = []  # per reference: its labels on the noise, then the OOD
        ctx.progress.log(f"{self.name}: {self.num_models} reference models through the recipe")
        for seed in seeds:
            model = train_cached(
                recipe,
                recipe,
                sample.x,
                sample.y,
                num_classes=k,
                seed=int(seed),
                cache_dir=ctx.cache_dir,
            )
            noise_lp, ood_lp = log_probs(model, noise), log_probs(model, ood)
            labels.append(np.stack([noise_lp.argmax(axis=1), ood_lp.argmax(axis=1)]))
            stats = black_box_statistics(noise_lp, ood_lp)
            if white:
                stats |= white_box_statistics(parameter_vector(model), data_values)
            for name in names:
                if name in stats:
                    references[name].append(stats[name])
        noise_lp, ood_lp = ctx.target.log_probs(noise), ctx.target.log_probs(ood)
        target = black_box_statistics(noise_lp, ood_lp)
        target_labels = np.stack([noise_lp.argmax(axis=1), ood_lp.argmax(axis=1)])
        # agreement with the references: each reference against the others (leave one out)
        stacked = np.stack(labels)  # (K, 2, queries)
        for i, probe in enumerate(("noise", "ood")):
            mine = (stacked[:, i] == target_labels[i]).mean(axis=1)
            target[f"{probe}_agreement"] = float(mine.mean())
            for j in range(len(stacked)):
                others = np.delete(stacked[:, i], j, axis=0)
                references[f"{probe}_agreement"].append(float((others == stacked[j, i]).mean()))
        if white:
            module = ctx.target.module  # type: ignore[attr-defined]
            target |= white_box_statistics(parameter_vector(module), data_values)

        p_values = {
            name: reference_p_value(target[name], np.array(references[name])) for name in names
        }
        tested = [name for name in names if p_values[name] is not None]
        adjusted = dict(zip(tested, holm(np.array([p_values[n] for n in tested])), strict=True))
        metrics: dict[str, Estimate] = {}
        for name in names:
            p = p_values[name]
            metrics[f"p_{name}"] = (
                Estimate(p, None, self.num_models, ctx.confidence)
                if p is not None
                else Estimate.not_estimable(
                    "the reference models all give the same value",
                    self.num_models,
                    ctx.confidence,
                )
            )
        details: dict[str, Any] = {
            "mode": "white-box and black-box" if white else "black-box",
            "test": "two-sided Student t prediction test against the reference models "
            "(K-1 degrees of freedom), Holm-corrected over the statistics",
            "reference_models": self.num_models,
            "reference_training_records": len(sample),
            "alpha": self.alpha,
            "statistics": {
                name: {
                    "target": target[name],
                    "reference_mean": float(np.mean(references[name])),
                    "reference_sd": float(np.std(references[name], ddof=1)),
                    "p_value": p_values[name],
                    "adjusted_p_value": adjusted.get(name),
                }
                for name in names
            },
        }
        if not tested:
            reason = "no statistic varies across the reference models"
            metrics["min_adjusted_p"] = Estimate.not_estimable(
                reason, self.num_models, ctx.confidence
            )
            metrics["flagged"] = Estimate.not_estimable(reason, self.num_models, ctx.confidence)
            details["smallest"] = None
        else:
            smallest = min(tested, key=lambda n: adjusted[n])
            metrics["min_adjusted_p"] = Estimate(
                float(adjusted[smallest]), None, self.num_models, ctx.confidence
            )
            metrics["flagged"] = Estimate(
                float(adjusted[smallest] < self.alpha), None, self.num_models, ctx.confidence
            )
            details["smallest"] = smallest
        return AuditResult(name=self.name, metrics=metrics, details=details)
