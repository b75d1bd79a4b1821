"""Score-threshold membership attacks: loss, confidence, entropy, modified entropy.

Cheap and weak at low FPR, but they set the floor every stronger attack must beat, and they need
only the target's scores on the audited records.
"""

from __future__ import annotations

import numpy as np

from unmeasured.audits.base import AuditContext
from unmeasured.audits.membership.attack import MembershipAttack
from unmeasured.audits.membership.scores import (
    max_confidence,
    negative_entropy,
    negative_modified_entropy,
    true_class_log_prob,
)
from unmeasured.audits.registry import register


class OutputSignalAttack(MembershipAttack):
    """An attack whose score is a function of the target's output on the record itself."""

    def signal(self, log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        return self.signal(ctx.log_probs(which), ctx.records(which).y)


@register
class LossAttack(OutputSignalAttack):
    """Flags records with low cross-entropy loss (Yeom et al. 2018)."""

    name = "membership.loss"
    summary = "loss threshold (Yeom et al. 2018)"

    def signal(self, log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
        return true_class_log_prob(log_probs, y)


@register
class ConfidenceAttack(OutputSignalAttack):
    """Flags records the target is confident about, whatever the label (label-free)."""

    name = "membership.confidence"
    summary = "maximum-confidence threshold"

    def signal(self, log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
        return max_confidence(log_probs)


@register
class EntropyAttack(OutputSignalAttack):
    """Flags records with low prediction entropy (label-free)."""

    name = "membership.entropy"
    summary = "prediction-entropy threshold"

    def signal(self, log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
        return negative_entropy(log_probs)


@register
class ModifiedEntropyAttack(OutputSignalAttack):
    """Flags records with low modified entropy (Song & Mittal 2021)."""

    name = "membership.modified_entropy"
    summary = "modified-entropy threshold (Song & Mittal 2021)"

    def signal(self, log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
        return negative_modified_entropy(log_probs, y)
