"""scikit-learn targets: a fitted classifier queried through ``predict_proba`` or
``decision_function``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unmeasured.errors import TargetError
from unmeasured.targets.base import Target


class SklearnTarget(Target):
    """A fitted scikit-learn classifier whose classes are 0..C-1."""

    capabilities = frozenset({"scores", "labels"})

    def __init__(self, estimator: object, *, files: Sequence[Path] = ()) -> None:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(estimator)
        except NotFittedError:
            raise TargetError(
                f"target: the {type(estimator).__name__} is not fitted; audit a trained model"
            ) from None
        except TypeError:
            raise TargetError(f"target: {type(estimator).__name__} is not an estimator") from None
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise TargetError(
                f"target: {type(estimator).__name__} has no classes_; not a classifier"
            )
        classes = np.asarray(classes)
        if not np.array_equal(classes, np.arange(len(classes))):
            raise TargetError(
                f"target: the classifier's classes are {classes.tolist()[:10]}; labels must be "
                "0..C-1 (encode them, e.g. with LabelEncoder, before training)"
            )
        self.estimator = estimator
        self.num_classes = len(classes)
        self.files = tuple(files)
        self.description = f"scikit-learn {type(estimator).__name__}"
        if hasattr(estimator, "predict_proba"):
            self.output = "probabilities"
        elif hasattr(estimator, "decision_function"):
            self.output = "logits"
        else:
            raise TargetError(
                f"target: {type(estimator).__name__} has neither predict_proba nor "
                "decision_function"
            )

    def predict(self, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x).reshape(len(x), -1)
        if self.output == "probabilities":
            return np.asarray(self.estimator.predict_proba(flat), dtype=np.float64)  # type: ignore[attr-defined]
        d = np.asarray(self.estimator.decision_function(flat), dtype=np.float64)  # type: ignore[attr-defined]
        if d.ndim == 1:  # binary: the margin is the log-odds of class 1 for a linear model
            return np.stack([-d / 2, d / 2], axis=1)
        return d
