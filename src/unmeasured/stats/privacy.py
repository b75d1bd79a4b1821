"""Empirical lower bounds on differential privacy's ε from a membership attack.

Under (ε, δ)-DP every test telling members from non-members satisfies
``TPR <= e^ε · FPR + δ`` and ``TNR <= e^ε · FNR + δ`` (Kairouz et al. 2015), so an attack with
measured rates bounds ε from below:

    ε >= log((TPR − δ) / FPR)   and   ε >= log((1 − FPR − δ) / (1 − TPR)).

To hold up, the rates are replaced by one-sided Clopper–Pearson bounds (TPR low, FPR high), at
a Bonferroni-corrected level over all candidate thresholds and both bounds of each, so the
reported number is a lower bound at the stated confidence even though the best threshold is
picked after looking.
"""

from __future__ import annotations

import math

import numpy as np

from unmeasured.errors import InputError
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import clopper_pearson_lower, clopper_pearson_upper
from unmeasured.stats.roc import check_scores

DEFAULT_FPRS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5)


def epsilon_from_rates(tpr: float, fpr: float, delta: float = 0.0) -> float:
    """The ε lower bound implied by exact rates (clamped at 0).

    Example:
        >>> round(epsilon_from_rates(0.5, 0.05), 4)  # log(0.5 / 0.05)
        2.3026
    """
    bounds = [0.0]
    if tpr - delta > 0 and fpr > 0:
        bounds.append(math.log((tpr - delta) / fpr))
    if 1 - fpr - delta > 0 and tpr < 1:
        bounds.append(math.log((1 - fpr - delta) / (1 - tpr)))
    if (tpr - delta > 0 and fpr == 0) or (1 - fpr - delta > 0 and tpr == 1):
        return math.inf
    return max(bounds)


def epsilon_lower_bound(
    scores: np.ndarray,
    labels: np.ndarray,
    delta: float = 0.0,
    confidence: float = 0.95,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
) -> Estimate:
    """One-sided lower bound on ε: ``ε >= value`` with probability ``confidence``.

    Candidate thresholds sit at the given FPR levels of the non-member scores.

    Returns:
        ``Estimate(value=bound, ci=None, n=len(scores))``.
    """
    if not 0 <= delta < 1:
        raise InputError(f"delta must be in [0, 1), got {delta}")
    s, lab = check_scores(scores, labels)
    pos, neg = s[lab == 1], s[lab == 0]
    n1, n0 = len(pos), len(neg)
    neg_desc = np.sort(neg)[::-1]
    thresholds = set()
    for f in fprs:
        k = min(math.floor(f * n0 + 1e-9), n0 - 1)
        thresholds.add(float(np.nextafter(neg_desc[k], np.inf)))
    # each candidate needs a TPR and an FPR bound; two directions share them
    level = 1 - (1 - confidence) / (2 * len(thresholds))
    best = 0.0
    for t in thresholds:
        tp, fp = int((pos >= t).sum()), int((neg >= t).sum())
        tpr_lo = clopper_pearson_lower(tp, n1, level)
        fpr_hi = clopper_pearson_upper(fp, n0, level)
        best = max(best, epsilon_from_rates(tpr_lo, fpr_hi, delta))
    return Estimate(value=float(best), ci=None, n=len(s), confidence=confidence)


def one_run_epsilon_lower_bound(correct: int, guesses: int, confidence: float = 0.95) -> Estimate:
    """The ε lower bound of a one-run audit (Steinke, Nasr & Jagielski, NeurIPS 2023), pure ε-DP.

    Canaries are included in training independently with probability 1/2; an auditor guesses
    the inclusion of ``guesses`` of them and gets ``correct`` right. Under ε-DP the number of
    correct guesses is stochastically dominated by ``Binomial(guesses, e^ε / (1 + e^ε))``, so
    every ε whose tail probability ``P[Binomial >= correct]`` is below ``1 − confidence`` is
    rejected; the bound is the largest rejected ε (0 when none is).

    Returns:
        ``Estimate(value=bound, ci=None, n=guesses)``.

    Raises:
        InputError: counts out of range.

    Example:
        >>> round(one_run_epsilon_lower_bound(100, 100).value, 3)  # logit(0.05 ** (1 / 100))
        3.493
    """
    from scipy.optimize import brentq
    from scipy.stats import binom

    if guesses < 1 or not 0 <= correct <= guesses:
        raise InputError(f"need 0 <= correct <= guesses and guesses >= 1, got {correct}/{guesses}")
    alpha = 1 - confidence

    def tail(eps: float) -> float:  # increases with ε
        p = 1.0 / (1.0 + math.exp(-eps))
        return float(binom.sf(correct - 1, guesses, p)) - alpha

    if tail(0.0) >= 0:  # not even ε = 0 is rejected
        return Estimate(value=0.0, ci=None, n=guesses, confidence=confidence)
    high = 1.0
    while tail(high) < 0 and high < 100:
        high *= 2
    bound = high if tail(high) < 0 else brentq(tail, 0.0, high, xtol=1e-10)
    return Estimate(value=float(bound), ci=None, n=guesses, confidence=confidence)
