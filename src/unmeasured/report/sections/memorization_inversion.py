"""The model-inversion block of the memorization section: each class's reconstruction above the
class's most similar training record, with the correlation between them and the target's
confidence in the class on its reconstruction."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from markupsafe import Markup

from unmeasured.report.figures import image_pairs_svg
from unmeasured.report.format import env, inline
from unmeasured.results import AuditResult

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext

#: at most this many classes are drawn; the rest are in the per-class groups
MAX_SHOWN = 10


def render(result: AuditResult, context: SectionContext) -> Markup:
    """Reconstruction / nearest-record pairs of one `memorization.inversion` result."""
    arrays = result.arrays
    if "reconstruction" not in arrays or not len(arrays["reconstruction"]):
        return Markup("")
    shown = np.flatnonzero(np.isfinite(arrays["similarity"]))[:MAX_SHOWN]
    if not len(shown):
        return Markup("")
    labels = [f"class {arrays['classes'][k]}: r = {arrays['similarity'][k]:.2f}" for k in shown]
    svg = image_pairs_svg(
        as_images(arrays["reconstruction"][shown]),
        as_images(arrays["nearest"][shown]),
        labels,
        f"{result.id}: reconstructions and nearest training records",
        rows=("reconstruction", "nearest record"),
    )
    figure = inline(svg, "inversion-" + "".join(c if c.isalnum() else "-" for c in result.id))
    return Markup(
        env.get_template("sections/memorization_inversion.html.j2").render(
            figure=figure,
            shown=len(shown),
            total=len(arrays["classes"]),
            details=result.details,
        )
    )


def as_images(x: np.ndarray) -> np.ndarray:
    """Records as ``(n, C, H, W)`` for display: images as they are, a flat record of a square
    length as a square, any other as a one-pixel-high strip."""
    if x.ndim == 4:
        return x
    flat = x.reshape(len(x), -1)
    side = math.isqrt(flat.shape[1])
    if side * side == flat.shape[1]:
        return flat.reshape(len(x), 1, side, side)
    return flat.reshape(len(x), 1, 1, -1)
