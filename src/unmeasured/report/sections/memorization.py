"""The memorization section: each audit's headline and metrics, with the figures and tables that
belong to its method (exposure against repetitions, extracted canaries, per-layer probe accuracy
with its baselines, embeddings, inversions, what a leaking recipe hides).

`PARTS` maps an audit name to the renderer of its own block, shown under the audit's metrics;
an audit without one shows its metrics only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from markupsafe import Markup

from unmeasured.report.format import audit_context, env
from unmeasured.report.sections import (
    generic,
    memorization_canaries,
    memorization_inversion,
    memorization_leakage,
    memorization_probes,
)
from unmeasured.results import AuditResult

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext

PartRenderer = Callable[[AuditResult, "SectionContext"], Markup]

#: audit name → the renderer of the block shown under that audit's metrics
PARTS: dict[str, PartRenderer] = {
    **memorization_canaries.PARTS,
    "memorization.leakage_simulate": memorization_leakage.simulate_part,
    "memorization.leakage_detect": memorization_leakage.detect_part,
    "memorization.overlearning": memorization_probes.render,
    "memorization.inversion": memorization_inversion.render,
}


def render(audits: Sequence[AuditResult], context: SectionContext) -> Markup:
    from unmeasured.report.sections import title

    rows = []
    for a in audits:
        row = audit_context(a, context.verdicts)
        part = PARTS.get(a.name)
        row["part"] = part(a, context) if part is not None and a.status == "ok" else Markup("")
        rows.append(row)
    return Markup(
        env.get_template("sections/memorization.html.j2").render(
            title=title("memorization"),
            figures=generic.figures([a for a in audits if a.status == "ok"], "memorization-curve"),
            audits=rows,
            confidence_pct=context.confidence_pct,
        )
    )
