"""One section of the report per audit family.

`SECTIONS` maps a family to its renderer; a family without one gets `generic.render` (every
audit's metrics, and curves of any metric measured at several values of a parameter), so a new
family shows up in the report before it has a section of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from unmeasured.report.sections import defences, generic, membership, memorization, robustness
from unmeasured.results import AuditResult, Verdict


@dataclass(frozen=True)
class SectionContext:
    """What a section may need beyond its audits.

    Attributes:
        verdicts: the run's gate verdicts.
        confidence_pct: the intervals' confidence level, in percent, for prose.
    """

    verdicts: list[Verdict]
    confidence_pct: str


Renderer = Callable[[Sequence[AuditResult], SectionContext], Markup]

SECTIONS: dict[str, Renderer] = {
    "membership": membership.render,
    "robustness": robustness.render,
    "memorization": memorization.render,
    "defences": defences.render,
}
TITLES = {
    "membership": "Membership inference",
    "robustness": "Robustness",
    "memorization": "Memorization",
    "defences": "Defences",
}


def render_section(family: str, audits: Sequence[AuditResult], context: SectionContext) -> Markup:
    """The HTML of one family's section."""
    renderer = SECTIONS.get(family, generic.render)
    return renderer(audits, context)


def title(family: str) -> str:
    return TITLES.get(family, family.replace("_", " ").capitalize())
