"""`robustness.corruptions`: a trained model loses accuracy as severity grows; a model that
ignores its input loses none."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unmeasured.api import audit
from unmeasured.errors import ConfigError


def test_accuracy_falls_with_severity_on_images(digits_mlp) -> None:
    images = digits_mlp.x.numpy().reshape(-1, 1, 8, 8)
    model = nn.Sequential(nn.Flatten(), digits_mlp.model)
    (result,) = audit(
        model,
        test=(images, digits_mlp.y.numpy()),
        input_bounds=(0.0, 1.0),
        audits=[
            ("robustness.corruptions", {"corruptions": ["gaussian_noise", "contrast", "pixelate"]})
        ],
    ).audits
    m = result.metrics
    assert m["accuracy_at_5"].value < m["accuracy_at_1"].value <= m["clean_accuracy"].value + 0.02
    assert m["accuracy_at_5"].ci[1] < m["clean_accuracy"].value - 0.1
    assert m["relative_corruption_error"].ci[0] > 0
    assert result.arrays["accuracy"].shape == (3, 5)
    assert result.headline is not None and result.headline.concern is True


def test_a_model_that_ignores_its_input_loses_nothing() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((120, 6)).astype(np.float32), rng.integers(0, 3, 120)

    class Constant(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[2.0, 0.0, 0.0]]).expand(len(x), 3)

    (result,) = audit(Constant(), test=(x, y), audits=["robustness.corruptions"]).audits
    share = float((y == 0).mean())
    for name, est in result.metrics.items():
        expected = 0.0 if name.endswith("relative_corruption_error") else share
        expected = 1 - share if name == "mean_corruption_error" else expected
        assert est.value == pytest.approx(expected), name
    assert result.details["corruptions"] == ["feature_noise", "scaling_drift", "missing_values"]


def test_image_corruptions_refuse_flat_records() -> None:
    x, y = np.zeros((10, 4), np.float32), np.zeros(10, np.int64)
    with pytest.raises(ConfigError, match="cannot corrupt flat"):
        audit(
            nn.Linear(4, 2),
            test=(x, y),
            input_bounds=(0.0, 1.0),
            audits=[("robustness.corruptions", {"corruptions": ["fog"]})],
        )
