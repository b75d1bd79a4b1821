"""The self-contained HTML report: one file, inline CSS and SVG, no scripts, no external assets.

The page leads with what a reader must see first, above the fold: the run's outcome, one
verdict line per audit family, the target card (what was audited, how accurate it is on each
data role), and the audits that were skipped or failed. Then the gates, a one-row-per-audit
summary, the warnings, one section per family (`report.sections`, collapsed per audit so the
page stays short) and the provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup

from unmeasured.report.format import anchor, cell, confidence_pct, duration, env, flatten
from unmeasured.report.sections import SectionContext, render_section, title
from unmeasured.report.verdicts import OUTCOME_TEXT, family_verdicts
from unmeasured.results import RunResult, TargetCard, Verdict

_ROLE_SIDE = {
    "members": "trained on",
    "train_sample": "trained on",
    "nonmembers": "held out",
    "test": "held out",
    "population": "auditor's data",
}


def render_html(run: RunResult, *, title_text: str = "unmeasured audit report") -> str:
    """Render a run as one self-contained HTML page.

    Args:
        run: the run to render; audits that were skipped or failed are shown with their reason.
        title_text: the page's title and heading.

    Returns:
        The HTML document as text.

    Example:
        >>> from unmeasured.results import AuditResult, RunResult
        >>> html = render_html(RunResult([AuditResult("membership.loss", status="skipped",
        ...                                            reason="no model")]))
        >>> 'id="summary"' in html and "no model" in html and "INCOMPLETE" in html
        True
    """
    estimates = [e for a in run.audits for e in a.metrics.values()]
    context = SectionContext(verdicts=run.verdicts, confidence_pct=confidence_pct(estimates))
    families: dict[str, list[Any]] = {}
    for a in run.audits:
        families.setdefault(a.family, []).append(a)
    sections = [render_section(f, audits, context) for f, audits in families.items()]
    return env.get_template("report.html.j2").render(
        title=title_text,
        outcome=run.outcome,
        outcome_text=OUTCOME_TEXT[run.outcome],
        outcome_note=_outcome_note(run),
        verdict_lines=[
            {
                "family": title(v.family),
                "label": v.label,
                "class": {True: "concern", False: "clear", None: "unknown"}[v.concern],
                "audit": v.audit_id,
                "anchor": anchor(v.audit_id) if v.audit_id else None,
                "sentence": v.sentence,
            }
            for v in family_verdicts(run)
        ],
        card=_card(run.target),
        problems=[
            {"id": a.id, "anchor": anchor(a.id), "status": a.status, "reason": a.reason}
            for a in run.audits
            if a.status != "ok"
        ],
        gates=[_gate_row(v) for v in run.verdicts],
        summary=[_summary_row(a, run.verdicts) for a in run.audits],
        warnings=run.warnings,
        sections=[Markup(s) for s in sections],
        facts=_facts(run),
        provenance=_provenance(run.provenance),
    )


def write_report(run: RunResult, directory: str | Path) -> Path:
    """Write ``report.html`` into ``directory`` (created if missing); return its path.

    The file is written next to its final name and then renamed, so a reader never sees half
    a report.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "report.html"
    tmp = directory / "report.html.tmp"
    tmp.write_text(render_html(run), encoding="utf-8")
    tmp.replace(path)
    return path


def _outcome_note(run: RunResult) -> str:
    failed = sum(a.status == "failed" for a in run.audits)
    breached = sum(v.breached for v in run.verdicts)
    parts = []
    if run.verdicts:
        parts.append(f"{breached} of {len(run.verdicts)} gate checks breached")
    if failed:
        parts.append(f"{failed} audit{'s' if failed != 1 else ''} failed")
    if not any(a.status == "ok" for a in run.audits):
        parts.append("no audit ran")
    if not parts:
        parts.append("no gates set")
    return "; ".join(parts)


def _card(card: TargetCard | None) -> dict[str, Any] | None:
    if card is None:
        return None
    counted = "vocabulary" if card.kind == "language model" else "classes"
    facts = [("model", card.description), (counted, str(card.num_classes))]
    if card.parameters is not None:
        facts.append(("parameters", f"{card.parameters:,}"))
    if card.input_shape is not None:
        facts.append(("input", " × ".join(map(str, card.input_shape)) or "scalar"))
    if card.input_bounds is not None:
        low, high = card.input_bounds
        source = f" (from the {card.bounds_source})" if card.bounds_source else ""
        facts.append(("input range", f"[{low:g}, {high:g}]{source}"))
    accuracy = [
        {"role": role, "side": _ROLE_SIDE.get(role, ""), "n": est.n, **cell(est)}
        for role, est in card.accuracy.items()
    ]
    files = [(path, digest[:16]) for path, digest in card.files.items()]
    return {"facts": facts, "accuracy": accuracy, "files": files}


def _gate_row(v: Verdict) -> dict[str, Any]:
    value = v.reason if v.value is None else f"{v.value:.4g}"
    return {"rule": v.rule, "metric": v.metric, "value": value, "breached": v.breached}


def _summary_row(a: Any, verdicts: list[Verdict]) -> dict[str, Any]:
    own = [v for v in verdicts if v.metric.startswith(a.id + ".")]
    headline = a.headline
    metric = headline.metric if headline else None
    return {
        "id": a.id,
        "anchor": anchor(a.id),
        "status": a.status,
        "reason": a.reason,
        "metric": metric,
        "value": cell(a.metrics.get(metric), metric or "") if metric else None,
        "concern": headline.concern if headline else None,
        "gate": None if not own else ("fail" if any(v.breached for v in own) else "pass"),
    }


def _facts(run: RunResult) -> list[tuple[str, str]]:
    """Short facts for the page header: seed, when, how long."""
    p = run.provenance
    facts = []
    if p.get("seed") is not None:
        facts.append(("seed", str(p["seed"])))
    if p.get("started"):
        facts.append(("started", str(p["started"])))
    took = duration(p.get("started"), p.get("finished"))
    if took:
        facts.append(("took", took))
    return facts


def _provenance(provenance: dict[str, Any]) -> list[tuple[str, str]]:
    """Provenance rows; inputs given in memory say so instead of showing an empty path."""
    rows = []
    for key, value in flatten(provenance):
        if key.startswith("inputs.") and key.endswith(".path") and not value:
            value = "(in memory: hashed by content)"
        rows.append((key, value))
    return rows
