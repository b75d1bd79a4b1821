"""The `Target` protocol: the model under audit behind one small interface.

Every adapter answers ``predict(x)`` in batches with an ``(n, num_classes)`` array whose kind is
given by ``output`` (``"logits"`` or ``"probabilities"``); `log_probs` turns either into
log-probabilities so audits never care which. White-box targets (torch) also expose the module,
named-layer features and input gradients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np

Capability = Literal["scores", "labels", "whitebox"]
OutputKind = Literal["logits", "probabilities"]


class Target(ABC):
    """A classifier under audit.

    Attributes:
        num_classes: number of output classes.
        output: whether `predict` returns ``"logits"`` or ``"probabilities"``.
        input_bounds: ``(low, high)`` valid input range, or ``None`` if unbounded/unknown.
        capabilities: what the target can give: ``"scores"`` (per-class outputs),
            ``"labels"`` (predicted labels), ``"whitebox"`` (module, features, gradients).
        description: short human text for reports (e.g. ``"torch MLP (3 layers) from model.py"``).
    """

    num_classes: int
    output: OutputKind = "logits"
    input_bounds: tuple[float, float] | None = None
    capabilities: frozenset[str] = frozenset({"scores", "labels"})
    description: str = "target"

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
