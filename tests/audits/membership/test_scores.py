import numpy as np
from scipy.special import log_softmax

from unmeasured.audits.membership.scores import (
    logit_scaled_confidence,
    max_confidence,
    negative_entropy,
    negative_modified_entropy,
    true_class_log_prob,
)


def _lp(seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3, size=(50, 4))
    return log_softmax(logits, axis=1), rng.integers(0, 4, 50)


def test_signals_match_direct_formulas() -> None:
    lp, y = _lp()
    p = np.exp(lp)
    rows = np.arange(len(y))
    np.testing.assert_allclose(true_class_log_prob(lp, y), np.log(p[rows, y]))
    np.testing.assert_allclose(max_confidence(lp), p.max(axis=1))
    np.testing.assert_allclose(negative_entropy(lp), (p * np.log(p)).sum(axis=1))
    mentr = []
    for i in range(len(y)):
        s = -(1 - p[i, y[i]]) * np.log(p[i, y[i]])
        s -= sum(p[i, j] * np.log(1 - p[i, j]) for j in range(4) if j != y[i])
        mentr.append(s)
    np.testing.assert_allclose(negative_modified_entropy(lp, y), -np.array(mentr), rtol=1e-10)
    py = p[rows, y]
    np.testing.assert_allclose(logit_scaled_confidence(lp, y), np.log(py / (1 - py)), rtol=1e-8)


def test_signals_finite_on_saturated_outputs() -> None:
    lp = log_softmax(np.array([[800.0, 0.0, 0.0], [0.0, 0.0, -900.0]]), axis=1)
    y = np.array([0, 2])
    for s in (negative_modified_entropy(lp, y), logit_scaled_confidence(lp, y)):
        assert np.isfinite(s).all()
    # a confidently right record scores higher than a confidently wrong one
    assert negative_modified_entropy(lp, y)[0] > negative_modified_entropy(lp, y)[1]
