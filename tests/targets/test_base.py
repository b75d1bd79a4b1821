"""The helpers every adapter shares."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax

from unmeasured.errors import TargetError
from unmeasured.targets import predict_in_batches, to_log_probs
from unmeasured.targets.base import check_output_kind


def test_log_probs_from_logits_match_scipy_and_survive_large_values() -> None:
    logits = np.random.default_rng(0).normal(scale=50, size=(6, 4))
    logits[0, 0] = 1000.0
    np.testing.assert_allclose(to_log_probs(logits, "logits"), log_softmax(logits, axis=1))


def test_log_probs_from_probabilities_renormalise_and_stay_finite() -> None:
    lp = to_log_probs(np.array([[0.2, 0.6, 0.0]]), "probabilities")
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(np.exp(lp[0, :2]), [0.25, 0.75])


@pytest.mark.parametrize("batch_size", [None, 1, 4, 10, 100])
def test_predict_in_batches_equals_one_call(batch_size: int | None) -> None:
    x = np.arange(30.0).reshape(10, 3)
    calls: list[int] = []

    def double(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch * 2

    out = predict_in_batches(double, x, batch_size, 3)
    np.testing.assert_array_equal(out, x * 2)
    assert max(calls) <= (batch_size or 10) and sum(calls) == 10


def test_predict_in_batches_checks_shapes() -> None:
    x = np.zeros((5, 3))
    with pytest.raises(TargetError, match=r"returned shape \(2, 2\) for a batch of 2 inputs"):
        predict_in_batches(lambda b: b[:, :2], x, 2, 3)
    with pytest.raises(TargetError, match=r"expected \(1, 3\)"):  # later batch disagrees
        predict_in_batches(lambda b: b if len(b) == 2 else b[:, :1], x, 2, None)
    with pytest.raises(TargetError, match=r"returned shape \(2,\)"):
        predict_in_batches(lambda b: b[:, 0], x, 2, None)
    assert predict_in_batches(lambda b: b, x[:0], 2, 3).shape == (0, 3)


def test_output_kind_lists_the_allowed_values() -> None:
    with pytest.raises(TargetError, match="target.output: must be 'logits' or 'probabilities'"):
        check_output_kind("probs")
