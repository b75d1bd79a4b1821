"""Output defences: a target that releases less than the model computes.

`DefendedTarget` wraps a target and changes what an attacker sees, in this order:

* ``top_k``: only the k largest probabilities are released, the others as 0 (not renormalised,
  as an API answering "the top k classes and their scores" would);
* ``decimals``: probabilities rounded to that many decimals (a class rounded to 0 stays 0);
* ``labels_only``: only the predicted label; the target then gives ``labels`` and no
  ``scores``, so score-based attacks are refused (skipped with the reason) and only label-only
  attacks run. Its `predict` answers one-hot rows, so nothing but the label can leak through
  it even to code that ignores the capabilities.

The predicted label is the argmax of the released probabilities (rounding can create ties;
the lowest class wins), so the defence's cost in accuracy is measured, not assumed away.
"""

from __future__ import annotations

import numpy as np

from unmeasured.errors import TargetError
from unmeasured.targets.base import Target


class DefendedTarget(Target):
    """A target whose outputs pass through top-k, rounding or labels-only release.

    Args:
        target: the model behind the defence.
        top_k: release only the k largest probabilities (None: all).
        decimals: round released probabilities to this many decimals (None: no rounding).
        labels_only: release only the predicted label.

    Raises:
        TargetError: no defence chosen, or a ``top_k``/``decimals`` out of range.

    Example:
        >>> from unmeasured.targets import CallableTarget
        >>> t = CallableTarget(lambda x: np.log(np.tile([[0.1, 0.25, 0.65]], (len(x), 1))), num_classes=3)
        >>> DefendedTarget(t, top_k=2, decimals=1).predict(np.zeros((1, 2)))
        array([[0. , 0.2, 0.6]])
        >>> sorted(DefendedTarget(t, labels_only=True).capabilities)
        ['labels']
    """

    output = "probabilities"

    def __init__(
        self,
        target: Target,
        *,
        top_k: int | None = None,
        decimals: int | None = None,
        labels_only: bool = False,
    ) -> None:
        if top_k is None and decimals is None and not labels_only:
            raise TargetError("target: a defended target needs top_k, decimals or labels_only")
        if top_k is not None and (
            isinstance(top_k, bool) or not 1 <= int(top_k) <= target.num_classes
        ):
            raise TargetError(f"top_k: must be in 1..{target.num_classes}, got {top_k!r}")
        if decimals is not None and (isinstance(decimals, bool) or int(decimals) < 0):
            raise TargetError(f"decimals: must be a non-negative int, got {decimals!r}")
        self.target = target
        self.top_k = top_k
        self.decimals = decimals
        self.labels_only = labels_only
        self.num_classes = target.num_classes
        self.input_bounds = target.input_bounds
        self.files = target.files
        parts = [f"top-{top_k}"] * (top_k is not None)
        parts += [f"rounded to {decimals} decimals"] * (decimals is not None)
        parts += ["labels only"] * labels_only
        self.description = f"{target.description} ({', '.join(parts)})"

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"labels"}) if self.labels_only else frozenset({"labels", "scores"})

    def predict(self, x: np.ndarray) -> np.ndarray:
        p = np.exp(self.target.log_probs(x))
        if self.top_k is not None and self.top_k < self.num_classes:
            # stable order: among equal probabilities the lower class is kept
            drop = np.argsort(-p, axis=1, kind="stable")[:, self.top_k :]
            np.put_along_axis(p, drop, 0.0, axis=1)
        if self.decimals is not None:
            p = np.round(p, self.decimals)
        if self.labels_only:
            return np.eye(self.num_classes)[p.argmax(axis=1)]
        return p
