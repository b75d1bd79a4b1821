"""ONNX targets through ONNX Runtime (the optional ``onnx`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unmeasured.errors import MissingDependencyError, TargetError
from unmeasured.targets.base import Target


class OnnxTarget(Target):
    """An ONNX classifier run on the CPU with ONNX Runtime.

    The output used is the first float tensor output of rank 2 (for skl2onnx classifiers,
    ``output_probability`` when exported with ``options={"zipmap": False}``).

    Args:
        path: the ``.onnx`` file.
        output: ``"logits"``, ``"probabilities"`` or ``"auto"`` (probabilities when the chosen
            output's name contains "prob", otherwise logits).
        batch_size: queries per run call.
    """

    capabilities = frozenset({"scores", "labels"})

    def __init__(self, path: str | Path, *, output: str = "auto", batch_size: int = 512) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(
                "target.kind = 'onnx' needs onnxruntime: pip install 'unmeasured[onnx]'"
            ) from None
        path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise TargetError(
                f"target.path: {path}: cannot load ONNX model ({str(e)[:200]})"
            ) from None
        self.input_name = self.session.get_inputs()[0].name
        chosen = None
        for i, o in enumerate(self.session.get_outputs()):
            if "tensor(float" in o.type and len(o.shape or ()) == 2:
                chosen = (i, o)
                break
        if chosen is None:
            kinds = ", ".join(f"{o.name}: {o.type}" for o in self.session.get_outputs())
            raise TargetError(
                f"target.path: {path}: no (batch, classes) float output ({kinds}); for skl2onnx "
                'export with options={"zipmap": False}'
            )
        self.output_index, out = chosen
        self.output = (
            ("probabilities" if "prob" in out.name.lower() else "logits")
            if output == "auto"
            else output
        )  # type: ignore[assignment]
        self.batch_size = batch_size
        self.files = (path,)
        self.description = f"ONNX {path.name}"
        dim = out.shape[1]
        self.num_classes = dim if isinstance(dim, int) else 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        parts = []
        for start in range(0, len(x), self.batch_size):
            res = self.session.run(None, {self.input_name: x[start : start + self.batch_size]})
            parts.append(np.asarray(res[self.output_index], dtype=np.float64))
        out = np.concatenate(parts)
        if not self.num_classes:
            self.num_classes = out.shape[1]
        return out
