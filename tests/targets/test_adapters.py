"""Adapters answer exactly what the wrapped model answers, in eval mode and in batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from torch import nn

from unmeasured.errors import TargetError
from unmeasured.targets import CallableTarget, as_target, to_log_probs
from unmeasured.targets.sklearn import SklearnTarget
from unmeasured.targets.torch import TorchTarget


def _mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 3))


X = np.random.default_rng(0).normal(size=(23, 4)).astype(np.float32)
Y = np.random.default_rng(1).integers(0, 3, 23)


def test_torch_target_matches_module_and_batches() -> None:
    model = _mlp()
    with torch.no_grad():
        expected = model(torch.from_numpy(X)).double().numpy()
    np.testing.assert_allclose(TorchTarget(model).predict(X), expected, rtol=1e-6)
    np.testing.assert_allclose(TorchTarget(model, batch_size=7).predict(X), expected, rtol=1e-6)
    assert TorchTarget(model).infer_num_classes(X) == 3


def test_torch_target_enforces_eval_mode() -> None:
    model = _mlp(dropout=0.5)
    model.train()
    target = TorchTarget(model)
    np.testing.assert_array_equal(target.predict(X), target.predict(X))


def test_features_and_gradients() -> None:
    model = _mlp()
    target = TorchTarget(model)
    feats = target.features(X, ["0", "1"])
    assert feats["0"].shape == (23, 8) and (feats["1"] >= 0).all()
    with pytest.raises(TargetError, match="not found; the model has: 0, 1, 2, 3"):
        target.features(X, ["fc9"])
    xt = torch.from_numpy(X).requires_grad_(True)
    nn.functional.cross_entropy(model(xt), torch.from_numpy(Y), reduction="sum").backward()
    np.testing.assert_allclose(target.input_gradients(X, Y), xt.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_shape_mismatch_is_an_input_error() -> None:
    with pytest.raises(TargetError, match="cannot process inputs of shape \\(5,\\)"):
        TorchTarget(_mlp()).predict(np.zeros((2, 5), np.float32))


def test_sklearn_targets() -> None:
    lr = LogisticRegression().fit(X, Y)
    t = SklearnTarget(lr)
    assert t.output == "probabilities" and t.num_classes == 3
    np.testing.assert_allclose(np.exp(t.log_probs(X)), lr.predict_proba(X), rtol=1e-6)
    svc = LinearSVC().fit(X, Y)
    np.testing.assert_allclose(SklearnTarget(svc).predict(X), svc.decision_function(X))
    binary = LinearSVC().fit(X, Y % 2)
    out = SklearnTarget(binary).predict(X)
    assert out.shape == (23, 2)
    np.testing.assert_array_equal(out.argmax(1), binary.predict(X))


def test_sklearn_target_errors() -> None:
    with pytest.raises(TargetError, match="not fitted"):
        SklearnTarget(LogisticRegression())
    with pytest.raises(TargetError, match="0..C-1"):
        SklearnTarget(LogisticRegression().fit(X, Y + 5))


def test_callable_target() -> None:
    t = CallableTarget(lambda a: np.zeros((len(a), 3)), num_classes=3, batch_size=5)
    assert t.predict(X).shape == (23, 3)
    with pytest.raises(TargetError, match="returned shape"):
        CallableTarget(lambda a: np.zeros((len(a), 2)), num_classes=3).predict(X)


def test_as_target() -> None:
    assert isinstance(as_target(_mlp()), TorchTarget)
    assert isinstance(as_target(LogisticRegression().fit(X, Y)), SklearnTarget)
    assert isinstance(as_target(lambda a: a[:, :3], num_classes=3), CallableTarget)
    with pytest.raises(TargetError, match="num_classes"):
        as_target(lambda a: a)
    with pytest.raises(TargetError, match="cannot audit a str"):
        as_target("model.pt")


def test_to_log_probs() -> None:
    logits = np.array([[1000.0, 0.0, -5.0]])
    lp = to_log_probs(logits, "logits")
    assert np.isfinite(lp).all() and abs(np.exp(lp).sum() - 1) < 1e-12
    lp = to_log_probs(np.array([[0.2, 0.8, 0.0]]), "probabilities")
    assert np.isfinite(lp).all()
