"""defences.tradeoff with planted truth: on digits whose labels are 40% noisy (a model that
fits them memorizes its members), a non-private MLP leaks clearly, DP-SGD through Opacus at an
accountant ε of 2 (δ = 1e-5) leaks far less, and neither the ROC bound of the tradeoff audit nor
the one-run bound (membership.one_run on the DP recipe) ever exceeds the accountant's ε.

Figures measured (seed 0, 200 members, 200 non-members, 400 clean test records):

| setting       | accuracy | loss-attack AUC       | ROC ε bound | accountant ε |
| none          | 65.0%    | 0.739 [0.690, 0.788]  | 0.98        |              |
| ensemble(4)   | 70.5%    | 0.743 [0.694, 0.792]  | 0.67        |              |
| dp(epsilon=2) | 17.0%    | 0.569 [0.513, 0.625]  | 0.00        | 1.995        |
| top_k(1)      | 65.0%    | 0.674 [0.627, 0.721]  | 0.52        |              |
| label_only    | 65.0%    | 0.652 [0.607, 0.698]  | 0.37        |              |

One-run bound with 200 random-label canaries (100 guesses): 1.72 non-private, 0.47 under DP
(≤ 1.995). An ensemble of 4 models trained on the same members does not lower the AUC (0.739
→ 0.743, within the interval) though its accuracy rises; what it lowers is the ROC ε bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unmeasured.api import audit
from unmeasured.audits.defences import Tradeoff, parse_setting
from unmeasured.errors import ConfigError
from unmeasured.training import MLPRecipe
from unmeasured.training.dp import DPRecipe

RECIPE = MLPRecipe(hidden=(128,), epochs=20, batch_size=50, lr=1e-2)
SETTINGS = ["none", "ensemble(4)", "dp(epsilon=2)", "top_k(1)", "label_only"]
EPSILON = 2.0


def _zeros(x: np.ndarray) -> np.ndarray:
    return np.zeros((len(x), 10))


@pytest.fixture(scope="module")
def data(digits):  # type: ignore[no-untyped-def]
    x, y = digits
    rng = np.random.default_rng(1)
    noisy = y.copy()
    flip = rng.random(len(y)) < 0.4
    noisy[flip] = rng.integers(0, 10, int(flip.sum()))
    return {
        "members": (x[:200], noisy[:200]),
        "nonmembers": (x[200:400], noisy[200:400]),
        "test": (x[400:800], y[400:800]),
        # canaries with random labels: only a model that saw one fits it
        "canaries": (x[800:1000], rng.integers(0, 10, 200)),
    }


@pytest.fixture(scope="module")
def tradeoff(data, tmp_path_factory):  # type: ignore[no-untyped-def]
    # the audit trains its own models through the recipe: the target is not queried
    run = audit(
        _zeros,
        num_classes=10,
        members=data["members"],
        nonmembers=data["nonmembers"],
        test=data["test"],
        recipe=RECIPE,
        audits=[("defences.tradeoff", {"settings": SETTINGS})],
        cache_dir=tmp_path_factory.mktemp("cache"),
        seed=0,
    )
    (result,) = run.audits
    assert result.status == "ok", result.reason
    return result


def _one_run(data, recipe, cache: Path):  # type: ignore[no-untyped-def]
    (result,) = audit(
        _zeros,
        num_classes=10,
        members=data["members"],
        population=data["canaries"],
        recipe=recipe,
        audits=[("membership.one_run", {"canaries": 200, "guess_fraction": 0.5})],
        cache_dir=cache,
        seed=0,
    ).audits
    assert result.status == "ok", result.reason
    return result.metrics["epsilon_lower_bound"].value


def test_dp_bounds_stay_below_the_accountant_and_plain_training_leaks(
    tradeoff, data, tmp_path: Path
) -> None:
    dp = tradeoff.groups["setting=dp(epsilon=2)"]
    none = tradeoff.groups["setting=none"]
    accountant = dp["accountant_epsilon"].value
    assert accountant == pytest.approx(EPSILON, abs=0.02)  # measured 1.995
    # the ROC bound (δ = 1e-5) of the DP model: measured 0.00
    assert dp["epsilon_lower_bound"].value <= accountant
    assert tradeoff.metrics["dp_epsilon_excess"].value < 0  # measured -1.995
    # the one-run bound of the DP recipe: measured 0.47; of the plain recipe: 1.72
    dp_one_run = _one_run(data, DPRecipe(base=RECIPE, target_epsilon=EPSILON), tmp_path)
    plain_one_run = _one_run(data, RECIPE, tmp_path)
    assert dp_one_run <= accountant
    assert plain_one_run > 1.0 and plain_one_run > dp_one_run
    # the plain model leaks clearly more: AUC 0.739 [0.690, 0.788] against 0.569 [0.513, 0.625]
    assert none["auc"].ci[0] > dp["auc"].ci[1]
    assert none["epsilon_lower_bound"].value > 0.5  # measured 0.98
    # and DP costs accuracy: 65.0% against 17.0%
    assert none["accuracy"].ci[0] > dp["accuracy"].ci[1]
    row = next(r for r in tradeoff.details["settings"] if r["kind"] == "dp")
    assert row["privacy"]["delta"] == 1e-5 and row["privacy"]["noise_multiplier"] > 0


def test_ensembles_do_not_raise_attack_power(tradeoff) -> None:
    none, ensemble = tradeoff.groups["setting=none"], tradeoff.groups["setting=ensemble(4)"]
    # members trained on the same records: the AUC stays within the single model's interval
    # (0.743 against 0.739 [0.690, 0.788]); accuracy does not drop (70.5% against 65.0%)
    assert ensemble["auc"].value <= none["auc"].ci[1]
    assert ensemble["accuracy"].value >= none["accuracy"].ci[0]


def test_labels_only_refuses_the_score_attack(tradeoff) -> None:
    rows = {r["setting"]: r for r in tradeoff.details["settings"]}
    assert rows["label_only"]["attack"] == "membership.label_only"
    assert rows["top_k(1)"]["attack"] == "membership.loss"
    none, labels = tradeoff.groups["setting=none"], tradeoff.groups["setting=label_only"]
    # the release keeps the predictions: same accuracy; the attack weakens (0.652 against 0.739)
    assert labels["accuracy"].value == none["accuracy"].value
    assert labels["auc"].value < none["auc"].value
    assert tradeoff.headline is not None and tradeoff.headline.metric == "auc"
    assert tradeoff.headline.concern is True


@pytest.mark.parametrize(
    ("spec", "kind", "value"),
    [
        ("none", "none", None),
        ("ensemble(8)", "ensemble", 8),
        ("dp(noise=1.5)", "dp", 1.5),
        ("round(0)", "round", 0),
        ("top_k(3)", "top_k", 3),
        ("label_only", "label_only", None),
    ],
)
def test_settings_parse(spec: str, kind: str, value: float | None) -> None:
    setting = parse_setting(spec)
    assert (setting.kind, setting.value) == (kind, value)


@pytest.mark.parametrize(
    "spec", ["ensemble(0)", "ensemble(1.5)", "dp(2)", "dp(delta=1)", "round", "blur(2)", "none(1)"]
)
def test_bad_settings_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="settings"):
        parse_setting(spec)
    with pytest.raises(ConfigError, match="settings: defences.tradeoff's 'settings' must be"):
        Tradeoff(settings=("none", spec))


def test_repeated_settings_and_unknown_attacks_are_refused() -> None:
    with pytest.raises(ConfigError, match="settings"):
        Tradeoff(settings=("none", "none"))
    with pytest.raises(ConfigError, match="attack"):
        Tradeoff(attack="robustness.pgd")


def test_dp_settings_need_a_torch_recipe(data) -> None:
    from sklearn.linear_model import LogisticRegression

    from unmeasured.training import SklearnRecipe

    with pytest.raises(ConfigError, match="recipe: the DP settings"):
        audit(
            _zeros,
            num_classes=10,
            members=data["members"],
            nonmembers=data["nonmembers"],
            recipe=SklearnRecipe(estimator=LogisticRegression()),
            audits=[("defences.tradeoff", {"settings": ["none", "dp(epsilon=1)"]})],
        )
