"""User-level membership inference (Li, Rezaei & Liu 2022, "User-level membership inference"):
was *any* of this person's data used? Per-record scores of a record-level attack are averaged
over each user's records, and the same metrics are computed over users instead of records.

A user whose records are all members (or all non-members) is one sample of the user-level ROC;
averaging several weakly informative scores sharpens the evidence, which is why a model can
leak users while leaking single records only a little.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from unmeasured.audits.base import BOOLEAN, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.membership.attack import MEMBERSHIP_ROLES, MembershipAttack, whole_units
from unmeasured.audits.registry import available, create, register
from unmeasured.errors import ConfigError
from unmeasured.results import AuditResult
from unmeasured.stats import membership_metrics


def _record_attack(name: str) -> bool:
    cls = available().get(name)
    return cls is not None and issubclass(cls, MembershipAttack) and cls is not UserLevel


@register
class UserLevel(MembershipAttack):
    """Membership of users: the mean of a record-level attack's scores over each user's
    records, scored against the ground truth of the user (all their records members, or none).

    Args:
        attack: the record-level membership attack whose scores are aggregated.
        attack_params: that attack's parameters.
        fpr, per_class: as for every membership attack (``per_class`` is not used: users have
            no single class).

    The records need a ``user`` column (``data.columns = ["user"]``); ``record_auc`` reports the
    record-level AUC of the same scores for comparison.
    """

    name = "membership.user"
    summary = "user-level membership: a record attack's scores averaged per user"
    constraints: ClassVar[dict[str, Constraint]] = {
        "attack": Constraint(_record_attack, "the name of a record-level membership attack"),
        "attack_params": Constraint(lambda v: isinstance(v, dict), "a table of parameters"),
        "fpr": interval(0, 1),
        "per_class": BOOLEAN,
    }

    def __init__(
        self,
        *,
        attack: str = "membership.loss",
        attack_params: dict[str, Any] | None = None,
        fpr: float = 0.01,
        per_class: bool = False,
    ) -> None:
        self.attack = attack
        self.attack_params = {} if attack_params is None else attack_params
        self.fpr = fpr
        self.per_class = per_class
        self.validate()
        self.base_ = create(attack, self.attack_params, field="audits.attack_params")

    def requirements(self) -> Requirements:
        base = self.base_.requirements()
        return Requirements(
            capabilities=base.capabilities,
            roles=base.roles,
            columns=base.columns | {"user"},
            columns_on=base.columns_on | MEMBERSHIP_ROLES,
            recipe=base.recipe,
            input_bounds=base.input_bounds,
            image_inputs=base.image_inputs,
        )

    def metric_names(self) -> tuple[str, ...]:
        return (*super().metric_names(), "record_auc")

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        return self.base_.attack_scores(ctx, which)  # type: ignore[attr-defined]

    def run(self, ctx: AuditContext) -> AuditResult:
        records, is_member = ctx.data.audit_records()
        if "user" not in records.columns:
            raise ConfigError(
                "data.columns: membership.user needs a 'user' column in members and nonmembers"
            )
        scores = np.asarray(self.attack_scores(ctx, "audit"), dtype=np.float64)
        users = whole_units(records.columns["user"], is_member, "user")
        finite = np.isfinite(scores)
        n_users = len(users.names)
        sums = np.bincount(users.of_record[finite], weights=scores[finite], minlength=n_users)
        n_finite = np.bincount(users.of_record[finite], minlength=n_users)
        keep = n_finite > 0
        user_scores = sums[keep] / n_finite[keep]
        user_member = users.is_member[keep]
        counts = users.sizes
        metrics = membership_metrics(user_scores, user_member, confidence=ctx.confidence)
        metrics["record_auc"] = membership_metrics(
            scores[finite], is_member[finite], confidence=ctx.confidence
        )["auc"]
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={
                "scores": user_scores.astype(np.float32),
                "is_member": user_member,
                "records_per_user": counts[keep].astype(np.int64),
            },
            details={
                "attack": self.attack,
                "n_users": int(keep.sum()),
                "n_member_users": int(user_member.sum()),
                "records_per_user_median": float(np.median(counts[keep])),
                "operating_point": None,
                "operating_point_reason": "user-level scores are not calibrated on a population",
            },
        )
