"""Figures as inline SVG text: the log-log ROC of every membership attack, member vs non-member
score histograms, per-group AUC with intervals, and metric curves (a metric against a parameter
such as epsilon, with intervals) for any family.

Each function draws on its own figure (matplotlib's Agg backend, no pyplot state left behind)
and returns the ``<svg>`` element alone: no XML prolog, no metadata, no external references,
no fixed size (the ``viewBox`` stays, so the figure scales with the page). The output is
deterministic, so a report rendered twice from the same run is byte-identical.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from cycler import cycler
from markupsafe import escape
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from unmeasured.stats.estimate import Estimate

MEMBER_COLOR = "#c0392b"
NONMEMBER_COLOR = "#2e86c1"
CHANCE_COLOR = "0.45"
LOW_FPRS = (0.001, 0.01)
HISTOGRAM_BINS = 20
# matplotlib's tab10, reordered so that the first few curves differ the most
CURVE_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)

#: dash patterns of successive ROC curves, so that curves that nearly coincide (the baselines)
#: stay distinguishable where colours alone would not
CURVE_DASHES: tuple[Any, ...] = ("-", (0, (6, 2)), (0, (1.5, 1.5)), (0, (6, 2, 1.5, 2)))

# keys are rcParams names (typed Any: matplotlib's stubs want literal keys)
_STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    # past ten curves the colours come back dash-dotted
    "axes.prop_cycle": cycler(linestyle=["-", "-."]) * cycler(color=CURVE_COLORS),
    # text stays text (selectable, searchable, no glyph definitions)
    "svg.fonttype": "none",
    # clip-path and marker ids are hashes of their content with this salt, so the same input
    # gives the same SVG, and ids shared by two figures on one page name identical definitions
    "svg.hashsalt": "unmeasured",
}


def _percent(x: float, _pos: object = None) -> str:
    return f"{100 * x:.10g}%"


def _svg(fig: Figure, label: str) -> str:
    """The figure as a bare, scalable ``<svg>`` element labelled for screen readers."""
    buf = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    # matplotlib's `*{...}` stylesheet would apply to the whole HTML page; the same two
    # properties are inherited in SVG, so they move onto the root element instead
    text = re.sub(r"<style[^>]*>.*?</style>\s*", "", text, flags=re.S)
    text = re.sub(r"<defs>\s*</defs>\s*", "", text)
    root_end = text.index(">")
    root = re.sub(r'\s(?:width|height)="[^"]*"', "", text[:root_end])
    root += (
        f' stroke-linejoin="round" stroke-linecap="butt" role="img" aria-label="{escape(label)}"'
    )
    text = root + text[root_end:]
    # element ids such as "axes_1" repeat in every figure; keep only those something refers to
    referenced = set(re.findall(r'(?:url\(#|href="#)([^")]+)', text))
    text = re.sub(r'\sid="([^"]*)"', lambda m: m.group(0) if m.group(1) in referenced else "", text)
    return text.strip()


def scope_ids(svg: str, prefix: str) -> str:
    """Prefix every id in ``svg`` and every reference to one, so that several figures can sit
    on one page with unique ids even when two of them are identical."""
    svg = re.sub(r'\sid="([^"]*)"', lambda m: f' id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#", f"url(#{prefix}", svg)
    return re.sub(r'href="#', f'href="#{prefix}', svg)


def _finite(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member).astype(np.int8)
    keep = np.isfinite(scores)
    return scores[keep], is_member[keep]


def roc_loglog_svg(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Every attack's ROC on one pair of log axes, with the chance diagonal.

    Both axes run from the smallest non-zero rate the data can show (one record of the larger
    group) to 1, so the left of the plot, where an attacker is confident, gets as much room as
    the rest. Dotted lines mark the 0.1% and 1% false-positive rates of the summary table where
    the data reach them.

    Args:
        curves: legend name → ``(scores, is_member)``; higher scores mean "more likely member".
            Curves without both members and non-members are left out.

    Returns:
        The ``<svg>`` element as text.
    """
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.0, 5.4))
        ax = fig.add_subplot()
        floor = 1.0
        drawn = 0
        for name, (scores, is_member) in curves.items():
            s, m = _finite(scores, is_member)
            n0, n1 = int((m == 0).sum()), int((m == 1).sum())
            if n0 == 0 or n1 == 0:
                continue
            fpr, tpr, _ = roc_curve(m, s)
            floor = min(floor, 1.0 / n0, 1.0 / n1)
            ax.plot(
                fpr,
                tpr,
                lw=1.6,
                color=CURVE_COLORS[drawn % len(CURVE_COLORS)],
                ls=CURVE_DASHES[drawn % len(CURVE_DASHES)],
                label=f"{name} (AUC {roc_auc_score(m, s):.3f})",
            )
            drawn += 1
        chance = np.array([floor, 1.0])
        ax.plot(chance, chance, ls="--", color=CHANCE_COLOR, lw=1, label="chance")
        for f in LOW_FPRS:
            if f > floor:
                ax.axvline(f, color=CHANCE_COLOR, lw=0.8, ls=":")
                ax.annotate(
                    f"FPR {_percent(f)}",
                    (f, 1.0),
                    xytext=(3, -3),
                    textcoords="offset points",
                    ha="left",
                    va="top",
                    fontsize=7,
                    color=CHANCE_COLOR,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor, 1.0)
        ax.set_ylim(floor, 1.05)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(base=10))
            axis.set_major_formatter(FuncFormatter(_percent))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("false-positive rate: non-members flagged")
        ax.set_ylabel("true-positive rate: members caught")
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(0.0, -0.13),
            fontsize=8,
            frameon=False,
            ncol=1,
            handlelength=3.2,
        )
        return _svg(fig, "ROC curves of the membership attacks on log-log axes")


def score_histogram_svg(scores: np.ndarray, is_member: np.ndarray, title: str = "") -> str:
    """Histograms of members' and non-members' scores, as percentiles of all audited records.

    Raw scores of different attacks live on very different scales (a loss piles up at zero); as
    percentiles every attack reads the same way. Each group's bars add up to 100%, so a score
    that reveals nothing gives two flat histograms at the dashed line, and the more the members
    pile up on the right, the more the score gives membership away.

    Args:
        scores: one score per audited record, higher = more likely member.
        is_member: 1 for members, 0 for non-members.
        title: an optional title above the plot.

    Returns:
        The ``<svg>`` element as text.
    """
    s, m = _finite(scores, is_member)
    pct = 100 * (rankdata(s, method="average") - 0.5) / max(len(s), 1)
    bins = np.linspace(0, 100, HISTOGRAM_BINS + 1).tolist()
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.0, 2.7))
        ax = fig.add_subplot()
        for member, color, label in (
            (0, NONMEMBER_COLOR, "non-members"),
            (1, MEMBER_COLOR, "members"),
        ):
            values = pct[m == member]
            if len(values) == 0:
                continue
            weights = np.full(len(values), 100 / len(values))
            # a light fill to see the overlap, a full-colour outline to read each group
            ax.hist(
                values, bins=bins, weights=weights, color=color, alpha=0.28, histtype="stepfilled"
            )
            ax.hist(
                values,
                bins=bins,
                weights=weights,
                color=color,
                lw=1.4,
                histtype="step",
                label=label,
            )
        ax.axhline(100 / HISTOGRAM_BINS, color=CHANCE_COLOR, ls="--", lw=1, label="no leakage")
        ax.set_xlim(0, 100)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}%"))
        ax.set_xlabel("score percentile among all audited records (right = looks like a member)")
        ax.set_ylabel("share of group")
        if title:
            ax.set_title(title, fontsize=9, loc="left", pad=18)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7.5, frameon=False, ncol=3)
        return _svg(fig, f"score histogram of members and non-members {title}".strip())


def group_auc_svg(groups: Mapping[str, Mapping[str, Estimate]]) -> str:
    """AUC per group (e.g. per class) with interval error bars and the chance line at 0.5.

    Args:
        groups: group name (``"class=3"``) → metrics; groups without an estimable ``"auc"`` are
            left out.

    Returns:
        The ``<svg>`` element as text.
    """
    names = [g for g, metrics in groups.items() if "auc" in metrics and metrics["auc"].estimable]
    values = np.array([groups[g]["auc"].value for g in names], dtype=float)
    cis = [groups[g]["auc"].ci or (groups[g]["auc"].value,) * 2 for g in names]
    errors = np.array(
        [
            [v - lo for v, (lo, _) in zip(values, cis, strict=True)],
            [hi - v for v, (_, hi) in zip(values, cis, strict=True)],
        ]
    ).reshape(2, -1)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(10.4, 2.3))
        ax = fig.add_subplot()
        x = np.arange(len(names))
        ax.errorbar(x, values, yerr=errors, fmt="o", color=MEMBER_COLOR, ms=4, capsize=2, lw=1.2)
        ax.axhline(0.5, ls="--", color=CHANCE_COLOR, lw=1)
        ax.annotate(
            "chance",
            (1.0, 0.5),
            xycoords=("axes fraction", "data"),
            xytext=(2, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color=CHANCE_COLOR,
        )
        keys = {n.split("=", 1)[0] for n in names}
        short = len(keys) == 1 and all("=" in n for n in names)
        labels = [n.split("=", 1)[1] if short else n for n in names]
        step = max(1, len(names) // 25)
        rotate = not short or step > 1
        ax.set_xticks(
            x[::step],
            labels[::step],
            rotation=45 if rotate else 0,
            ha="right" if rotate else "center",
        )
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_xlabel(keys.pop() if short else "group")
        ax.set_ylabel("AUC")
        return _svg(fig, "AUC per group with confidence intervals")


def metric_curves_svg(
    curves: Mapping[str, Sequence[tuple[float, Estimate]]], *, xlabel: str, ylabel: str
) -> str:
    """One line per audit of a metric against a parameter (e.g. robust accuracy against
    epsilon), each point with its confidence interval as a band.

    Args:
        curves: legend name → ``(x, estimate)`` points; estimates that are not estimable are
            left out.
        xlabel, ylabel: axis labels.

    Returns:
        The ``<svg>`` element as text.
    """
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.6, 3.6))
        ax = fig.add_subplot()
        for i, (name, points) in enumerate(curves.items()):
            kept = [(x, e) for x, e in points if e.value is not None]
            if not kept:
                continue
            xs = np.array([x for x, _ in kept], dtype=np.float64)
            ys = np.array([e.value for _, e in kept], dtype=np.float64)
            color = CURVE_COLORS[i % len(CURVE_COLORS)]
            ax.plot(
                xs,
                ys,
                marker="o",
                ms=3.5,
                lw=1.6,
                color=color,
                label=name,
                ls=CURVE_DASHES[i % len(CURVE_DASHES)],
            )
            lows = [e.ci[0] if e.ci else e.value for _, e in kept]
            highs = [e.ci[1] if e.ci else e.value for _, e in kept]
            ax.fill_between(xs, lows, highs, color=color, alpha=0.15, lw=0)
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(FuncFormatter(_percent))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, frameon=False, loc="best")
        return _svg(fig, f"{ylabel} against {xlabel}")


def heatmap_svg(
    values: np.ndarray, rows: Sequence[str], columns: Sequence[str], *, xlabel: str, label: str
) -> str:
    """A table of values in [0, 1] as coloured cells with the value written in each (e.g.
    accuracy per corruption type and severity).

    Args:
        values: ``(len(rows), len(columns))`` numbers in [0, 1].
        rows, columns: the labels.
        xlabel: what the columns are.
        label: what the values are (the colour bar and the figure's description).

    Returns:
        The ``<svg>`` element as text.
    """
    values = np.asarray(values, dtype=np.float64)
    with matplotlib.rc_context(_STYLE | {"axes.grid": False}):
        fig = Figure(figsize=(1.6 + 0.75 * len(columns), 0.9 + 0.28 * len(rows)))
        ax = fig.add_subplot()
        image = ax.imshow(values, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(np.arange(len(columns)), list(columns))
        ax.set_yticks(np.arange(len(rows)), list(rows))
        ax.set_xlabel(xlabel)
        fig.colorbar(
            image, ax=ax, fraction=0.05, pad=0.02, label=f"{label} (%)"
        ).ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:.0f}"))
        return _svg(fig, label)


def image_pairs_svg(
    clean: np.ndarray,
    adversarial: np.ndarray,
    labels: Sequence[str],
    title: str,
    rows: tuple[str, str] = ("original", "adversarial"),
) -> str:
    """Original images above their adversarial versions (or any two rows of paired images),
    with the labels under each pair.

    Args:
        clean, adversarial: ``(n, C, H, W)`` images (1 or 3 channels shown as they are, any other
            count as the first channel), each scaled to its own range for display.
        labels: one caption per pair (e.g. "7 → 3").
        title: the figure's description.
        rows: the names of the two rows.

    Returns:
        The ``<svg>`` element as text.
    """

    def show(img: np.ndarray) -> np.ndarray:
        img = img if img.shape[0] in (1, 3) else img[:1]
        img = np.transpose(img, (1, 2, 0))
        low, high = float(img.min()), float(img.max())
        img = (img - low) / (high - low) if high > low else np.zeros_like(img)
        return img[..., 0] if img.shape[-1] == 1 else img

    n = len(clean)
    with matplotlib.rc_context(_STYLE | {"axes.grid": False}):
        fig = Figure(figsize=(1.5 * n + 0.4, 3.2))
        for i in range(n):
            for row, images in enumerate((clean, adversarial)):
                ax = fig.add_subplot(2, n, row * n + i + 1)
                ax.imshow(show(images[i]), cmap="gray", interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_ylabel(rows[row], fontsize=8)
                if row == 1:
                    ax.set_xlabel(labels[i], fontsize=8)
        return _svg(fig, title)
