"""ROC, AUC, TPR at a fixed FPR, advantage and operating-point rates, with honest intervals.

Conventions: ``scores`` higher = more likely a member (positive); ``labels`` 1 = member,
0 = non-member; a threshold ``t`` flags records with ``score >= t``.

**TPR at a fixed FPR.** The target quantity is ``P(member score > τ)`` where ``τ`` is the
lowest threshold whose true FPR, ``P(non-member score > τ)``, is at most the target. The point
value is the TPR of the most permissive threshold whose empirical FPR on the non-members does
not exceed the target (ties never push it over). Its interval accounts for two sources of error:
the members sampled, and the threshold estimated from the non-members. ``τ`` is bracketed by two
order statistics of the non-member scores chosen from Binomial(n0, FPR) quantiles (error α/4 on
each side), then a one-sided Clopper–Pearson bound on the members is taken at each end (α/4
each); this holds for tied and discrete scores too.

**Not estimable.** A TPR at FPR ``f`` is reported as not estimable when the non-members are too
few for the threshold to rest on anything: ``n0 · f < 5`` (fewer than five expected false
positives; so 0.1% FPR needs 5,000 non-members, 1% needs 500).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, norm
from sklearn.metrics import roc_curve as _sk_roc_curve

from unmeasured.errors import InputError
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    proportion,
)

MIN_EXPECTED_FALSE_POSITIVES = 5


def check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``scores`` (finite floats) and ``labels`` (0/1, both present)."""
    s = np.asarray(scores, dtype=np.float64)
    lab = np.asarray(labels)
    if s.ndim != 1 or lab.ndim != 1:
        raise InputError(f"scores and labels must be 1-D; got shapes {s.shape} and {lab.shape}")
    if len(s) != len(lab):
        raise InputError(f"scores and labels differ in length: {len(s)} vs {len(lab)}")
    if not np.isfinite(s).all():
        raise InputError(f"scores: {int((~np.isfinite(s)).sum())} values are NaN or infinite")
    if not np.isin(lab, (0, 1)).all():
        raise InputError("labels must be 0 (non-member) or 1 (member)")
    lab = lab.astype(np.int8)
    if lab.min() == lab.max():
        raise InputError("labels: both members (1) and non-members (0) are needed")
    return s, lab


@dataclass(frozen=True)
class RocCurve:
    """Points of a ROC curve, from the strictest threshold to the most permissive."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> RocCurve:
    """The full ROC curve (every threshold), via `sklearn.metrics.roc_curve`."""
    s, lab = check_scores(scores, labels)
    fpr, tpr, thr = _sk_roc_curve(lab, s, drop_intermediate=False)
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thr)


def auc(scores: np.ndarray, labels: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Area under the ROC with a DeLong interval (fast midrank form, Sun & Xu 2014).

    Example:
        >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])).value
        0.75
    """
    from scipy.stats import rankdata

    s, lab = check_scores(scores, labels)
    pos, neg = s[lab == 1], s[lab == 0]
    n1, n0 = len(pos), len(neg)
    combined = rankdata(s, method="average")
    r_pos = combined[lab == 1]
    r_neg = combined[lab == 0]
    v10 = (r_pos - rankdata(pos, method="average")) / n0
    v01 = 1.0 - (r_neg - rankdata(neg, method="average")) / n1
    value = float(v10.mean())
    var = (v10.var(ddof=1) / n1 if n1 > 1 else 0.0) + (v01.var(ddof=1) / n0 if n0 > 1 else 0.0)
    half = norm.ppf(0.5 + confidence / 2) * math.sqrt(max(var, 0.0))
    ci = (max(0.0, value - half), min(1.0, value + half))
    return Estimate(value=value, ci=ci, n=len(s), confidence=confidence)


def _desc(values: np.ndarray) -> np.ndarray:
    return np.sort(values)[::-1]


def tpr_at_fpr(
    scores: np.ndarray,
    labels: np.ndarray,
    fpr: float,
    confidence: float = 0.95,
    min_expected_false_positives: float = MIN_EXPECTED_FALSE_POSITIVES,
) -> Estimate:
    """TPR at a target FPR, with an interval that accounts for threshold uncertainty.

    Args:
        scores, labels: as everywhere in this module.
        fpr: target false-positive rate in (0, 1).
        confidence: coverage of the interval.
        min_expected_false_positives: the not-estimable rule: the number of non-members times
            ``fpr`` must reach this.

    Returns:
        An `Estimate` of the TPR (``n`` = number of members), or not estimable with the reason.
    """
    if not 0 < fpr < 1:
        raise InputError(f"fpr must be in (0, 1), got {fpr}")
    s, lab = check_scores(scores, labels)
    pos, neg_desc = s[lab == 1], _desc(s[lab == 0])
    n1, n0 = len(pos), len(neg_desc)
    if n0 * fpr < min_expected_false_positives:
        need = math.ceil(min_expected_false_positives / fpr)
        return Estimate.not_estimable(
            f"needs >= {need} non-members for FPR {fpr:g}, have {n0}",
            n=n1,
            confidence=confidence,
        )
    k_max = math.floor(fpr * n0 + 1e-9)
    value = float((pos > neg_desc[k_max]).mean()) if k_max < n0 else 1.0
    alpha = 1 - confidence
    k_lo = int(binom.ppf(alpha / 4, n0, fpr))
    k_hi = int(binom.isf(alpha / 4, n0, fpr))
    strict = neg_desc[k_lo - 1] if k_lo >= 1 else np.inf
    loose = neg_desc[k_hi] if k_hi < n0 else -np.inf
    low = clopper_pearson_lower(int((pos > strict).sum()), n1, 1 - alpha / 4)
    high = clopper_pearson_upper(int((pos > loose).sum()), n1, 1 - alpha / 4)
    return Estimate(value=value, ci=(low, high), n=n1, confidence=confidence)


def _group_sums(groups: np.ndarray, w: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-row sums of weights ``w`` (B, m) into ``groups`` (m,) → (B, n_groups)."""
    b = w.shape[0]
    flat = (groups[None, :] + n_groups * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, weights=w.ravel(), minlength=b * n_groups).reshape(b, n_groups)


def _weighted_advantage(groups: np.ndarray, lab: np.ndarray, w: np.ndarray) -> np.ndarray:
    """max(TPR − FPR) for each row of weights ``w`` (B, n) over records grouped by tied score
    (group 0 = highest score)."""
    n_groups = int(groups.max()) + 1
    tp = _group_sums(groups[lab == 1], w[:, lab == 1], n_groups)
    fp = _group_sums(groups[lab == 0], w[:, lab == 0], n_groups)
    tpr = np.cumsum(tp, axis=1) / tp.sum(axis=1, keepdims=True)
    fpr = np.cumsum(fp, axis=1) / fp.sum(axis=1, keepdims=True)
    return np.maximum((tpr - fpr).max(axis=1), 0.0)


def advantage(
    scores: np.ndarray,
    labels: np.ndarray,
    confidence: float = 0.95,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> Estimate:
    """Membership advantage ``max_t TPR(t) − FPR(t)`` (Yeom et al. 2018) with a stratified
    percentile-bootstrap interval (members and non-members resampled separately)."""
    s, lab = check_scores(scores, labels)
    _, inverse = np.unique(-s, return_inverse=True)
    value = float(_weighted_advantage(inverse, lab, np.ones((1, len(s))))[0])
    rng = np.random.default_rng(seed)
    boot = []
    for start in range(0, n_bootstrap, 25):  # chunks bound memory to 25 weight rows
        b = min(25, n_bootstrap - start)
        w = np.zeros((b, len(s)))
        for cls in (0, 1):
            idx = np.flatnonzero(lab == cls)
            m = len(idx)
            draws = (rng.integers(0, m, size=(b, m)) + m * np.arange(b)[:, None]).ravel()
            w[:, idx] = np.bincount(draws, minlength=b * m).reshape(b, m)
        boot.append(_weighted_advantage(inverse, lab, w))
    boot = np.concatenate(boot)
    tail = (1 - confidence) / 2
    ci = (float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail)))
    return Estimate(value=value, ci=ci, n=len(s), confidence=confidence)


def rates_at_threshold(
    scores: np.ndarray, labels: np.ndarray, threshold: float, confidence: float = 0.95
) -> dict[str, Estimate]:
    """TPR, FPR (the false-alarm rate: non-members flagged) and precision at ``score >= t``,
    each with a Clopper–Pearson interval."""
    s, lab = check_scores(scores, labels)
    flagged = s >= threshold
    tp = int((flagged & (lab == 1)).sum())
    fp = int((flagged & (lab == 0)).sum())
    n1, n0 = int((lab == 1).sum()), int((lab == 0).sum())
    out = {
        "tpr": proportion(tp, n1, confidence),
        "fpr": proportion(fp, n0, confidence),
    }
    out["precision"] = proportion(tp, tp + fp, confidence, empty="no record flagged")
    return out


def calibrate_threshold(reference_scores: np.ndarray, fpr: float) -> float:
    """A threshold flagging at most ``fpr`` of the reference scores (known non-members, e.g. the
    population), as many as that allows; chosen without the audited ground truth.

    Example:
        >>> calibrate_threshold(np.arange(100.0), 0.05) > 94
        True
    """
    if not 0 < fpr < 1:
        raise InputError(f"fpr must be in (0, 1), got {fpr}")
    ref = np.asarray(reference_scores, dtype=np.float64)
    if ref.ndim != 1 or len(ref) == 0 or not np.isfinite(ref).all():
        raise InputError("reference_scores must be a non-empty 1-D array of finite values")
    desc = _desc(ref)
    k_max = math.floor(fpr * len(desc) + 1e-9)
    return float(np.nextafter(desc[k_max], np.inf))
