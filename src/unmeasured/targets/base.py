"""The `Target` protocol: the model under audit behind one small interface.

Every adapter answers ``predict(x)`` in batches with an ``(n, num_classes)`` array whose kind is
given by ``output`` (``"logits"`` or ``"probabilities"``); `log_probs` turns either into
log-probabilities so audits never care which. White-box targets (torch) also expose the module,
named-layer features and input gradients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unmeasured.errors import TargetError, one_of

#: what a target can give an audit: predicted labels, per-class scores, raw logits, input
#: gradients, its weights, named layers' features, batch-norm layers with running statistics;
#: ``sequences``: a language model's next-token probabilities (`targets.language`)
CAPABILITIES = (
    "labels",
    "scores",
    "logits",
    "gradients",
    "weights",
    "layers",
    "batchnorm",
    "sequences",
)
OutputKind = Literal["logits", "probabilities"]
OUTPUT_KINDS = ("logits", "probabilities")


class UnsupportedModelError(TargetError, TypeError):
    """`as_target` was given an object it cannot audit (a ``TypeError`` as well as an input
    error, so both ``except`` styles catch it)."""


class Target(ABC):
    """A classifier under audit.

    Attributes:
        num_classes: number of output classes.
        output: whether `predict` returns ``"logits"`` or ``"probabilities"``.
        input_bounds: ``(low, high)`` valid input range, or ``None`` if unbounded/unknown.
        capabilities: what the target can give (`CAPABILITIES`): ``"labels"`` and
            ``"scores"`` always, ``"logits"`` when its output is logits, and what
            ``white_box`` adds (``"gradients"``, ``"weights"``, ``"layers"`` for torch).
        description: short human text for reports (e.g. ``"torch MLP (3 layers) from model.py"``).
        files: the files the target was loaded from (for provenance hashes); empty in memory.
    """

    num_classes: int
    output: OutputKind = "logits"
    input_bounds: tuple[float, float] | None = None
    white_box: frozenset[str] = frozenset()
    description: str = "target"
    files: tuple[Path, ...] = ()

    @property
    def capabilities(self) -> frozenset[str]:
        logits = {"logits"} if self.output == "logits" else set()
        return frozenset({"labels", "scores", *logits, *self.white_box})

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Per-class outputs for ``x`` (shape ``(n, *input_shape)``), shape ``(n, num_classes)``,
        as float64 NumPy. Batching is done internally."""

    def log_probs(self, x: np.ndarray) -> np.ndarray:
        """Log-probabilities, shape ``(n, num_classes)``, whatever `output` is."""
        return to_log_probs(self.predict(x), self.output)

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict(x)).argmax(axis=1)


def to_log_probs(outputs: np.ndarray, kind: OutputKind) -> np.ndarray:
    """Log-probabilities from logits (log-softmax) or from probabilities (renormalised, clipped)."""
    out = np.asarray(outputs, dtype=np.float64)
    if kind == "logits":
        shifted = out - out.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.clip(out, 1e-300, None)
    p = p / p.sum(axis=1, keepdims=True)
    return np.log(p)


def check_output_kind(output: str, field: str = "target.output") -> OutputKind:
    """``output`` if it is ``"logits"`` or ``"probabilities"``; a `TargetError` otherwise."""
    if output not in OUTPUT_KINDS:
        raise TargetError(f"{field}: must be {one_of(OUTPUT_KINDS)}, got {output!r}")
    return output  # type: ignore[return-value]


def check_positive(value: int | None, field: str) -> None:
    """A `TargetError` unless ``value`` is ``None`` or an integer of at least 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise TargetError(f"{field}: must be a positive integer, got {value!r}")


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), for one-line errors."""
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def predict_in_batches(
    run: Callable[[Any], Any], x: Any, batch_size: int | None, num_classes: int | None
) -> np.ndarray:
    """Call ``run`` on slices of ``x`` and stack the answers as float64 ``(n, C)``.

    ``x`` may be anything sliceable with a length (NumPy, torch). When ``num_classes`` is known,
    the answer's shape is checked against it.

    Raises:
        TargetError: the model answered with the wrong shape.
    """
    n = len(x)
    step = batch_size or max(n, 1)
    width = num_classes
    parts = []
    for start in range(0, n, step):
        part = np.asarray(run(x[start : start + step]), dtype=np.float64)
        rows = min(step, n - start)
        if width is None and part.ndim == 2:
            width = part.shape[1]  # later batches must agree with the first
        if not width or part.shape != (rows, width):
            raise TargetError(
                f"target: the model returned shape {part.shape} for a batch of {rows} inputs, "
                f"expected ({rows}, {width or 'classes'})"
            )
        parts.append(part)
    return np.concatenate(parts) if parts else np.zeros((0, width or 0))
