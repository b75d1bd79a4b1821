"""The ensemble and defended targets, and the DP-SGD recipe: what each releases, what each
refuses, and that the recipe's stated guarantee is the one Opacus's accountant records."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from torch import nn

from unmeasured.audits.base import AuditContext
from unmeasured.audits.registry import create
from unmeasured.data import Datasets, Records
from unmeasured.errors import ConfigError, TargetError
from unmeasured.targets import CallableTarget
from unmeasured.targets import defended as defended_module
from unmeasured.targets import ensemble as ensemble_module
from unmeasured.targets.defended import DefendedTarget
from unmeasured.targets.ensemble import EnsembleTarget
from unmeasured.training import MLPRecipe, TorchRecipe
from unmeasured.training import dp as dp_module
from unmeasured.training.dp import DPRecipe

PROBS = np.array([[0.1, 0.25, 0.65], [0.5, 0.3, 0.2]])


def _fixed(p: np.ndarray) -> CallableTarget:
    return CallableTarget(lambda x: np.log(p[: len(x)]), num_classes=p.shape[1])


def test_docstring_examples() -> None:
    for module in (defended_module, ensemble_module, dp_module):
        assert doctest.testmod(module).failed == 0


def test_ensemble_averages_probabilities_not_logits() -> None:
    a, b = _fixed(PROBS), _fixed(PROBS[:, ::-1].copy())
    out = EnsembleTarget([a, b]).predict(np.zeros((2, 1)))
    np.testing.assert_allclose(out, (PROBS + PROBS[:, ::-1]) / 2)
    assert EnsembleTarget([a, b]).capabilities == {"labels", "scores"}
    with pytest.raises(TargetError, match="at least one"):
        EnsembleTarget([])
    with pytest.raises(TargetError, match="disagree"):
        EnsembleTarget([a, _fixed(np.full((2, 4), 0.25))])


def test_top_k_rounding_and_labels_only() -> None:
    t = _fixed(PROBS)
    x = np.zeros((2, 1))
    np.testing.assert_allclose(DefendedTarget(t, top_k=1).predict(x), [[0, 0, 0.65], [0.5, 0, 0]])
    np.testing.assert_allclose(DefendedTarget(t, decimals=0).predict(x), [[0, 0, 1], [0, 0, 0]])
    labels = DefendedTarget(t, labels_only=True)
    np.testing.assert_array_equal(labels.predict(x), [[0, 0, 1], [1, 0, 0]])
    assert labels.capabilities == {"labels"}
    for bad in ({}, {"top_k": 0}, {"top_k": 4}, {"decimals": -1}):
        with pytest.raises(TargetError):
            DefendedTarget(t, **bad)


def test_a_score_attack_is_skipped_on_a_labels_only_target() -> None:
    x = np.zeros((40, 1), np.float32)
    y = np.full(40, 2)
    data = Datasets(members=Records(x[:20], y[:20]), nonmembers=Records(x[20:], y[20:]))
    ctx = AuditContext(
        target=DefendedTarget(_fixed(np.tile(PROBS[:1], (40, 1))), labels_only=True), data=data
    )
    result = create("membership.loss")(ctx)
    assert result.status == "skipped" and "scores" in result.reason
    assert create("membership.label_only")(ctx).status == "ok"


def test_dp_recipe_states_what_opacus_records_and_is_deterministic(digits) -> None:
    x, y = digits
    base = MLPRecipe(hidden=(16,), epochs=2, batch_size=20)
    recipe = DPRecipe(base=base, noise_multiplier=1.0)
    assert not isinstance(recipe, TorchRecipe)  # the ensemble trainer must never stack it
    model = recipe.fit(x[:100], y[:100], num_classes=10, seed=3)  # checks Opacus's accountant
    assert model.privacy == recipe.privacy(100)
    assert model.privacy.steps == 10 and model.privacy.sample_rate == pytest.approx(0.2)
    again = recipe.fit(x[:100], y[:100], num_classes=10, seed=3)
    np.testing.assert_array_equal(
        recipe.predict_logits(model, x[100:150]), recipe.predict_logits(again, x[100:150])
    )
    # more noise, less ε; a target ε is met from below
    assert DPRecipe(base=base, noise_multiplier=2.0).privacy(100).epsilon < model.privacy.epsilon
    targeted = DPRecipe(base=base, target_epsilon=3.0).privacy(100)
    assert 2.9 < targeted.epsilon <= 3.0


def test_dp_cache_key_covers_its_own_and_its_base_parameters() -> None:
    base = MLPRecipe(hidden=(16,), epochs=2)
    keys = {
        DPRecipe(base=base, noise_multiplier=1.0).cache_key(),
        DPRecipe(base=base, noise_multiplier=1.1).cache_key(),
        DPRecipe(base=MLPRecipe(hidden=(16,), epochs=3), noise_multiplier=1.0).cache_key(),
        DPRecipe(base=base, noise_multiplier=1.0, max_grad_norm=2.0).cache_key(),
        base.cache_key(),
    }
    assert len(keys) == 5


def test_dp_recipe_input_errors() -> None:
    base = MLPRecipe(hidden=(16,), epochs=2)
    with pytest.raises(ConfigError, match="exactly one"):
        DPRecipe(base=base)
    with pytest.raises(ConfigError, match="exactly one"):
        DPRecipe(base=base, noise_multiplier=1.0, target_epsilon=1.0)
    with pytest.raises(ConfigError, match="recipe.delta: .* not below 1/n"):
        DPRecipe(base=base, noise_multiplier=1.0, delta=0.01).privacy(200)
    with pytest.raises(ConfigError, match="recipe.base"):
        DPRecipe(base="mlp", noise_multiplier=1.0)  # type: ignore[arg-type]

    class BatchNormMLP(MLPRecipe):
        def architecture(self, input_shape, num_classes):  # type: ignore[no-untyped-def]
            return nn.Sequential(
                nn.Linear(input_shape[0], 8), nn.BatchNorm1d(8), nn.Linear(8, num_classes)
            )

    x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    with pytest.raises(ConfigError, match="Opacus cannot train this network"):
        DPRecipe(base=BatchNormMLP(hidden=(8,), epochs=1), noise_multiplier=1.0).fit(
            x, np.arange(40) % 2, num_classes=2, seed=0
        )
