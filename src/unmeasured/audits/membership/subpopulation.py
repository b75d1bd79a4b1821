"""`membership.subpopulation`: was a whole subpopulation in the training data? (Rezaei & Liu,
"Subpopulation-based membership inference"), without shadow models.

Each group's records (the ``group`` column) are compared with population records of the same
classes, known non-members: if the target fits the group markedly better than comparable
records it never saw, the group was likely trained on. The comparison is a one-sided
Mann–Whitney U test on the true-class log-probability, so each group gets a p-value; groups are
flagged with the Benjamini–Hochberg procedure at ``alpha``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.stats import false_discovery_control, mannwhitneyu

from unmeasured.audits.base import BOOLEAN, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.membership.attack import MEMBERSHIP_ROLES, MembershipAttack, whole_units
from unmeasured.audits.membership.scores import true_class_log_prob
from unmeasured.audits.registry import register
from unmeasured.results import AuditResult
from unmeasured.stats import membership_metrics


@register
class Subpopulation(MembershipAttack):
    """Membership of whole groups, each tested against population records of its classes.

    Args:
        alpha: the false-discovery rate at which groups are flagged (Benjamini–Hochberg).
        fpr, per_class: as for every membership attack (``per_class`` is not used).

    Metrics: over groups, ``auc`` and the TPR at fixed FPRs of the score −log10(p);
    ``detected_groups`` (share of trained-on groups flagged) and ``falsely_detected_groups``
    (share of other groups flagged).
    """

    name = "membership.subpopulation"
    summary = "was a whole group trained on? a rank test against the population (Rezaei & Liu)"
    constraints: ClassVar[dict[str, Constraint]] = {
        "alpha": interval(0, 1),
        "fpr": interval(0, 1),
        "per_class": BOOLEAN,
    }

    def __init__(self, *, alpha: float = 0.05, fpr: float = 0.01, per_class: bool = False) -> None:
        self.alpha = alpha
        self.fpr = fpr
        self.per_class = per_class
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(
            roles=MEMBERSHIP_ROLES | {"population"},
            columns=frozenset({"group"}),
            columns_on=MEMBERSHIP_ROLES,
        )

    def metric_names(self) -> tuple[str, ...]:
        return (*super().metric_names(), "detected_groups", "falsely_detected_groups")

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        return true_class_log_prob(ctx.log_probs(which), ctx.records(which).y)

    def run(self, ctx: AuditContext) -> AuditResult:
        records, is_member = ctx.data.audit_records()
        population = ctx.records("population")
        record_scores = self.attack_scores(ctx, "audit")
        reference = self.attack_scores(ctx, "population")
        groups = whole_units(records.columns["group"], is_member, "group")
        p_values = np.ones(len(groups.names))
        for g in range(len(groups.names)):
            own = groups.of_record == g
            comparable = np.isin(population.y, records.y[own])
            if comparable.sum() < 2:
                continue  # nothing to compare with: no evidence either way
            p_values[g] = mannwhitneyu(
                record_scores[own], reference[comparable], alternative="greater"
            ).pvalue
        group_in = groups.is_member
        score = -np.log10(np.maximum(p_values, 1e-300))
        metrics = membership_metrics(score, group_in, confidence=ctx.confidence)
        flagged = false_discovery_control(p_values) <= self.alpha
        metrics["detected_groups"] = groups.flagged_rate(flagged, 1, ctx.confidence)
        metrics["falsely_detected_groups"] = groups.flagged_rate(flagged, 0, ctx.confidence)
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={
                "scores": score.astype(np.float32),
                "is_member": group_in,
                "p_value": p_values,
                "flagged": flagged.astype(np.int8),
                "records_per_group": groups.sizes.astype(np.int64),
            },
            details={
                "n_groups": len(groups.names),
                "alpha": self.alpha,
                "operating_point": None,
                "operating_point_reason": "groups are flagged by their p-values (Benjamini–Hochberg)",
            },
        )
