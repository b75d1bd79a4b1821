from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from unmeasured.errors import ConfigError
from unmeasured.training import CNNRecipe, LogisticRecipe, MLPRecipe, load_recipe


def test_fit_is_deterministic_and_learns() -> None:
    d = load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target
    recipe = MLPRecipe(hidden=(32,), epochs=15, batch_size=32)
    a = recipe.predict_logits(recipe.fit(x[:1000], y[:1000], num_classes=10, seed=1), x[1000:])
    b = recipe.predict_logits(recipe.fit(x[:1000], y[:1000], num_classes=10, seed=1), x[1000:])
    c = recipe.predict_logits(recipe.fit(x[:1000], y[:1000], num_classes=10, seed=2), x[1000:])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert (a.argmax(1) == y[1000:]).mean() > 0.85


def test_cache_key_follows_parameters() -> None:
    assert MLPRecipe(epochs=3).cache_key() == MLPRecipe(epochs=3).cache_key()
    assert MLPRecipe(epochs=3).cache_key() != MLPRecipe(epochs=4).cache_key()
    assert MLPRecipe().cache_key() != LogisticRecipe().cache_key()


def test_load_builtin_recipes(tmp_path: Path) -> None:
    r = load_recipe({"kind": "mlp", "hidden": [64, 32], "epochs": 3}, tmp_path)
    assert isinstance(r, MLPRecipe) and r.hidden == (64, 32)
    assert isinstance(load_recipe({"kind": "cnn"}, tmp_path), CNNRecipe)


def test_load_python_entry_point(tmp_path: Path) -> None:
    (tmp_path / "recipe.py").write_text(
        "from unmeasured.training import MLPRecipe\n"
        "def make_recipe(width=8):\n    return MLPRecipe(hidden=(width,), epochs=1)\n"
    )
    r = load_recipe({"kind": "python", "entry": "recipe.py:make_recipe", "width": 12}, tmp_path)
    assert r.hidden == (12,)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "recipe.kind"),
        ({"kind": "transformer"}, "recipe.kind"),
        ({"kind": "mlp", "hiden": [3]}, "recipe.hiden"),
        ({"kind": "mlp", "optimizer": "lbfgs"}, "recipe.optimizer"),
        ({"kind": "mlp", "epochs": 0}, "recipe.epochs"),
        ({"kind": "python"}, "recipe.entry"),
        ({"kind": "python", "entry": "nope.py:make"}, "nope.py"),
    ],
)
def test_bad_recipe_tables(tmp_path: Path, spec: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_recipe(spec, tmp_path)


def test_cnn_needs_images() -> None:
    with pytest.raises(ConfigError, match="image"):
        CNNRecipe().build((64,), 10, seed=0)
