"""The blocks of the intentional-leakage audits in the memorization section.

`simulate_part`: per encoding, the clean and malicious accuracy, the accuracy cost, how much of
the hidden data comes back, and a few recovered records under their originals. `detect_part`:
each statistic of the target against the reference models, its p-value, its Holm-adjusted
p-value, and the decision.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from markupsafe import Markup, escape

from unmeasured.report.figures import image_pairs_svg
from unmeasured.report.format import anchor, inline
from unmeasured.results import AuditResult
from unmeasured.stats import Estimate

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext

#: what each encoding does, in a few words
ENCODING_WORDS = {
    "lsb": "low mantissa bits of the parameters",
    "sign": "signs of the parameters",
    "correlation": "parameters correlated with the data",
    "capacity": "labels of seeded synthetic inputs",
}
#: what each detection statistic measures, in a few words
STATISTIC_WORDS = {
    "parameter_autocorrelation": "lag-1 autocorrelation of the parameters",
    "sign_autocorrelation": "lag-1 autocorrelation of the parameter signs",
    "quantile_correlation": "sorted parameters against the data's quantiles",
    "low_bit_entropy": "entropy of the low mantissa byte (bits)",
    "noise_label_entropy": "label entropy on uniform inputs (bits)",
    "noise_confidence": "mean confidence on uniform inputs",
    "noise_agreement": "agreement with the references on uniform inputs",
    "ood_label_entropy": "label entropy on shuffled records (bits)",
    "ood_confidence": "mean confidence on shuffled records",
    "ood_agreement": "agreement with the references on shuffled records",
}


def _cell(estimate: Estimate | None, percent: bool = True) -> str:
    if estimate is None or estimate.value is None:
        return "not estimable"
    if percent:
        text = f"{100 * estimate.value:.1f}%"
        if estimate.ci is not None:
            text += f" [{100 * estimate.ci[0]:.1f}, {100 * estimate.ci[1]:.1f}]"
        return text
    return estimate.format(3)


def _images(records: np.ndarray) -> np.ndarray | None:
    """Records as ``(n, C, H, W)`` images: as they are, or a flat square record as one
    channel; None when they are not images."""
    if records.ndim == 4:
        return records
    if records.ndim == 2:
        side = math.isqrt(records.shape[1])
        if side * side == records.shape[1] and side > 1:
            return records.reshape(len(records), 1, side, side)
    return None


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def simulate_part(result: AuditResult, context: SectionContext) -> Markup:
    """The per-encoding table and the recovered records beside their originals."""
    encodings = list(result.params.get("encodings", []))
    hidden = result.details.get("hidden_records", {})
    clean = _cell(result.metrics.get("accuracy_clean"))
    rows = []
    for e in encodings:
        rows.append(
            Markup(
                "<tr><td>{}</td><td>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
                "<td class='num'>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
                "<td class='num'>{}</td></tr>"
            ).format(
                e,
                ENCODING_WORDS.get(e, ""),
                clean,
                _cell(result.metrics.get(f"accuracy_{e}")),
                _cell(result.metrics.get(f"accuracy_cost_{e}")),
                hidden.get(e, "—"),
                _cell(result.metrics.get(f"recovered_{e}")),
                _cell(result.metrics.get(f"value_error_{e}")),
            )
        )
    table = Markup(
        "<table class='compact' id='{}-encodings'><thead><tr><th>encoding</th>"
        "<th>hidden in</th><th class='num'>clean accuracy</th>"
        "<th class='num'>malicious accuracy</th><th class='num'>accuracy cost</th>"
        "<th class='num'>records hidden</th><th class='num'>values recovered exactly</th>"
        "<th class='num'>mean abs. error (share of range)</th></tr></thead>"
        "<tbody>{}</tbody></table>"
    ).format(anchor(result.id), Markup("").join(rows))
    figures = []
    for i, e in enumerate(encodings):
        original = result.arrays.get(f"original_{e}")
        recovered = result.arrays.get(f"recovered_{e}")
        if original is None or recovered is None or not len(original):
            continue
        top, bottom = _images(np.asarray(original)), _images(np.asarray(recovered))
        if top is None or bottom is None:
            continue
        error = np.abs(np.asarray(original) - np.asarray(recovered)).reshape(len(original), -1)
        labels = [f"error {v:.3f}" for v in error.mean(axis=1)]
        svg = image_pairs_svg(
            top, bottom, labels, f"{result.id}: {e} encoding", rows=("original", "recovered")
        )
        figures.append(
            Markup("<figure>{}<figcaption>{}</figcaption></figure>").format(
                inline(svg, f"{anchor(result.id)}-{i}"),
                f"{e}: training records (top) and what the attacker reads back from the model "
                "(bottom), with the mean absolute error of each.",
            )
        )
    grid = Markup("<div class='grid'>{}</div>").format(Markup("").join(figures)) if figures else ""
    note = Markup(
        "<p>Accuracy cost: clean minus malicious accuracy on the same test records "
        "({}% intervals). Recovered values are read back on the quantisation grid (16 levels "
        "for lsb and sign, one level per class for capacity).</p>"
    ).format(escape(context.confidence_pct))
    return Markup("{}{}{}").format(table, note, grid)


def detect_part(result: AuditResult, context: SectionContext) -> Markup:
    """Each statistic against the reference models, with its p-values and the decision."""
    stats = result.details.get("statistics", {})
    rows = []
    for name, s in stats.items():
        rows.append(
            Markup(
                "<tr><td>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
                "<td class='num'>{}</td><td class='num'>{}</td></tr>"
            ).format(
                STATISTIC_WORDS.get(name, name),
                f"{s['target']:.4g}",
                f"{s['reference_mean']:.4g} ± {s['reference_sd']:.2g}",
                _p(s.get("p_value")),
                _p(s.get("adjusted_p_value")),
            )
        )
    flagged = result.metrics.get("flagged")
    decision = (
        "not estimable"
        if flagged is None or flagged.value is None
        else ("flagged: the model hides data" if flagged.value else "not flagged")
    )
    return Markup(
        "<table class='compact' id='{}-statistics'><thead><tr><th>statistic</th>"
        "<th class='num'>target</th><th class='num'>references (mean ± sd)</th>"
        "<th class='num'>p-value</th><th class='num'>Holm-adjusted</th></tr></thead>"
        "<tbody>{}</tbody></table><p>Decision at alpha {}: <strong>{}</strong> ({}; {} "
        "reference models; {}).</p>"
    ).format(
        anchor(result.id),
        Markup("").join(rows),
        result.details.get("alpha", ""),
        decision,
        result.details.get("mode", ""),
        result.details.get("reference_models", ""),
        result.details.get("test", ""),
    )
