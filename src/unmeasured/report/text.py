"""Terminal and CI-log summaries of a run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from unmeasured.results import AuditResult, RunResult
from unmeasured.stats.estimate import Estimate

HEADLINE = ("auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01", "epsilon_lower_bound")
HEADERS = ("AUC", "TPR@0.1%FPR", "TPR@1%FPR", "eps >=")


def cell(est: Estimate | None, digits: int = 3) -> str:
    """An estimate for a table cell: ``0.812 [0.79, 0.83]``, ``n/e`` when not estimable."""
    if est is None:
        return "-"
    if not est.estimable:
        return "n/e"
    if est.ci is None:
        return f"{est.value:.{digits}f}"
    return f"{est.value:.{digits}f} [{est.ci[0]:.{digits}f}, {est.ci[1]:.{digits}f}]"


def _row(a: AuditResult) -> list[str]:
    if a.status != "ok":
        return [a.name, a.status, *["-"] * len(HEADLINE)]
    return [a.name, a.status, *(cell(a.metrics.get(k)) for k in HEADLINE)]


def summary_text(run: RunResult) -> str:
    """A fixed-width plain-text table (no colours) for logs."""
    rows = [["audit", "status", *HEADERS], *(_row(a) for a in run.audits)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for a in run.audits:
        if a.status != "ok":
            lines.append(f"{a.name}: {a.status}: {a.reason}")
    if any(
        a.metrics.get(k) is not None and not a.metrics[k].estimable
        for a in run.audits
        for k in HEADLINE
    ):
        lines.append("n/e = not estimable: too few non-members for that false-positive rate")
    lines.extend(f"warning: {w}" for w in run.warnings)
    return "\n".join(lines)


def print_summary(run: RunResult, console: Console) -> None:
    """The same summary as a rich table."""
    table = Table("audit", "status", *HEADERS, title="unmeasured", title_justify="left")
    for a in run.audits:
        style = {"ok": "", "skipped": "yellow", "failed": "red"}[a.status]
        table.add_row(*_row(a), style=style)
    console.print(table)
    for a in run.audits:
        if a.status != "ok":
            console.print(f"{a.name}: {a.status}: {a.reason}", highlight=False)
    if any(
        a.metrics.get(k) is not None and not a.metrics[k].estimable
        for a in run.audits
        for k in HEADLINE
    ):
        console.print(
            "n/e = not estimable: too few non-members for that false-positive rate", highlight=False
        )
    for w in run.warnings:
        console.print(f"warning: {w}", highlight=False, style="yellow")
