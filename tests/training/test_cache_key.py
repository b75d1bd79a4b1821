"""The cache key covers everything that decides what a seed trains: changing any one part
retrains that model, changing none reuses it."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from unmeasured.entrypoints import load_callable
from unmeasured.errors import ConfigError
from unmeasured.training import MLPRecipe, TorchRecipe, TrainingReport, train_ensemble
from unmeasured.training import recipes as recipes_module

USER_RECIPE = '''
from torch import nn
from unmeasured.training import TorchRecipe


class Wide(TorchRecipe):
    """A user's recipe with a positional parameter and defaults."""

    def __init__(self, width, epochs=1, batch_size=64, lr=1e-3):
        self.width, self.epochs, self.batch_size, self.lr = width, epochs, batch_size, lr
        self.weight_decay, self.optimizer, self.momentum = 0.0, "adam", 0.9
        self.validate()

    def architecture(self, input_shape, num_classes):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, self.width), nn.ReLU(), nn.Linear(self.width, num_classes)
        )
'''


def user_recipe_class(directory: Path, source: str = USER_RECIPE) -> type[TorchRecipe]:
    path = directory / "wide.py"
    path.write_text(source)
    cls, _ = load_callable(f"{path}:Wide", directory, field="recipe.entry", error=ConfigError)
    return cls


def train_counts(cache: Path, digits, pool_masks, **changes) -> int:
    """Models trained (not loaded from ``cache``) by one ensemble call with ``changes``."""
    x, y = digits
    args = dict(
        recipe=MLPRecipe(hidden=(8,), epochs=1, batch_size=64),
        x=x,
        y=y,
        masks=pool_masks[:1],
        query_x=x[:20],
        seeds=[1],
        num_classes=10,
    )
    report = TrainingReport()
    train_ensemble(**{**args, **changes}, cache_dir=cache, backend="sequential", report=report)
    return report.trained


@pytest.mark.parametrize(
    "change",
    ["none", "recipe", "x", "y", "num_classes", "mask", "seed", "query"],
)
def test_each_part_of_the_key_retrains_and_nothing_else_does(digits, masks, tmp_path, change):
    x, y = digits
    assert train_counts(tmp_path, digits, masks) == 1
    changed = {
        "none": {},
        "recipe": {"recipe": MLPRecipe(hidden=(8,), epochs=1, batch_size=32)},
        "x": {"x": np.where(np.arange(len(x))[:, None] == 0, 1 - x, x)},
        "y": {"y": np.where(np.arange(len(y)) == 0, (y + 1) % 10, y)},
        "num_classes": {"num_classes": 11},
        "mask": {"masks": ~masks[:1]},
        "seed": {"seeds": [2]},
        "query": {"query_x": x[1:21]},
    }[change]
    assert train_counts(tmp_path, digits, masks, **changed) == (change != "none")


def test_positional_parameters_and_defaults_are_in_the_key(tmp_path) -> None:
    wide = user_recipe_class(tmp_path)
    assert wide(8).params() == {"width": 8, "epochs": 1, "batch_size": 64, "lr": 1e-3}
    assert wide(8).cache_key() == wide(width=8, epochs=1).cache_key()  # a default, spelt out
    assert wide(8).cache_key() != wide(16).cache_key()  # positional
    assert wide(8).cache_key() != wide(8, 2).cache_key()  # positional, over a default
    assert wide(8).cache_key() != wide(8, lr=1e-2).cache_key()  # keyword


def test_editing_the_users_recipe_file_retrains(digits, masks, tmp_path) -> None:
    cache = tmp_path / "cache"
    first = user_recipe_class(tmp_path)
    assert train_counts(cache, digits, masks, recipe=first(8)) == 1
    assert train_counts(cache, digits, masks, recipe=user_recipe_class(tmp_path)(8)) == 0
    # the same parameters, a different network: only the source tells them apart
    edited = USER_RECIPE.replace("nn.ReLU()", "nn.Tanh()")
    assert train_counts(cache, digits, masks, recipe=user_recipe_class(tmp_path, edited)(8)) == 1
    # a changed default changes the key even where the call does not mention it
    later = USER_RECIPE.replace("epochs=1,", "epochs=2,")
    assert user_recipe_class(tmp_path, later)(8).cache_key() != first(8).cache_key()


def test_editing_the_shipped_recipe_code_retrains(tmp_path, monkeypatch) -> None:
    """The key hashes the file of every recipe class in the hierarchy, this package's too
    (pointed here at a copy of recipes.py that is then edited)."""
    copy = tmp_path / "recipes.py"
    copy.write_bytes(Path(recipes_module.__file__).read_bytes())
    real_getfile = inspect.getfile
    monkeypatch.setattr(
        inspect,
        "getfile",
        lambda obj: str(copy) if obj in (MLPRecipe, TorchRecipe) else real_getfile(obj),
    )
    before = MLPRecipe().cache_key()
    assert MLPRecipe().cache_key() == before
    copy.write_text(copy.read_text().replace("nn.ReLU()", "nn.GELU()"))
    assert MLPRecipe().cache_key() != before


def test_a_class_without_a_file_is_keyed_by_its_code() -> None:
    def make(scale: float) -> type[TorchRecipe]:
        namespace: dict = {}
        # a recipe defined where inspect finds no file, as in a notebook
        exec(
            "from torch import nn\n"
            "from unmeasured.training import MLPRecipe\n"
            "class Scaled(MLPRecipe):\n"
            "    def architecture(self, input_shape, num_classes):\n"
            f"        return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes), "
            f"nn.Hardtanh({scale}, {scale + 1}))\n",
            namespace,
        )
        return namespace["Scaled"]

    assert make(1.0)().cache_key() == make(1.0)().cache_key()
    assert make(1.0)().cache_key() != make(2.0)().cache_key()


def test_versions_and_device_type_are_in_the_key(monkeypatch) -> None:
    base = MLPRecipe(device="cpu").cache_key()
    if not torch.cuda.is_available():  # "auto" is the CPU here: the same models
        assert MLPRecipe(device="auto").cache_key() == base
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert MLPRecipe(device="cuda").cache_key() != base
    assert MLPRecipe(device="auto").cache_key() != base
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert MLPRecipe(device="cpu").cache_key() != base


def test_a_recipe_must_store_its_parameters() -> None:
    class Forgetful(MLPRecipe):
        def __init__(self, *, width: int = 8) -> None:
            super().__init__(hidden=(width,))

    with pytest.raises(ConfigError, match="recipe: Forgetful must store its parameter 'width'"):
        Forgetful().cache_key()
