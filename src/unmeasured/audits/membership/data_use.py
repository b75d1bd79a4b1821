"""`membership.data_use`: "was my data used?" for each person, as a calibrated test.

Offline reference models (trained through the recipe on halves of the population, never on an
audited record) give each record a standardised score: how far the target's logit-scaled
confidence lies above what models that never saw the record produce (offline LiRA's statistic).
The null distribution is not assumed but measured: population records scored against the
reference models that did not train on them, known non-members of the target, give the
record-level null; pseudo-people drawn from them, with the same numbers of records, give the
person-level null of the Stouffer combination. People are declared "used" with the
Benjamini–Hochberg procedure at ``alpha``.

The audit knows who was used (members) and reports what a claimant would rely on: how often a
person who was *not* used gets a p-value below ``alpha`` (the test's false-alarm rate, which
should not exceed ``alpha``) and how often a person who was used is detected.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.stats import false_discovery_control, norm

from unmeasured.audits.base import BOOLEAN, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.membership.attack import MEMBERSHIP_ROLES, MembershipAttack, whole_units
from unmeasured.audits.membership.lira import _logit_conf, _masked_moments
from unmeasured.audits.membership.reference import pool, reference_outputs, target_log_probs
from unmeasured.audits.registry import register
from unmeasured.errors import DataError
from unmeasured.results import AuditResult
from unmeasured.stats import membership_metrics

#: pseudo-people drawn from the population to measure the null of each group size
NULL_DRAWS = 5000
#: population records needed for a record-level null
MIN_NULL = 20


@register
class DataUse(MembershipAttack):
    """Per-person p-values that their records were used, from offline reference models.

    Args:
        num_models: offline reference models (trained on the population only).
        alpha: the significance level of each person's test and the false-discovery rate of
            the declarations.
        fpr, per_class: as for every membership attack (``per_class`` is not used).

    Metrics: over people, ``auc`` and the TPR at fixed FPRs of −log10(p);
    ``false_alarm_at_alpha`` (people not used with p < alpha), ``power_at_alpha`` (people used
    with p < alpha), ``declared_used`` and ``falsely_declared_used`` (after BH).
    """

    name = "membership.data_use"
    summary = "was my data used? per-person p-values from offline reference models"
    constraints: ClassVar[dict[str, Constraint]] = {
        "num_models": interval(2, 100_000, closed="both", kind=int),
        "alpha": interval(0, 1),
        "fpr": interval(0, 1),
        "per_class": BOOLEAN,
    }

    def __init__(
        self,
        *,
        num_models: int = 8,
        alpha: float = 0.05,
        fpr: float = 0.01,
        per_class: bool = False,
    ) -> None:
        self.num_models = num_models
        self.alpha = alpha
        self.fpr = fpr
        self.per_class = per_class
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(
            roles=MEMBERSHIP_ROLES | {"population"},
            columns=frozenset({"user"}),
            columns_on=MEMBERSHIP_ROLES,
            recipe=True,
        )

    def metric_names(self) -> tuple[str, ...]:
        return (
            *super().metric_names(),
            "false_alarm_at_alpha",
            "power_at_alpha",
            "declared_used",
            "falsely_declared_used",
        )

    def standardised(self, ctx: AuditContext) -> tuple[np.ndarray, np.ndarray]:
        """The standardised scores of the audited records and of the population (the null)."""
        refs = reference_outputs(ctx, mode="offline", num_models=self.num_models)
        _, y, n_audit = pool(ctx)
        stats = _logit_conf(refs.log_probs, y)  # (K, n_pool, 1)
        target = _logit_conf(target_log_probs(ctx, "none"), y)  # (n_pool, 1)
        mean, std, count = _masked_moments(stats, ~refs.masks, global_variance=True)
        z = ((target - mean) / std)[:, 0]
        # population records with an OUT model (one suffices: the variance is pooled)
        null = z[n_audit:][count[n_audit:, 0] >= 1]
        if len(null) < MIN_NULL:
            raise DataError(
                f"data.population: {len(null)} population records are left out of some reference "
                f"model; the null needs {MIN_NULL} (give more population records or models)"
            )
        return z[:n_audit], null

    def record_p_values(self, ctx: AuditContext) -> tuple[np.ndarray, np.ndarray]:
        """Empirical one-sided p-values of the audited records, and the null's own."""
        z, null = self.standardised(ctx)
        ordered = np.sort(null)

        def p(values: np.ndarray) -> np.ndarray:
            above = len(ordered) - np.searchsorted(ordered, values, side="left")
            return (1 + above) / (1 + len(ordered))

        return p(z), p(null)

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        if which != "audit":
            return np.full(len(ctx.records(which)), np.nan)
        return -np.log10(self.record_p_values(ctx)[0])

    def run(self, ctx: AuditContext) -> AuditResult:
        records, is_member = ctx.data.audit_records()
        p_records, p_null = self.record_p_values(ctx)
        people = whole_units(records.columns["user"], is_member, "user")
        inverse, counts = people.of_record, people.sizes
        # Stouffer's combination, with its null measured on pseudo-people from the population
        z = np.bincount(inverse, weights=norm.isf(p_records)) / np.sqrt(counts)
        null_z = norm.isf(p_null)
        rng = ctx.rng(f"{self.audit_id()}/pseudo-people")
        p_people = np.empty(len(people.names))
        for size in np.unique(counts):
            draws = rng.choice(null_z, size=(NULL_DRAWS, size), replace=True).sum(axis=1) / np.sqrt(
                size
            )
            draws.sort()
            mine = counts == size
            above = NULL_DRAWS - np.searchsorted(draws, z[mine], side="left")
            p_people[mine] = (1 + above) / (1 + NULL_DRAWS)
        used = people.is_member
        score = -np.log10(np.maximum(p_people, 1e-300))
        metrics = membership_metrics(score, used, confidence=ctx.confidence)
        declared = false_discovery_control(p_people) <= self.alpha
        below = p_people < self.alpha
        for name, flags, truth in (
            ("false_alarm_at_alpha", below, 0),
            ("power_at_alpha", below, 1),
            ("declared_used", declared, 1),
            ("falsely_declared_used", declared, 0),
        ):
            metrics[name] = people.flagged_rate(flags, truth, ctx.confidence)
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={"scores": score.astype(np.float32), "is_member": used, "p_value": p_people},
            details={
                "people": len(people.names),
                "alpha": self.alpha,
                "operating_point": None,
                "operating_point_reason": "people are declared by their p-values",
            },
        )
