"""A plain function as a target: anything mapping a batch of inputs to per-class outputs,
e.g. a wrapper around a remote prediction API."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from unmeasured.errors import TargetError
from unmeasured.targets.base import OutputKind, Target


class CallableTarget(Target):
    """Wraps ``fn(x) -> (n, num_classes)`` logits or probabilities."""

    capabilities = frozenset({"scores", "labels"})

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        *,
        num_classes: int,
        output: OutputKind = "logits",
        batch_size: int | None = None,
        description: str | None = None,
    ) -> None:
        if output not in ("logits", "probabilities"):
            raise TargetError(f"output: must be 'logits' or 'probabilities', got {output!r}")
        self.fn = fn
        self.num_classes = num_classes
        self.output = output
        self.batch_size = batch_size
        self.description = description or f"callable {getattr(fn, '__name__', type(fn).__name__)}"

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        step = self.batch_size or max(len(x), 1)
        parts = [
            np.asarray(self.fn(x[i : i + step]), dtype=np.float64) for i in range(0, len(x), step)
        ]
        out = np.concatenate(parts) if parts else np.zeros((0, self.num_classes))
        if out.shape != (len(x), self.num_classes):
            raise TargetError(
                f"target: the callable returned shape {out.shape}, expected "
                f"({len(x)}, {self.num_classes})"
            )
        return out
