"""Confidence intervals: binomial proportions (Clopper–Pearson) and means (Student t)."""

from __future__ import annotations

import numpy as np
from scipy.stats import beta
from scipy.stats import t as student_t

from unmeasured.errors import InputError
from unmeasured.stats.estimate import Estimate


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) two-sided interval for a binomial proportion ``k / n``.

    Args:
        k: successes, ``0 <= k <= n``.
        n: trials, ``n >= 1``.
        confidence: coverage, in (0, 1).

    Returns:
        ``(low, high)``; ``low = 0`` when ``k = 0`` and ``high = 1`` when ``k = n``.

    Raises:
        InputError: ``n < 1``, ``k`` outside ``[0, n]`` or ``confidence`` outside (0, 1).

    Example:
        >>> tuple(round(v, 4) for v in clopper_pearson(0, 10))
        (0.0, 0.3085)
    """
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    if not 0 <= k <= n:
        raise InputError(f"k must be in [0, n={n}], got {k}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def clopper_pearson_lower(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided lower bound: ``p >= low`` with probability ``confidence``."""
    return clopper_pearson(k, n, 2 * confidence - 1)[0]


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper bound: ``p <= high`` with probability ``confidence``."""
    return clopper_pearson(k, n, 2 * confidence - 1)[1]


def proportion(
    hits: int, n: int, confidence: float = 0.95, *, empty: str = "no records"
) -> Estimate:
    """The proportion ``hits / n`` with its Clopper–Pearson interval, or not estimable (with
    the reason ``empty``) when ``n`` is 0.

    Example:
        >>> proportion(3, 10).format()
        '0.300 [0.067, 0.652]'
    """
    if n == 0:
        return Estimate.not_estimable(empty, n=0, confidence=confidence)
    return Estimate(hits / n, clopper_pearson(hits, n, confidence), n, confidence)


def mean_t(
    values: np.ndarray,
    confidence: float = 0.95,
    *,
    bounds: tuple[float | None, float | None] = (None, None),
    empty: str = "no values",
) -> Estimate:
    """The mean of ``values`` with a two-sided Student t interval, clipped to ``bounds``
    (None: open); not estimable without values (``empty`` says why), no interval from one.

    Example:
        >>> mean_t(np.array([0.1, 0.2, 0.3]), bounds=(0.0, 1.0)).format()
        '0.200 [0.000, 0.448]'
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n == 0:
        return Estimate.not_estimable(empty, n=0, confidence=confidence)
    mean = float(v.mean())
    if n < 2:
        return Estimate(mean, None, n, confidence)
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    low, high = mean - half, mean + half
    if bounds[0] is not None:
        low = max(bounds[0], low)
    if bounds[1] is not None:
        high = min(bounds[1], high)
    return Estimate(mean, (low, high), n, confidence)
