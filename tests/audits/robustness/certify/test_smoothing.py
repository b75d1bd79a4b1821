"""Randomized smoothing against closed forms: a constant model, a half-space model whose
probability under noise is Φ(t/σ), and a linear classifier whose exact robust radius bounds the
certified one."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from unmeasured.audits.robustness.certify.smoothing import ABSTAIN, smoothing_certify
from unmeasured.errors import ConfigError, TargetError


def test_a_constant_model_gets_the_closed_form_radius() -> None:
    # every vote goes to class 2, so Clopper–Pearson gives p = α^(1/n) exactly
    model = lambda z: torch.nn.functional.one_hot(torch.full((len(z),), 2), 4).float()  # noqa: E731
    result = smoothing_certify(model, torch.zeros(3, 5), sigma=0.25, n0=10, n=500, alpha=0.01)
    p = 0.01 ** (1 / 500)
    assert result.prediction.tolist() == [2, 2, 2]
    torch.testing.assert_close(result.p_lower, torch.full((3,), p, dtype=torch.float64))
    torch.testing.assert_close(
        result.radius, torch.full((3,), 0.25 * stats.norm.ppf(p), dtype=torch.float64)
    )
    assert result.counts[:, 2].tolist() == [500, 500, 500]
    assert (result.alpha, result.n0, result.n) == (0.01, 10, 500)


def half_space(z: torch.Tensor) -> torch.Tensor:
    """Labels: class 0 where the first coordinate is below 0.3, class 1 elsewhere."""
    return (z[:, 0] >= 0.3).long()


def test_a_half_space_model_gets_close_to_its_distance_never_beyond() -> None:
    # at the origin P(class 0) = Φ(0.3/σ): the radius σ·Φ⁻¹(p) is exactly the distance 0.3,
    # and the lower bound may fall short of it only by the sampling error
    sigma, n = 0.5, 20_000
    result = smoothing_certify(
        half_space, torch.zeros(1, 3), sigma=sigma, n=n, alpha=0.001, num_classes=2, seed=3
    )
    p = stats.norm.cdf(0.3 / sigma)
    assert result.prediction.item() == 0
    assert p - 4.5 * math.sqrt(p * (1 - p) / n) < result.p_lower.item() < p
    assert 0.27 < result.radius.item() <= 0.3


def test_the_radius_of_a_linear_classifier_never_exceeds_its_exact_distance() -> None:
    # for f(x) = [w·x + b > 0] the smoothed classifier equals f, whose exact L2 robust radius is
    # |w·x + b| / ||w||; a certificate beyond that would be false
    generator = torch.Generator().manual_seed(0)
    w, b = torch.tensor([1.0, -2.0, 0.5]), 0.1
    x = torch.randn(40, 3, generator=generator) * 0.4
    model = lambda z: torch.stack([-(z @ w + b), z @ w + b], dim=1)  # noqa: E731
    result = smoothing_certify(model, x, sigma=0.3, n=2_000, alpha=0.001, seed=1)
    distance = ((x @ w + b).abs() / w.norm()).double()
    certified = result.prediction != ABSTAIN
    assert (result.radius[certified] <= distance[certified]).all()
    assert (result.prediction[certified] == (x @ w + b > 0).long()[certified]).all()
    assert certified.sum() >= 25  # points near the boundary abstain, most do not
    assert (result.radius[~certified] == 0).all()


def test_selection_and_estimation_use_separate_samples_and_the_seed() -> None:
    seen = []

    def model(z: torch.Tensor) -> torch.Tensor:
        seen.append(len(z))
        return half_space(z)

    first = smoothing_certify(
        model, torch.zeros(2, 2), sigma=1.0, n0=30, n=250, batch_size=100, num_classes=2
    )
    assert sum(seen) == 2 * (30 + 250)
    assert max(seen) == 100
    again = smoothing_certify(half_space, torch.zeros(2, 2), sigma=1.0, n0=30, n=250, num_classes=2)
    other = smoothing_certify(
        half_space, torch.zeros(2, 2), sigma=1.0, n0=30, n=250, num_classes=2, seed=9
    )
    assert torch.equal(first.counts, again.counts)
    assert not torch.equal(first.counts, other.counts)
    assert (first.counts.sum(dim=1) == 250).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": 0.5, "alpha": 1.0}, "alpha"),
        ({"sigma": 0.5, "n0": 0}, "n0"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        smoothing_certify(half_space, torch.zeros(1, 2), num_classes=2, **kwargs)


def test_labels_need_num_classes_and_odd_outputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        smoothing_certify(half_space, torch.zeros(1, 2), sigma=0.5, n=10)
    with pytest.raises(TargetError, match="model: expected scores"):
        smoothing_certify(lambda z: torch.zeros(3), torch.zeros(1, 2), sigma=0.5, n=10)
    with pytest.raises(TargetError, match="outside"):
        smoothing_certify(half_space, torch.ones(1, 2), sigma=0.1, n=10, num_classes=1)
