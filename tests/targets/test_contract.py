"""One contract, every adapter: shapes, dtypes, batching, empty input, log-probabilities."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from torch import nn

from unmeasured.targets import (
    CallableTarget,
    OnnxTarget,
    SklearnTarget,
    Target,
    TorchScriptTarget,
    TorchTarget,
)
from unmeasured.targets.base import CAPABILITIES

# TorchScript and the TorchScript-based ONNX exporter are deprecated in torch 2.9+, still work,
# and are what users' files come from.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.*is deprecated:DeprecationWarning",
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",
)


def _torchscript(mlp: nn.Module, tmp_path: Path, x, y) -> Target:
    torch.jit.script(mlp.eval()).save(str(tmp_path / "m.pt"))
    return TorchScriptTarget(tmp_path / "m.pt", batch_size=5)


def _onnx(mlp: nn.Module, tmp_path: Path, x, y) -> Target:
    pytest.importorskip("onnxruntime")
    torch.onnx.export(
        mlp.eval(),
        (torch.from_numpy(x[:1]),),
        str(tmp_path / "m.onnx"),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return OnnxTarget(tmp_path / "m.onnx", batch_size=5)


MAKERS: dict[str, Callable[..., Target]] = {
    "torch": lambda mlp, tmp_path, x, y: TorchTarget(mlp, batch_size=5),
    "torchscript": _torchscript,
    "onnx": _onnx,
    "sklearn-probabilities": lambda mlp, tmp_path, x, y: SklearnTarget(
        LogisticRegression().fit(x, y)
    ),
    "sklearn-margins": lambda mlp, tmp_path, x, y: SklearnTarget(LinearSVC().fit(x, y)),
    "callable": lambda mlp, tmp_path, x, y: CallableTarget(
        lambda a: a[:, :3] * 2.0, num_classes=3, batch_size=5
    ),
}


@pytest.fixture(params=list(MAKERS))
def target(request, mlp: nn.Module, tmp_path: Path, x: np.ndarray, y: np.ndarray) -> Target:
    return MAKERS[request.param](mlp, tmp_path, x, y)


def test_every_target_keeps_the_contract(target: Target, x: np.ndarray) -> None:
    out = target.predict(x)
    assert out.dtype == np.float64 and out.shape == (23, 3) and np.isfinite(out).all()
    assert target.num_classes == 3 and target.output in ("logits", "probabilities")
    # batch boundaries change nothing: a prefix answers the same as the whole
    np.testing.assert_allclose(target.predict(x[:7]), out[:7], rtol=1e-6, atol=1e-6)
    assert target.predict(x[:0]).shape == (0, 3)
    np.testing.assert_allclose(logsumexp(target.log_probs(x), axis=1), 0.0, atol=1e-9)
    np.testing.assert_array_equal(target.predict_labels(x), out.argmax(axis=1))
    assert {"labels", "scores"} <= target.capabilities <= set(CAPABILITIES)
    assert isinstance(target.files, tuple) and all(Path(f).is_file() for f in target.files)
    assert isinstance(target.description, str) and target.description
