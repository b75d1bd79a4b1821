"""scikit-learn targets answer predict_proba or decision_function, unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from unmeasured.errors import TargetError
from unmeasured.targets import SklearnTarget, UnsupportedModelError


def test_probabilities_are_predict_proba(x, y) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    target = SklearnTarget(model)
    assert target.output == "probabilities" and target.num_classes == 3
    np.testing.assert_array_equal(target.predict(x), model.predict_proba(x))
    assert target.description == "scikit-learn Pipeline" and target.files == ()


def test_inputs_are_flattened(x, y) -> None:
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    np.testing.assert_array_equal(
        SklearnTarget(model).predict(x.reshape(23, 2, 2)), model.predict_proba(x)
    )


def test_multiclass_margins_are_logits(x, y) -> None:
    model = LinearSVC().fit(x, y)
    target = SklearnTarget(model)
    assert target.output == "logits"
    np.testing.assert_array_equal(target.predict(x), model.decision_function(x))


def test_binary_margin_becomes_two_logits_whose_softmax_is_the_sigmoid(x, y) -> None:
    model = LinearSVC().fit(x, y % 2)
    out = SklearnTarget(model).predict(x)
    margin = model.decision_function(x)
    assert out.shape == (23, 2)
    np.testing.assert_allclose(softmax(out, axis=1)[:, 1], expit(margin), rtol=1e-12)
    np.testing.assert_array_equal(out.argmax(axis=1), model.predict(x))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (lambda y: y + 5, r"classes are \[5, 6, 7\]; labels must be 0..C-1"),
        (lambda y: np.array(["a", "b", "c"])[y], r"classes are \['a', 'b', 'c'\]"),
    ],
)
def test_classes_must_be_0_to_c_minus_1(x, y, labels, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        SklearnTarget(LogisticRegression().fit(x, labels(y)))


def test_unfit_and_unsuitable_models_are_refused(x, y) -> None:
    with pytest.raises(TargetError, match="the LogisticRegression is not fitted"):
        SklearnTarget(LogisticRegression())
    with pytest.raises(UnsupportedModelError, match="LinearRegression has neither predict_proba"):
        SklearnTarget(LinearRegression().fit(x, y))
    with pytest.raises(TypeError):  # UnsupportedModelError is a TypeError too
        SklearnTarget(object())
