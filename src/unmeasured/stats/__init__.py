"""Pure statistics: ROC, AUC, TPR at fixed FPR, intervals, empirical privacy bounds."""

from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import (
    clopper_pearson,
    clopper_pearson_lower,
    clopper_pearson_upper,
)
from unmeasured.stats.membership import DEFAULT_FPRS, membership_metrics, tpr_key
from unmeasured.stats.privacy import (
    epsilon_from_rates,
    epsilon_lower_bound,
    one_run_epsilon_lower_bound,
)
from unmeasured.stats.roc import (
    MIN_EXPECTED_FALSE_POSITIVES,
    RocCurve,
    advantage,
    auc,
    calibrate_threshold,
    check_scores,
    rates_at_threshold,
    roc_curve,
    tpr_at_fpr,
)

__all__ = [
    "DEFAULT_FPRS",
    "MIN_EXPECTED_FALSE_POSITIVES",
    "Estimate",
    "RocCurve",
    "advantage",
    "auc",
    "calibrate_threshold",
    "check_scores",
    "clopper_pearson",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "epsilon_from_rates",
    "epsilon_lower_bound",
    "membership_metrics",
    "one_run_epsilon_lower_bound",
    "rates_at_threshold",
    "roc_curve",
    "tpr_at_fpr",
    "tpr_key",
]
