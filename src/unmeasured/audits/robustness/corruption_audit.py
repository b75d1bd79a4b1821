"""`robustness.corruptions`: accuracy under ordinary corruptions (noise, blur, weather-like,
digital) at five severities, for image records ``(C, H, W)`` with the image corruptions and for
flat records with the tabular ones (`corruptions.py`); and `robustness.bn_adaptation`: how much
of it re-estimating batch-norm statistics on the corrupted inputs recovers (Schneider et al.
2020), measured on a copy of the model, never on the target.

Averages over corruption types are not proportions of independent trials (the same record is
counted once per type), so their intervals come from a bootstrap over records
(``scipy.stats.bootstrap``); a single type at a single severity is a plain proportion with a
Clopper–Pearson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from scipy.stats import bootstrap

from unmeasured.audits.base import Audit, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.registry import register
from unmeasured.audits.robustness.base import RobustnessAudit, test_records
from unmeasured.audits.robustness.bn_adaptation import adapt_batchnorm
from unmeasured.audits.robustness.corruptions import (
    IMAGE_CORRUPTIONS,
    SEVERITIES,
    TABULAR_CORRUPTIONS,
    corrupt_images,
    corrupt_tabular,
)
from unmeasured.errors import ConfigError, one_of
from unmeasured.results import AuditResult, Headline
from unmeasured.stats.estimate import Estimate

_ALL = (*IMAGE_CORRUPTIONS, *TABULAR_CORRUPTIONS)


@register
class Corruptions(RobustnessAudit):
    """Accuracy of the target on corrupted copies of the test records.

    Args:
        corruptions: the corruption types (default: every image type for image records, every
            tabular type for flat records).
        severities: the severities, 1 (mild) to 5 (severe).
        max_records, batch_size: as for every robustness audit.

    Metrics: ``clean_accuracy``; ``accuracy_at_<severity>`` (mean over types); per type
    ``accuracy_<type>`` (mean over severities); ``mean_corruption_error`` (mean error over types
    and severities) and ``relative_corruption_error`` (that minus the clean error).
    """

    name = "robustness.corruptions"
    summary = "accuracy under noise, blur, weather-like and digital corruptions, 5 severities"
    variant_params: ClassVar[tuple[str, ...]] = ()
    constraints: ClassVar[dict[str, Constraint]] = {
        "corruptions": Constraint(
            lambda v: (
                v is None
                or (isinstance(v, (list, tuple)) and len(v) > 0 and all(c in _ALL for c in v))
            ),
            f"None or a non-empty list of {one_of(_ALL)}",
        ),
        "severities": Constraint(
            lambda v: (
                isinstance(v, (list, tuple)) and len(v) > 0 and all(s in SEVERITIES for s in v)
            ),
            "a non-empty list of severities 1 to 5",
        ),
        "max_records": interval(1, 10**9, closed="both", kind=int),
        "batch_size": interval(1, 10**9, closed="both", kind=int),
    }

    def __init__(
        self,
        *,
        corruptions: Sequence[str] | None = None,
        severities: Sequence[int] = SEVERITIES,
        max_records: int = 1000,
        batch_size: int = 256,
    ) -> None:
        self.corruptions = corruptions
        self.severities = severities
        self.max_records = max_records
        self.batch_size = batch_size
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset({"labels"}), roles=frozenset({"test"}), input_bounds=True
        )

    def metric_names(self) -> tuple[str, ...]:
        types = self.corruptions or _ALL
        return (
            "clean_accuracy",
            *(f"accuracy_at_{s}" for s in self.severities),
            *(f"accuracy_{t}" for t in types),
            "mean_corruption_error",
            "relative_corruption_error",
        )

    def headline(self, result: AuditResult) -> Headline | None:
        clean, worst = result.metrics["clean_accuracy"], max(self.severities)
        at = result.metrics[f"accuracy_at_{worst}"]
        if clean.value is None or at.value is None or at.ci is None:
            return None
        return Headline(
            f"accuracy_at_{worst}",
            f"At severity {worst}, corruptions bring accuracy from {clean.value:.1%} to "
            f"{at.value:.1%} [{at.ci[0]:.1%}, {at.ci[1]:.1%}] on average over types.",
            concern=at.ci[1] < clean.value,
            severity=clean.value - at.value,
        )

    def run(self, ctx: AuditContext) -> AuditResult:
        x, y, index = self.test_records(ctx)
        bounds = ctx.input_bounds
        types = corruption_types(self.corruptions, x.shape[1:])
        correct = ctx.target.predict_labels(x) == y
        # hits[t, s, i]: record i classified correctly under corruption t at severity s
        hits = np.zeros((len(types), len(self.severities), len(x)), dtype=bool)
        corrupt = Corrupter(ctx, x, "robustness/corruptions")
        with ctx.progress.task(self.audit_id(), total=hits.shape[0] * hits.shape[1]) as step:
            for t, kind in enumerate(types):
                for s, severity in enumerate(self.severities):
                    hits[t, s] = ctx.target.predict_labels(corrupt(kind, severity)) == y
                    step(1)
        metrics = {"clean_accuracy": self.estimate(correct, ctx)}
        for s, severity in enumerate(self.severities):
            metrics[f"accuracy_at_{severity}"] = self._mean(hits[:, s].mean(axis=0), ctx)
        for t, kind in enumerate(types):
            metrics[f"accuracy_{kind}"] = self._mean(hits[t].mean(axis=0), ctx)
        error = 1.0 - hits.mean(axis=(0, 1))
        metrics["mean_corruption_error"] = self._mean(error, ctx)
        metrics["relative_corruption_error"] = self._mean(error - (1.0 - correct), ctx)
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={
                "accuracy": hits.mean(axis=2),  # (types, severities)
                "severities": np.asarray(self.severities, dtype=np.int64),
                "record_index": index.astype(np.int64),
            },
            details={"corruptions": types, "n_records": len(x), "input_bounds": list(bounds or ())},
        )

    def _mean(self, per_record: np.ndarray, ctx: AuditContext) -> Estimate:
        return bootstrap_mean(per_record, ctx, self.audit_id())


def bootstrap_mean(per_record: np.ndarray, ctx: AuditContext, salt: str) -> Estimate:
    """A mean over records with a percentile-bootstrap interval over records."""
    values = np.asarray(per_record, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2 or np.all(values == values[0]):
        return Estimate(mean, (mean, mean), len(values), ctx.confidence)
    ci = bootstrap(
        (values,),
        np.mean,
        confidence_level=ctx.confidence,
        method="percentile",
        n_resamples=999,
        random_state=ctx.rng(f"{salt}/bootstrap"),
    ).confidence_interval
    return Estimate(mean, (float(ci.low), float(ci.high)), len(values), ctx.confidence)


def corruption_types(chosen: Sequence[str] | None, shape: tuple[int, ...]) -> list[str]:
    """The corruption types for records of ``shape``: the chosen ones (checked against what the
    shape allows), or every type that applies."""
    image = len(shape) == 3
    allowed = IMAGE_CORRUPTIONS if image else TABULAR_CORRUPTIONS
    types = list(chosen or allowed)
    wrong = [c for c in types if c not in allowed]
    if wrong:
        kind = "image" if image else "flat (tabular)"
        raise ConfigError(
            f"corruptions: {', '.join(wrong)} cannot corrupt {kind} records of shape "
            f"{shape}; choose {one_of(allowed)}"
        )
    return types


class Corrupter:
    """Corrupted copies of one set of records, seeded per (type, severity) from the run, so
    every audit of a run sees the same corrupted records."""

    def __init__(self, ctx: AuditContext, x: np.ndarray, salt: str) -> None:
        if ctx.input_bounds is None:  # the audits that corrupt require the bounds at preflight
            raise RuntimeError("Corrupter needs the target's input bounds")
        self.x, self.bounds = x, ctx.input_bounds
        test = ctx.records("test").x
        self.reference = torch.from_numpy(test.reshape(len(test), -1))
        self.seed = int(ctx.rng(salt).integers(2**31))

    def __call__(self, kind: str, severity: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(self.seed + 1000 * _ALL.index(kind) + severity)
        if kind in IMAGE_CORRUPTIONS:
            out = corrupt_images(
                torch.from_numpy(self.x), kind, severity, bounds=self.bounds, generator=generator
            )
        else:
            out = corrupt_tabular(
                torch.from_numpy(self.x.reshape(len(self.x), -1)),
                kind,
                severity,
                reference=self.reference,
                bounds=self.bounds,
                generator=generator,
            )
        return out.numpy().reshape(self.x.shape)


@register
class BatchNormAdaptation(Audit):
    """Accuracy under each corruption before and after re-estimating the target's batch-norm
    statistics on the corrupted records (Schneider et al., NeurIPS 2020), on a copy of the
    model: the target is never modified.

    Args:
        corruptions: the corruption types (default: every type that applies to the records).
        severity: the corruption severity, 1 to 5.
        prior_strength: N, the weight of the training statistics in pseudo-records; 0 replaces
            them, larger values mix them in as N/(N+n).
        max_records: at most this many test records (the adaptation batch).

    Metrics: ``accuracy_before`` and ``accuracy_after`` (mean over types), ``adaptation_gain``
    (their difference, with a bootstrap interval over records), and per type ``gain_<type>``.
    """

    name = "robustness.bn_adaptation"
    summary = "accuracy recovered by re-estimating BatchNorm statistics on corrupted data"
    constraints: ClassVar[dict[str, Constraint]] = {
        "corruptions": Corruptions.constraints["corruptions"],
        "severity": Constraint(lambda v: v in SEVERITIES, "a severity from 1 to 5"),
        "prior_strength": interval(0, 1e12, closed="left"),
        "max_records": interval(1, 10**9, closed="both", kind=int),
    }

    def __init__(
        self,
        *,
        corruptions: Sequence[str] | None = None,
        severity: int = 3,
        prior_strength: float = 0.0,
        max_records: int = 1000,
    ) -> None:
        self.corruptions = corruptions
        self.severity = severity
        self.prior_strength = prior_strength
        self.max_records = max_records
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset({"batchnorm"}), roles=frozenset({"test"}), input_bounds=True
        )

    def metric_names(self) -> tuple[str, ...]:
        types = self.corruptions or _ALL
        return (
            "accuracy_before",
            "accuracy_after",
            "adaptation_gain",
            *(f"gain_{t}" for t in types),
        )

    def headline(self, result: AuditResult) -> Headline | None:
        before, after = result.metrics["accuracy_before"], result.metrics["accuracy_after"]
        gain = result.metrics["adaptation_gain"]
        if before.value is None or after.value is None or gain.value is None or gain.ci is None:
            return None
        return Headline(
            "adaptation_gain",
            f"Re-estimating BatchNorm statistics on corrupted data (severity {self.severity}) "
            f"takes accuracy from {before.value:.1%} to {after.value:.1%} "
            f"(gain {gain.value:+.1%} [{gain.ci[0]:+.1%}, {gain.ci[1]:+.1%}]).",
            concern=None,
        )

    def run(self, ctx: AuditContext) -> AuditResult:
        x, y, index = test_records(ctx, self.max_records)
        types = corruption_types(self.corruptions, x.shape[1:])
        module = ctx.target.module  # type: ignore[attr-defined]
        device = getattr(ctx.target, "device", torch.device("cpu"))
        corrupt = Corrupter(ctx, x, "robustness/corruptions")
        before = np.zeros((len(types), len(x)), dtype=bool)
        after = np.zeros_like(before)
        with ctx.progress.task(self.audit_id(), total=len(types)) as step:
            for t, kind in enumerate(types):
                corrupted = corrupt(kind, self.severity)
                before[t] = ctx.target.predict_labels(corrupted) == y
                xt = torch.from_numpy(corrupted).to(device)
                adapted = adapt_batchnorm(module, xt, prior_strength=self.prior_strength)
                with torch.no_grad():
                    after[t] = adapted(xt).argmax(dim=1).cpu().numpy() == y
                step(1)
        salt = self.audit_id()
        metrics = {
            "accuracy_before": bootstrap_mean(before.mean(axis=0), ctx, salt),
            "accuracy_after": bootstrap_mean(after.mean(axis=0), ctx, salt),
            "adaptation_gain": bootstrap_mean(after.mean(axis=0) - before.mean(axis=0), ctx, salt),
        }
        for t, kind in enumerate(types):
            gain = after[t].astype(np.float64) - before[t]
            metrics[f"gain_{kind}"] = bootstrap_mean(gain, ctx, salt)
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={
                "accuracy_before": before.mean(axis=1),
                "accuracy_after": after.mean(axis=1),
                "record_index": index.astype(np.int64),
            },
            details={"corruptions": types, "severity": self.severity, "n_records": len(x)},
        )
