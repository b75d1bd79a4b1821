"""memorization.extraction on the character GRU of test_exposure (same recipe, seed and cache).

Planted truth: "my pin code is " + 4 digits, canaries planted 1, 4, 16 and 64 times and two
never. Measured with seed 0: the x64 canary is the greedy completion (beam width 1) and first
at every width; the x16 canary is 4th in beams of width 4 and more; no other canary is in any
beam.
"""

from __future__ import annotations

import pytest
import torch
from tests.conftest import require_system_path

from unmeasured.api import audit
from unmeasured.audits.memorization.canaries import beam_search
from unmeasured.training.language import FORTUNES, CharLMRecipe

RECIPE = CharLMRecipe(epochs=5, hidden=64)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    require_system_path(FORTUNES, "fortunes")
    cache = tmp_path_factory.getbasetemp() / "canary-cache"  # shared with test_exposure
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clean = RECIPE.train(seed=1, cache_dir=cache)
        result = audit(clean, recipe=RECIPE, audits=["memorization.extraction"], cache_dir=cache)
        yield {"run": result, "clean": clean, "cache": cache}
    finally:
        torch.set_num_threads(threads)


def test_the_heavily_repeated_canary_is_extracted_and_controls_are_not(run: dict) -> None:
    (a,) = run["run"].audits
    assert a.status == "ok"
    rows = {r["repetitions"]: r for r in a.details["canaries"]}
    assert rows[64]["beam_width"] == 1  # greedy decoding reads it back
    assert all(rows[r]["beam_width"] is None for r in (0, 1, 4))
    assert a.metrics["extracted_at_64"].value == 1.0
    assert a.metrics["extracted_at_0"].value == 0.0 and a.metrics["extracted_at_1"].value == 0.0
    assert a.metrics["extracted_greedy"].value == pytest.approx(0.25)  # 1 of 4 planted
    assert a.headline is not None and a.headline.concern


def test_completions_of_a_prefix_on_a_model_given_without_canaries(run: dict) -> None:
    planted = next(
        r["text"] for r in run["run"].audits[0].details["canaries"] if r["repetitions"] == 64
    )
    result = audit(
        run["clean"],
        audits=[("memorization.extraction", {"prefixes": ["my pin code is "]})],
        cache_dir=run["cache"],
    )
    (a,) = result.audits
    assert a.status == "ok" and not a.metrics["extracted"].estimable
    (listed,) = a.details["completions"]
    texts = [c["text"] for c in listed["completions"]]
    assert len(texts) == 5 and all(t.startswith("my pin code is ") for t in texts)
    assert planted not in texts  # the clean model never saw it
    bits = [c["log_perplexity"] for c in listed["completions"]]
    assert bits == sorted(bits)


def test_beam_search_finds_at_least_the_greedy_likelihood(run: dict) -> None:
    greedy = beam_search(run["clean"], "my pin code is ", "0123456789", 4, 1)
    wide = beam_search(run["clean"], "my pin code is ", "0123456789", 4, 16)
    assert len(wide.secrets) == 16 and len(set(wide.secrets)) == 16
    assert wide.log_perplexities[0] <= greedy.log_perplexities[0] + 1e-9


def test_report_lists_extracted_canaries_with_their_beam_width(run: dict) -> None:
    from unmeasured.report import render_html

    page = render_html(run["run"])
    assert "yes, width 1" in page and page.count("not recovered") == 5
