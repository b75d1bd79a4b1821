"""The one-run ε audit: the bound's closed form and monotonicity, and planted truth through a
recipe: a recipe that memorizes its training data gives a clearly positive ε lower bound, one
that learns nothing (a learning rate of 1e-9) gives none."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from unmeasured.api import audit
from unmeasured.errors import InputError
from unmeasured.stats import one_run_epsilon_lower_bound
from unmeasured.training import MLPRecipe


def test_all_guesses_right_has_a_closed_form() -> None:
    for r in (10, 100, 1000):
        p = 0.05 ** (1 / r)  # P[Binomial(r, p) = r] = p^r = 1 - confidence
        assert one_run_epsilon_lower_bound(r, r).value == pytest.approx(
            math.log(p / (1 - p)), rel=1e-8
        )


def test_more_right_guesses_bound_more_and_chance_bounds_nothing() -> None:
    bounds = [one_run_epsilon_lower_bound(v, 200).value for v in (100, 110, 120, 140, 180)]
    assert bounds[0] == 0.0 and bounds == sorted(bounds) and bounds[-1] > 1.5
    with pytest.raises(InputError):
        one_run_epsilon_lower_bound(5, 4)


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    d = load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    return x[perm], y[perm]


@pytest.mark.parametrize(
    ("recipe", "memorizes"),
    [
        (MLPRecipe(hidden=(256,), epochs=60, batch_size=16, lr=1e-3), True),
        (MLPRecipe(hidden=(256,), epochs=2, batch_size=16, lr=1e-9), False),
    ],
)
def test_planted_memorization(digits, recipe: MLPRecipe, memorizes: bool, tmp_path: Path) -> None:
    x, y = digits
    # the canaries carry random labels: a model that memorizes fits them only if it saw them
    rng = np.random.default_rng(1)
    population = (x[300:1100], rng.integers(0, 10, 800))
    target = recipe.fit(x[:300], y[:300], num_classes=10, seed=0)
    (result,) = audit(
        target,
        members=(x[:300], y[:300]),
        population=population,
        recipe=recipe,
        cache_dir=tmp_path,
        audits=[("membership.one_run", {"canaries": 800, "guess_fraction": 0.2})],
    ).audits
    eps, acc = result.metrics["epsilon_lower_bound"], result.metrics["guess_accuracy"]
    assert result.details["guesses"] == 160
    if memorizes:
        assert eps.value > 1.0 and acc.ci[0] > 0.6
        assert result.headline is not None and result.headline.concern is True
    else:
        assert eps.value == 0.0 and acc.ci[0] <= 0.5 <= acc.ci[1]
