"""The checks every registered audit passes, whatever its family (in the spirit of
scikit-learn's estimator checks): it builds with defaults, stores its parameters as given,
declares its requirements and metrics, rejects a bad parameter before running, runs on a tiny
target with every data role, returns a result that validates against the results schema and
reports only metrics it declared, and gives identical metrics twice with the same seed."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from unmeasured.api import audit
from unmeasured.audits.base import Requirements
from unmeasured.audits.registry import available, create
from unmeasured.data import Records
from unmeasured.errors import ConfigError
from unmeasured.gates import parse_rule
from unmeasured.results import load_schema
from unmeasured.training import MLPRecipe
from unmeasured.training.language import CharLMRecipe

RECIPE = MLPRecipe(hidden=(16,), epochs=3, batch_size=32)
#: for audits of language models (the "sequences" capability)
LM_RECIPE = CharLMRecipe(max_lines=60, embedding=8, hidden=16, epochs=1)
#: parameters that keep every audit cheap on the fixture
CHEAP = {
    "num_models": 2,
    "max_records": 20,
    "epochs": 1,
    "steps": 5,
    "queries": 50,
    "n": 200,
}
NAMES = sorted(available())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))[:640]
    x, y = x[perm], y[perm]
    users = np.repeat(np.arange(80), 4).astype(str)  # 4 records per user, for user-level audits
    roles = {
        "members": Records(x[:160], y[:160], columns={"user": users[:160], "group": users[:160]}),
        "nonmembers": Records(
            x[160:320], y[160:320], columns={"user": users[160:320], "group": users[160:320]}
        ),
        "population": (x[320:480], y[320:480]),
        "test": Records(x[480:], y[480:], columns={"sensitive": (y[480:] >= 5).astype(int)}),
    }
    # the target has batch norm so that every audit (bn_adaptation too) can run on it
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    xm, ym = torch.from_numpy(roles["members"].x), torch.from_numpy(roles["members"].y)
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xm), ym).backward()
        optimizer.step()
    lines = [f"record {i} of the tiny corpus, line {i * 7 % 13}" for i in range(60)]
    corpus = tmp_path_factory.mktemp("corpus") / "lines.txt"
    corpus.write_text("\n".join(lines))
    lm_recipe = CharLMRecipe(**{**LM_RECIPE.params(), "corpus": str(corpus)})
    return {
        "model": model.eval(),
        "roles": roles,
        "language_model": lm_recipe.train(seed=0),
        "lm_recipe": lm_recipe,
    }


def _cheap(name: str) -> dict:
    allowed = available()[name].param_names()
    return {k: v for k, v in CHEAP.items() if k in allowed}


def _run(tiny: dict, name: str, cache: Path):  # type: ignore[no-untyped-def]
    if "sequences" in create(name, _cheap(name)).requirements().capabilities:
        return audit(
            tiny["language_model"],
            recipe=tiny["lm_recipe"],
            audits=[(name, _cheap(name))],
            cache_dir=cache,
            seed=3,
        )
    return audit(
        tiny["model"],
        **tiny["roles"],
        recipe=RECIPE,
        audits=[(name, _cheap(name))],
        cache_dir=cache,
        seed=3,
    )


def test_every_family_is_registered() -> None:
    assert {n.split(".", 1)[0] for n in NAMES} >= {"membership", "robustness"}
    assert len(NAMES) >= 13


@pytest.mark.parametrize("name", NAMES)
def test_builds_with_defaults_and_keeps_parameters_as_given(name: str) -> None:
    cls = available()[name]
    obj = cls()
    params = obj.get_params()
    assert list(params) == cls.param_names()
    again = cls(**params)
    assert again.get_params() == params and repr(again) == repr(obj)
    assert obj.name == name and obj.summary
    assert isinstance(obj.requirements(), Requirements)
    metrics = obj.metric_names()
    assert metrics and len(set(metrics)) == len(metrics)
    for metric in metrics:  # every declared metric can be named in a gate
        parse_rule(f"{obj.audit_id()}.{metric}>0.5")


@pytest.mark.parametrize("name", NAMES)
def test_rejects_bad_parameters_before_running(name: str) -> None:
    with pytest.raises(ConfigError, match=r"audits\.not_a_parameter: unknown parameter"):
        create(name, {"not_a_parameter": 1})
    for param in available()[name].param_names():
        with pytest.raises(ConfigError, match=rf"audits\.{param}: {name}'s '{param}' must be"):
            create(name, {param: object()})


@pytest.mark.parametrize("name", NAMES)
def test_runs_validates_and_is_deterministic(tiny: dict, name: str, tmp_path: Path) -> None:
    first = _run(tiny, name, tmp_path / "a")
    second = _run(tiny, name, tmp_path / "b")  # a fresh cache: everything is recomputed
    (result,) = first.audits
    assert result.status == "ok", result.reason
    jsonschema.validate(first.to_dict(), load_schema())
    declared = create(name, _cheap(name)).metric_names()
    assert set(result.metrics) <= set(declared), set(result.metrics) - set(declared)
    assert result.headline is not None and result.headline.metric in result.metrics
    assert {k: v.to_dict() for k, v in result.metrics.items()} == {
        k: v.to_dict() for k, v in second.audits[0].metrics.items()
    }
