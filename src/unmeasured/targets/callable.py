"""A plain function as a target: anything mapping a batch of inputs to per-class outputs,
e.g. a wrapper around a remote prediction API."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from unmeasured.errors import TargetError
from unmeasured.targets.base import Target, check_output_kind, check_positive, predict_in_batches


class CallableTarget(Target):
    """Wraps ``fn(x) -> (n, num_classes)`` logits or probabilities.

    Args:
        fn: called on NumPy batches; its answers are checked for shape.
        num_classes: width of ``fn``'s answers.
        output: ``"logits"`` or ``"probabilities"``.
        batch_size: largest batch passed to ``fn``; ``None`` passes all inputs at once.
        description: text for reports; default ``"callable <name>"``.

    Example:
        >>> t = CallableTarget(lambda x: x[:, :2], num_classes=2, batch_size=2)
        >>> t.predict(np.ones((3, 4))).shape
        (3, 2)
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        *,
        num_classes: int,
        output: str = "logits",
        batch_size: int | None = None,
        description: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TargetError(f"target: expected a callable, got a {type(fn).__name__}")
        check_positive(num_classes, "num_classes")
        check_positive(batch_size, "batch_size")
        self.fn = fn
        self.num_classes = num_classes
        self.output = check_output_kind(output, "output")
        self.batch_size = batch_size
        self.description = description or f"callable {getattr(fn, '__name__', type(fn).__name__)}"

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict_in_batches(self.fn, np.asarray(x), self.batch_size, self.num_classes)
