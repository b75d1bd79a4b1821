"""ONNX targets through ONNX Runtime match the model they were exported from."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from unmeasured.errors import MissingDependencyError, TargetError
from unmeasured.targets import OnnxTarget

from .conftest import eval_logits

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",
)


def _export_torch(model: nn.Module, path: Path, example: np.ndarray, name: str = "logits") -> Path:
    # The dynamo exporter needs onnxscript; the TorchScript-based one needs nothing more.
    torch.onnx.export(
        model.eval(),
        (torch.from_numpy(example[:1]),),
        str(path),
        input_names=["x"],
        output_names=[name],
        dynamic_axes={"x": {0: "batch"}, name: {0: "batch"}},
        dynamo=False,
    )
    return path


def _export_sklearn(model, path: Path, zipmap: bool) -> Path:
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model): {"zipmap": zipmap}}
    onx = skl2onnx.convert_sklearn(
        model, initial_types=[("x", FloatTensorType([None, 4]))], options=options
    )
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.mark.parametrize("batch_size", [1, 5, 512])
def test_matches_the_torch_model(mlp: nn.Module, x, tmp_path: Path, batch_size: int) -> None:
    target = OnnxTarget(_export_torch(mlp, tmp_path / "m.onnx", x), batch_size=batch_size)
    assert target.output == "logits" and target.num_classes == 3
    np.testing.assert_allclose(target.predict(x), eval_logits(mlp, x), atol=1e-5)
    assert target.files == (tmp_path / "m.onnx",) and target.description == "ONNX m.onnx"


def test_output_kind_from_the_name_or_given(mlp: nn.Module, x, tmp_path: Path) -> None:
    path = _export_torch(nn.Sequential(mlp, nn.Softmax(1)), tmp_path / "p.onnx", x, "probs")
    assert OnnxTarget(path).output == "probabilities"
    assert OnnxTarget(path, output="logits").output == "logits"
    with pytest.raises(TargetError, match="must be 'auto', 'logits' or 'probabilities'"):
        OnnxTarget(path, output="softmax")


def test_sklearn_export_without_zipmap_gives_probabilities(x, y, tmp_path: Path) -> None:
    model = LogisticRegression().fit(x, y)
    target = OnnxTarget(_export_sklearn(model, tmp_path / "lr.onnx", zipmap=False))
    assert target.output == "probabilities" and target.num_classes == 3
    np.testing.assert_allclose(target.predict(x), model.predict_proba(x), atol=1e-5)
    with pytest.raises(TargetError, match="target.num_classes: 4, but lr.onnx outputs 3"):
        OnnxTarget(tmp_path / "lr.onnx", num_classes=4)


def test_zipmap_output_is_refused_with_the_fix(x, y, tmp_path: Path) -> None:
    path = _export_sklearn(LogisticRegression().fit(x, y), tmp_path / "z.onnx", zipmap=True)
    with pytest.raises(TargetError, match=r'options=\{"zipmap": False\}') as e:
        OnnxTarget(path)
    assert "\n" not in str(e.value) and "output_probability" in str(e.value)


def test_bad_files_and_inputs(mlp: nn.Module, x, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such file"):
        OnnxTarget(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"nonsense")
    with pytest.raises(TargetError, match="bad.onnx: cannot load ONNX model") as e:
        OnnxTarget(tmp_path / "bad.onnx")
    assert "\n" not in str(e.value)
    target = OnnxTarget(_export_torch(mlp, tmp_path / "m.onnx", x))
    with pytest.raises(TargetError, match=r"cannot process inputs of shape \(5,\)") as e:
        target.predict(np.zeros((2, 5), np.float32))
    assert "\n" not in str(e.value)


def test_missing_onnxruntime_names_the_extra(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'unmeasured\[onnx\]'"):
        OnnxTarget(tmp_path / "m.onnx")
