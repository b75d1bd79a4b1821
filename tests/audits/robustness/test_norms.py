"""Perturbation geometry: projections land in the ball, are closest points, and respect shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from unmeasured.audits.robustness.norms import (
    check_norm,
    clip_to_box,
    inside,
    lp_norm,
    project_to_ball,
)
from unmeasured.errors import ConfigError

shapes = st.sampled_from([(3, 5), (2, 1, 4, 4), (1, 7), (4, 2, 3)])


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    shape=shapes,
    eps=st.floats(0.01, 3.0),
    norm=st.sampled_from(["linf", "l2"]),
)
def test_projection_lands_in_the_ball_and_keeps_inner_points(data, shape, eps, norm) -> None:
    values = data.draw(arrays(np.float32, shape, elements=st.floats(-5, 5, width=32)))
    delta = torch.from_numpy(values)
    projected = project_to_ball(delta, eps, norm)
    assert projected.shape == delta.shape
    assert (lp_norm(projected, norm) <= eps * (1 + 1e-5) + 1e-6).all()
    already_inside = lp_norm(delta, norm) <= eps
    torch.testing.assert_close(projected[already_inside], delta[already_inside])


def test_projection_is_the_closest_point() -> None:
    # any other point of the ball is at least as far from delta as the projection
    gen = torch.Generator().manual_seed(0)
    delta = torch.randn(50, 6, generator=gen) * 3
    for norm in ("linf", "l2"):
        projected = project_to_ball(delta, 1.0, norm)
        others = project_to_ball(torch.randn(50, 6, generator=gen) * 3, 1.0, norm)
        assert (lp_norm(delta - projected, "l2") <= lp_norm(delta - others, "l2") + 1e-5).all()


def test_per_record_radii() -> None:
    delta = torch.ones(3, 4)
    radii = torch.tensor([0.5, 1.0, 4.0])
    assert torch.allclose(
        lp_norm(project_to_ball(delta, radii, "l2"), "l2"), torch.tensor([0.5, 1.0, 2.0])
    )
    assert torch.allclose(
        lp_norm(project_to_ball(delta, radii, "linf"), "linf"), torch.tensor([0.5, 1.0, 1.0])
    )


def test_inside_checks_ball_and_box() -> None:
    x = torch.zeros(3, 2)
    x_adv = torch.tensor([[0.1, 0.1], [0.3, 0.0], [-0.1, 0.0]])
    assert inside(x_adv, x, 0.2, "linf", None).tolist() == [True, False, True]
    assert inside(x_adv, x, 0.2, "linf", (0.0, 1.0)).tolist() == [True, False, False]
    assert clip_to_box(x_adv, (0.0, 1.0)).min() == 0.0


def test_unknown_norm_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'l2' or 'linf'"):
        check_norm("l3")
    with pytest.raises(ConfigError, match="unknown norm"):
        project_to_ball(torch.zeros(1, 2), 1.0, "l0")
