"""ONNX targets through ONNX Runtime (the optional ``onnx`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unmeasured.errors import MissingDependencyError, TargetError, one_of
from unmeasured.targets.base import (
    OUTPUT_KINDS,
    Target,
    check_output_kind,
    check_positive,
    first_line,
    predict_in_batches,
)

FLOAT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}


class OnnxTarget(Target):
    """An ONNX classifier run on the CPU with ONNX Runtime.

    The model must take one float tensor input ``(batch, ...)``; inputs are cast to its dtype.
    The output used is the first float output of rank 2, ``(batch, classes)``. For skl2onnx
    classifiers that is ``output_probability`` when exported with
    ``options={"zipmap": False}``; the default ZipMap output (a list of dicts) is refused.

    Args:
        path: the ``.onnx`` file.
        output: ``"logits"``, ``"probabilities"`` or ``"auto"`` (probabilities when the chosen
            output's name contains "prob", as skl2onnx names it, otherwise logits).
        num_classes: needed only when the file leaves the class dimension symbolic and the
            target is used before any query; checked against the file otherwise.
        batch_size: inputs per ONNX Runtime call.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        TargetError: the file is missing, not ONNX, or has no usable input or output.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        output: str = "auto",
        num_classes: int | None = None,
        batch_size: int = 512,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(
                "target.kind = 'onnx' needs onnxruntime: pip install 'unmeasured[onnx]'"
            ) from None
        if output not in ("auto", *OUTPUT_KINDS):
            raise TargetError(
                f"target.output: must be {one_of(('auto', *OUTPUT_KINDS))}, got {output!r}"
            )
        check_positive(num_classes, "target.num_classes")
        check_positive(batch_size, "target.batch_size")
        path = Path(path)
        if not path.is_file():
            raise TargetError(f"target.path: {path}: no such file")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime raises its own exception types, all unrelated
            raise TargetError(
                f"target.path: {path.name}: cannot load ONNX model ({first_line(e)})"
            ) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type not in FLOAT_TYPES:
            found = ", ".join(f"{i.name}: {i.type}" for i in inputs) or "none"
            raise TargetError(
                f"target.path: {path.name}: the model must take one float tensor input, "
                f"it takes {found}"
            )
        self.input_name = inputs[0].name
        self.input_dtype = FLOAT_TYPES[inputs[0].type]
        outputs = self.session.get_outputs()
        chosen = next(
            (
                i
                for i, o in enumerate(outputs)
                if o.type in FLOAT_TYPES and o.shape is not None and len(o.shape) == 2
            ),
            None,
        )
        if chosen is None:
            found = ", ".join(f"{o.name}: {o.type}" for o in outputs)
            raise TargetError(
                f"target.path: {path.name}: no (batch, classes) float output ({found}); "
                'a skl2onnx classifier must be exported with options={"zipmap": False}'
            )
        self.output_index = chosen
        self.output_name = outputs[chosen].name
        if output == "auto":
            output = "probabilities" if "prob" in self.output_name.lower() else "logits"
        self.output = check_output_kind(output)
        width = outputs[chosen].shape[1]
        if isinstance(width, int) and num_classes is not None and width != num_classes:
            raise TargetError(
                f"target.num_classes: {num_classes}, but {path.name} outputs {width} classes"
            )
        self.num_classes = width if isinstance(width, int) else (num_classes or 0)
        self.batch_size = batch_size
        self.files = (path,)
        self.description = f"ONNX {path.name}"

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = predict_in_batches(
            self._run, np.asarray(x, dtype=self.input_dtype), self.batch_size, self.num_classes
        )
        if not self.num_classes and len(out):
            self.num_classes = int(out.shape[1])
        return out

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as e:  # ONNX Runtime's errors share no base class we can import
            raise TargetError(
                f"target: the ONNX model cannot process inputs of shape {batch.shape[1:]}: "
                f"{first_line(e)}"
            ) from None
