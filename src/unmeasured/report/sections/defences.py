"""The defences section: for each ``defences.tradeoff`` audit, one figure with accuracy on the
x axis and attack power on the y axes (AUC, TPR at 1% FPR, empirical ε lower bound, with the
accountant's ε of the DP settings marked beside their bound), each point one setting with its
intervals; and one table of the same figures, the accountant's ε next to the empirical bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from unmeasured.report.figures import _STYLE, CHANCE_COLOR, CURVE_COLORS, _percent, _svg
from unmeasured.report.format import audit_context, cell, env, inline
from unmeasured.results import AuditResult
from unmeasured.stats.estimate import Estimate

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext

#: one marker per kind of setting (colours tell the settings apart)
KIND_MARKERS = {
    "none": "o",
    "ensemble": "s",
    "dp": "D",
    "round": "^",
    "top_k": "v",
    "label_only": "P",
}
PANELS = (
    ("auc", "attack AUC", 0.5),
    ("tpr_at_fpr_0.01", "TPR at 1% FPR", 0.01),
    ("epsilon_lower_bound", "empirical ε lower bound", None),
)


def _errors(est: Estimate) -> list[float]:
    lo, hi = est.ci if est.ci is not None else (est.value, est.value)
    return [float(est.value - lo), float(hi - est.value)]  # type: ignore[operator]


def tradeoff_svg(result: AuditResult) -> str:
    """Accuracy against attack power, one point per setting, for one tradeoff audit."""
    rows = result.details["settings"]
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(10.4, 3.3))
        axes = fig.subplots(1, len(PANELS))
        for ax, (metric, label, chance) in zip(axes, PANELS, strict=True):
            for i, row in enumerate(rows):
                group = result.groups[f"setting={row['setting']}"]
                acc, power = group["accuracy"], group[metric]
                if acc.value is None or power.value is None:
                    continue
                color = CURVE_COLORS[i % len(CURVE_COLORS)]
                marker = KIND_MARKERS.get(row["kind"], "o")
                ax.errorbar(
                    [acc.value],
                    [power.value],
                    xerr=np.array(_errors(acc)).reshape(2, 1),
                    yerr=np.array(_errors(power)).reshape(2, 1),
                    fmt=marker,
                    color=color,
                    ms=5,
                    capsize=2,
                    lw=1,
                    label=row["setting"],
                )
                if metric == "epsilon_lower_bound" and "accountant_epsilon" in group:
                    ax.plot(
                        [acc.value],
                        [group["accountant_epsilon"].value],
                        marker="_",
                        ms=14,
                        mew=2,
                        color=color,
                    )
            if chance is not None:
                ax.axhline(chance, ls="--", color=CHANCE_COLOR, lw=1)
            ax.xaxis.set_major_formatter(FuncFormatter(_percent))
            if metric.startswith("tpr"):
                ax.yaxis.set_major_formatter(FuncFormatter(_percent))
            ax.set_xlabel(f"accuracy on {result.details.get('accuracy_on', 'held-out records')}")
            ax.set_ylabel(label)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=min(len(labels), 5) or 1,
            fontsize=7.5,
            frameon=False,
        )
        fig.tight_layout()
        return _svg(fig, "accuracy against membership-attack power per defence setting")


def _table(result: AuditResult) -> list[dict[str, Any]]:
    out = []
    for row in result.details["settings"]:
        group = result.groups[f"setting={row['setting']}"]
        privacy = row.get("privacy") or {}
        out.append(
            {
                "setting": row["setting"],
                "attack": row["attack"],
                "cells": [cell(group.get(k), k) for k, *_ in (("accuracy",), *PANELS)],
                "accountant": cell(group.get("accountant_epsilon"), "accountant_epsilon"),
                "delta": f"{privacy['delta']:g}" if privacy else "",
                "noise": f"{privacy['noise_multiplier']:.3g}" if privacy else "",
            }
        )
    return out


def render(audits: Sequence[AuditResult], context: SectionContext) -> Markup:
    from unmeasured.report.sections import title

    rows = []
    for i, a in enumerate(audits):
        row = audit_context(a, context.verdicts, hidden=("settings",))
        if a.status == "ok":
            row["figure"] = inline(tradeoff_svg(a), f"defences-{i}")
            row["table"] = _table(a)
        rows.append(row)
    return Markup(
        env.get_template("sections/defences.html.j2").render(
            title=title("defences"), audits=rows, confidence_pct=context.confidence_pct
        )
    )
