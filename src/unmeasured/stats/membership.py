"""The standard bundle of membership metrics."""

from __future__ import annotations

import numpy as np

from unmeasured.stats.estimate import Estimate
from unmeasured.stats.privacy import epsilon_lower_bound
from unmeasured.stats.roc import advantage, auc, check_scores, tpr_at_fpr

DEFAULT_FPRS = (0.001, 0.01, 0.1)


def tpr_key(fpr: float) -> str:
    """The metric name of TPR at ``fpr``: ``tpr_at_fpr_0.01``."""
    return f"tpr_at_fpr_{fpr:g}"


def membership_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    confidence: float = 0.95,
) -> dict[str, Estimate]:
    """``auc``, ``tpr_at_fpr_<f>`` for each f, ``advantage`` and ``epsilon_lower_bound``."""
    s, lab = check_scores(scores, labels)
    metrics = {"auc": auc(s, lab, confidence)}
    for f in fprs:
        metrics[tpr_key(f)] = tpr_at_fpr(s, lab, f, confidence)
    metrics["advantage"] = advantage(s, lab, confidence)
    metrics["epsilon_lower_bound"] = epsilon_lower_bound(s, lab, confidence=confidence)
    return metrics
