"""Terminal and CI-log summaries of a run: one row per audit with the headline membership
metrics, then the lines a reader must not miss (skips, failures, other families' metrics,
warnings).

`summary_text` is plain fixed-width text (no colours, no box drawing) for logs and pipes;
`print_summary` prints the same content as a rich table.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from unmeasured.results import AuditResult, RunResult
from unmeasured.stats.estimate import Estimate

HEADLINE = ("auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01", "epsilon_lower_bound")
HEADERS = ("AUC", "TPR@0.1%FPR", "TPR@1%FPR", "eps >=")
NOT_ESTIMABLE_NOTE = (
    "n/e = not estimable: too few records for that rate (the report gives each reason)"
)
_STATUS_STYLE = {"ok": "", "skipped": "yellow", "failed": "red"}


def cell(est: Estimate | None, digits: int = 3) -> str:
    """An estimate for a table cell: ``0.812 [0.790, 0.834]``, ``n/e`` when not estimable,
    ``-`` when absent."""
    if est is None:
        return "-"
    if not est.estimable:
        return "n/e"
    return est.format(digits)


def summary_text(run: RunResult) -> str:
    """A fixed-width plain-text summary (no ANSI colours) for logs and CI.

    Example:
        >>> from unmeasured.results import AuditResult, RunResult
        >>> print(summary_text(RunResult([AuditResult("membership.loss", status="skipped",
        ...                                            reason="no model")])))
        audit            status   AUC  TPR@0.1%FPR  TPR@1%FPR  eps >=
        membership.loss  skipped  -    -            -          -
        membership.loss: skipped: no model
    """
    header, rows, _ = _table(run)
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines + [text for text, _ in _notes(run)])


def print_summary(run: RunResult, console: Console) -> None:
    """Print the same summary as `summary_text` as a rich table on ``console``."""
    header, rows, statuses = _table(run)
    table = Table(*header, title="unmeasured", title_justify="left")
    for row, status in zip(rows, statuses, strict=True):
        table.add_row(*row, style=_STATUS_STYLE[status])
    console.print(table)
    for text, style in _notes(run):
        console.print(text, style=style, highlight=False, soft_wrap=True)


def _table(run: RunResult) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, one row per audit, and each row's status."""
    header = ["audit", "status", *HEADERS]
    if run.verdicts:
        header.append("gate")
    rows = []
    for a in run.audits:
        values = (
            [cell(a.metrics.get(k)) for k in HEADLINE]
            if a.status == "ok"
            else ["-"] * len(HEADLINE)
        )
        row = [a.name, a.status, *values]
        if run.verdicts:
            row.append(_gate(a, run))
        rows.append(row)
    return header, rows, [a.status for a in run.audits]


def _gate(a: AuditResult, run: RunResult) -> str:
    own = [v for v in run.verdicts if v.metric.startswith(a.name + ".")]
    if not own:
        return "-"
    return "FAIL" if any(v.breached for v in own) else "pass"


def _notes(run: RunResult) -> list[tuple[str, str]]:
    """Lines under the table, each with its rich style."""
    notes = []
    for a in run.audits:
        if a.status != "ok":
            notes.append((f"{a.name}: {a.status}: {a.reason}", _STATUS_STYLE[a.status]))
        elif a.metrics and not any(k in a.metrics for k in HEADLINE):
            metrics = ", ".join(f"{k} {cell(v)}" for k, v in a.metrics.items())
            notes.append((f"{a.name}: {metrics}", ""))
    if any(
        a.status == "ok" and k in a.metrics and not a.metrics[k].estimable
        for a in run.audits
        for k in HEADLINE
    ):
        notes.append((NOT_ESTIMABLE_NOTE, ""))
    notes.extend((f"warning: {w}", "yellow") for w in run.warnings)
    return notes
