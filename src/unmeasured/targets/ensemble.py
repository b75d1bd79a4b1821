"""An ensemble as one target: several trained models whose probabilities are averaged.

Averaging happens on probabilities (each member's softmax, then the mean), the usual deep
ensemble, not on logits: the ensemble's output is a probability vector, so it reports
``output = "probabilities"``. It is a black box (labels and scores), whatever its members are:
gradients of the average would need every member to be a torch model on one device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unmeasured.errors import TargetError
from unmeasured.targets.base import Target


class EnsembleTarget(Target):
    """The mean of several targets' probabilities.

    Args:
        targets: the members (at least one), all with the same number of classes.
        description: text for reports; default ``"ensemble of K <first member>"``.

    Raises:
        TargetError: no member, or members that disagree on the number of classes.

    Example:
        >>> from unmeasured.targets import CallableTarget
        >>> a = CallableTarget(lambda x: np.tile([[0.0, 0.0]], (len(x), 1)), num_classes=2)
        >>> b = CallableTarget(lambda x: np.tile([[0.0, np.log(3.0)]], (len(x), 1)), num_classes=2)
        >>> EnsembleTarget([a, b]).predict(np.zeros((1, 3))).round(3)  # (0.5 + 0.25, 0.5 + 0.75) / 2
        array([[0.375, 0.625]])
    """

    output = "probabilities"

    def __init__(self, targets: Sequence[Target], *, description: str | None = None) -> None:
        members = list(targets)
        if not members:
            raise TargetError("target: an ensemble needs at least one member")
        widths = {t.num_classes for t in members}
        if len(widths) != 1:
            raise TargetError(
                f"target: ensemble members disagree on the number of classes: {sorted(widths)}"
            )
        self.members = members
        self.num_classes = members[0].num_classes
        bounds = {t.input_bounds for t in members}
        self.input_bounds = bounds.pop() if len(bounds) == 1 else None
        self.description = description or (f"ensemble of {len(members)} {members[0].description}")
        self.files = tuple(f for t in members for f in t.files)

    def predict(self, x: np.ndarray) -> np.ndarray:
        total = np.zeros((len(x), self.num_classes))
        for member in self.members:
            total += np.exp(member.log_probs(x))
        return total / len(self.members)
