"""Planted truth for the reference-model attacks (LiRA, RMIA, shadow models) and the label-only
baseline, with reference models trained through a real recipe."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from unmeasured import training
from unmeasured.api import audit
from unmeasured.audits.membership.reference import augment, balanced_masks, plan_masks
from unmeasured.audits.registry import create
from unmeasured.errors import ConfigError
from unmeasured.training import MLPRecipe

RECIPE = MLPRecipe(hidden=(128,), epochs=40, batch_size=64, lr=3e-3)


@pytest.fixture(scope="module")
def digits_split():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    return (x[:600], y[:600]), (x[600:1200], y[600:1200]), (x[1200:], y[1200:])


@pytest.fixture(scope="module")
def overfit_target(digits_split):
    members, _, _ = digits_split
    return RECIPE.fit(members[0], members[1], num_classes=10, seed=123)


@pytest.fixture(scope="module")
def overfit_run(digits_split, overfit_target, tmp_path_factory):
    """The run, and the number of models each call of the ensemble trainer trained."""
    members, nonmembers, population = digits_split
    trained: list[int] = []
    real = training.train_ensemble

    def counting(*args, **kwargs):
        trained.append(len(args[3]))
        return real(*args, **kwargs)

    with mock.patch.object(training, "train_ensemble", counting):
        run = audit(
            overfit_target,
            members=members,
            nonmembers=nonmembers,
            population=population,
            recipe=RECIPE,
            cache_dir=tmp_path_factory.mktemp("cache"),
            audits=[
                "membership.loss",
                ("membership.lira", {"mode": "online", "num_models": 16}),
                ("membership.lira", {"mode": "offline", "num_models": 4}),
                ("membership.rmia", {"num_models": 4}),
                ("membership.shadow", {"num_models": 8}),
                "membership.label_only",
                (
                    "membership.lira",
                    {"mode": "online", "num_models": 16, "variance": "per_example"},
                ),
                ("membership.rmia", {"mode": "online", "num_models": 16}),
            ],
        )
    return run, trained


def test_online_lira_beats_loss_at_low_fpr(overfit_run) -> None:
    run, _ = overfit_run
    lira = run.audits[1]
    loss = run["membership.loss"]
    assert lira.status == "ok", lira.reason
    assert lira.metrics["tpr_at_fpr_0.01"].value > loss.metrics["tpr_at_fpr_0.01"].value
    assert lira.metrics["auc"].ci[0] > 0.5


@pytest.mark.parametrize("index", [2, 3, 4, 5, 6, 7])
def test_reference_attacks_find_leakage(overfit_run, index: int) -> None:
    result = overfit_run[0].audits[index]
    assert result.status == "ok", result.reason
    assert result.metrics["auc"].ci[0] > 0.5, result.name


def test_reference_models_are_shared_between_attacks(overfit_run) -> None:
    # three plans (online 16, offline 4, offline 8) for six reference-model attacks: LiRA
    # online with both variances and RMIA online share one set, LiRA and RMIA offline another
    run, trained = overfit_run
    assert sorted(trained) == [4, 8, 16]
    assert run.audits[6].id == "membership.lira[online,variance=per_example]"


def test_query_augmentation_on_images(digits_split, tmp_path: Path) -> None:
    members, nonmembers, population = digits_split
    as_images = [(x.reshape(-1, 1, 8, 8), y) for x, y in (members, nonmembers, population)]
    model = RECIPE.fit(as_images[0][0], as_images[0][1], num_classes=10, seed=1)
    run = audit(
        model,
        members=as_images[0],
        nonmembers=as_images[1],
        population=as_images[2],
        recipe=RECIPE,
        cache_dir=tmp_path,
        audits=[
            ("membership.lira", {"mode": "online", "num_models": 4, "augmentation": "flip_shift"})
        ],
    )
    result = run.audits[0]
    assert result.status == "ok", result.reason
    plain = audit(
        model,
        members=as_images[0],
        nonmembers=as_images[1],
        population=as_images[2],
        recipe=RECIPE,
        cache_dir=tmp_path,
        audits=[("membership.lira", {"mode": "online", "num_models": 4})],
    ).audits[0]
    # the six views were scored: the scores are not those of the single view
    assert not np.allclose(result.arrays["scores"], plain.arrays["scores"])


def test_augment_views() -> None:
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    views = augment(x, "flip_shift")
    assert views.shape == (2, 6, 1, 3, 3)
    np.testing.assert_array_equal(views[:, 0], x)
    np.testing.assert_array_equal(views[:, 1], x[..., ::-1])
    np.testing.assert_array_equal(views[:, 2], np.roll(x, 1, axis=2))
    assert augment(x, "none").shape == (2, 1, 1, 3, 3)


def test_augmentation_needs_images(digits_split, overfit_target, tmp_path: Path) -> None:
    members, nonmembers, population = digits_split
    with pytest.raises(ConfigError, match="image"):
        audit(
            overfit_target,
            members=members,
            nonmembers=nonmembers,
            population=population,
            recipe=RECIPE,
            cache_dir=tmp_path,
            audits=[("membership.lira", {"num_models": 2, "augmentation": "flip"})],
        )


def test_rmia_leaves_out_records_without_out_models() -> None:
    from unmeasured.audits.membership.rmia import _out_mean, dominance_scores

    probs = np.array([[0.2, 0.9, 0.4], [0.6, 0.7, 0.8]])
    masks = np.array([[False, True, True], [True, True, False]])
    out = _out_mean(probs, masks)
    assert out[0] == 0.2 and np.isnan(out[1]) and out[2] == 0.8  # not Pr_OUT = 0
    scores = dominance_scores(np.array([1.0, np.nan, 3.0]), np.array([0.5, np.nan, 2.0]), 1.0)
    assert scores[0] == 0.5 and np.isnan(scores[1]) and scores[2] == 1.0


def test_model_that_saw_nothing_does_not_leak(digits_split, tmp_path: Path) -> None:
    members, nonmembers, population = digits_split
    torch.manual_seed(0)
    untrained = RECIPE.build(input_shape=(64,), num_classes=10, seed=5)
    run = audit(
        untrained,
        members=members,
        nonmembers=nonmembers,
        population=population,
        recipe=RECIPE,
        cache_dir=tmp_path,
        audits=[
            ("membership.lira", {"mode": "online", "num_models": 8}),
            ("membership.lira", {"mode": "offline", "num_models": 4}),
            ("membership.rmia", {"num_models": 2}),
            ("membership.rmia", {"mode": "online", "num_models": 8}),
            ("membership.shadow", {"num_models": 2}),
        ],
    )
    for result in run.audits:
        assert result.status == "ok", result.reason
        lo, hi = result.metrics["auc"].ci
        assert lo <= 0.5 <= hi, (result.name, result.params, lo, hi)


def test_unmet_requirements_of_named_audits_stop_before_any_work(
    digits_split, overfit_target
) -> None:
    members, nonmembers, _ = digits_split
    with pytest.raises(ConfigError) as e:
        audit(
            overfit_target,
            members=members,
            nonmembers=nonmembers,
            audits=["membership.lira", "membership.rmia"],
        )
    assert str(e.value) == (
        "cannot run the requested audits: audits[0] (membership.lira[online]) needs a training "
        "recipe ([recipe] in the config) | audits[1] (membership.rmia[offline]) needs data "
        "data.population; needs a training recipe ([recipe] in the config)"
    )


def test_a_family_skips_what_cannot_run(digits_split, overfit_target) -> None:
    members, nonmembers, _ = digits_split
    run = audit(overfit_target, members=members, nonmembers=nonmembers, audits=["membership"])
    status = {a.id: a.status for a in run.audits}
    assert status["membership.loss"] == "ok"
    assert status["membership.lira[online]"] == "skipped"
    assert "recipe" in run["membership.lira"].reason


def test_balanced_masks() -> None:
    rng = np.random.default_rng(0)
    masks = balanced_masks(8, 101, rng)
    assert (masks.sum(axis=0) == 4).all()
    assert abs(masks.sum(axis=1).mean() - 50.5) < 1
    offline = plan_masks("offline", 4, 50, 40, 30, rng)
    assert not offline[:, :50].any() and (offline[:, 50:].sum(axis=0) == 2).all()
    # a large population: reference models train on as many records as the target (10)
    offline = plan_masks("offline", 4, 50, 100, 10, rng)
    assert offline.sum() == 40 and abs(offline.sum(axis=1) - 10).max() <= 3
    assert offline.any(axis=0).sum() == 20
    online = plan_masks("online", 4, 50, 100, 30, rng)  # pool topped up to 2 x 30 records
    assert online[:, :60].sum(axis=0).tolist() == [2] * 60 and not online[:, 60:].any()
    single = balanced_masks(1, 10, rng)
    assert single.sum() == 5


def test_online_lira_needs_two_models() -> None:
    with pytest.raises(ConfigError, match="num_models"):
        create("membership.lira", {"mode": "online", "num_models": 1})
