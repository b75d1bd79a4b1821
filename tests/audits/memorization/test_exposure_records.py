"""memorization.exposure on a classifier: record canaries planted in scikit-learn's digits and a
small MLP retrained through its recipe.

Planted truth: canaries of 4 inputs with a secret label each (|R| = 10^4 label tuples, at most
13.29 bits), two canaries appended 1, 4, 16 and 64 times and four never. Measured with seed 0
(one-thread training, about 2 s per model):

* noise inputs: controls 0.29, 1.35, 0.57, 1.84 (mean 1.01); x1 4.33, 1.31; x4 5.89, 4.74;
  x16 and x64 13.29 each (all four rank first of 10^4); retrained test accuracy 0.91.
* mislabeled members: controls 0.11, 2.60, 0.75, 0.53 (mean 1.00); x1 0.77, 2.56; x4 0.55,
  0.72; x16 5.36, 8.97; x64 12.29 (rank 2), 13.29; retrained test accuracy 0.76 (680 wrong
  labels next to 952 members).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from unmeasured.api import audit
from unmeasured.audits.base import Requirements
from unmeasured.audits.memorization.canaries import label_tuple_rank, sample_label_tuples
from unmeasured.audits.registry import create
from unmeasured.errors import ConfigError
from unmeasured.training import MLPRecipe

RECIPE = MLPRecipe(hidden=(64,), epochs=10, batch_size=64)
PARAMS = {"canaries_per_repetition": 2, "controls": 4}


@pytest.fixture(scope="module")
def digits() -> dict:
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    return {"members": (x[perm[:1000]], y[perm[:1000]]), "test": (x[perm[1400:]], y[perm[1400:]])}


@pytest.fixture(scope="module")
def run(digits: dict, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("record-canaries")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        target = RECIPE.fit(*digits["members"], num_classes=10, seed=1)
        kwargs = {
            "members": digits["members"],
            "test": digits["test"],
            "recipe": RECIPE,
            "input_bounds": (0.0, 1.0),
            "cache_dir": cache,
            "seed": 0,
        }
        result = audit(
            target,
            audits=[
                ("memorization.exposure", PARAMS),
                ("memorization.exposure", {**PARAMS, "canary_inputs": "mislabeled"}),
            ],
            **kwargs,
        )
        yield {"run": result, "target": target, "kwargs": kwargs}
    finally:
        torch.set_num_threads(threads)


def _by_count(result) -> dict[int, list[float]]:  # type: ignore[no-untyped-def]
    out: dict[int, list[float]] = {}
    for r in result.details["canaries"]:
        out.setdefault(r["repetitions"], []).append(r["exposure"])
    return out


def test_repeated_noise_canaries_are_exposed_and_controls_are_not(run: dict) -> None:
    a = run["run"]["memorization.exposure[canary_inputs=noise]"]
    assert a.status == "ok" and a.details["variant"] == "classifier"
    assert a.details["space_size"] == 10**4 and a.details["method"] == "exact"
    m = {k: v.value for k, v in a.metrics.items()}
    counts = _by_count(a)
    # measured: controls 0.29, 1.35, 0.57, 1.84; x16 and x64 all 13.29 (rank 1 of 10^4)
    assert max(counts[0]) < 4 and m["exposure_at_0"] < 2.5
    assert min(counts[16] + counts[64]) > 11
    assert m["exposure_at_16"] - m["exposure_at_0"] > 8
    assert m["exposure_max"] == pytest.approx(np.log2(10_000))
    # measured: x1 4.33, 1.31; x4 5.89, 4.74: between the controls and memorized
    assert m["exposure_at_0"] < m["exposure_at_4"] < m["exposure_at_16"]
    assert a.headline is not None and a.headline.concern
    assert a.details["retrained_test_accuracy"] > 0.85  # measured 0.91


def test_repeated_mislabeled_members_are_exposed_and_controls_are_not(run: dict) -> None:
    a = run["run"]["memorization.exposure[canary_inputs=mislabeled]"]
    assert a.status == "ok"
    m = {k: v.value for k, v in a.metrics.items()}
    counts = _by_count(a)
    # measured: controls 0.11, 2.60, 0.75, 0.53; x64 12.29 and 13.29; x16 5.36 and 8.97
    assert max(counts[0]) < 4 and m["exposure_at_0"] < 2.5
    assert min(counts[64]) > 10
    assert m["exposure_at_16"] - m["exposure_at_0"] > 3
    assert m["exposure_at_64"] - m["exposure_at_0"] > 8


def test_extrapolated_exposure_follows_the_exact_one(run: dict) -> None:
    for a in run["run"].audits:
        for row in a.details["canaries"]:
            if row["exposure"] < 8:  # below the fitted tail's reach, measured within 0.2 bits
                assert abs(row["exposure_extrapolated"] - row["exposure"]) < 0.5, row


def test_result_validates_against_the_schema(run: dict) -> None:
    import jsonschema

    from unmeasured.results import load_schema

    jsonschema.validate(run["run"].to_dict(), load_schema())


def test_same_seed_gives_the_same_canaries_and_exposures(run: dict) -> None:
    again = audit(run["target"], audits=[("memorization.exposure", PARAMS)], **run["kwargs"])
    first = run["run"]["memorization.exposure[canary_inputs=noise]"]
    assert again.audits[0].details["canaries"] == first.details["canaries"]


@pytest.mark.parametrize(("s", "c"), [(1, 7), (4, 5), (5, 3)])
def test_tuple_rank_equals_brute_force_enumeration(s: int, c: int) -> None:
    rng = np.random.default_rng(s)
    bits = rng.exponential(2.0, size=(s, c))
    bits[:, 1] = bits[:, 0]  # ties: equal tuples never rank ahead of the secret
    totals = np.array([bits[np.arange(s), t].sum() for t in itertools.product(range(c), repeat=s)])
    for labels in [(0,) * s, tuple(rng.integers(0, c, size=s)), (1,) * s]:
        truth = int(np.sum(totals < bits[np.arange(s), list(labels)].sum() - 1e-9)) + 1
        assert label_tuple_rank(bits, labels) == truth
    sample = sample_label_tuples(bits, rng, 50_000)
    assert sample.mean() == pytest.approx(totals.mean(), rel=0.02)


def test_requirements_let_a_language_model_or_a_classifier_with_recipe_through(
    run: dict, digits: dict, tmp_path: Path
) -> None:
    needs = create("memorization.exposure").requirements()
    assert needs.describe() == "sequences, recipe or scores, members, recipe"
    with pytest.raises(ConfigError) as error:
        audit(
            run["target"],
            members=digits["members"],
            audits=["memorization.exposure"],
            cache_dir=tmp_path,
        )
    message = str(error.value)
    assert "\n" not in message
    assert "either needs a target that gives sequences" in message
    assert "or needs a training recipe" in message
    # given canaries are texts: only a language model can be measured on them
    given = create("memorization.exposure", {"canaries": ["my pin code is 1234"]})
    assert given.requirements().alternatives == ()
    with pytest.raises(ConfigError, match="needs a target that gives sequences"):
        audit(
            run["target"],
            members=digits["members"],
            recipe=RECIPE,
            audits=[given],
            cache_dir=tmp_path,
        )


def test_a_language_model_recipe_is_refused_for_a_classifier(
    run: dict, digits: dict, tmp_path: Path
) -> None:
    from unmeasured.training.language import CharLMRecipe

    with pytest.raises(ConfigError, match="recipe.kind: memorization.exposure on a classifier"):
        audit(
            run["target"],
            members=digits["members"],
            recipe=CharLMRecipe(),
            audits=["memorization.exposure"],
            cache_dir=tmp_path,
        )


def test_either_keeps_the_first_option_as_its_own_fields() -> None:
    a = Requirements(capabilities=frozenset({"sequences"}))
    b = Requirements(capabilities=frozenset({"scores"}), recipe=True)
    both = Requirements.either(a, b)
    assert both.capabilities == a.capabilities and both.alternatives == (b,)


def test_report_shows_record_canaries(run: dict) -> None:
    from unmeasured.report import render_html

    page = render_html(run["run"])
    assert "times planted" in page and "<svg" in page
    for row in run["run"]["memorization.exposure[canary_inputs=noise]"].details["canaries"]:
        assert row["text"] in page
