"""The membership-inference section: every attack's ROC on one log-log plot, a guide to the
numbers, and per attack its headline, metrics, operating point, credibility block, score
histogram, the records it exposes most and its metrics per group (the long tables collapsed).

The credibility block of an attack says how often it accuses non-members at its operating
point, where those false alarms fall (per class and per difficulty band, from the attack's own
result), and whether near neighbours of members are flagged as often as members (the
``membership.credibility`` audit of the same run, when it ran)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup

from unmeasured.report.figures import group_auc_svg, roc_loglog_svg, score_histogram_svg
from unmeasured.report.format import audit_context, cell, env, inline
from unmeasured.results import AuditResult
from unmeasured.stats import calibrate_threshold
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.membership import flag_rates

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext

TOP_RECORDS = 10
NEIGHBOUR_AUDIT = "membership.credibility"
#: without an operating point, the credibility block flags this share of the non-members
FALLBACK_FPR = 0.01
GROUP_METRICS = (
    "auc",
    "tpr_at_fpr_0.001",
    "tpr_at_fpr_0.01",
    "tpr_at_fpr_0.1",
    "advantage",
    "epsilon_lower_bound",
)


def has_scores(a: AuditResult) -> bool:
    """Whether an audit has per-record scores of both members and non-members to draw."""
    if a.status != "ok" or not {"scores", "is_member"} <= set(a.arrays):
        return False
    is_member = np.asarray(a.arrays["is_member"])
    return bool((is_member == 1).any() and (is_member == 0).any())


def render(audits: Sequence[AuditResult], context: SectionContext) -> Markup:
    scored = [a for a in audits if has_scores(a)]
    roc = None
    if scored:
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for a in scored:  # ids are unique in a run; results put together by hand may repeat
            label = a.id if a.id not in curves else f"{a.id} #{len(curves) + 1}"
            curves[label] = (a.arrays["scores"], a.arrays["is_member"])
        roc = inline(roc_loglog_svg(curves), "roc")
    worst = max(
        (a for a in audits if a.headline is not None and a.headline.severity is not None),
        key=lambda a: a.headline.severity,  # type: ignore[union-attr]
        default=None,
    )
    neighbour_checks = [a for a in audits if a.name == NEIGHBOUR_AUDIT and a.status == "ok"]
    entries = []
    for i, a in enumerate(audits):
        entry = audit_context(
            a, context.verdicts, hidden=("operating_point", "operating_point_reason", "credibility")
        )
        entry["open"] = a is worst
        if has_scores(a):
            entry["histogram"] = inline(
                score_histogram_svg(a.arrays["scores"], a.arrays["is_member"]), f"hist{i}"
            )
            entry["top"] = _top_records(a)
            entry["operating_point"] = _operating_point(a)
        if a.status == "ok":
            entry["credibility"] = _credibility(a, neighbour_checks)
        if a.groups:
            entry.update(_groups_context(a.groups, f"groups{i}"))
        entries.append(entry)
    n_records = None
    if scored:
        is_member = np.asarray(scored[0].arrays["is_member"])
        members = int((is_member == 1).sum())
        n_records = {"members": members, "nonmembers": len(is_member) - members}
    return Markup(
        env.get_template("sections/membership.html.j2").render(
            roc=roc,
            audits=entries,
            records=n_records,
            confidence_pct=context.confidence_pct,
        )
    )


def _operating_point(a: AuditResult) -> str | None:
    """The calibrated threshold in plain words: how many population records it flags, and what
    it then catches among the audited records."""
    op = a.details.get("operating_point")
    if not op:
        reason = a.details.get("operating_point_reason")
        return f"No operating point: {reason}." if reason else None
    n_pop = op.get("n_population")
    text = f"Operating point: a threshold of {op['threshold']:.4g} on the score, set so that it "
    if "target_precision" in op:
        text += (
            f"names members with precision {100 * op['target_precision']:g}% on "
            f"{op.get('calibrated_on', 'calibration records')}; the figures are measured on "
            "the records held out from that calibration."
        )
    elif n_pop:
        flagged = round(op["target_fpr"] * n_pop)
        text += (
            f"flags {flagged} of the {n_pop} population records ({100 * op['target_fpr']:g}%), "
            "known non-members, without looking at who is a member, as a real attacker would."
        )
    else:
        text += f"flags {100 * op['target_fpr']:g}% of the {op.get('calibrated_on', 'reference')}."
    tpr, fa = a.metrics.get("operating_tpr"), a.metrics.get("false_alarm_rate")
    if tpr is not None and fa is not None and tpr.value is not None and fa.value is not None:
        text += (
            f" Among the audited records it flags {100 * tpr.value:.1f}% of the {tpr.n} members "
            f"and {100 * fa.value:.1f}% of the {fa.n} non-members."
        )
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
                "cells": [cell(m.get(k), k) for k in shown],
            }
            for g, m in groups.items()
        ],
        "group_plot": inline(group_auc_svg(groups), figure_id) if has_auc else None,
    }


def _credibility(a: AuditResult, neighbour_checks: list[AuditResult]) -> dict[str, Any]:
    """The credibility block of one audit: false alarms at its operating point, per class and
    per difficulty band, and the neighbour check."""
    block: dict[str, Any] = {"rows": [], "neighbours": _neighbours(a, neighbour_checks)}
    block["discredible"] = block["neighbours"][1]
    block["neighbours"] = block["neighbours"][0]
    cred = a.details.get("credibility")
    groups = {g: m for g, m in a.groups.items() if "false_alarm_rate" in m}
    if cred is None and has_scores(a):
        groups, cred = _class_breakdown(a)
    if cred is None:
        block["false_alarm"] = (
            "No per-record membership scores: false alarms per class and per difficulty do not "
            "apply to this audit."
        )
        return block
    overall = a.metrics.get("false_alarm_rate")
    text = f"At a threshold of {cred['threshold']:.4g} ({cred['threshold_source']})"
    if overall is not None and overall.value is not None:
        text += f", the attack wrongly accuses {overall.format()} of the {overall.n} non-members"
    block["false_alarm"] = text + "."
    block["rows"] = [
        {
            "name": g,
            "tpr": cell(m.get("operating_tpr"), "operating_tpr"),
            "fpr": cell(m.get("false_alarm_rate"), "false_alarm_rate"),
        }
        for g, m in groups.items()
    ]
    source = cred.get("difficulty_source")
    block["difficulty"] = (
        f"Difficulty bands q1 (easiest) to q4 are quartiles of the {source} among the "
        "non-members. False alarms piling up in q1 mean the attack mistakes easy records for "
        "members."
        if source
        else "No per-record difficulty in this result: bands are not shown."
    )
    return block


def _class_breakdown(a: AuditResult) -> tuple[dict[str, dict[str, Estimate]], dict[str, Any]]:
    """Flag rates per class from the per-record arrays, for results without the breakdown."""
    scores = np.asarray(a.arrays["scores"], dtype=np.float64)
    is_member = np.asarray(a.arrays["is_member"])
    op = a.details.get("operating_point")
    if op and "threshold" in op:
        threshold, source = float(op["threshold"]), "the attack's operating point"
    else:
        finite = np.isfinite(scores) & (is_member == 0)
        threshold = calibrate_threshold(scores[finite], FALLBACK_FPR)
        source = f"flags {FALLBACK_FPR:.0%} of the audited non-members"
    labels = a.arrays.get("label")
    groups = {}
    if labels is not None:
        for c in np.unique(labels):
            mask = np.asarray(labels) == c
            groups[f"class={c}"] = flag_rates(scores[mask], is_member[mask], threshold)
    return groups, {"threshold": threshold, "threshold_source": source}


def _neighbours(a: AuditResult, checks: list[AuditResult]) -> tuple[str, bool]:
    """The neighbour check in words, and whether it found the attack discredible."""
    if a.name == NEIGHBOUR_AUDIT:
        return "This audit is the neighbour check (see its headline).", bool(
            a.headline and a.headline.concern
        )
    mine = [c for c in checks if c.details.get("attack") == a.name]
    if mine:
        c = mine[0]
        neighbours, members = (
            c.metrics.get("neighbour_flag_rate"),
            c.metrics.get("member_flag_rate"),
        )
        discredible = bool(c.headline and c.headline.concern)
        text = (
            f"Neighbour check ({c.id}, Gaussian noise {c.details.get('noise')} of the input "
            f"range): neighbours of members flagged {neighbours.format() if neighbours else '–'}, "
            f"members {members.format() if members else '–'}. "
        )
        text += (
            "DISCREDIBLE: the attack flags records near members about as often as members."
            if discredible
            else "Its claims hold up against near neighbours."
        )
        return text, discredible
    others = sorted({str(c.details.get("attack")) for c in checks})
    if others:
        return (
            f"Neighbour check not run for this attack (run for {', '.join(others)}); add "
            f'{NEIGHBOUR_AUDIT} with attack = "{a.name}" where it scores from outputs.',
            False,
        )
    return (
        f"Neighbour check not run: add {NEIGHBOUR_AUDIT} to the audits (its attack = "
        '"membership.loss" or another output-signal attack) to measure how often noisy '
        "neighbours of members are flagged.",
        False,
    )
