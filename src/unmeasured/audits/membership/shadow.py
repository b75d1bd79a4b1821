"""Shadow-model attack (Shokri et al., S&P 2017).

Shadow models are trained like the target on halves of the population; an attack classifier
learns to tell their training records (IN) from the rest (OUT) from the shape of their outputs,
and is then applied to the target's outputs. The classifier is scikit-learn's
``HistGradientBoostingClassifier`` on label-aware features of the output vector (the true class's
log-probability, the top-3 sorted log-probabilities, the entropy and whether the prediction is
correct), one model for all classes.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from unmeasured.audits.base import BOOLEAN, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.membership.attack import MEMBERSHIP_ROLES, MembershipAttack
from unmeasured.audits.membership.reference import pool, reference_outputs
from unmeasured.audits.membership.scores import negative_entropy, true_class_log_prob
from unmeasured.audits.registry import register


def output_features(log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Features of each output vector (n, C) for the attack classifier."""
    top = np.sort(log_probs, axis=1)[:, ::-1][:, : min(3, log_probs.shape[1])]
    correct = (log_probs.argmax(axis=1) == y).astype(np.float64)
    return np.column_stack(
        [true_class_log_prob(log_probs, y), top, negative_entropy(log_probs), correct]
    )


@register
class ShadowModelAttack(MembershipAttack):
    """Attack classifier trained on shadow models' outputs.

    Args:
        num_models: number of shadow models, each trained on a random half of the population.
        fpr, per_class: as for every membership attack.
    """

    name = "membership.shadow"
    summary = "shadow models + attack classifier (Shokri et al. 2017)"

    def requirements(self) -> Requirements:
        return Requirements(roles=MEMBERSHIP_ROLES | {"population"}, recipe=True)

    constraints: ClassVar[dict[str, Constraint]] = {
        "num_models": interval(1, 100_000, closed="left", kind=int),
        "fpr": interval(0, 1),
        "per_class": BOOLEAN,
    }

    def __init__(self, *, num_models: int = 4, fpr: float = 0.01, per_class: bool = True) -> None:
        self.num_models = num_models
        self.fpr = fpr
        self.per_class = per_class
        self.validate()

    def _classifier(self, ctx: AuditContext) -> HistGradientBoostingClassifier:
        return ctx.shared(f"shadow-classifier/{self!r}", lambda: self._fit_classifier(ctx))

    def _fit_classifier(self, ctx: AuditContext) -> HistGradientBoostingClassifier:
        refs = reference_outputs(ctx, mode="offline", num_models=self.num_models)
        _, y, n_audit = pool(ctx)
        pop_y = y[n_audit:]
        feats, labels = [], []
        for k in range(refs.num_models):
            feats.append(output_features(refs.log_probs[k, n_audit:, 0], pop_y))
            labels.append(refs.masks[k, n_audit:])
        clf = HistGradientBoostingClassifier(max_iter=200, random_state=ctx.seed)
        return clf.fit(np.concatenate(feats), np.concatenate(labels).astype(np.int8))

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        clf = self._classifier(ctx)
        feats = output_features(ctx.log_probs(which), ctx.records(which).y)
        return clf.predict_proba(feats)[:, 1]
