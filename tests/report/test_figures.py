"""Figures: bare, scalable, deterministic SVG; no pyplot state left behind."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from unmeasured.report.figures import (
    group_auc_svg,
    roc_loglog_svg,
    scope_ids,
    score_histogram_svg,
)
from unmeasured.stats import Estimate, membership_metrics


def _planted(shift: float, seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(shift, 1, n), rng.normal(0, 1, n)]
    return scores, np.r_[np.ones(n, np.int8), np.zeros(n, np.int8)]


def _figures() -> list[str]:
    scores, is_member = _planted(1.0, 0)
    groups = {f"class={c}": membership_metrics(*_planted(0.5 * c, c, 100)) for c in range(4)}
    return [
        roc_loglog_svg({"loss": (scores, is_member), "lira": _planted(2.0, 1)}),
        score_histogram_svg(scores, is_member, "loss"),
        group_auc_svg(groups),
    ]


@pytest.mark.parametrize("index", range(3))
def test_svg_is_bare_scalable_and_parses(index: int) -> None:
    svg = _figures()[index]
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    root_tag = svg[: svg.index(">")]
    assert "viewBox=" in root_tag
    assert not re.search(r"\s(width|height)=", root_tag)
    assert 'role="img"' in root_tag and "aria-label=" in root_tag
    for banned in ("<?xml", "<!DOCTYPE", "<metadata", "<style", "<script", "<image"):
        assert banned not in svg
    references = re.findall(r'(?:href|src)="([^"]*)"', svg)
    assert all(r.startswith("#") for r in references), references
    root = ET.fromstring(svg)
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))
    # every id left is one that something refers to
    assert set(ids) <= {r.lstrip("#") for r in references} | set(
        re.findall(r"url\(#([^)]+)\)", svg)
    )


def test_figures_are_deterministic_and_leave_no_pyplot_figures() -> None:
    before = plt.get_fignums()
    assert _figures() == _figures()
    assert plt.get_fignums() == before


def test_roc_legend_gives_each_attack_its_auc() -> None:
    curves = {"loss": _planted(0.5, 0), "lira": _planted(1.5, 1)}
    svg = roc_loglog_svg(curves)
    for name, (scores, is_member) in curves.items():
        assert f"{name} (AUC {roc_auc_score(is_member, scores):.3f})" in svg
    assert "chance" in svg and "FPR 1%" in svg


def test_roc_leaves_out_curves_it_cannot_draw() -> None:
    scores, is_member = _planted(1.0, 0)
    svg = roc_loglog_svg(
        {"ok": (scores, is_member), "members only": (scores, np.ones_like(is_member))}
    )
    assert "ok (AUC" in svg and "members only" not in svg


def test_histogram_ignores_non_finite_scores() -> None:
    scores, is_member = _planted(1.0, 0)
    scores[:10] = np.nan
    scores[-5:] = np.inf
    assert score_histogram_svg(scores, is_member).startswith("<svg")


def test_group_plot_copes_with_many_and_unestimable_groups() -> None:
    groups = {f"class={c}": membership_metrics(*_planted(1.0, c, 30)) for c in range(60)}
    groups["class=60"] = {"auc": Estimate.not_estimable("no members", n=0)}
    groups["class=61"] = {"auc": Estimate(0.7, None, n=10)}
    svg = group_auc_svg(groups)
    ET.fromstring(svg)
    assert ">0<" in svg and ">59<" not in svg  # every other label when crowded


def test_scope_ids_prefixes_ids_and_references() -> None:
    svg = _figures()[0]
    scoped = scope_ids(svg, "x-")
    root = ET.fromstring(scoped)
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert ids and all(i.startswith("x-") for i in ids)
    referenced = set(re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', scoped))
    assert {r for pair in referenced for r in pair if r} <= ids
