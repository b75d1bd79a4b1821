"""Targets: the model under audit behind one small interface.

Adapters for torch modules and TorchScript files (white-box), fitted scikit-learn classifiers,
ONNX files and plain callables; `load_target` builds one from a config table and `as_target`
from an in-memory object. The torch, scikit-learn and ONNX adapters import their framework on
first use: ``from unmeasured.targets import OnnxTarget`` works without onnxruntime installed
until an ONNX file is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unmeasured.targets.base import (
    OUTPUT_KINDS,
    Target,
    UnsupportedModelError,
    predict_in_batches,
    to_log_probs,
)
from unmeasured.targets.callable import CallableTarget
from unmeasured.targets.loading import KINDS, as_target, load_target, resolve_num_classes

if TYPE_CHECKING:
    from unmeasured.targets.onnx import OnnxTarget
    from unmeasured.targets.sklearn import SklearnTarget
    from unmeasured.targets.torch import TorchScriptTarget, TorchTarget

_LAZY = {
    "OnnxTarget": "unmeasured.targets.onnx",
    "SklearnTarget": "unmeasured.targets.sklearn",
    "TorchScriptTarget": "unmeasured.targets.torch",
    "TorchTarget": "unmeasured.targets.torch",
}

__all__ = [
    "KINDS",
    "OUTPUT_KINDS",
    "CallableTarget",
    "OnnxTarget",
    "SklearnTarget",
    "Target",
    "TorchScriptTarget",
    "TorchTarget",
    "UnsupportedModelError",
    "as_target",
    "load_target",
    "predict_in_batches",
    "resolve_num_classes",
    "to_log_probs",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unmeasured.targets' has no attribute {name!r}")
