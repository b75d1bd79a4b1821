"""The label-only gap attack (Yeom et al. 2018): guess "member" when the target classifies the
record correctly. It needs nothing but predicted labels, so it bounds what a labels-only API
leaks at the coarsest level; its scores take two values, so its ROC has a single operating
point."""

from __future__ import annotations

import numpy as np

from unmeasured.audits.base import AuditContext, Requirements
from unmeasured.audits.membership.attack import MEMBERSHIP_ROLES, MembershipAttack
from unmeasured.audits.registry import register


@register
class LabelOnlyGapAttack(MembershipAttack):
    """Flags correctly classified records (needs predicted labels only)."""

    name = "membership.label_only"
    summary = "label-only gap attack: correct = member (Yeom et al. 2018)"

    def requirements(self) -> Requirements:
        return Requirements(capabilities=frozenset({"labels"}), roles=MEMBERSHIP_ROLES)

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        records = ctx.records(which)
        return (
            ctx.shared(f"labels/{which}", lambda: self._predict(ctx, which)) == records.y
        ).astype(np.float64)

    @staticmethod
    def _predict(ctx: AuditContext, which: str) -> np.ndarray:
        if which == "audit":
            return np.concatenate(
                [
                    ctx.target.predict_labels(ctx.data.require("members").x),
                    ctx.target.predict_labels(ctx.data.require("nonmembers").x),
                ]
            )
        return ctx.target.predict_labels(ctx.records(which).x)
