"""Per-record membership signals computed from the target's log-probabilities.

Pure functions, shared by the threshold baselines and the reference-model attacks. Every signal
is oriented so that a higher value means "more likely a member".
"""

from __future__ import annotations

import numpy as np


def true_class_log_prob(log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log p_y(x)``: the negative cross-entropy loss (Yeom et al. 2018)."""
    return log_probs[np.arange(len(y)), y]


def max_confidence(log_probs: np.ndarray) -> np.ndarray:
    """``max_c p_c(x)``: the label-free confidence signal."""
    return np.exp(log_probs.max(axis=1))


def negative_entropy(log_probs: np.ndarray) -> np.ndarray:
    """``-H(p(x))``: members tend to get sharper predictions."""
    p = np.exp(log_probs)
    return (p * log_probs).sum(axis=1)


def _log1m_exp(log_p: np.ndarray) -> np.ndarray:
    """``log(1 - exp(log_p))`` computed stably (log_p <= 0)."""
    log_p = np.minimum(log_p, -1e-300)
    out = np.empty_like(log_p)
    near_one = log_p > -np.log(2)  # p > 1/2: expm1 keeps the precision of 1 - p
    out[near_one] = np.log(-np.expm1(log_p[near_one]))
    out[~near_one] = np.log1p(-np.exp(log_p[~near_one]))
    return out


def negative_modified_entropy(log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``-Mentr(p(x), y)`` (Song & Mittal 2021).

    ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``: small when the true class is
    confidently right, large when a wrong class is confidently predicted. Unlike entropy it uses
    the label, so it is monotone in correctness.
    """
    n = len(y)
    rows = np.arange(n)
    p = np.exp(log_probs)
    log1m = _log1m_exp(log_probs)
    py = p[rows, y]
    terms = -p * log1m
    terms[rows, y] = -(1.0 - py) * log_probs[rows, y]
    return -terms.sum(axis=1)


def logit_scaled_confidence(log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log(p_y / (1 - p_y))``, the statistic LiRA models as Gaussian (Carlini et al. 2022)."""
    lp = true_class_log_prob(log_probs, y)
    return lp - _log1m_exp(lp)
