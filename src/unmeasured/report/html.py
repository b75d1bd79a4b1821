"""The self-contained HTML report: one file, inline CSS and SVG, no scripts, no external assets.

`render_html` turns a `RunResult` into plain values (strings, rows, SVG text) and hands them to
``templates/report.html.j2``; every number is formatted here, so the template only lays out.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from unmeasured.report.figures import (
    group_auc_svg,
    roc_loglog_svg,
    scope_ids,
    score_histogram_svg,
)
from unmeasured.report.text import HEADLINE
from unmeasured.results import AuditResult, RunResult, Verdict
from unmeasured.stats.estimate import Estimate

TOP_RECORDS = 10
HEADLINE_LABELS = {
    "auc": "AUC",
    "tpr_at_fpr_0.001": "TPR @ 0.1% FPR",
    "tpr_at_fpr_0.01": "TPR @ 1% FPR",
    "epsilon_lower_bound": "ε lower bound",
}
GROUP_METRICS = (
    "auc",
    "tpr_at_fpr_0.001",
    "tpr_at_fpr_0.01",
    "tpr_at_fpr_0.1",
    "advantage",
    "epsilon_lower_bound",
)
_DESCRIPTIONS = {
    "auc": "area under the ROC curve (0.5 = chance)",
    "advantage": "largest TPR − FPR over all thresholds",
    "epsilon_lower_bound": "differential-privacy ε the model cannot be below (one-sided)",
    "operating_tpr": "members flagged at the calibrated threshold",
    "false_alarm_rate": "non-members flagged at the calibrated threshold",
    "operating_precision": "share of flagged records that really are members",
}

_env = Environment(
    loader=PackageLoader("unmeasured", "report/templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(run: RunResult, *, title: str = "unmeasured audit report") -> str:
    """Render a run as one self-contained HTML page.

    The page holds a verdict banner, a summary table (``id="summary"``, one row per audit), the
    run's warnings, every membership attack's ROC on one log-log plot, one section per audit
    (metrics, score histogram, most exposed records, operating point, per-group metrics),
    a short guide to reading the numbers, and the run's provenance.

    Args:
        run: the run to render; audits that were skipped or failed are shown with their reason.
        title: the page's title and heading.

    Returns:
        The HTML document as text.

    Example:
        >>> from unmeasured.results import AuditResult, RunResult
        >>> html = render_html(RunResult([AuditResult("membership.loss", status="skipped",
        ...                                            reason="no model")]))
        >>> 'id="summary"' in html and "no model" in html
        True
    """
    membership = [a for a in run.audits if _has_membership_arrays(a)]
    roc = None
    if membership:
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for a in membership:
            label = _short(a.name) + _variant(a)
            # the same attack run twice with settings the tag does not show: number them
            label = label if label not in curves else f"{label} #{len(curves) + 1}"
            curves[label] = (a.arrays["scores"], a.arrays["is_member"])
        roc = _inline(roc_loglog_svg(curves), "roc")
    audits = [_audit_context(a, i, run.verdicts) for i, a in enumerate(run.audits)]
    return _env.get_template("report.html.j2").render(
        title=title,
        audits=audits,
        headline_labels=[HEADLINE_LABELS[k] for k in HEADLINE],
        roc=roc,
        verdict=("FAIL" if run.breached else "PASS") if run.verdicts else None,
        verdicts=[_verdict_context(v) for v in run.verdicts],
        n_breached=sum(v.breached for v in run.verdicts),
        counts={s: sum(a.status == s for a in run.audits) for s in ("ok", "skipped", "failed")},
        facts=_facts(run, membership),
        finding=_finding(membership),
        warnings=run.warnings,
        provenance=_flatten(run.provenance),
        confidence_pct=_confidence_pct(run),
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


def _inline(svg: str, figure_id: str) -> Markup:
    """Figure SVG to embed as is (it is generated here, not user text), its ids made unique on
    the page."""
    return Markup(scope_ids(svg, f"{figure_id}-"))


def _number(x: float, digits: int = 3) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}f}"


def _cell(est: Estimate | None, name: str = "") -> dict[str, Any]:
    """An estimate as text for a table cell, with a tooltip saying what it rests on."""
    if est is None:
        return {"text": "–", "ci": "", "title": "not reported by this audit", "na": True, "n": ""}
    if est.value is None:
        title = est.reason or "no reason given"
        return {"text": "not estimable", "ci": "", "title": title, "na": True, "n": est.n}
    cell: dict[str, Any] = {"text": _number(est.value), "ci": "", "na": False, "n": est.n}
    if est.ci is not None:
        cell["ci"] = f"[{_number(est.ci[0])}, {_number(est.ci[1])}]"
        cell["title"] = f"{est.confidence:.0%} confidence interval, n = {est.n}"
    elif name.endswith("lower_bound"):
        cell["text"] = "≥ " + cell["text"]
        cell["title"] = f"one-sided, {est.confidence:.0%} confidence, n = {est.n}"
    else:
        cell["title"] = f"n = {est.n}"
    return cell


def _describe(metric: str) -> str:
    if metric.startswith("tpr_at_fpr_"):
        fpr = float(metric.removeprefix("tpr_at_fpr_"))
        return f"members caught while flagging {100 * fpr:g}% of non-members"
    return _DESCRIPTIONS.get(metric, "")


def _has_membership_arrays(a: AuditResult) -> bool:
    if a.status != "ok" or not {"scores", "is_member"} <= set(a.arrays):
        return False
    is_member = np.asarray(a.arrays["is_member"])
    return bool((is_member == 1).any() and (is_member == 0).any())


def _short(name: str) -> str:
    return name.removeprefix("membership.")


def _variant(a: AuditResult) -> str:
    """A short tag for audits that may appear twice with different parameters."""
    values = [str(a.params[k]) for k in ("mode", "num_models") if k in a.params]
    return f" ({', '.join(values)})" if values else ""


def _audit_context(a: AuditResult, index: int, verdicts: list[Verdict]) -> dict[str, Any]:
    own = [v for v in verdicts if v.metric.startswith(a.name + ".")]
    entry: dict[str, Any] = {
        "name": a.name,
        "variant": _variant(a),
        "anchor": f"audit-{index}",
        "status": a.status,
        "reason": a.reason,
        "verdict": None if not own else ("fail" if any(v.breached for v in own) else "pass"),
        "verdict_title": "; ".join(
            f"{v.rule}: {'breached' if v.breached else 'passed'}" for v in own
        ),
        "metrics": [
            {"name": k, "description": _describe(k), **_cell(v, k)} for k, v in a.metrics.items()
        ],
        "params": _flatten(a.params),
        "details": _flatten(
            {k: v for k, v in a.details.items() if not k.startswith("operating_point")}
        ),
        "duration": _seconds(a.duration_s) if a.duration_s > 0 else None,
    }
    entry["described"] = any(m["description"] for m in entry["metrics"])
    has_headline = any(k in a.metrics for k in HEADLINE)
    entry["summary"] = (
        [_cell(a.metrics.get(k), k) for k in HEADLINE] if has_headline or not a.metrics else None
    )
    if _has_membership_arrays(a):
        entry["histogram"] = _inline(
            score_histogram_svg(a.arrays["scores"], a.arrays["is_member"]), f"hist{index}"
        )
        entry["top"] = _top_records(a)
        entry["operating_point"] = _operating_point(a)
    if a.groups:
        entry.update(_groups_context(a.groups, f"groups{index}"))
    return entry


def _operating_point(a: AuditResult) -> str | None:
    op = a.details.get("operating_point")
    if not op:
        reason = a.details.get("operating_point_reason")
        return f"No operating point: {reason}." if reason else None
    source = op.get("calibrated_on", "population")
    where = (
        f"the population ({op['n_population']} records known not to be members)"
        if source == "population" and "n_population" in op
        else f"the {source}"
    )
    text = (
        f"Operating point: the threshold {op['threshold']:.4g} flags "
        f"{100 * op['target_fpr']:g}% of {where}"
    )
    if source == "population":
        text += (
            ", so it was chosen without the audited ground truth, as a real attacker would. "
            "operating_tpr and false_alarm_rate are what it then flags among the audited "
            "members and non-members."
        )
    else:
        text += "."
    return text


def _top_records(a: AuditResult) -> list[dict[str, Any]]:
    """The members with the highest scores: the records an attacker would name first."""
    scores = np.asarray(a.arrays["scores"], dtype=np.float64)
    is_member = np.asarray(a.arrays["is_member"])
    finite = np.isfinite(scores)
    order = np.argsort(-np.where(finite, scores, -np.inf), kind="stable")
    labels = a.arrays.get("label")
    index = a.arrays.get("record_index", np.arange(len(scores)))
    nonmember_scores = np.sort(scores[(is_member == 0) & finite])
    n = int(finite.sum())
    rows = []
    for i in order[(is_member[order] == 1) & finite[order]][:TOP_RECORDS]:
        above = int(len(nonmember_scores) - np.searchsorted(nonmember_scores, scores[i], "right"))
        rows.append(
            {
                "index": int(index[i]),
                "label": "–" if labels is None else str(labels[i]),
                "score": f"{scores[i]:.4g}",
                # ties share the best rank among them
                "rank": f"{int((scores > scores[i]).sum()) + 1} of {n}",
                "nonmembers_above": above,
            }
        )
    return rows


def _groups_context(groups: dict[str, dict[str, Estimate]], figure_id: str) -> dict[str, Any]:
    """Per-group columns: the standard metrics that some group could estimate."""
    present = [k for k in GROUP_METRICS if any(k in m for m in groups.values())]
    present += sorted({k for m in groups.values() for k in m} - set(GROUP_METRICS))
    shown = [k for k in present if any(k in m and m[k].estimable for m in groups.values())]
    hidden = []
    for k in present:
        if k not in shown:
            reasons = [m[k].reason for m in groups.values() if k in m and m[k].reason]
            hidden.append(f"{k} ({reasons[0]})" if reasons else k)
    has_auc = any("auc" in m and m["auc"].estimable for m in groups.values())
    return {
        "group_keys": shown,
        "group_hidden": hidden,
        "groups": [
            {
                "name": g,
                "n": max((e.n for e in m.values()), default=0),
                "cells": [_cell(m.get(k), k) for k in shown],
            }
            for g, m in groups.items()
        ],
        "group_plot": _inline(group_auc_svg(groups), figure_id) if has_auc else None,
    }


def _verdict_context(v: Verdict) -> dict[str, Any]:
    value = "not estimable" if v.value is None else f"{v.value:.4g}"
    return {"rule": v.rule, "metric": v.metric, "value": value, "breached": v.breached}


def _finding(membership: list[AuditResult]) -> str | None:
    """One sentence on the strongest attack, by TPR at 1% FPR where that can be measured."""

    def value(a: AuditResult, key: str) -> float | None:
        est = a.metrics.get(key)
        return None if est is None else est.value

    def strength(a: AuditResult) -> tuple[float, float]:
        tpr, auc = value(a, "tpr_at_fpr_0.01"), value(a, "auc")
        return (-1.0 if tpr is None else tpr, -1.0 if auc is None else auc)

    if not membership:
        return None
    best = max(membership, key=strength)
    name = best.name + _variant(best)
    tpr, auc, eps = (
        best.metrics.get("tpr_at_fpr_0.01"),
        value(best, "auc"),
        value(best, "epsilon_lower_bound"),
    )
    if tpr is not None and tpr.value is not None and tpr.ci is not None:
        text = (
            f"Strongest attack at a 1% false-positive rate: {name} identifies "
            f"{100 * tpr.value:.1f}% of members ({tpr.confidence:.0%} CI "
            f"{100 * tpr.ci[0]:.1f}–{100 * tpr.ci[1]:.1f}%) while wrongly flagging 1% of "
            "non-members"
        )
    elif auc is not None:
        text = f"Strongest attack by AUC: {name}"
    else:
        return None
    if auc is not None:
        text += f"; AUC {_number(auc)}"
    if eps is not None:
        text += f"; ε ≥ {_number(eps, 2)}"
    return text + "."


def _facts(run: RunResult, membership: list[AuditResult]) -> list[tuple[str, str]]:
    """Short facts for the page header: what was audited, on how much data, when."""
    p = run.provenance
    facts = []
    config = p.get("config")
    if isinstance(config, dict) and config.get("target"):
        facts.append(("target", str(config["target"])))
    if membership:
        is_member = np.asarray(membership[0].arrays["is_member"])
        n1 = int((is_member == 1).sum())
        facts.append(("records", f"{n1} members, {len(is_member) - n1} non-members"))
    if p.get("seed") is not None:
        facts.append(("seed", str(p["seed"])))
    if p.get("started"):
        facts.append(("started", str(p["started"])))
    took = _duration(p.get("started"), p.get("finished"))
    if took:
        facts.append(("took", took))
    return facts


def _duration(started: Any, finished: Any) -> str | None:
    try:
        seconds = (
            datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))
        ).total_seconds()
    except (TypeError, ValueError):
        return None
    if seconds < 0:
        return None
    return _seconds(seconds)


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s"


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested dict as ``("a.b.c", "value")`` rows; ``None`` becomes an empty string."""
    if isinstance(d, dict):
        rows = []
        for k, v in d.items():
            rows.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return rows
    if isinstance(d, (list, tuple)):
        return [(prefix, ", ".join(map(str, d)))]
    return [(prefix, "" if d is None else str(d))]


def _confidence_pct(run: RunResult) -> str:
    for a in run.audits:
        for est in a.metrics.values():
            return f"{100 * est.confidence:g}"
    return "95"
