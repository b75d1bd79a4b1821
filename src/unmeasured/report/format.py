"""Turning results into plain values for the templates: every number is formatted here (cells
with intervals and tooltips, durations, nested dicts as rows), so templates only lay out.
Shared by the page (`report.html`) and every family section (`report.sections`)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from unmeasured.report.figures import scope_ids
from unmeasured.results import AuditResult, Verdict
from unmeasured.stats.estimate import Estimate

env = Environment(
    loader=PackageLoader("unmeasured", "report/templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

_DESCRIPTIONS = {
    "auc": "area under the ROC curve (0.5 = chance)",
    "advantage": "largest TPR − FPR over all thresholds",
    "epsilon_lower_bound": "differential-privacy ε the model cannot be below (one-sided)",
    "operating_tpr": "members flagged at the calibrated threshold",
    "false_alarm_rate": "non-members flagged at the calibrated threshold",
    "operating_precision": "share of flagged records that really are members",
    "clean_accuracy": "accuracy on the unperturbed records",
}


def inline(svg: str, figure_id: str) -> Markup:
    """Figure SVG to embed as is (generated here, not user text), its ids made unique on the
    page."""
    return Markup(scope_ids(svg, f"{figure_id}-"))


def number(x: float, digits: int = 3) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}f}"


def cell(est: Estimate | None, name: str = "") -> dict[str, Any]:
    """An estimate as text for a table cell, with a tooltip saying what it rests on.

    A lower bound of 0 (an ε lower bound where the attack found nothing) reads "no evidence":
    it is the absence of a finding, not a measured zero.
    """
    if est is None:
        return {"text": "–", "ci": "", "title": "not reported by this audit", "na": True, "n": ""}
    if est.value is None:
        title = est.reason or "no reason given"
        return {"text": "not estimable", "ci": "", "title": title, "na": True, "n": est.n}
    out: dict[str, Any] = {"text": number(est.value), "ci": "", "na": False, "n": est.n}
    if est.ci is not None:
        out["ci"] = f"[{number(est.ci[0])}, {number(est.ci[1])}]"
        out["title"] = f"{est.confidence:.0%} confidence interval, n = {est.n}"
    elif name.endswith("lower_bound"):
        if est.value <= 0:
            out.update(text="no evidence", na=True)
            out["title"] = "the attack found no evidence of leakage at this confidence"
        else:
            out["text"] = "≥ " + out["text"]
            out["title"] = f"one-sided, {est.confidence:.0%} confidence, n = {est.n}"
    else:
        out["title"] = f"n = {est.n}"
    return out


def describe(metric: str) -> str:
    """What a metric means, in a few words ('' when there is nothing to add)."""
    if metric.startswith("tpr_at_fpr_"):
        fpr = float(metric.removeprefix("tpr_at_fpr_"))
        return f"members caught while flagging {100 * fpr:g}% of non-members"
    for kind in ("robust", "certified"):
        if metric.startswith(f"{kind}_accuracy_at_"):
            eps = metric.removeprefix(f"{kind}_accuracy_at_")
            verb = "after the attack" if kind == "robust" else "proven robust"
            return f"accuracy {verb} within ε = {eps}"
    return _DESCRIPTIONS.get(metric, "")


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes} min {secs} s"


def duration(started: Any, finished: Any) -> str | None:
    """The time between two ISO timestamps, in words, or None."""
    try:
        delta = (
            datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))
        ).total_seconds()
    except (TypeError, ValueError):
        return None
    return seconds(delta) if delta >= 0 else None


def flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested dict as ``("a.b.c", "value")`` rows; ``None`` becomes an empty string."""
    if isinstance(d, dict):
        rows = []
        for k, v in d.items():
            rows.extend(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return rows
    if isinstance(d, (list, tuple)):
        return [(prefix, ", ".join(map(str, d)))]
    return [(prefix, "" if d is None else str(d))]


def anchor(audit_id: str) -> str:
    """An HTML id for an audit id (brackets and commas are not welcome in URLs)."""
    return "audit-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in audit_id)


def audit_context(
    a: AuditResult, verdicts: list[Verdict], *, hidden: tuple[str, ...] = ()
) -> dict[str, Any]:
    """What every family shows of one audit: id, status, headline, metrics, parameters, gates.

    Args:
        a: the audit's result.
        verdicts: the run's gate verdicts (this audit's are picked out).
        hidden: detail keys a family section shows in its own way.
    """
    own = [v for v in verdicts if v.metric.startswith(a.id + ".")]
    metrics = [{"name": k, "description": describe(k), **cell(v, k)} for k, v in a.metrics.items()]
    return {
        "id": a.id,
        "name": a.name,
        "anchor": anchor(a.id),
        "status": a.status,
        "reason": a.reason,
        "headline": a.headline.sentence if a.headline else None,
        "concern": a.headline.concern if a.headline else None,
        "gate": None if not own else ("fail" if any(v.breached for v in own) else "pass"),
        "gate_title": "; ".join(f"{v.rule}: {'breached' if v.breached else 'passed'}" for v in own),
        "metrics": metrics,
        "described": any(m["description"] for m in metrics),
        "params": flatten(a.params),
        "details": flatten({k: v for k, v in a.details.items() if k not in hidden}),
        "duration": seconds(a.duration_s) if a.duration_s > 0 else None,
    }


def confidence_pct(estimates: list[Estimate]) -> str:
    """The confidence level of a run's intervals, in percent, for prose."""
    return f"{100 * estimates[0].confidence:g}" if estimates else "95"
