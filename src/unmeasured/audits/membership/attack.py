"""`MembershipAttack`: the family base that owns scoring, metrics, calibration and per-class
breakdowns, so each attack file holds only its method (``attack_scores``)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from unmeasured.audits.base import BOOLEAN, Audit, AuditContext, Constraint, Requirements, interval
from unmeasured.errors import DataError
from unmeasured.results import AuditResult, Headline
from unmeasured.stats import calibrate_threshold, membership_metrics, rates_at_threshold
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import proportion
from unmeasured.stats.membership import DEFAULT_FPRS, tpr_key

MIN_GROUP_SIZE = 20
#: the data every membership attack scores: the audited records and their ground truth
MEMBERSHIP_ROLES = frozenset({"members", "nonmembers"})
#: the false-positive rate of the headline
HEADLINE_FPR = 0.01


@dataclass(frozen=True)
class Units:
    """Records grouped into units (users, groups) that are wholly members or wholly not.

    Attributes:
        names: the units' names, sorted.
        of_record: for each record, the position of its unit in ``names``.
        sizes: records per unit.
        is_member: 1 for a unit whose records are members, 0 otherwise.
    """

    names: np.ndarray
    of_record: np.ndarray
    sizes: np.ndarray
    is_member: np.ndarray

    def flagged_rate(self, flagged: np.ndarray, truth: int, confidence: float) -> Estimate:
        """The share of units with membership ``truth`` that are ``flagged``."""
        mine = self.is_member == truth
        return proportion(
            int(flagged[mine].sum()), int(mine.sum()), confidence, empty="no such unit in the data"
        )


def whole_units(column: np.ndarray, is_member: np.ndarray, unit: str) -> Units:
    """Group the audited records by ``column`` (one value per record).

    Raises:
        DataError: a unit with records among both members and non-members (its ground truth
            would be two facts at once).
    """
    names, of_record = np.unique(np.asarray(column).astype(str), return_inverse=True)
    sizes = np.bincount(of_record)
    members = np.bincount(of_record, weights=is_member)
    mixed = (members > 0) & (members < sizes)
    if mixed.any():
        raise DataError(
            f"data: {int(mixed.sum())} {unit}s have records among both members and non-members "
            f"(e.g. {unit} {names[np.argmax(mixed)]!r}); a {unit} is in or out as a whole"
        )
    return Units(names, of_record, sizes, (members > 0).astype(np.int8))


class MembershipAttack(Audit):
    """Base class of membership-inference attacks.

    Args:
        fpr: the target false-positive rate of the operating point. When population data is
            given, the decision threshold is calibrated on the population's scores (known
            non-members, never the audited ground truth), and the rates it actually achieves on
            the audited members and non-members are reported as ``operating_tpr`` and
            ``false_alarm_rate``.
        per_class: also report metrics per true class (classes with fewer than 20 members or
            non-members are left out).
    """

    constraints: ClassVar[dict[str, Constraint]] = {"fpr": interval(0, 1), "per_class": BOOLEAN}

    def __init__(self, *, fpr: float = 0.01, per_class: bool = True) -> None:
        self.fpr = fpr
        self.per_class = per_class
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(roles=MEMBERSHIP_ROLES)

    def metric_names(self) -> tuple[str, ...]:
        return (
            "auc",
            *(tpr_key(f) for f in DEFAULT_FPRS),
            "advantage",
            "epsilon_lower_bound",
            "operating_tpr",
            "false_alarm_rate",
            "operating_precision",
        )

    def headline(self, result: AuditResult) -> Headline | None:
        """TPR at 1% FPR against chance (1%), or the AUC when that rate is not estimable."""
        auc = result.metrics.get("auc")
        tpr = result.metrics.get(tpr_key(HEADLINE_FPR))
        if auc is None or tpr is None:
            return None
        auc_above = auc.ci is not None and auc.ci[0] > 0.5
        if tpr.value is not None and tpr.ci is not None:
            above = tpr.ci[0] > HEADLINE_FPR
            ratio = tpr.value / HEADLINE_FPR
            sentence = (
                f"At {HEADLINE_FPR:.0%} false positives the attack finds {tpr.value:.1%} of "
                f"members [{tpr.ci[0]:.1%}, {tpr.ci[1]:.1%}], {ratio:.1f}x chance"
            )
            sentence += "." if above or auc_above else "; no evidence of leakage."
            return Headline(
                tpr_key(HEADLINE_FPR), sentence, concern=above or auc_above, severity=tpr.value
            )
        if auc.value is None or auc.ci is None:
            return Headline("auc", "Not estimable from this data.", concern=None)
        verdict = "above chance (0.5)" if auc_above else "no evidence of leakage"
        return Headline(
            "auc",
            f"AUC {auc.value:.3f} [{auc.ci[0]:.3f}, {auc.ci[1]:.3f}], {verdict}; TPR at "
            f"{HEADLINE_FPR:.0%} FPR is not estimable ({tpr.reason}).",
            concern=auc_above,
            severity=HEADLINE_FPR * (auc.value - 0.5) / 0.5,
        )

    @abstractmethod
    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        """Membership scores (higher = more likely member) for ``"audit"`` records (members then
        non-members) or ``"population"`` records."""

    def run(self, ctx: AuditContext) -> AuditResult:
        records, is_member = ctx.data.audit_records()
        scores = np.asarray(self.attack_scores(ctx, "audit"), dtype=np.float64)
        metrics = membership_metrics(scores, is_member, confidence=ctx.confidence)
        details: dict[str, object] = {
            "n_members": int(is_member.sum()),
            "n_nonmembers": int((1 - is_member).sum()),
        }
        population_scores = (
            np.asarray(self.attack_scores(ctx, "population"), dtype=np.float64)
            if ctx.data.population is not None
            else np.zeros(0)
        )
        # an attack may score only part of the population (e.g. online LiRA: the records its
        # reference models saw); the threshold rests on those it scores
        population_scores = population_scores[np.isfinite(population_scores)]
        if len(population_scores):
            threshold = calibrate_threshold(population_scores, self.fpr)
            rates = rates_at_threshold(scores, is_member, threshold, confidence=ctx.confidence)
            metrics["operating_tpr"] = rates["tpr"]
            metrics["false_alarm_rate"] = rates["fpr"]
            metrics["operating_precision"] = rates["precision"]
            details["operating_point"] = {
                "target_fpr": self.fpr,
                "threshold": float(threshold),
                "calibrated_on": "population",
                "n_population": len(population_scores),
            }
        else:
            details["operating_point"] = None
            details["operating_point_reason"] = (
                "no population data: a threshold cannot be chosen without the ground truth"
                if ctx.data.population is None
                else f"{self.name} with these settings scores no population record"
            )
        groups = self._per_class(scores, is_member, records.y, ctx) if self.per_class else {}
        return AuditResult(
            name=self.name,
            metrics=metrics,
            groups=groups,
            arrays={
                "scores": scores.astype(np.float32),
                "is_member": is_member.astype(np.int8),
                "label": records.y.astype(np.int64),
                "record_index": np.arange(len(scores), dtype=np.int64),
            },
            details=details,
        )

    def _per_class(self, scores, is_member, y, ctx):  # type: ignore[no-untyped-def]
        groups = {}
        for c in np.unique(y):
            mask = y == c
            n_in = int(is_member[mask].sum())
            n_out = int(mask.sum()) - n_in
            if min(n_in, n_out) < MIN_GROUP_SIZE:
                continue
            groups[f"class={int(c)}"] = membership_metrics(
                scores[mask], is_member[mask], confidence=ctx.confidence
            )
        return groups


class PoolAttack(MembershipAttack):
    """An attack that scores the whole reference pool at once (audited records, then the
    population), once per run; subclasses implement `pool_scores`."""

    @abstractmethod
    def pool_scores(self, ctx: AuditContext) -> np.ndarray:
        """Scores of every pool record (NaN where the attack cannot score a population
        record)."""

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        scores = ctx.shared(f"pool-scores/{self!r}", lambda: self.pool_scores(ctx))
        n_audit = len(ctx.data.require("members")) + len(ctx.data.require("nonmembers"))
        return scores[:n_audit] if which == "audit" else scores[n_audit:]
