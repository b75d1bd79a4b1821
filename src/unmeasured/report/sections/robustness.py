"""The robustness section: per norm, attacked accuracy (an upper bound on robust accuracy) and
certified accuracy (a lower bound) against epsilon on one plot, so the gap between what an
attacker achieves and what is proven is visible; the certifiers' verdict counts; per record, the
smallest epsilon an attack needed against the largest epsilon a certificate covers (collapsed);
and the corruption heat-map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup

from unmeasured.report.figures import heatmap_svg, image_pairs_svg, metric_curves_svg
from unmeasured.report.format import audit_context, env, inline
from unmeasured.results import AuditResult
from unmeasured.stats.estimate import Estimate

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext

GAP_ROWS = 20
_NORM_TEXT = {"linf": "L∞", "l2": "L2"}


def _points(a: AuditResult, kind: str) -> list[tuple[float, Estimate]]:
    prefix = f"{kind}_accuracy_at_"
    return sorted(
        (float(k.removeprefix(prefix)), v) for k, v in a.metrics.items() if k.startswith(prefix)
    )


def _curves(audits: Sequence[AuditResult]) -> list[dict[str, Any]]:
    by_norm: dict[str, dict[str, list[tuple[float, Estimate]]]] = {}
    for a in audits:
        norm = a.details.get("norm")
        for kind, word in (("robust", "attacked"), ("certified", "certified")):
            points = _points(a, kind)
            if norm and points:
                by_norm.setdefault(norm, {})[f"{a.id} ({word})"] = points
    return [
        {
            "svg": inline(
                metric_curves_svg(
                    curves, xlabel=f"ε ({_NORM_TEXT.get(norm, norm)})", ylabel="accuracy"
                ),
                f"robustness-{norm}",
            ),
            "norm": _NORM_TEXT.get(norm, norm),
        }
        for norm, curves in sorted(by_norm.items())
    ]


def _verdicts(audits: Sequence[AuditResult]) -> list[dict[str, Any]]:
    rows = []
    for a in audits:
        for eps, counts in a.details.get("verdicts", {}).items():
            rows.append(
                {"id": a.id, "eps": eps, **counts, "invalid": a.details.get("invalid_witnesses", 0)}
            )
    return rows


def _gaps(audits: Sequence[AuditResult]) -> list[dict[str, Any]]:
    """Per record (and norm): the smallest epsilon any attack needed, the largest epsilon any
    certificate covers; the records whose gap is widest first."""
    upper: dict[tuple[str, int], float] = {}
    lower: dict[tuple[str, int], float] = {}
    for a in audits:
        norm, index = a.details.get("norm"), a.arrays.get("record_index")
        if norm is None or index is None:
            continue
        if "smallest_breaking_epsilon" in a.arrays:
            for i, e in zip(
                index.tolist(), a.arrays["smallest_breaking_epsilon"].tolist(), strict=True
            ):
                upper[(norm, i)] = min(upper.get((norm, i), np.inf), e)
        if "status" in a.arrays:
            eps = np.asarray(a.arrays["epsilons"], dtype=float)
            robust = a.arrays["status"] == a.details.get("status_codes", {}).get("robust", 1)
            for row, i in enumerate(index.tolist()):
                best = float(eps[robust[row]].max()) if robust[row].any() else 0.0
                lower[(norm, i)] = max(lower.get((norm, i), 0.0), best)
    keys = sorted(set(upper) & set(lower))
    rows = [
        {"norm": _NORM_TEXT.get(n, n), "record": i, "lower": lower[(n, i)], "upper": upper[(n, i)]}
        for n, i in keys
    ]
    rows.sort(key=lambda r: -(min(r["upper"], 1e9) - r["lower"]))
    return (
        [
            {
                **r,
                "upper": "not broken" if np.isinf(r["upper"]) else f"{r['upper']:g}",
                "lower": f"{r['lower']:g}",
            }
            for r in rows[:GAP_ROWS]
        ]
        if rows
        else []
    )


def _heatmaps(audits: Sequence[AuditResult]) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(audits):
        matrix, types = a.arrays.get("accuracy"), a.details.get("corruptions")
        if matrix is None or not types or np.ndim(matrix) != 2:
            continue
        severities = [str(s) for s in a.arrays.get("severities", range(1, matrix.shape[1] + 1))]
        svg = heatmap_svg(matrix, types, severities, xlabel="severity", label="accuracy")
        out.append({"id": a.id, "svg": inline(svg, f"corruptions{i}")})
    return out


def _examples(audits: Sequence[AuditResult]) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(audits):
        if "example_clean" not in a.arrays or not len(a.arrays["example_clean"]):
            continue
        labels = [
            f"{t} → {p}"
            for t, p in zip(a.arrays["example_label"], a.arrays["example_predicted"], strict=True)
        ]
        eps = float(np.max(a.arrays["epsilons"]))
        svg = image_pairs_svg(
            a.arrays["example_clean"], a.arrays["example_adversarial"], labels, f"{a.id} examples"
        )
        out.append({"id": a.id, "eps": f"{eps:g}", "svg": inline(svg, f"examples{i}")})
        break  # one attack's examples say enough; the page stays short
    return out


def render(audits: Sequence[AuditResult], context: SectionContext) -> Markup:
    ok = [a for a in audits if a.status == "ok"]
    return Markup(
        env.get_template("sections/robustness.html.j2").render(
            curves=_curves(ok),
            verdicts=_verdicts(ok),
            gaps=_gaps(ok),
            heatmaps=_heatmaps(ok),
            examples=_examples(ok),
            audits=[
                audit_context(a, context.verdicts, hidden=("verdicts", "status_codes"))
                for a in audits
            ],
            confidence_pct=context.confidence_pct,
        )
    )
