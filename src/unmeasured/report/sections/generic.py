"""The section of a family without a section of its own: each audit's headline and metrics, and
one plot per kind of metric that an audit reports at several values of a parameter
(``robust_accuracy_at_0.01``, ``robust_accuracy_at_0.03``, ... become a curve)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from unmeasured.report.figures import metric_curves_svg
from unmeasured.report.format import audit_context, env, inline
from unmeasured.results import AuditResult
from unmeasured.stats.estimate import Estimate

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext

_SWEEP = re.compile(r"^(?P<kind>[a-z_]+)_at_(?P<x>[0-9.e+-]+)$")


def metric_sweeps(
    audits: Sequence[AuditResult],
) -> dict[str, dict[str, list[tuple[float, Estimate]]]]:
    """Metric kind → audit id → ``(x, estimate)`` points, for kinds measured at two or more
    values (TPR at several FPRs is left to the membership section's ROC)."""
    sweeps: dict[str, dict[str, list[tuple[float, Estimate]]]] = {}
    for a in audits:
        for name, est in a.metrics.items():
            m = _SWEEP.match(name)
            if not m or m["kind"] == "tpr_at_fpr":
                continue
            try:
                x = float(m["x"])
            except ValueError:
                continue
            sweeps.setdefault(m["kind"], {}).setdefault(a.id, []).append((x, est))
    return {
        kind: {aid: sorted(points, key=lambda p: p[0]) for aid, points in per.items()}
        for kind, per in sweeps.items()
        if any(len(points) >= 2 for points in per.values())
    }


def figures(audits: Sequence[AuditResult], prefix: str) -> list[dict[str, Any]]:
    """One curve figure per swept metric kind."""
    out = []
    for i, (kind, curves) in enumerate(sorted(metric_sweeps(audits).items())):
        label = kind.replace("_", " ")
        svg = metric_curves_svg(
            curves,
            xlabel="ε (perturbation budget)" if "accuracy" in kind else "parameter",
            ylabel=label,
        )
        out.append(
            {
                "svg": inline(svg, f"{prefix}{i}"),
                "caption": f"{label.capitalize()} of each audit with its confidence band.",
            }
        )
    return out


def render(audits: Sequence[AuditResult], context: SectionContext) -> Markup:
    from unmeasured.report.sections import title

    family = audits[0].family
    return Markup(
        env.get_template("sections/generic.html.j2").render(
            family=family,
            title=title(family),
            figures=figures([a for a in audits if a.status == "ok"], f"{family}-curve"),
            audits=[audit_context(a, context.verdicts) for a in audits],
            confidence_pct=context.confidence_pct,
        )
    )
