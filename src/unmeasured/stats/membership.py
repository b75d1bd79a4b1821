"""The standard bundle of membership metrics."""

from __future__ import annotations

import numpy as np

from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import proportion
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


def flag_rates(
    scores: np.ndarray, is_member: np.ndarray, threshold: float, confidence: float = 0.95
) -> dict[str, Estimate]:
    """Members and non-members flagged at ``score >= threshold``, as ``operating_tpr`` and
    ``false_alarm_rate``, each a proportion with a Clopper–Pearson interval (not estimable where
    a side has no record). Unlike `rates_at_threshold`, one side may be absent, so it serves any
    slice of the records (a class, a difficulty band).

    Example:
        >>> rates = flag_rates(np.array([3.0, 1.0, 2.0, 0.0]), np.array([1, 1, 0, 0]), 2.0)
        >>> rates["operating_tpr"].value, rates["false_alarm_rate"].value
        (0.5, 0.5)
    """
    s = np.asarray(scores, dtype=np.float64)
    member = np.asarray(is_member) == 1
    flagged = s >= threshold
    return {
        "operating_tpr": proportion(
            int((flagged & member).sum()), int(member.sum()), confidence, empty="no members"
        ),
        "false_alarm_rate": proportion(
            int((flagged & ~member).sum()), int((~member).sum()), confidence, empty="no non-members"
        ),
    }


def quantile_bands(
    values: np.ndarray, reference: np.ndarray, bands: int
) -> tuple[np.ndarray, np.ndarray]:
    """Assign ``values`` to ``bands`` bands cut at the quantiles of ``reference``.

    Args:
        values: the values to band (NaN allowed).
        reference: the values whose quantiles cut the bands (NaN ignored).
        bands: the number of bands, at least 1.

    Returns:
        ``(band, edges)``: for each value its band ``0..bands-1`` (``-1`` for NaN; values outside
        the reference's range fall in the first or last band) and the ``bands - 1`` inner edges.

    Example:
        >>> quantile_bands(np.array([0.0, 5.0, 9.0, np.nan]), np.arange(10.0), 2)[0].tolist()
        [0, 1, 1, -1]
    """
    v = np.asarray(values, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    edges = (
        np.quantile(ref, np.arange(1, bands) / bands) if len(ref) else np.full(bands - 1, np.nan)
    )
    band = np.searchsorted(edges, v, side="right")
    return np.where(np.isfinite(v), band, -1), edges
