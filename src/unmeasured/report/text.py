"""Terminal and CI-log summaries of a run: the outcome, one verdict line per family, the target's
accuracy, then one row per audit (its id, status, headline metric and value, gate), then the
lines a reader must not miss (skips, failures, warnings).

`summary_text` is plain fixed-width ASCII text (no colours, no box drawing) for logs and pipes;
`print_summary` prints the same content with rich, keeping audit ids whole on narrow terminals.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from unmeasured.report.verdicts import OUTCOME_TEXT, family_verdicts
from unmeasured.results import AuditResult, RunResult
from unmeasured.stats.estimate import Estimate

HEADER = ("audit", "status", "metric", "value")
NOT_ESTIMABLE_NOTE = (
    "n/e = not estimable: too few records for that rate (the report gives each reason)"
)
_STATUS_STYLE = {"ok": "", "skipped": "yellow", "failed": "red"}
_ASCII = str.maketrans({"ε": "eps", "∞": "inf", "–": "-", "—": "-", "≥": ">=", "×": "x"})


def cell(est: Estimate | None, digits: int = 3) -> str:
    """An estimate for a table cell: ``0.812 [0.790, 0.834]``, ``n/e`` when not estimable,
    ``-`` when absent."""
    if est is None:
        return "-"
    if not est.estimable:
        return "n/e"
    return est.format(digits)


def summary_text(run: RunResult) -> str:
    """A fixed-width plain-text summary (ASCII, no colours) for logs and CI.

    Example:
        >>> from unmeasured.results import AuditResult, RunResult
        >>> print(summary_text(RunResult([AuditResult("membership.loss", status="skipped",
        ...                                            reason="no model")])))
        outcome: INCOMPLETE (no audit ran)
        membership: not measured. all 1 audit(s) skipped or failed.
        audit            status   metric  value
        membership.loss  skipped  -       -
        membership.loss: skipped: no model
    """
    header, rows, _ = _table(run)
    table = [list(header), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    text = "\n".join([*_top(run), *lines, *(t for t, _ in _notes(run))])
    return text.translate(_ASCII).encode("ascii", "replace").decode()


def print_summary(run: RunResult, console: Console) -> None:
    """Print the same summary as `summary_text` with rich on ``console``."""
    for line in _top(run):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    header, rows, statuses = _table(run)
    table = Table(title="unmeasured", title_justify="left")
    width = max([len(header[0]), *(len(r[0]) for r in rows)])
    table.add_column(header[0], no_wrap=True, min_width=width)  # ids stay whole
    for name in header[1:]:
        table.add_column(name, overflow="fold")
    for row, status in zip(rows, statuses, strict=True):
        table.add_row(*(Text(c) for c in row), style=_STATUS_STYLE[status])
    console.print(table)
    for text, style in _notes(run):
        console.print(text, style=style, highlight=False, soft_wrap=True, markup=False)


def _top(run: RunResult) -> list[str]:
    notes = []
    failed = sum(a.status == "failed" for a in run.audits)
    if run.verdicts:
        notes.append(
            f"{sum(v.breached for v in run.verdicts)} of {len(run.verdicts)} gate checks breached"
        )
    if failed:
        notes.append(f"{failed} audit(s) failed")
    if not any(a.status == "ok" for a in run.audits):
        notes.append("no audit ran")
    lines = [f"outcome: {OUTCOME_TEXT[run.outcome]}" + (f" ({'; '.join(notes)})" if notes else "")]
    lines += [v.text() for v in family_verdicts(run)]
    if run.target is not None and run.target.accuracy:
        acc = ", ".join(f"{role} {cell(est)}" for role, est in run.target.accuracy.items())
        lines.append(f"target: {run.target.description}; accuracy {acc}")
    return lines


def _table(run: RunResult) -> tuple[tuple[str, ...], list[list[str]], list[str]]:
    """Header, one row per audit, and each row's status."""
    header = (*HEADER, "gate") if run.verdicts else HEADER
    rows = []
    for a in run.audits:
        metric = a.headline.metric if a.status == "ok" and a.headline else None
        row = [a.id, a.status, metric or "-", cell(a.metrics.get(metric)) if metric else "-"]
        if run.verdicts:
            row.append(_gate(a, run))
        rows.append(row)
    return header, rows, [a.status for a in run.audits]


def _gate(a: AuditResult, run: RunResult) -> str:
    own = [v for v in run.verdicts if v.metric.startswith(a.id + ".")]
    if not own:
        return "-"
    return "FAIL" if any(v.breached for v in own) else "pass"


def _notes(run: RunResult) -> list[tuple[str, str]]:
    """Lines under the table, each with its rich style."""
    notes = [
        (f"{a.id}: {a.status}: {a.reason}", _STATUS_STYLE[a.status])
        for a in run.audits
        if a.status != "ok"
    ]
    notes += [
        (f"gate breached: {v.metric} ({v.reason})", "red")
        for v in run.verdicts
        if v.breached and v.value is None
    ]
    if any(
        a.status == "ok" and a.headline and not a.metrics[a.headline.metric].estimable
        for a in run.audits
        if a.headline and a.headline.metric in a.metrics
    ):
        notes.append((NOT_ESTIMABLE_NOTE, ""))
    notes.extend((f"warning: {w}", "yellow") for w in run.warnings)
    return notes
