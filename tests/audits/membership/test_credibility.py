"""Credibility on planted truth: the same overfit model and attack are discredible against
neighbours a tiny step from each member (they are flagged about as often as members), and
credible against neighbours far away (hardly flagged)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from unmeasured.api import audit
from unmeasured.training import MLPRecipe

RECIPE = MLPRecipe(hidden=(256,), epochs=100, batch_size=16, lr=1e-3)  # overfits


@pytest.fixture(scope="module")
def overfit():  # type: ignore[no-untyped-def]
    d = load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    # random labels: the members can only be fitted by memorizing them, one by one
    rng = np.random.default_rng(1)
    members_y, nonmembers_y = rng.integers(0, 10, 400), rng.integers(0, 10, 800)
    model = RECIPE.fit(x[:400], members_y, num_classes=10, seed=0)
    return model, (x[:400], members_y), (x[400:1200], nonmembers_y)


@pytest.mark.parametrize(("noise", "discredible"), [(0.005, True), (0.5, False)])
def test_near_neighbours_discredit_the_attack(overfit, noise: float, discredible: bool) -> None:
    model, members, nonmembers = overfit
    (result,) = audit(
        model,
        members=members,
        nonmembers=nonmembers,
        audits=[("membership.credibility", {"noise": noise})],
    ).audits
    m = result.metrics
    assert m["member_flag_rate"].ci[0] > 0.5  # the attack does find members
    assert m["false_alarm_rate"].value == pytest.approx(0.05, abs=0.01)
    ratio = m["neighbour_to_member_ratio"].value
    assert (ratio >= 0.9) if discredible else (ratio < 0.5)
    assert result.headline.concern is discredible
