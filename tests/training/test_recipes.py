from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from unmeasured.errors import ConfigError
from unmeasured.training import (
    CNNRecipe,
    LogisticRecipe,
    MLPRecipe,
    SklearnRecipe,
    batch_schedule,
    load_recipe,
)
from unmeasured.training.recipes import BUILTIN_RECIPES


@pytest.mark.parametrize("kind", sorted(BUILTIN_RECIPES))
def test_builtin_recipes_follow_the_contract(kind: str) -> None:
    """Parameters stored as given, repr and params from them, a stable cache key."""
    cls = BUILTIN_RECIPES[kind]
    recipe = cls(epochs=2, batch_size=16)
    params = recipe.params()
    assert list(params) == cls.param_names()
    assert params["epochs"] == 2 and params["batch_size"] == 16
    assert repr(recipe) == f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
    again = cls(**params)
    assert again.params() == params and again.cache_key() == recipe.cache_key()
    assert cls(epochs=3, batch_size=16).cache_key() != recipe.cache_key()
    shape = (1, 8, 8) if kind == "cnn" else (64,)
    net = recipe.build(shape, 10, seed=0)
    assert net(torch.zeros(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_is_deterministic_and_learns(digits, seed: int) -> None:
    x, y = digits
    recipe = MLPRecipe(hidden=(32,), epochs=10, batch_size=32, lr=1e-2)
    train, test = slice(0, 200), slice(200, 300)

    def logits(s: int) -> np.ndarray:
        return recipe.predict_logits(
            recipe.fit(x[train], y[train], num_classes=10, seed=s), x[test]
        )

    a = logits(seed)
    np.testing.assert_array_equal(a, logits(seed))
    assert not np.allclose(a, logits(seed + 100))
    assert (a.argmax(1) == y[test]).mean() > 0.8


def test_build_leaves_the_global_torch_rng_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    MLPRecipe().build((64,), 10, seed=1)
    torch.testing.assert_close(torch.rand(3), expected)


def test_batch_schedule_covers_each_record_once_per_epoch() -> None:
    batches = list(batch_schedule(10, 4, 2, seed=3))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    for epoch in (batches[:3], batches[3:]):
        assert sorted(np.concatenate(epoch)) == list(range(10))
    assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))


def test_cache_key_follows_what_trains_the_models(monkeypatch) -> None:
    assert MLPRecipe(hidden=[64]).cache_key() == MLPRecipe(hidden=(64,)).cache_key()
    assert MLPRecipe().cache_key() != MLPRecipe(lr=2e-3).cache_key()
    assert MLPRecipe(hidden=()).cache_key() != LogisticRecipe().cache_key()
    a = SklearnRecipe(estimator=LogisticRegression(C=1.0))
    b = SklearnRecipe(estimator=LogisticRegression(C=0.5))
    assert a.cache_key() != b.cache_key()
    assert a.cache_key() == SklearnRecipe(estimator=LogisticRegression()).cache_key()
    before = MLPRecipe().cache_key()
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert MLPRecipe().cache_key() != before


def test_load_builtin_recipes(tmp_path: Path) -> None:
    r = load_recipe({"kind": "mlp", "hidden": [64, 32], "epochs": 3}, tmp_path)
    assert isinstance(r, MLPRecipe) and list(r.hidden) == [64, 32] and r.epochs == 3
    assert isinstance(load_recipe({"kind": "cnn"}, tmp_path), CNNRecipe)
    assert isinstance(load_recipe({"kind": "logistic", "lr": 0.1}, tmp_path), LogisticRecipe)


def test_load_python_entry_point(tmp_path: Path) -> None:
    (tmp_path / "recipe.py").write_text(
        "from unmeasured.training import MLPRecipe\n"
        "def make_recipe(width=8):\n    return MLPRecipe(hidden=(width,), epochs=1)\n"
    )
    r = load_recipe({"kind": "python", "entry": "recipe.py:make_recipe", "width": 12}, tmp_path)
    assert r.params()["hidden"] == (12,)


def test_load_sklearn_recipes(tmp_path: Path) -> None:
    r = load_recipe(
        {"kind": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression", "C": 0.5},
        tmp_path,
    )
    assert isinstance(r, SklearnRecipe) and r.estimator.C == 0.5
    r = load_recipe({"kind": "sklearn", "estimator": "sklearn.svm:LinearSVC"}, tmp_path)
    assert type(r.estimator).__name__ == "LinearSVC"
    fitted = LogisticRegression(C=0.3).fit(np.eye(3), [0, 1, 2])
    r = load_recipe({"kind": "sklearn"}, tmp_path, target_estimator=fitted)
    assert r.estimator.C == 0.3 and not hasattr(r.estimator, "coef_")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "recipe.kind"),
        (
            {"kind": "transformer"},
            "recipe.kind: unknown recipe 'transformer'; choose 'char_lm', 'cnn'",
        ),
        ({"kind": "mlp", "hiden": [3]}, "recipe.hiden: unknown parameter of 'mlp'; allowed"),
        ({"kind": "mlp", "hidden": [0]}, "recipe.hidden"),
        ({"kind": "mlp", "optimizer": "lbfgs"}, "recipe.optimizer: .* one of 'adam', 'sgd'"),
        ({"kind": "mlp", "epochs": 0}, "recipe.epochs"),
        ({"kind": "mlp", "batch_size": 1.5}, "recipe.batch_size"),
        ({"kind": "mlp", "lr": -1}, "recipe.lr"),
        ({"kind": "mlp", "momentum": 1.0}, "recipe.momentum"),
        ({"kind": "logistic", "hidden": [8]}, "recipe.hidden: unknown parameter of 'logistic'"),
        ({"kind": "cnn", "channels": []}, "recipe.channels"),
        ({"kind": "python"}, "recipe.entry"),
        ({"kind": "python", "entry": "nope.py:make"}, "nope.py"),
        ({"kind": "sklearn"}, "recipe.estimator: required"),
        ({"kind": "sklearn", "estimator": "sklearn.nothing.Here"}, "recipe.estimator"),
        ({"kind": "sklearn", "estimator": "numpy.ndarray"}, "not a scikit-learn estimator"),
        (
            {"kind": "sklearn", "estimator": "sklearn.linear_model.LogisticRegression", "K": 1},
            "recipe.K: unknown parameter of 'LogisticRegression'",
        ),
    ],
)
def test_bad_recipe_tables(tmp_path: Path, spec: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        load_recipe(spec, tmp_path)
    assert "\n" not in str(info.value)


def test_python_entry_must_return_a_recipe(tmp_path: Path) -> None:
    (tmp_path / "recipe.py").write_text("def make_recipe():\n    return 'mlp'\n")
    with pytest.raises(ConfigError, match="recipe.entry: .* returned a str, not a Recipe"):
        load_recipe({"kind": "python", "entry": "recipe.py:make_recipe"}, tmp_path)


def test_cnn_needs_images() -> None:
    with pytest.raises(ConfigError, match="image"):
        CNNRecipe().build((64,), 10, seed=0)


def test_sklearn_recipe_seeds_nested_estimators_and_fills_unseen_classes(digits) -> None:
    x, y = digits
    seen = y < 9  # class 9 is never trained on
    recipe = SklearnRecipe(
        estimator=make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=20))
    )
    with pytest.warns(UserWarning):  # max_iter=20 does not converge
        a = recipe.fit(x[seen], y[seen], num_classes=10, seed=4)
        b = recipe.fit(x[seen], y[seen], num_classes=10, seed=4)
    assert a[-1].random_state == 4
    la = recipe.predict_logits(a, x[:50], num_classes=10)
    np.testing.assert_array_equal(la, recipe.predict_logits(b, x[:50], num_classes=10))
    assert la.shape == (50, 10) and la.dtype == np.float32
    assert (la[:, 9] < la[:, :9].min(axis=1)).all()


def test_sklearn_recipe_refuses_non_classifiers() -> None:
    with pytest.raises(ConfigError, match="recipe.estimator"):
        SklearnRecipe(estimator="LogisticRegression")
