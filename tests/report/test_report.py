"""The HTML report: self-contained, complete, and rendered for real in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from unmeasured.report import render_html, summary_text, write_report
from unmeasured.results import AuditResult, RunResult, Verdict
from unmeasured.stats import Estimate, membership_metrics


def _membership(name: str, shift: float, seed: int, params=None) -> AuditResult:
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(shift, 1, 400), rng.normal(0, 1, 400)]
    is_member = np.r_[np.ones(400, np.int8), np.zeros(400, np.int8)]
    labels = rng.integers(0, 3, 800)
    groups = {
        f"class={c}": membership_metrics(scores[labels == c], is_member[labels == c])
        for c in range(3)
    }
    return AuditResult(
        name,
        metrics=membership_metrics(scores, is_member),
        groups=groups,
        arrays={
            "scores": scores,
            "is_member": is_member,
            "label": labels,
            "record_index": np.arange(800),
        },
        params=params or {"fpr": 0.01},
        details={"operating_point": None, "operating_point_reason": "no population data"},
    )


@pytest.fixture()
def run() -> RunResult:
    return RunResult(
        audits=[
            _membership("membership.loss", 0.4, 0),
            _membership("membership.lira", 1.0, 1, {"mode": "online", "num_models": 16}),
            AuditResult("membership.rmia", status="skipped", reason="needs population data"),
            AuditResult(
                "robustness.pgd", metrics={"robust_accuracy": Estimate(0.4, (0.3, 0.5), 100)}
            ),
        ],
        provenance={
            "seed": 0,
            "started": "2026-01-01T00:00:00+00:00",
            "inputs": {"members": {"path": "m.npz", "sha256": "ab" * 32}},
            "versions": {"torch": "2.13.0"},
            "host": {"cpus": 2},
        },
        warnings=["3 non-member records are exact duplicates of member records"],
        verdicts=[Verdict("membership.*.auc>0.6", "membership.lira.auc", 0.76, True)],
    )


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def test_html_is_self_contained_and_complete(run: RunResult) -> None:
    html = render_html(run)
    parser = _Collector()
    parser.feed(html)
    assert all(link.startswith("#") for link in parser.links), parser.links
    assert "<script" not in html and "@import" not in html
    assert html.count("<svg") >= 4  # combined ROC, two histograms, group plots
    summary = html[html.index('id="summary"') : html.index("</table>", html.index('id="summary"'))]
    assert summary.count("<tr>") == 1 + len(run.audits)
    assert "not estimable" in html and "needs population data" in html
    assert "FAIL" in html and "exact duplicates" in html
    assert "ab" * 32 in html  # provenance
    assert "≥" in html  # the epsilon bound is one-sided


def test_text_summary(run: RunResult) -> None:
    text = summary_text(run)
    for a in run.audits:
        assert a.name in text
    assert "skipped: needs population data" in text
    assert "\x1b[" not in text


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must run the browser test")
        pytest.skip(message)
    return path


@pytest.mark.browser
def test_report_renders_in_headless_chromium(run: RunResult, tmp_path: Path) -> None:
    browser = _chromium()
    report = write_report(run, tmp_path)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = report.resolve().as_uri()
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=90, check=True
    ).stdout
    assert re.search(r'<table id="summary"', dom)
    assert "membership.lira" in dom
    png = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={png}", "--window-size=1280,1600", url],
        capture_output=True,
        timeout=90,
        check=True,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1200
    gray = pixels[..., :3].mean(axis=2)
    assert gray.std() > 0.05  # not blank
    assert (gray < 0.5).mean() > 0.005  # there is text and figures on the page
