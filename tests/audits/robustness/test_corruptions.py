"""Corruptions: any image shape inside any box, deterministic per seed, monotone in severity,
and harmful to a trained model."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unmeasured.audits.robustness.corruptions import (
    IMAGE_CORRUPTIONS,
    SEVERITIES,
    TABULAR_CORRUPTIONS,
    corrupt_images,
    corrupt_tabular,
)
from unmeasured.errors import ConfigError, DataError


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_images(n: int, channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Images with structure at several scales (upsampled noise), in [0, 1]."""
    generator = _seeded(seed)
    coarse = torch.rand(n, channels, 4, 4, generator=generator)
    fine = torch.rand(n, channels, height, width, generator=generator)
    up = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
    return 0.7 * up + 0.3 * fine


@settings(max_examples=40, deadline=None)
@given(
    corruption=st.sampled_from(sorted(IMAGE_CORRUPTIONS)),
    shape=st.sampled_from([(2, 1, 8, 8), (2, 3, 16, 12), (1, 2, 9, 9), (2, 4, 5, 7)]),
    severity=st.sampled_from(SEVERITIES),
    bounds=st.sampled_from([(0.0, 1.0), (-1.0, 2.0), (0.0, 255.0)]),
    seed=st.integers(0, 2**16),
)
def test_any_image_shape_stays_in_bounds_and_is_deterministic(
    corruption, shape, severity, bounds, seed
) -> None:
    low, high = bounds
    x = low + (high - low) * _smooth_images(*shape, seed=seed)
    out = corrupt_images(x, corruption, severity, bounds=bounds, generator=_seeded(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert out.min() >= low and out.max() <= high
    again = corrupt_images(x, corruption, severity, bounds=bounds, generator=_seeded(seed))
    assert torch.equal(out, again)


@pytest.mark.parametrize("corruption", sorted(IMAGE_CORRUPTIONS))
def test_distance_from_the_clean_image_grows_with_severity(corruption) -> None:
    x = _smooth_images(16, 3, 32, 32, seed=1)
    distances = [
        (corrupt_images(x, corruption, s, generator=_seeded(7)) - x).norm().item()
        for s in SEVERITIES
    ]
    assert all(a < b for a, b in itertools.pairwise(distances)), distances
    assert distances[0] > 0


@pytest.mark.parametrize("corruption", sorted(IMAGE_CORRUPTIONS))
def test_severity_never_helps_a_trained_model(digits_mlp, corruption) -> None:
    images = digits_mlp.x.reshape(-1, 1, 8, 8)
    clean = digits_mlp.accuracy()
    accuracy = [
        digits_mlp.accuracy(
            corrupt_images(images, corruption, s, generator=_seeded(3)).reshape(-1, 64)
        )
        for s in SEVERITIES
    ]
    # on 300 records a level may tie or wobble by a record or two; the trend may not
    assert accuracy[-1] < clean and accuracy[-1] <= accuracy[0]
    assert all(b <= a + 0.01 for a, b in itertools.pairwise(accuracy)), accuracy


def test_average_accuracy_falls_strictly_with_severity(digits_mlp) -> None:
    images = digits_mlp.x.reshape(-1, 1, 8, 8)
    mean_accuracy = [
        sum(
            digits_mlp.accuracy(corrupt_images(images, c, s, generator=_seeded(5)).reshape(-1, 64))
            for c in IMAGE_CORRUPTIONS
        )
        / len(IMAGE_CORRUPTIONS)
        for s in SEVERITIES
    ]
    assert all(a > b for a, b in itertools.pairwise(mean_accuracy))
    assert mean_accuracy[-1] < digits_mlp.accuracy() - 0.3


@pytest.mark.parametrize("corruption", sorted(TABULAR_CORRUPTIONS))
def test_tabular_corruptions_are_monotone_and_deterministic(digits_mlp, corruption) -> None:
    x = digits_mlp.x
    outputs = [corrupt_tabular(x, corruption, s, generator=_seeded(2)) for s in SEVERITIES]
    distances = [(out - x).norm().item() for out in outputs]
    assert all(a < b for a, b in itertools.pairwise(distances)), distances
    accuracy = [digits_mlp.accuracy(out) for out in outputs]
    assert accuracy[-1] < accuracy[0] <= digits_mlp.accuracy() + 0.01
    assert torch.equal(outputs[2], corrupt_tabular(x, corruption, 3, generator=_seeded(2)))


def test_missing_values_are_imputed_with_the_reference_mean() -> None:
    x = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    reference = torch.full((5, 4), 100.0)
    out = corrupt_tabular(x, "missing_values", 5, reference=reference, generator=_seeded(0))
    changed = out != x
    assert 0 < changed.sum() < x.numel()
    assert (out[changed] == 100.0).all()


def test_bad_arguments_are_named() -> None:
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ConfigError, match="corruption"):
        corrupt_images(x, "frost", 1)
    with pytest.raises(ConfigError, match="severity"):
        corrupt_images(x, "fog", 6)
    with pytest.raises(DataError, match="x"):
        corrupt_images(x.reshape(2, 64), "fog", 1)
    with pytest.raises(DataError, match="reference"):
        corrupt_tabular(x.reshape(2, 64), "feature_noise", 1, reference=torch.rand(3, 5))
