"""User-level membership on planted truth: averaging a weak record-level signal over each user's
records makes users far easier to tell apart than records; a model that saw nothing leaks no
users; users must be wholly members or non-members."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from unmeasured.api import audit
from unmeasured.data import Records
from unmeasured.errors import DataError
from unmeasured.training import MLPRecipe

RECIPE = MLPRecipe(hidden=(256,), epochs=100, batch_size=16, lr=1e-3)  # overfits
PER_USER = 10


@pytest.fixture(scope="module")
def users():  # type: ignore[no-untyped-def]
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))[:1200]
    x, y = x[perm], y[perm]
    ids = np.repeat(np.arange(len(y) // PER_USER), PER_USER).astype(str)
    members = Records(x[:600], y[:600], columns={"user": ids[:600]})
    nonmembers = Records(x[600:], y[600:], columns={"user": ids[600:]})
    return members, nonmembers


def test_users_leak_more_than_records(users) -> None:
    members, nonmembers = users
    model = RECIPE.fit(members.x, members.y, num_classes=10, seed=1)
    (result,) = audit(
        model, members=members, nonmembers=nonmembers, audits=["membership.user"]
    ).audits
    record_auc, user_auc = result.metrics["record_auc"], result.metrics["auc"]
    assert result.details["n_users"] == 120 and result.details["n_member_users"] == 60
    assert record_auc.value > 0.5  # the planted weak signal: the model overfits a little
    assert user_auc.ci[0] > record_auc.ci[1]  # ten records per user sharpen it
    assert user_auc.value > 0.75


def test_a_model_that_saw_nothing_leaks_no_users(users) -> None:
    members, nonmembers = users
    untrained = RECIPE.build(input_shape=(64,), num_classes=10, seed=3)
    (result,) = audit(
        untrained, members=members, nonmembers=nonmembers, audits=["membership.user"]
    ).audits
    low, high = result.metrics["auc"].ci
    assert low <= 0.5 <= high


def test_a_user_on_both_sides_is_refused(users) -> None:
    members, nonmembers = users
    mixed = Records(
        nonmembers.x, nonmembers.y, columns={"user": np.r_[["0"], nonmembers.columns["user"][1:]]}
    )
    model = RECIPE.build(input_shape=(64,), num_classes=10, seed=3)
    with pytest.raises(DataError, match="1 users have records among both members and non-members"):
        audit(model, members=members, nonmembers=mixed, audits=["membership.user"])
