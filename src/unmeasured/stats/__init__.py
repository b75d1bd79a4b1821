"""Pure statistics: ROC, AUC, TPR at fixed FPR, intervals, empirical privacy bounds."""

from unmeasured.stats.estimate import Estimate

__all__ = ["Estimate"]
