"""'Was my data used?' on planted truth: people whose records trained an overfit model get small
p-values far more often than people whose records did not, and the test's false-alarm rate on
the latter stays at its level (the null is measured on the population, not assumed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from unmeasured.api import audit
from unmeasured.data import Records
from unmeasured.training import MLPRecipe

RECIPE = MLPRecipe(hidden=(256,), epochs=60, batch_size=16, lr=1e-3)


@pytest.fixture(scope="module")
def people():  # type: ignore[no-untyped-def]
    d = load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    ids = np.repeat(np.arange(160), 5).astype(str)
    members = Records(x[:400], y[:400], columns={"user": ids[:400]})
    nonmembers = Records(x[400:800], y[400:800], columns={"user": ids[400:800]})
    return members, nonmembers, (x[800:], y[800:])


def test_used_people_are_told_apart_at_a_calibrated_level(people, tmp_path: Path) -> None:
    members, nonmembers, population = people
    target = RECIPE.fit(members.x, members.y, num_classes=10, seed=0)
    (result,) = audit(
        target,
        members=members,
        nonmembers=nonmembers,
        population=population,
        recipe=RECIPE,
        cache_dir=tmp_path,
        audits=[("membership.data_use", {"num_models": 8})],
    ).audits
    m = result.metrics
    assert result.details["people"] == 160
    assert m["auc"].ci[0] > 0.6
    assert m["false_alarm_at_alpha"].ci[0] <= 0.05  # not above its level
    assert m["power_at_alpha"].value > m["false_alarm_at_alpha"].value + 0.1
    assert m["falsely_declared_used"].value <= 0.05
