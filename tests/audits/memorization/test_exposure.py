"""memorization.exposure on a character GRU retrained on Debian's fortunes with planted canaries.

Planted truth: "my pin code is " + 4 digits (|R| = 10^4, at most 13.29 bits), one canary planted
1, 4, 16 and 64 times and two never planted. Measured with seed 0 (training about 10 s on one
core): exposures 1.77 (x1), 3.88 (x4), 11.29 (x16), 13.29 (x64, ranked first), controls 1.48
and 1.71; skew-normal extrapolation 1.85, 3.92, 9.16, 12.91, 1.55, 1.79.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from tests.conftest import require_system_path

from unmeasured.api import audit
from unmeasured.audits.memorization.canaries import (
    CanaryFormat,
    SkewNormalFit,
    enumerate_log_perplexities,
    score_secrets,
)
from unmeasured.audits.registry import create
from unmeasured.errors import ConfigError
from unmeasured.training.language import FORTUNES, CharLMRecipe

RECIPE = CharLMRecipe(epochs=5, hidden=64)
FORMAT = CanaryFormat("my pin code is ", "0123456789", 4)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    require_system_path(FORTUNES, "fortunes")
    cache = tmp_path_factory.getbasetemp() / "canary-cache"  # shared with test_extraction
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small GRU only loses from threads on a busy machine
    try:
        clean = RECIPE.train(seed=1, cache_dir=cache)
        result = audit(
            clean,
            recipe=RECIPE,
            audits=[
                ("memorization.exposure", {}),
                ("memorization.exposure", {"method": "extrapolated"}),
            ],
            cache_dir=cache,
            seed=0,
        )
        yield {"run": result, "clean": clean, "cache": cache}
    finally:
        torch.set_num_threads(threads)


def _rows(result) -> dict[int, list[dict]]:  # type: ignore[no-untyped-def]
    rows: dict[int, list[dict]] = {}
    for r in result.details["canaries"]:
        rows.setdefault(r["repetitions"], []).append(r)
    return rows


def test_repeated_canaries_are_exposed_and_controls_are_not(run: dict) -> None:
    exact = run["run"]["memorization.exposure[method=auto]"]
    assert exact.status == "ok" and exact.details["method"] == "exact"
    m = {k: v.value for k, v in exact.metrics.items()}
    # measured: x0 1.59 (mean of two controls), x1 1.77, x16 11.29, x64 13.29 of 13.29
    assert m["exposure_at_0"] < 4 and m["exposure_at_1"] < 4
    assert m["exposure_at_16"] > 8 and m["exposure_at_64"] > 11
    assert m["exposure_at_16"] - m["exposure_at_0"] > 6
    assert m["exposure_max"] == pytest.approx(np.log2(10_000))  # the x64 canary ranks first
    assert exact.headline is not None and exact.headline.concern
    rows = _rows(exact)
    assert rows[64][0]["rank"] == 1 and rows[64][0]["space_size"] == 10_000


def test_exact_and_extrapolated_exposure_agree(run: dict) -> None:
    exact = {
        r["text"]: r for r in run["run"]["memorization.exposure[method=auto]"].details["canaries"]
    }
    extra = run["run"]["memorization.exposure[method=extrapolated]"]
    assert extra.details["method"] == "extrapolated"
    for row in extra.details["canaries"]:
        truth = exact[row["text"]]["exposure"]
        # measured differences: 0.08, 0.04, 0.07, 0.08 bits below 8 bits; 2.1 at 11.3 bits
        # (rank 4 of 10^4, where the fitted tail is thinner than the model's)
        tolerance = 0.5 if truth < 8 else 3.0
        assert abs(row["exposure"] - truth) < tolerance, (row, truth)


def test_trie_enumeration_equals_whole_sequence_scores(run: dict) -> None:
    model = run["clean"]
    everything = enumerate_log_perplexities(model, FORMAT)
    assert everything.shape == (10_000,)
    picked = np.array([0, 42, 4321, 9999])
    np.testing.assert_allclose(everything[picked], score_secrets(model, FORMAT, picked), atol=1e-6)
    # the probabilities of all secrets sum to at most 1 (the rest goes to other characters)
    assert 0.0 < np.exp2(-everything).sum() <= 1.0 + 1e-9


def test_given_canaries_are_measured_on_the_target_itself(run: dict) -> None:
    planted = _rows(run["run"]["memorization.exposure[method=auto]"])[64][0]["text"]
    result = audit(
        run["clean"],
        audits=[("memorization.exposure", {"canaries": [planted]})],
        cache_dir=run["cache"],
    )
    (a,) = result.audits
    assert a.status == "ok"
    # the clean model never saw it: measured exposure 0.4 bits
    assert a.metrics["exposure_max"].value < 4
    assert not a.metrics["exposure_at_64"].estimable
    assert result.target is not None and result.target.kind == "language model"
    assert result.target.accuracy == {}


def test_skew_normal_fit_recovers_a_known_tail() -> None:
    sample = stats.skewnorm.rvs(3.0, loc=30, scale=6, size=20_000, random_state=0)
    fit = SkewNormalFit.fit(sample)
    q = stats.skewnorm.ppf(2.0**-10, 3.0, loc=30, scale=6)
    assert fit.exposure(q) == pytest.approx(10.0, abs=0.5)
    # a secret far below every candidate: the tail promises ~70 bits, a space of 10^4 allows 13.3
    far = stats.skewnorm.ppf(2.0**-70, 3.0, loc=30, scale=6)
    assert fit.exposure(far) > 40
    assert fit.exposure(far, 10**4) == pytest.approx(math.log2(10**4))


def test_format_and_parameters_are_checked_before_running() -> None:
    fmt = CanaryFormat("pin ", "ab", 3)
    assert [fmt.secret(i) for i in range(fmt.size)] == sorted(fmt.secret(i) for i in range(8))
    assert all(fmt.index(fmt.secret(i)) == i for i in range(fmt.size))
    with pytest.raises(ConfigError, match=r"canaries\[0\]: 'my pin 12' is not the prefix"):
        create("memorization.exposure", {"canaries": ["my pin 12"]})
    with pytest.raises(ConfigError, match=r"audits\.method: .* max_enumeration"):
        create("memorization.exposure", {"length": 7, "method": "exact"})
    with pytest.raises(ConfigError, match=r"audits\.length: .* plants 6 canaries"):
        create("memorization.exposure", {"alphabet": "ab", "length": 2})


def test_classifier_audits_refuse_a_language_model(run: dict) -> None:
    with pytest.raises(ConfigError, match="membership.loss.*needs a target that gives scores"):
        audit(run["clean"], audits=["membership.loss"], cache_dir=run["cache"])


def test_a_classifier_recipe_is_refused(run: dict, tmp_path: Path) -> None:
    from unmeasured.training import MLPRecipe

    # an input error found while running stops the run: raised, not a failed audit
    with pytest.raises(ConfigError, match="recipe.kind: memorization.exposure retrains"):
        audit(
            run["clean"], recipe=MLPRecipe(), audits=["memorization.exposure"], cache_dir=tmp_path
        )


def test_report_shows_exposure_against_repetitions(run: dict) -> None:
    from unmeasured.report import render_html

    page = render_html(run["run"])
    assert "times planted" in page and "<svg" in page
    for row in run["run"]["memorization.exposure[method=auto]"].details["canaries"]:
        assert row["text"] in page
    assert "vocabulary" in page  # the target card of a language model
