"""`robustness.corruptions`: accuracy under ordinary corruptions (noise, blur, weather-like,
digital) at five severities, for image records ``(C, H, W)`` with the image corruptions and for
flat records with the tabular ones (`corruptions.py`).

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

from unmeasured.audits.base import AuditContext, Constraint, Requirements, interval
from unmeasured.audits.registry import register
from unmeasured.audits.robustness.base import RobustnessAudit
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

    def _types(self, shape: tuple[int, ...]) -> list[str]:
        image = len(shape) == 3
        allowed = IMAGE_CORRUPTIONS if image else TABULAR_CORRUPTIONS
        chosen = list(self.corruptions or allowed)
        wrong = [c for c in chosen if c not in allowed]
        if wrong:
            kind = "image" if image else "flat (tabular)"
            raise ConfigError(
                f"corruptions: {', '.join(wrong)} cannot corrupt {kind} records of shape "
                f"{shape}; choose {one_of(allowed)}"
            )
        return chosen

    def run(self, ctx: AuditContext) -> AuditResult:
        x, y, index = self.test_records(ctx)
        bounds = ctx.input_bounds
        types = self._types(x.shape[1:])
        flat = x.reshape(len(x), -1)
        reference = torch.from_numpy(ctx.records("test").x.reshape(len(ctx.records("test")), -1))
        correct = ctx.target.predict_labels(x) == y
        # hits[t, s, i]: record i classified correctly under corruption t at severity s
        hits = np.zeros((len(types), len(self.severities), len(x)), dtype=bool)
        seed = int(ctx.rng(self.audit_id()).integers(2**31))
        with ctx.progress.task(self.audit_id(), total=hits.shape[0] * hits.shape[1]) as step:
            for t, kind in enumerate(types):
                for s, severity in enumerate(self.severities):
                    generator = torch.Generator().manual_seed(seed + 1000 * t + s)
                    xt = torch.from_numpy(x if kind in IMAGE_CORRUPTIONS else flat)
                    if kind in IMAGE_CORRUPTIONS:
                        corrupted = corrupt_images(
                            xt, kind, severity, bounds=bounds, generator=generator
                        )
                    else:
                        corrupted = corrupt_tabular(
                            xt,
                            kind,
                            severity,
                            reference=reference,
                            bounds=bounds,
                            generator=generator,
                        )
                    predicted = ctx.target.predict_labels(corrupted.numpy().reshape(x.shape))
                    hits[t, s] = predicted == y
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
        """A mean over records with a percentile-bootstrap interval over records."""
        values = np.asarray(per_record, dtype=np.float64)
        if len(values) < 2 or np.all(values == values[0]):
            return Estimate(
                float(values.mean()), (float(values.mean()),) * 2, len(values), ctx.confidence
            )
        ci = bootstrap(
            (values,),
            np.mean,
            confidence_level=ctx.confidence,
            method="percentile",
            n_resamples=999,
            random_state=ctx.rng(f"{self.audit_id()}/bootstrap"),
        ).confidence_interval
        return Estimate(
            float(values.mean()), (float(ci.low), float(ci.high)), len(values), ctx.confidence
        )
