"""Statistics against scipy/sklearn, hand computation and simulated coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from sklearn.metrics import roc_auc_score

from unmeasured.errors import InputError
from unmeasured.stats import (
    advantage,
    auc,
    calibrate_threshold,
    clopper_pearson,
    epsilon_from_rates,
    epsilon_lower_bound,
    membership_metrics,
    rates_at_threshold,
    roc_curve,
    tpr_at_fpr,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 1000), (500, 1000)])
def test_clopper_pearson_matches_scipy(k: int, n: int) -> None:
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    np.testing.assert_allclose(clopper_pearson(k, n), (ref.low, ref.high), atol=1e-10)


def test_clopper_pearson_pinned() -> None:
    assert clopper_pearson(0, 10)[1] == pytest.approx(0.30850, abs=1e-5)
    with pytest.raises(InputError):
        clopper_pearson(11, 10)


def _gauss(seed: int, n1: int, n0: int, shift: float):
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(shift, 1, n1), rng.normal(0, 1, n0)]
    return s, np.r_[np.ones(n1, int), np.zeros(n0, int)]


def test_auc_matches_sklearn_and_hand() -> None:
    s, lab = _gauss(0, 300, 400, 0.7)
    assert auc(s, lab).value == pytest.approx(roc_auc_score(lab, s))
    # ties count one half: 3 of 4 pairs won, one tied → (3 + 0.5) / 4
    assert auc(np.array([1.0, 2.0, 2.0, 3.0]), np.array([0, 0, 1, 1])).value == 0.875


def test_delong_variance_close_to_bootstrap() -> None:
    s, lab = _gauss(1, 400, 400, 0.6)
    est = auc(s, lab)
    half = (est.ci[1] - est.ci[0]) / 2
    rng = np.random.default_rng(0)
    pos, neg = s[lab == 1], s[lab == 0]
    boots = [
        roc_auc_score(lab, np.r_[rng.choice(pos, 400), rng.choice(neg, 400)]) for _ in range(300)
    ]
    assert half / 1.96 == pytest.approx(np.std(boots), rel=0.15)


def test_auc_interval_coverage() -> None:
    shift = 0.5
    truth = norm.cdf(shift / math.sqrt(2))
    hits = 0
    for seed in range(300):
        lo, hi = auc(*_gauss(seed, 200, 200, shift)).ci
        hits += lo <= truth <= hi
    assert 0.92 <= hits / 300 <= 0.98


def test_tpr_at_fpr_point_value_and_ties() -> None:
    neg = np.arange(1000.0)  # FPR 1% → at most 10 non-members at or above the threshold
    pos = np.array([995.0, 990.5, 989.0, 5.0])
    s, lab = np.r_[pos, neg], np.r_[np.ones(4, int), np.zeros(1000, int)]
    assert tpr_at_fpr(s, lab, 0.01).value == 0.5  # 995 and 990.5 beat the 11th-largest (989)
    tied = np.r_[np.full(4, 7.0), np.full(1000, 7.0)]
    assert tpr_at_fpr(tied, lab, 0.01).value == 0.0  # flagging the tie would flag every non-member


def test_tpr_at_fpr_not_estimable_rule() -> None:
    s, lab = _gauss(0, 300, 300, 1.0)
    est = tpr_at_fpr(s, lab, 0.001)
    assert not est.estimable and "5000 non-members" in est.reason and "300" in est.reason
    assert tpr_at_fpr(s, lab, 0.1).estimable


def test_tpr_at_fpr_interval_coverage() -> None:
    shift, fpr = 1.0, 0.01
    truth = norm.sf(norm.isf(fpr) - shift)
    hits = sum(
        (lambda e: e.ci[0] <= truth <= e.ci[1])(tpr_at_fpr(*_gauss(seed, 1000, 1000, shift), fpr))
        for seed in range(200)
    )
    assert hits / 200 >= 0.93


def test_tpr_at_fpr_binary_scores_interval_is_ordered() -> None:
    rng = np.random.default_rng(0)
    s = np.r_[rng.random(500) < 0.98, rng.random(650) < 0.9].astype(float)
    lab = np.r_[np.ones(500, int), np.zeros(650, int)]
    est = tpr_at_fpr(s, lab, 0.01)
    assert est.value == 0.0  # flagging the "correct" tie would flag ~90% of non-members
    assert est.ci[0] <= est.value <= est.ci[1]


def test_tpr_at_fpr_extremes() -> None:
    s, lab = _gauss(3, 1000, 1000, 0.0)
    lo, hi = tpr_at_fpr(s, lab, 0.01).ci
    assert lo <= 0.01 <= hi
    perfect = np.r_[np.full(100, 10.0), np.zeros(1000)]
    assert tpr_at_fpr(perfect, np.r_[np.ones(100, int), np.zeros(1000, int)], 0.01).value == 1.0


def test_advantage_matches_roc_and_is_seeded() -> None:
    s, lab = _gauss(4, 500, 500, 0.8)
    roc = roc_curve(s, lab)
    est = advantage(s, lab)
    assert est.value == pytest.approx((roc.tpr - roc.fpr).max())
    assert est.ci[0] <= est.value <= est.ci[1]
    assert advantage(s, lab, seed=1) == advantage(s, lab, seed=1)


def test_rates_and_calibration() -> None:
    s = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])
    lab = np.array([1, 1, 1, 0, 0, 0])
    r = rates_at_threshold(s, lab, 0.5)
    assert (r["tpr"].value, r["fpr"].value, r["precision"].value) == (2 / 3, 1 / 3, 2 / 3)
    ref = np.arange(100.0)
    t = calibrate_threshold(ref, 0.05)
    assert (ref >= t).mean() == 0.05
    ties = np.full(50, 1.0)  # flagging the tie would flag all of them: flag none
    assert (ties >= calibrate_threshold(ties, 0.1)).mean() == 0.0


def test_epsilon_from_rates_by_hand() -> None:
    assert epsilon_from_rates(0.5, 0.05) == pytest.approx(math.log(10))
    assert epsilon_from_rates(0.99, 0.5) == pytest.approx(math.log(0.5 / 0.01))
    assert epsilon_from_rates(0.3, 0.3) == 0.0
    assert epsilon_from_rates(0.5, 0.05, delta=0.1) == pytest.approx(math.log(8))


def test_epsilon_lower_bound_planted() -> None:
    s, lab = _gauss(5, 2000, 2000, 0.0)
    assert epsilon_lower_bound(s, lab).value < 0.2
    perfect = np.r_[np.ones(1000), np.zeros(1000)]
    lab2 = np.r_[np.ones(1000, int), np.zeros(1000, int)]
    strong = epsilon_lower_bound(perfect, lab2).value
    assert strong > 4
    assert epsilon_lower_bound(perfect, lab2, confidence=0.99).value < strong


def test_membership_metrics_keys_and_validation() -> None:
    s, lab = _gauss(6, 600, 600, 0.5)
    keys = set(membership_metrics(s, lab))
    assert keys == {
        "auc",
        "tpr_at_fpr_0.001",
        "tpr_at_fpr_0.01",
        "tpr_at_fpr_0.1",
        "advantage",
        "epsilon_lower_bound",
    }
    with pytest.raises(InputError, match="length"):
        membership_metrics(s[:-1], lab)
    with pytest.raises(InputError, match="both"):
        membership_metrics(s, np.ones_like(lab))
    with pytest.raises(InputError, match="NaN"):
        membership_metrics(np.r_[np.nan, s[1:]], lab)


def test_mean_t_interval_bounds_and_the_unestimable() -> None:
    from unmeasured.stats.intervals import mean_t

    est = mean_t(np.array([0.1, 0.2, 0.3]), 0.95, bounds=(0.0, 1.0))
    # half-width t(0.975, 2) * 0.1 / sqrt(3) = 0.2484: the low end is clipped at 0
    assert est.value == pytest.approx(0.2)
    assert est.ci == (0.0, pytest.approx(0.4484, abs=1e-4))
    assert mean_t(np.array([0.5])).ci is None
    assert not mean_t(np.array([]), empty="no classes").estimable
