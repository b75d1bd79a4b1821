"""A plain function as a target: batched calls, checked answers."""

from __future__ import annotations

import numpy as np
import pytest

from unmeasured.errors import TargetError
from unmeasured.targets import CallableTarget


def test_calls_are_batched_and_stacked(x) -> None:
    sizes: list[int] = []

    def scores(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        return batch[:, :3]

    target = CallableTarget(scores, num_classes=3, output="probabilities", batch_size=10)
    np.testing.assert_array_equal(target.predict(x), x[:, :3].astype(np.float64))
    assert sizes == [10, 10, 3] and target.output == "probabilities"
    assert target.description == "callable scores"


def test_wrong_answers_and_arguments_are_reported(x) -> None:
    with pytest.raises(TargetError, match=r"returned shape \(23, 2\).*expected \(23, 3\)"):
        CallableTarget(lambda a: a[:, :2], num_classes=3).predict(x)
    with pytest.raises(TargetError, match="output: must be 'logits' or 'probabilities'"):
        CallableTarget(lambda a: a, num_classes=3, output="scores")
    with pytest.raises(TargetError, match="num_classes: must be a positive integer, got 0"):
        CallableTarget(lambda a: a, num_classes=0)
    with pytest.raises(TargetError, match="expected a callable, got a str"):
        CallableTarget("f", num_classes=3)  # type: ignore[arg-type]
