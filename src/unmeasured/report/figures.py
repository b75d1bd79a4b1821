"""Figures as inline SVG text (matplotlib, Agg backend): the log-log ROC of every membership
attack, member vs non-member score histograms, per-class AUC with intervals."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from unmeasured.stats.estimate import Estimate

MEMBER_COLOR = "#c0392b"
NONMEMBER_COLOR = "#2e86c1"
_STYLE = {
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",
}


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # scale with the page: keep the viewBox, drop the fixed size
    text = re.sub(r'(<svg[^>]*?)\s(width|height)="[^"]*"', r"\1", text, count=1)
    text = re.sub(r'(<svg[^>]*?)\s(width|height)="[^"]*"', r"\1", text, count=1)
    return text


def roc_loglog_svg(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """All attacks on one log-log ROC, with the chance diagonal.

    Args:
        curves: attack name → (scores, is_member).
    """
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        floor = 1.0
        for name, (scores, is_member) in curves.items():
            fpr, tpr, _ = roc_curve(is_member, scores)
            n0 = int((np.asarray(is_member) == 0).sum())
            floor = min(floor, 1.0 / max(n0, 1))
            from sklearn.metrics import auc as _auc

            ax.plot(fpr, tpr, lw=1.4, label=f"{name} (AUC {_auc(fpr, tpr):.3f})")
        grid = np.logspace(np.log10(floor), 0, 100)
        ax.plot(grid, grid, ls="--", color="0.5", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor, 1)
        ax.set_ylim(floor, 1.02)
        ax.set_xlabel("false-positive rate (non-members flagged)")
        ax.set_ylabel("true-positive rate (members caught)")
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, frameon=False, ncol=2
        )
        return _svg(fig)


def score_histogram_svg(scores: np.ndarray, is_member: np.ndarray, title: str = "") -> str:
    """Histograms of members' and non-members' scores as percentiles of all audited records.

    Raw scores of different attacks live on very different scales (a loss piles up at zero); as
    percentiles every attack reads the same way: the more members sit at the right, the more
    the score reveals membership, and a model that leaks nothing gives two flat histograms.
    """
    from scipy.stats import rankdata

    scores, is_member = np.asarray(scores, dtype=float), np.asarray(is_member)
    pct = 100 * (rankdata(scores, method="average") - 0.5) / max(len(scores), 1)
    bins = np.linspace(0, 100, 21)
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 2.6))
        for member, color, label in (
            (0, NONMEMBER_COLOR, "non-members"),
            (1, MEMBER_COLOR, "members"),
        ):
            ax.hist(
                pct[is_member == member],
                bins=bins,
                alpha=0.55,
                color=color,
                label=label,
                density=True,
            )
        ax.set_xlabel("attack score, percentile among all audited records")
        ax.set_ylabel("density")
        ax.set_xlim(0, 100)
        if title:
            ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        return _svg(fig)


def group_auc_svg(groups: Mapping[str, Mapping[str, Estimate]]) -> str:
    """AUC per group (e.g. per class) with interval error bars."""
    names = [g for g in groups if groups[g].get("auc") and groups[g]["auc"].estimable]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 2.4))
        values = [groups[g]["auc"].value for g in names]
        lows = [v - groups[g]["auc"].ci[0] for g, v in zip(names, values, strict=True)]
        highs = [groups[g]["auc"].ci[1] - v for g, v in zip(names, values, strict=True)]
        ax.errorbar(
            range(len(names)),
            values,
            yerr=[lows, highs],
            fmt="o",
            color=MEMBER_COLOR,
            ms=4,
            capsize=2,
        )
        ax.axhline(0.5, ls="--", color="0.5", lw=1)
        ax.set_xticks(range(len(names)), [n.split("=", 1)[-1] for n in names])
        ax.set_xlabel(names[0].split("=", 1)[0] if names else "group")
        ax.set_ylabel("AUC")
        return _svg(fig)
