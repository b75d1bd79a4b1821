"""`MembershipAttack`: the family base that owns scoring, metrics, calibration and the
credibility breakdowns (per class and per difficulty: who gets flagged at the operating point),
so each attack file holds only its method (``attack_scores``)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from unmeasured.audits.base import BOOLEAN, Audit, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.membership.reference import ReferenceOutputs, reference_outputs
from unmeasured.audits.membership.scores import true_class_log_prob
from unmeasured.errors import DataError
from unmeasured.results import AuditResult, Headline
from unmeasured.stats import calibrate_threshold, membership_metrics, rates_at_threshold
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import proportion
from unmeasured.stats.membership import DEFAULT_FPRS, flag_rates, quantile_bands, tpr_key

MIN_GROUP_SIZE = 20
#: the data every membership attack scores: the audited records and their ground truth
MEMBERSHIP_ROLES = frozenset({"members", "nonmembers"})
#: the false-positive rate of the headline
HEADLINE_FPR = 0.01
#: the share of non-members flagged by the credibility breakdowns of an attack without an
#: operating point of its own
CREDIBILITY_FPR = 0.01
#: difficulty bands of the credibility breakdowns (quartiles)
DIFFICULTY_BANDS = 4


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
        per_class: also report the credibility breakdowns: per true class and per difficulty
            quartile (``difficulty=q1`` the easiest), the members and non-members flagged at the
            operating point, and the membership metrics where a group has at least 20 members
            and 20 non-members (groups with fewer than 20 of both are left out).
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
        _, is_member = ctx.data.audit_records()
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
        threshold = None
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
        index = np.arange(len(scores), dtype=np.int64)
        return self.scored_result(ctx, scores, is_member, index, metrics, details, threshold)

    def record_difficulty(self, ctx: AuditContext) -> tuple[np.ndarray, str]:
        """How hard each audited record is (higher = harder), for the per-difficulty breakdown,
        and where that comes from. The default is the target's own loss on the record; attacks
        with reference models give the loss of the models that did not train on it, which does
        not depend on membership."""
        loss = -true_class_log_prob(ctx.log_probs("audit"), ctx.records("audit").y)
        return loss, "target loss"

    def scored_result(
        self,
        ctx: AuditContext,
        scores: np.ndarray,
        is_member: np.ndarray,
        index: np.ndarray,
        metrics: dict[str, Estimate],
        details: dict[str, object],
        threshold: float | None,
    ) -> AuditResult:
        """The result of scored records: the records' arrays and, when ``per_class``, the
        credibility breakdowns as groups (``class=<c>``, ``difficulty=q<k>``).

        Args:
            ctx: the run's context.
            scores: the scores of the audited records ``index`` (positions among members then
                non-members) that the metrics rest on.
            is_member: their ground truth.
            index: their positions among the audited records.
            metrics: the attack's metrics.
            details: the attack's details; ``credibility`` is added (the threshold of the
                breakdowns and where it comes from, the source and edges of the difficulty).
            threshold: the attack's operating threshold, if it has one. Without one, the
                breakdowns use the threshold that flags ``CREDIBILITY_FPR`` of the non-members
                scored here.
        """
        y = ctx.records("audit").y[index]
        difficulty = np.full(len(index), np.nan)
        groups: dict[str, dict[str, Estimate]] = {}
        if self.per_class:
            if threshold is None:
                threshold = calibrate_threshold(scores[is_member == 0], CREDIBILITY_FPR)
                source = f"flags {CREDIBILITY_FPR:.0%} of the non-members scored here"
            else:
                source = "the attack's operating point"
            all_difficulty, difficulty_source = self.record_difficulty(ctx)
            difficulty = np.asarray(all_difficulty, dtype=np.float64)[index]
            # bands cut at the non-members' quantiles: how hard a record is for a model that
            # did not see it
            band, edges = quantile_bands(difficulty, difficulty[is_member == 0], DIFFICULTY_BANDS)
            strata = {f"class={int(c)}": y == c for c in np.unique(y)}
            strata |= {f"difficulty=q{k + 1}": band == k for k in range(DIFFICULTY_BANDS)}
            groups = credibility_groups(scores, is_member, threshold, strata, ctx.confidence)
            details["credibility"] = {
                "threshold": float(threshold),
                "threshold_source": source,
                "difficulty_source": difficulty_source,
                "difficulty_edges": [float(e) for e in edges],
            }
        return AuditResult(
            name=self.name,
            metrics=metrics,
            groups=groups,
            arrays={
                "scores": scores.astype(np.float32),
                "is_member": is_member.astype(np.int8),
                "label": y.astype(np.int64),
                "record_index": index.astype(np.int64),
                "difficulty": difficulty.astype(np.float32),
            },
            details=details,
        )


def credibility_groups(
    scores: np.ndarray,
    is_member: np.ndarray,
    threshold: float,
    strata: dict[str, np.ndarray],
    confidence: float = 0.95,
) -> dict[str, dict[str, Estimate]]:
    """Per stratum (a mask over the records): the membership metrics where it has at least
    `MIN_GROUP_SIZE` members and non-members, and the members and non-members flagged at
    ``threshold`` (``operating_tpr``, ``false_alarm_rate``) where it has that many of either.
    Strata with fewer are left out."""
    groups = {}
    for name, mask in strata.items():
        n_in = int(is_member[mask].sum())
        n_out = int(mask.sum()) - n_in
        if max(n_in, n_out) < MIN_GROUP_SIZE:
            continue
        metrics = (
            membership_metrics(scores[mask], is_member[mask], confidence=confidence)
            if min(n_in, n_out) >= MIN_GROUP_SIZE
            else {}
        )
        groups[name] = metrics | flag_rates(scores[mask], is_member[mask], threshold, confidence)
    return groups


class PoolAttack(MembershipAttack):
    """An attack that scores the whole reference pool at once (audited records, then the
    population), once per run, with reference models planned by its ``mode``, ``num_models``
    and ``augmentation``; subclasses implement `pool_scores`. Its difficulty is the reference
    models' loss."""

    @abstractmethod
    def pool_scores(self, ctx: AuditContext) -> np.ndarray:
        """Scores of every pool record (NaN where the attack cannot score a population
        record)."""

    def references(self, ctx: AuditContext) -> ReferenceOutputs:
        """The reference models' outputs the attack rests on (trained once per run)."""
        return reference_outputs(
            ctx,
            mode=self.mode,  # type: ignore[attr-defined]
            num_models=self.num_models,  # type: ignore[attr-defined]
            augmentation=self.augmentation,  # type: ignore[attr-defined]
        )

    def record_difficulty(self, ctx: AuditContext) -> tuple[np.ndarray, str]:
        """The mean loss of the reference models that did not train on each audited record
        (NaN where every model did)."""
        refs = self.references(ctx)
        n = refs.n_audit
        y = ctx.records("audit").y
        log_probs = refs.log_probs[:, :n, 0, :]  # the plain view of each record
        loss = -np.take_along_axis(
            log_probs, np.broadcast_to(y[None, :, None], (*log_probs.shape[:2], 1)), axis=2
        )[..., 0]
        out = ~refs.masks[:, :n]
        count = out.sum(axis=0)
        mean = np.where(count > 0, (loss * out).sum(axis=0) / np.maximum(count, 1), np.nan)
        return (
            mean,
            f"reference-model loss (the mean of the models that did not train on it, of {refs.num_models})",
        )

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        scores = ctx.shared(f"pool-scores/{self!r}", lambda: self.pool_scores(ctx))
        n_audit = len(ctx.data.require("members")) + len(ctx.data.require("nonmembers"))
        return scores[:n_audit] if which == "audit" else scores[n_audit:]
