"""Loading targets from files: safe by default, one-line errors that name the field."""

from __future__ import annotations

import operator
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from unmeasured.errors import TargetError, UntrustedPickleError
from unmeasured.targets import (
    KINDS,
    CallableTarget,
    SklearnTarget,
    TorchScriptTarget,
    TorchTarget,
    UnsupportedModelError,
    as_target,
    load_target,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")

FACTORY = """
from torch import nn

def build(width=8):
    return nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))

def not_a_model():
    return 42

def broken():
    raise ValueError("no GPU here")
"""


@pytest.fixture()
def project(tmp_path: Path, x: np.ndarray) -> Path:
    """A factory file, the model's weights in both formats, and its expected logits."""
    (tmp_path / "model.py").write_text(textwrap.dedent(FACTORY))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    with torch.no_grad():
        np.save(tmp_path / "expected.npy", model(torch.from_numpy(x)).numpy())
    return tmp_path


def _raises(error: type[Exception], message: str, **kwargs) -> str:
    """Load, expecting a one-line error matching ``message``; return the message."""
    with pytest.raises(error, match=message) as e:
        load_target(**kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("weights", ["w.safetensors", "w.pt"])
def test_torch_factory_and_weights_round_trip(project: Path, x, weights: str) -> None:
    t = load_target(kind="torch", base_dir=project, factory="model.py:build", weights=weights)
    assert isinstance(t, TorchTarget) and t.output == "logits"
    np.testing.assert_allclose(t.predict(x), np.load(project / "expected.npy"), rtol=1e-6)
    assert t.files == (project / "model.py", project / weights)
    assert t.description == "torch Sequential from model.py:build"


def test_factory_from_a_module_path_and_kwargs(project: Path, x, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(project))
    t = load_target(
        kind="torch",
        base_dir=Path("/"),
        factory="model:build",
        factory_kwargs={"width": 8},
        weights=str(project / "w.safetensors"),
        num_classes=3,
        output="probabilities",
    )
    np.testing.assert_allclose(t.predict(x), np.load(project / "expected.npy"), rtol=1e-6)
    assert t.files == (project / "w.safetensors",) and t.output == "probabilities"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "target.factory: required for kind 'torch'"),
        ({"factory": "nomodel.py:build"}, "target.factory: nomodel.py: no such file"),
        (
            {"factory": "model.py:make"},
            "target.factory: 'model.py:make': no function 'make' in model.py",
        ),
        ({"factory": "model.py:not_a_model"}, "returned a int, not a torch nn.Module"),
        ({"factory": "model.py:broken"}, "model.py:broken\\(\\) raised ValueError: no GPU here"),
        ({"factory": "model.py"}, "must look like"),
        ({"factory": "model.py:build", "weights": "missing.pt"}, "target.weights: missing.pt: no"),
        ({"factory": "model.py:build", "weights": "model.py"}, "unsupported suffix; use '.pt'"),
        ({"factory": "model.py:build", "path": "w.pt"}, "target.path: not used by kind 'torch'"),
        ({"factory": "model.py:build", "output": "probs"}, "must be 'auto', 'logits' or"),
    ],
)
def test_torch_loading_errors(project: Path, kwargs: dict, message: str) -> None:
    _raises(TargetError, message, kind="torch", base_dir=project, **kwargs)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"1.weight": torch.zeros(8, 4)}, "missing 0.weight, 0.bias, 2.weight \\(and 1 more\\)"),
        (
            {**nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).state_dict(), "x": 1},
            "not a flat state dict \\(x not tensors\\)",
        ),
        (
            nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).state_dict(),
            "shape of 0.weight \\(5, 4\\) instead of \\(8, 4\\)",
        ),
        (
            {
                f"module.{k}": v
                for k, v in nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
                .state_dict()
                .items()
            },
            "extra prefix 'module.'; strip it",
        ),
    ],
)
def test_weights_that_do_not_fit_are_explained(project: Path, state: dict, message: str) -> None:
    torch.save(state, project / "bad.pt")
    text = _raises(
        TargetError,
        message,
        kind="torch",
        base_dir=project,
        factory="model.py:build",
        weights="bad.pt",
    )
    assert text.startswith("target.weights: bad.pt")


class _Payload:
    """Not a tensor: weights_only loading must refuse to build it."""


def test_a_pickled_object_in_a_pt_file_is_refused(project: Path) -> None:
    torch.save({"0.weight": _Payload()}, project / "evil.pt")
    _raises(
        TargetError,
        "target.weights: evil.pt: refused by weights_only loading",
        kind="torch",
        base_dir=project,
        factory="model.py:build",
        weights="evil.pt",
    )


def test_a_corrupt_safetensors_file_is_refused(project: Path) -> None:
    (project / "junk.safetensors").write_bytes(b"\x00" * 16)
    _raises(
        TargetError,
        "junk.safetensors: not a safetensors file",
        kind="torch",
        base_dir=project,
        factory="model.py:build",
        weights="junk.safetensors",
    )


def test_torchscript(project: Path, x) -> None:
    model = load_target(kind="torch", base_dir=project, factory="model.py:build", weights="w.pt")
    torch.jit.script(model.module).save(str(project / "m.ts"))
    t = load_target(kind="torchscript", base_dir=project, path="m.ts", batch_size=3)
    assert isinstance(t, TorchScriptTarget) and t.files == (project / "m.ts",)
    np.testing.assert_allclose(t.predict(x), np.load(project / "expected.npy"), rtol=1e-6)
    _raises(
        TargetError,
        "target.path: required for kind 'torchscript'",
        kind="torchscript",
        base_dir=project,
    )
    _raises(
        TargetError,
        "target.weights: not used by kind 'torchscript'",
        kind="torchscript",
        base_dir=project,
        path="m.ts",
        weights="w.pt",
    )


def test_skops_round_trip(tmp_path: Path, x, y) -> None:
    import skops.io as sio

    model = LogisticRegression().fit(x, y)
    sio.dump(model, tmp_path / "m.skops")
    t = load_target(kind="sklearn", base_dir=tmp_path, path="m.skops")
    assert isinstance(t, SklearnTarget) and t.files == (tmp_path / "m.skops",)
    np.testing.assert_array_equal(t.predict(x), model.predict_proba(x))


def test_skops_with_untrusted_types_needs_review(tmp_path: Path, x, y) -> None:
    import skops.io as sio

    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression()).fit(x, y)
    sio.dump(model, tmp_path / "m.skops")
    text = _raises(
        UntrustedPickleError,
        "target.path: m.skops contains types skops does not trust by default \\(_operator.neg\\)",
        kind="sklearn",
        base_dir=tmp_path,
        path="m.skops",
    )
    assert "target.trusted_types" in text and "--trust-pickle" in text
    for trust in ({"trusted_types": ["_operator.neg"]}, {"trust_pickle": True}):
        t = load_target(kind="sklearn", base_dir=tmp_path, path="m.skops", **trust)
        np.testing.assert_array_equal(t.predict(x), model.predict_proba(x))


@pytest.mark.parametrize("suffix", [".joblib", ".pkl"])
def test_pickles_need_trust(tmp_path: Path, x, y, suffix: str) -> None:
    model = LogisticRegression().fit(x, y)
    joblib.dump(model, tmp_path / f"m{suffix}")
    _raises(
        UntrustedPickleError,
        f"target.path: m{suffix} is a pickle.*--trust-pickle",
        kind="sklearn",
        base_dir=tmp_path,
        path=f"m{suffix}",
    )
    t = load_target(kind="sklearn", base_dir=tmp_path, path=f"m{suffix}", trust_pickle=True)
    np.testing.assert_array_equal(t.predict(x), model.predict_proba(x))


def test_sklearn_field_errors(tmp_path: Path, x, y) -> None:
    import skops.io as sio

    sio.dump(LogisticRegression().fit(x, y), tmp_path / "m.skops")
    base = {"kind": "sklearn", "base_dir": tmp_path}
    _raises(
        TargetError,
        "target.output: this scikit-learn LogisticRegression gives 'probabilities'",
        **base,
        path="m.skops",
        output="logits",
    )
    _raises(
        TargetError,
        "target.num_classes: 4, but m.skops has 3 classes",
        **base,
        path="m.skops",
        num_classes=4,
    )
    _raises(
        TargetError,
        "target.device: not used by kind 'sklearn'",
        **base,
        path="m.skops",
        device="cuda",
    )
    (tmp_path / "m.txt").write_text("x")
    _raises(TargetError, "m.txt: unsupported scikit-learn file; use '.skops'", **base, path="m.txt")
    (tmp_path / "bad.skops").write_text("x")
    _raises(TargetError, "bad.skops: not a skops file", **base, path="bad.skops")


@pytest.mark.filterwarnings(
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",
)
def test_onnx_matches_torch(project: Path, x) -> None:
    pytest.importorskip("onnxruntime")
    model = load_target(kind="torch", base_dir=project, factory="model.py:build", weights="w.pt")
    torch.onnx.export(
        model.module,
        (torch.from_numpy(x[:1]),),
        str(project / "m.onnx"),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    t = load_target(kind="onnx", base_dir=project, path="m.onnx", batch_size=4)
    assert t.output == "logits" and t.files == (project / "m.onnx",)
    np.testing.assert_allclose(t.predict(x), np.load(project / "expected.npy"), atol=1e-5)
    _raises(
        TargetError,
        "target.path: bad.onnx: no such file",
        kind="onnx",
        base_dir=project,
        path="bad.onnx",
    )


def test_unknown_kind_lists_kinds(tmp_path: Path) -> None:
    _raises(
        TargetError,
        "target.kind: unknown kind 'keras'; choose 'onnx', 'sklearn', 'torch', 'torchscript' "
        "or 'transformers'",
        kind="keras",
        base_dir=tmp_path,
    )
    assert set(KINDS) == {"torch", "torchscript", "sklearn", "onnx", "transformers"}


def test_errors_name_the_callers_table(project: Path) -> None:
    _raises(
        TargetError, "^baseline.factory: required", kind="torch", base_dir=project, field="baseline"
    )
    _raises(
        TargetError,
        "^baseline.weights: missing.pt: no such file",
        kind="torch",
        base_dir=project,
        factory="model.py:build",
        weights="missing.pt",
        field="baseline",
    )
    _raises(
        TargetError,
        "^baseline.batch_size: must be a positive integer",
        kind="torch",
        base_dir=project,
        factory="model.py:build",
        batch_size=0,
        field="baseline",
    )


def test_as_target_wraps_each_kind_of_model(x, y) -> None:
    torch.manual_seed(0)
    module = nn.Linear(4, 3)
    assert isinstance(as_target(module, batch_size=4), TorchTarget)
    assert isinstance(as_target(torch.jit.script(module)), TorchScriptTarget)
    lr = LogisticRegression().fit(x, y)
    assert isinstance(as_target(lr), SklearnTarget)
    assert isinstance(as_target(lambda a: a[:, :3], num_classes=3), CallableTarget)
    existing = CallableTarget(lambda a: a[:, :3], num_classes=3)
    assert as_target(existing) is existing


def test_as_target_errors(x, y) -> None:
    with pytest.raises(TargetError, match="num_classes: required to audit a plain callable"):
        as_target(lambda a: a)
    with pytest.raises(TargetError, match="num_classes: 4, but the LogisticRegression has 3"):
        as_target(LogisticRegression().fit(x, y), num_classes=4)
    with pytest.raises(UnsupportedModelError, match="model: cannot audit a str") as e:
        as_target("model.pt")
    assert isinstance(e.value, TypeError) and isinstance(e.value, TargetError)
