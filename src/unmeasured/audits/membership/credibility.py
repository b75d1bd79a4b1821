"""`membership.credibility`: does a membership attack flag a member, or anything near it?
(Rezaei & Liu, "On the discredibility of membership inference attacks").

A membership claim is only credible if the attack tells a member apart from records close to
it that were never trained on. This audit perturbs each member with Gaussian noise of scale
``noise`` (a fraction of the input range), scores the neighbours with the same attack at the
threshold that flags ``fpr`` of the non-members, and compares how often neighbours and members
are flagged. When neighbours are flagged at least half as often as members, an auditee can
discredit the attack's claims: the audit says so.
"""

from __future__ import annotations

from typing import ClassVar, cast

import numpy as np

from unmeasured.audits.base import BOOLEAN, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.membership.attack import MEMBERSHIP_ROLES, MembershipAttack
from unmeasured.audits.membership.baselines import OutputSignalAttack
from unmeasured.audits.registry import available, create, register
from unmeasured.results import AuditResult, Headline
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import proportion

#: neighbours flagged at least this fraction as often as members make an attack discredible
DISCREDIBLE_RATIO = 0.5


def _output_attack(name: str) -> bool:
    cls = available().get(name)
    return cls is not None and issubclass(cls, OutputSignalAttack)


@register
class Credibility(MembershipAttack):
    """How often an attack flags noisy neighbours of members, against members themselves.

    Args:
        attack: an attack scored from the target's output on the record (``membership.loss``,
            ``.confidence``, ``.entropy``, ``.modified_entropy``).
        noise: the neighbours' Gaussian noise, as a fraction of the input range.
        fpr: the share of non-members the threshold flags.
        per_class: not used (kept for the membership contract).

    Metrics: ``member_flag_rate``, ``neighbour_flag_rate``, ``false_alarm_rate`` (each with a
    Clopper–Pearson interval) and ``neighbour_to_member_ratio``.
    """

    name = "membership.credibility"
    summary = "are near neighbours of members flagged too? (Rezaei & Liu, discredibility)"
    constraints: ClassVar[dict[str, Constraint]] = {
        "attack": Constraint(_output_attack, "the name of an output-signal membership attack"),
        "noise": interval(0, 10),
        "fpr": interval(0, 1),
        "per_class": BOOLEAN,
    }

    def __init__(
        self,
        *,
        attack: str = "membership.loss",
        noise: float = 0.05,
        fpr: float = 0.05,
        per_class: bool = False,
    ) -> None:
        self.attack = attack
        self.noise = noise
        self.fpr = fpr
        self.per_class = per_class
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(roles=MEMBERSHIP_ROLES, input_bounds=True)

    def metric_names(self) -> tuple[str, ...]:
        return (
            "member_flag_rate",
            "neighbour_flag_rate",
            "false_alarm_rate",
            "neighbour_to_member_ratio",
        )

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        return create(self.attack).attack_scores(ctx, which)  # type: ignore[attr-defined]

    def headline(self, result: AuditResult) -> Headline | None:
        members = result.metrics["member_flag_rate"]
        neighbours = result.metrics["neighbour_flag_rate"]
        ratio = result.metrics["neighbour_to_member_ratio"].value
        if members.value is None or neighbours.value is None or ratio is None:
            return None
        discredible = ratio >= DISCREDIBLE_RATIO
        verdict = (
            "it cannot tell a member from a near non-member (discredible)"
            if discredible
            else "its claims hold up against near neighbours"
        )
        return Headline(
            "neighbour_to_member_ratio",
            f"Neighbours of members (noise {self.noise:g} of the input range) are flagged "
            f"{neighbours.value:.1%} of the time, members {members.value:.1%}: {verdict}.",
            concern=discredible,
            severity=ratio,
        )

    def run(self, ctx: AuditContext) -> AuditResult:
        base = cast(OutputSignalAttack, create(self.attack))  # the constraint guarantees it
        _, is_member = ctx.data.audit_records()
        scores = base.attack_scores(ctx, "audit")
        threshold = float(np.quantile(scores[is_member == 0], 1 - self.fpr))
        members = ctx.records("members")
        low, high = ctx.input_bounds  # type: ignore[misc]
        rng = ctx.rng(f"{self.audit_id()}/neighbours")
        noisy = members.x + rng.normal(0, self.noise * (high - low), members.x.shape)
        neighbours = np.clip(noisy, low, high).astype(np.float32)
        neighbour_scores = base.signal(ctx.target.log_probs(neighbours), members.y)

        def rate(flags: np.ndarray) -> Estimate:
            return proportion(int(flags.sum()), len(flags), ctx.confidence)

        member_rate = rate(scores[is_member == 1] > threshold)
        neighbour_rate = rate(neighbour_scores > threshold)
        ratio = neighbour_rate.value / member_rate.value if member_rate.value else None
        metrics = {
            "member_flag_rate": member_rate,
            "neighbour_flag_rate": neighbour_rate,
            "false_alarm_rate": rate(scores[is_member == 0] > threshold),
            "neighbour_to_member_ratio": (
                Estimate(ratio, None, len(members), ctx.confidence)
                if ratio is not None
                else Estimate.not_estimable("the attack flags no member", len(members))
            ),
        }
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={"neighbour_scores": neighbour_scores.astype(np.float32)},
            details={"threshold": threshold, "attack": self.attack, "noise": self.noise},
        )
