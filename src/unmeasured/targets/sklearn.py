"""scikit-learn targets: a fitted classifier queried through ``predict_proba`` or
``decision_function``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unmeasured.errors import TargetError
from unmeasured.targets.base import Target, UnsupportedModelError


class SklearnTarget(Target):
    """A fitted scikit-learn classifier (or pipeline) whose classes are ``0..C-1``.

    ``predict`` answers ``predict_proba`` (``output = "probabilities"``) when the estimator has
    it, otherwise ``decision_function`` as logits. A binary decision function ``d`` becomes the
    logits ``[-d/2, d/2]``, whose softmax is ``sigmoid(d)``: for a linear model ``d`` is the
    log-odds of class 1. Inputs are flattened to ``(n, features)``.

    Args:
        estimator: the fitted classifier.
        files: the file it was loaded from, for provenance.

    Raises:
        UnsupportedModelError: not a classifier with ``predict_proba`` or
            ``decision_function``.
        TargetError: not fitted, or classes other than ``0..C-1``.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> x, y = np.eye(3), np.arange(3)
        >>> SklearnTarget(LogisticRegression().fit(x, y)).predict(x).shape
        (3, 3)
    """

    def __init__(self, estimator: Any, *, files: Sequence[Path] = ()) -> None:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        name = type(estimator).__name__
        if hasattr(estimator, "predict_proba"):
            self.output = "probabilities"
        elif hasattr(estimator, "decision_function"):
            self.output = "logits"
        else:
            raise UnsupportedModelError(
                f"target: a {name} has neither predict_proba nor decision_function; "
                "give a scikit-learn classifier"
            )
        try:
            check_is_fitted(estimator)
        except NotFittedError:
            raise TargetError(f"target: the {name} is not fitted; audit a trained model") from None
        except TypeError:
            raise UnsupportedModelError(
                f"target: a {name} is not a scikit-learn estimator"
            ) from None
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise UnsupportedModelError(f"target: a {name} has no classes_; not a classifier")
        classes = np.asarray(classes)
        if classes.ndim != 1 or not np.array_equal(classes, np.arange(len(classes))):
            raise TargetError(
                f"target: the {name}'s classes are {classes.tolist()[:10]}; labels must be "
                "0..C-1 (encode them, e.g. with LabelEncoder, before training)"
            )
        self.estimator = estimator
        self.num_classes = len(classes)
        self.files = tuple(Path(f) for f in files)
        self.description = f"scikit-learn {name}"

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not len(x):  # scikit-learn refuses empty arrays
            return np.zeros((0, self.num_classes))
        flat = x.reshape(len(x), -1)
        if self.output == "probabilities":
            return np.asarray(self.estimator.predict_proba(flat), dtype=np.float64)
        margin = np.asarray(self.estimator.decision_function(flat), dtype=np.float64)
        if margin.ndim == 1:
            return np.stack([-margin / 2, margin / 2], axis=1)
        return margin
