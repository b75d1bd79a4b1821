"""The report rendered for real, in Debian's headless Chromium: the DOM has the summary table,
and the screenshot shows text and the figures' colours rather than a blank page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from unmeasured.report import write_report
from unmeasured.report.figures import CURVE_COLORS
from unmeasured.results import RunResult

from ..conftest import require_system_path

TIMEOUT_S = 60
WINDOW = (1280, 2000)
#: a laptop's first screenful
FOLD = (1280, 800)
CONCERN_BACKGROUND = "#fdedec"  # a verdict line that found something
CARD_BACKGROUND = "#eef3fb"  # the target card


def _chromium() -> Path:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return require_system_path(found or "/usr/bin/chromium", "chromium")


def _browse(browser: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    result = subprocess.run(
        [str(browser), *flags, *args], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _hex_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])


@pytest.mark.browser
def test_report_renders_in_headless_chromium(run: RunResult, tmp_path: Path) -> None:
    browser = _chromium()
    url = write_report(run, tmp_path / "run").resolve().as_uri()

    dom = _browse(browser, tmp_path / "profile", "--dump-dom", url).stdout
    summary = re.search(r'<table id="summary">(.*?)</table>', dom, re.S)
    assert summary, dom[:2000]
    assert summary.group(1).count("<tr") == 1 + len(run.audits)
    for audit in run.audits:
        assert audit.name in summary.group(1)
    assert dom.count("<svg") == 6

    png = tmp_path / "report.png"
    _browse(
        browser,
        tmp_path / "profile",
        f"--screenshot={png}",
        "--window-size={},{}".format(*WINDOW),
        url,
    )
    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    gray = pixels.mean(axis=2)
    assert gray.std() > 0.05, "the page is blank"
    assert (gray < 0.5).mean() > 0.005, "no text on the page"
    # the combined ROC is drawn: its first curve's colour covers some pixels
    first_curve = np.abs(pixels - _hex_rgb(CURVE_COLORS[0])).max(axis=2) < 0.08
    assert first_curve.sum() > 200


@pytest.mark.browser
def test_verdict_lines_and_target_card_are_above_the_fold(run: RunResult, tmp_path: Path) -> None:
    browser = _chromium()
    url = write_report(run, tmp_path / "run").resolve().as_uri()
    png = tmp_path / "fold.png"
    _browse(
        browser,
        tmp_path / "profile",
        f"--screenshot={png}",
        "--window-size={},{}".format(*FOLD),
        url,
    )
    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.shape[:2] == (FOLD[1], FOLD[0])
    for color, what in ((CONCERN_BACKGROUND, "verdict lines"), (CARD_BACKGROUND, "target card")):
        area = (np.abs(pixels - _hex_rgb(color)).max(axis=2) < 0.01).sum()
        assert area > 20_000, f"the {what} are not in the first {FOLD[1]} pixels ({area} px)"
