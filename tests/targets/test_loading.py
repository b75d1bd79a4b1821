"""Loading targets from files: safe by default, one-line errors that name the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression
from torch import nn

from unmeasured.errors import TargetError, UntrustedPickleError
from unmeasured.targets import load_target

FACTORY = """
from torch import nn

def build(width=8):
    return nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))

def not_a_model():
    return 42
"""
X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "model.py").write_text(textwrap.dedent(FACTORY))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    with torch.no_grad():
        np.save(tmp_path / "expected.npy", model(torch.from_numpy(X)).numpy())
    return tmp_path


@pytest.mark.parametrize("weights", ["w.safetensors", "w.pt"])
def test_torch_factory_and_weights(project: Path, weights: str) -> None:
    t = load_target(kind="torch", base_dir=project, factory="model.py:build", weights=weights)
    np.testing.assert_allclose(t.predict(X), np.load(project / "expected.npy"), rtol=1e-6)
    assert {p.name for p in t.files} == {"model.py", weights}


def test_factory_from_a_module_path(project: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(project))
    t = load_target(
        kind="torch",
        base_dir=Path("/"),
        factory="model:build",
        weights=str(project / "w.safetensors"),
    )
    np.testing.assert_allclose(t.predict(X), np.load(project / "expected.npy"), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"factory": "nomodel.py:build"}, "target.factory: nomodel.py: no such file"),
        ({"factory": "model.py:make"}, "no function 'make'"),
        ({"factory": "model.py:not_a_model"}, "returned a int, not a torch nn.Module"),
        ({"factory": "model.py"}, "must look like"),
        (
            {
                "factory": "model.py:build",
                "factory_kwargs": {"width": 5},
                "weights": "w.safetensors",
            },
            "does not fit the architecture",
        ),
        ({"factory": "model.py:build", "weights": "missing.pt"}, "target.weights: missing.pt"),
        ({"factory": "model.py:build", "weights": "model.py"}, "unsupported suffix"),
    ],
)
def test_torch_loading_errors(project: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(TargetError, match=message) as e:
        load_target(kind="torch", base_dir=project, **kwargs)
    assert "\n" not in str(e.value)


class _Payload:
    pass


def test_pickled_object_in_pt_is_refused(project: Path) -> None:
    torch.save({"weight": _Payload()}, project / "evil.pt")
    with pytest.raises(TargetError, match="weights_only"):
        load_target(kind="torch", base_dir=project, factory="model.py:build", weights="evil.pt")


def test_torchscript(project: Path) -> None:
    model = load_target(
        kind="torch", base_dir=project, factory="model.py:build", weights="w.pt"
    ).module
    torch.jit.script(model).save(str(project / "m.ts"))
    t = load_target(kind="torchscript", base_dir=project, path="m.ts")
    np.testing.assert_allclose(t.predict(X), np.load(project / "expected.npy"), rtol=1e-6)
    (project / "junk.ts").write_bytes(b"junk")
    with pytest.raises(TargetError, match="not a TorchScript file"):
        load_target(kind="torchscript", base_dir=project, path="junk.ts")


def test_sklearn_skops_and_pickles(tmp_path: Path) -> None:
    import skops.io as sio

    y = np.arange(10) % 3
    model = LogisticRegression().fit(X, y)
    sio.dump(model, tmp_path / "m.skops")
    t = load_target(kind="sklearn", base_dir=tmp_path, path="m.skops")
    np.testing.assert_allclose(np.exp(t.log_probs(X)), model.predict_proba(X), rtol=1e-6)
    joblib.dump(model, tmp_path / "m.joblib")
    with pytest.raises(UntrustedPickleError, match="--trust-pickle"):
        load_target(kind="sklearn", base_dir=tmp_path, path="m.joblib")
    t = load_target(kind="sklearn", base_dir=tmp_path, path="m.joblib", trust_pickle=True)
    assert t.num_classes == 3


def test_onnx_matches_torch(project: Path) -> None:
    pytest.importorskip("onnxruntime")
    model = load_target(
        kind="torch", base_dir=project, factory="model.py:build", weights="w.pt"
    ).module
    torch.onnx.export(
        model,
        (torch.from_numpy(X[:1]),),
        str(project / "m.onnx"),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    t = load_target(kind="onnx", base_dir=project, path="m.onnx", batch_size=4)
    assert t.output == "logits"
    np.testing.assert_allclose(t.predict(X), np.load(project / "expected.npy"), atol=1e-5)
    (project / "bad.onnx").write_bytes(b"nonsense")
    with pytest.raises(TargetError, match="cannot load ONNX model"):
        load_target(kind="onnx", base_dir=project, path="bad.onnx")


def test_unknown_kind_lists_kinds(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="'onnx', 'sklearn', 'torch' or 'torchscript'"):
        load_target(kind="keras", base_dir=tmp_path)
