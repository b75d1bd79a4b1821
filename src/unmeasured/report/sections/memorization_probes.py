"""The overlearning block of the memorization section: per layer, each probe's held-out accuracy
on the trained model beside the same layer with random weights, the raw-input probe and the
majority rate; and a 2-D embedding (PCA, t-SNE) of the layer with the largest gain, coloured by
the task label and by the sensitive attribute."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure

from unmeasured.report.figures import _STYLE, CURVE_COLORS, _svg
from unmeasured.report.format import cell, env, inline
from unmeasured.results import AuditResult

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext

#: colours of the attribute's values; past this many values the rest share grey
_MAX_COLOURED = len(CURVE_COLORS)


def render(result: AuditResult, context: SectionContext) -> Markup:
    """The per-layer table and the embedding figure of one `memorization.overlearning` result."""
    probes = result.details.get("probes", [])
    rows = []
    for group, label in [
        ("input", "raw input"),
        *[(f"layer={n}", n) for n in result.details.get("layers", [])],
    ]:
        metrics = result.groups.get(group)
        if metrics is None:
            continue
        cells = []
        for kind in probes:
            cells.append(
                {
                    "trained": cell(metrics.get(f"{kind}_accuracy")),
                    "random": cell(metrics.get(f"random_{kind}_accuracy"))
                    if group != "input"
                    else None,
                    "gain": cell(metrics.get(f"{kind}_gain")) if group != "input" else None,
                    "auc": cell(metrics.get(f"{kind}_auc")),
                }
            )
        width = result.details.get("layer_widths", {}).get(label)
        rows.append({"layer": label, "width": "" if width is None else width, "cells": cells})
    figure = None
    arrays = result.arrays
    if "embedding_pca" in arrays and "embedding_tsne" in arrays:
        svg = embedding_svg(
            {"PCA": arrays["embedding_pca"], "t-SNE": arrays["embedding_tsne"]},
            arrays["embedding_task"],
            arrays["embedding_sensitive"],
            [str(v) for v in result.details.get("sensitive_values", [])],
            f"{result.id}: embedding of layer {result.details.get('embedding_layer')}",
        )
        figure = inline(svg, f"overlearning-{_slug(result.id)}")
    return Markup(
        env.get_template("sections/memorization_probes.html.j2").render(
            rows=rows,
            probes=probes,
            majority=cell(result.metrics.get("baseline_accuracy")),
            details=result.details,
            figure=figure,
            confidence_pct=context.confidence_pct,
        )
    )


def embedding_svg(
    coordinates: dict[str, np.ndarray],
    task: np.ndarray,
    sensitive: np.ndarray,
    sensitive_names: list[str],
    title: str,
) -> str:
    """Scatter plots of 2-D embeddings: one row per method, coloured by the task label (left)
    and by the sensitive attribute (right). Points are rasterised so that the SVG stays small.

    Args:
        coordinates: method name → ``(n, 2)`` coordinates of the same records.
        task, sensitive: each record's task label and attribute code.
        sensitive_names: the attribute's value for each code (for the legend).
        title: the figure's description.

    Returns:
        The ``<svg>`` element as text.
    """
    colourings: list[tuple[str, np.ndarray, list[str]]] = [
        ("task label", np.asarray(task), [str(v) for v in range(int(np.max(task)) + 1)]),
        ("sensitive attribute", np.asarray(sensitive), sensitive_names),
    ]
    with matplotlib.rc_context(_STYLE | {"axes.grid": False}):
        fig = Figure(figsize=(7.2, 3.3 * len(coordinates)), dpi=80)
        for row, (method, xy) in enumerate(coordinates.items()):
            for col, (what, codes, names) in enumerate(colourings):
                ax = fig.add_subplot(len(coordinates), 2, 2 * row + col + 1)
                for code in np.unique(codes):
                    at = codes == code
                    colour = CURVE_COLORS[code] if code < _MAX_COLOURED else "0.6"
                    name = names[code] if code < len(names) else str(code)
                    ax.scatter(xy[at, 0], xy[at, 1], s=6, color=colour, label=name, rasterized=True)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{method}, by {what}", fontsize=9)
                if len(np.unique(codes)) <= _MAX_COLOURED:
                    ax.legend(fontsize=6, frameon=False, markerscale=2, loc="best")
        fig.tight_layout()
        return _svg(fig, title)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)
