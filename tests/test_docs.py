"""The README's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from unmeasured.training import TorchRecipe, load_recipe

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(first_line: str) -> str:
    """The README's Python code block whose first line is ``first_line``."""
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no code block starting with {first_line!r} in the README")


def test_the_python_recipe_example_loads_and_trains(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(_block("# model.py"))
    (tmp_path / "recipe.py").write_text(_block("# recipe.py"))
    recipe = load_recipe(
        {"kind": "python", "entry": "recipe.py:make_recipe", "epochs": 2}, tmp_path
    )
    assert isinstance(recipe, TorchRecipe) and recipe.epochs == 2
    digits = load_digits()
    x, y = (digits.data[:200] / 16).astype(np.float32), digits.target[:200]
    model = recipe.fit(x, y, num_classes=10, seed=0)
    assert recipe.predict_logits(model, x).shape == (200, 10)


def test_the_robustness_config_example_is_valid() -> None:
    import tomllib

    from unmeasured.api import plan_audits
    from unmeasured.config import parse_config

    block = re.search(r"```toml\n# robustness.toml\n(.*?)```", README.read_text(), re.S)
    assert block, "no robustness.toml example in the README"
    config = parse_config(tomllib.loads(block.group(1)))
    assert config.data.test == "test.npz" and config.data.members is None
    ids = [p.id for p in plan_audits(config.audits)]
    assert ids == ["robustness.apgd[linf,ce]", "robustness.crown[linf]", "robustness.corruptions"]


def test_the_memorization_config_example_is_valid() -> None:
    import tomllib

    from unmeasured.api import plan_audits
    from unmeasured.config import parse_config
    from unmeasured.training.recipes import load_recipe

    block = re.search(r"```toml\n# memorization.toml\n(.*?)```", README.read_text(), re.S)
    assert block, "no memorization.toml example in the README"
    config = parse_config(tomllib.loads(block.group(1)))
    ids = [p.id for p in plan_audits(config.audits)]
    assert ids == [
        "memorization.exposure",
        "memorization.overlearning",
        "memorization.inversion",
        "memorization.leakage_detect",
    ]
    assert list(load_recipe(dict(config.recipe), README.parent).hidden) == [64]
