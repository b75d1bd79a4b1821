"""The self-contained HTML report: one file, inline CSS and SVG, no external assets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from unmeasured.report.figures import group_auc_svg, roc_loglog_svg, score_histogram_svg
from unmeasured.report.text import HEADERS, HEADLINE
from unmeasured.results import AuditResult, RunResult
from unmeasured.stats.estimate import Estimate

_env = Environment(
    loader=PackageLoader("unmeasured", "report/templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

TOP_RECORDS = 10


def _est(est: Estimate | None, one_sided: bool = False) -> dict[str, Any]:
    if est is None:
        return {"text": "–", "title": "", "na": True}
    if not est.estimable:
        return {"text": "not estimable", "title": est.reason or "", "na": True}
    if est.ci is None:
        prefix = "≥ " if one_sided else ""
        return {"text": f"{prefix}{est.value:.3f}", "title": f"n = {est.n}", "na": False}
    return {
        "text": f"{est.value:.3f}",
        "ci": f"[{est.ci[0]:.3f}, {est.ci[1]:.3f}]",
        "title": f"{est.confidence:.0%} interval, n = {est.n}",
        "na": False,
    }


def _is_membership(a: AuditResult) -> bool:
    return a.status == "ok" and {"scores", "is_member"} <= set(a.arrays)


def _top_records(a: AuditResult) -> list[dict[str, Any]]:
    scores = np.asarray(a.arrays["scores"], dtype=float)
    is_member = np.asarray(a.arrays["is_member"])
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(len(scores), dtype=int)
    rank[order] = np.arange(1, len(scores) + 1)
    labels = a.arrays.get("label")
    index = a.arrays.get("record_index", np.arange(len(scores)))
    rows = []
    for i in [i for i in order if is_member[i] == 1][:TOP_RECORDS]:
        rows.append(
            {
                "index": int(index[i]),
                "label": "–" if labels is None else int(labels[i]),
                "score": f"{scores[i]:.4g}",
                "rank": f"{rank[i]} of {len(scores)}",
                "nonmembers_above": int(((scores > scores[i]) & (is_member == 0)).sum()),
            }
        )
    return rows


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(d, dict):
        out = []
        for k, v in d.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(d, list):
        return [(prefix, ", ".join(map(str, d)))]
    return [(prefix, "" if d is None else str(d))]


def render_html(run: RunResult, *, title: str = "unmeasured audit report") -> str:
    """Render a run as one self-contained HTML page."""
    membership = [a for a in run.audits if _is_membership(a)]
    roc = (
        Markup(
            roc_loglog_svg(
                {
                    a.name + _variant(a): (a.arrays["scores"], a.arrays["is_member"])
                    for a in membership
                }
            )
        )
        if membership
        else None
    )
    audits = []
    for a in run.audits:
        entry: dict[str, Any] = {
            "name": a.name,
            "variant": _variant(a),
            "status": a.status,
            "reason": a.reason,
            "summary": [_est(a.metrics.get(k), k == "epsilon_lower_bound") for k in HEADLINE],
            "metrics": [(k, _est(v, k == "epsilon_lower_bound")) for k, v in a.metrics.items()],
            "params": _flatten(a.params),
            "duration": f"{a.duration_s:.1f} s",
            "anchor": f"audit-{len(audits)}",
            "verdicts": [v for v in run.verdicts if v.metric.startswith(a.name + ".")],
        }
        if _is_membership(a):
            entry["histogram"] = Markup(
                score_histogram_svg(a.arrays["scores"], a.arrays["is_member"])
            )
            entry["top"] = _top_records(a)
            op = a.details.get("operating_point")
            entry["operating_point"] = op
            entry["operating_reason"] = a.details.get("operating_point_reason")
        if a.groups:
            keys = [
                k
                for k in ("auc", "tpr_at_fpr_0.01", "advantage")
                if any(k in g for g in a.groups.values())
            ]
            entry["group_keys"] = keys
            entry["groups"] = [(g, [_est(m.get(k)) for k in keys]) for g, m in a.groups.items()]
            entry["group_plot"] = (
                Markup(group_auc_svg(a.groups))
                if any("auc" in m and m["auc"].estimable for m in a.groups.values())
                else None
            )
        audits.append(entry)
    verdict = None
    if run.verdicts:
        verdict = "FAIL" if run.breached else "PASS"
    ok = sum(a.status == "ok" for a in run.audits)
    return _env.get_template("report.html.j2").render(
        title=title,
        run=run,
        audits=audits,
        headers=HEADERS,
        roc=roc,
        verdict=verdict,
        breached=[v for v in run.verdicts if v.breached],
        counts={"ok": ok, "total": len(run.audits)},
        provenance=_flatten(run.provenance),
        started=run.provenance.get("started", ""),
        confidence_pct=_confidence_pct(run),
    )


def _confidence_pct(run: RunResult) -> str:
    for a in run.audits:
        for est in a.metrics.values():
            return f"{100 * est.confidence:g}"
    return "95"


def _variant(a: AuditResult) -> str:
    """A short tag for audits that may appear twice with different parameters."""
    keys = [k for k in ("mode", "num_models") if k in a.params]
    return f" ({', '.join(f'{a.params[k]}' for k in keys)})" if keys else ""


def write_report(run: RunResult, directory: str | Path) -> Path:
    """Write ``report.html`` into ``directory``; return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "report.html"
    tmp = directory / "report.html.tmp"
    tmp.write_text(render_html(run), encoding="utf-8")
    tmp.replace(path)
    return path
