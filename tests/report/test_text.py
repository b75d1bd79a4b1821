"""The terminal and CI-log summaries."""

from __future__ import annotations

import doctest
import io

from rich.console import Console

from unmeasured.report import print_summary, summary_text
from unmeasured.report import text as text_module
from unmeasured.results import RunResult


def test_text_summary_leads_with_outcome_and_verdicts(run: RunResult) -> None:
    lines = summary_text(run).splitlines()
    assert lines[0] == "outcome: FAILED (1 of 2 gate checks breached; 1 audit(s) failed)"
    assert lines[1].startswith("membership: leakage found. membership.lira[online]: ")
    assert lines[2].startswith(
        "robustness: attacks succeed. robustness.pgd[linf]: At Linf eps = 0.03"
    )
    assert lines[3].startswith("target: torch Sequential; accuracy members 1.000")


def test_text_summary_names_every_audit_without_colours(run: RunResult) -> None:
    text = summary_text(run)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("audit "))
    assert lines[start].split() == ["audit", "status", "metric", "value", "gate"]
    for audit in run.audits:
        assert any(line.startswith(audit.id + " ") for line in lines[start + 1 :])
    assert "\x1b[" not in text
    assert all(ord(c) < 128 for c in text)  # the summary's own text is ASCII: logs may not be UTF-8


def test_text_summary_columns_line_up(run: RunResult) -> None:
    lines = summary_text(run).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("audit "))
    table = lines[start : start + 1 + len(run.audits)]
    column = table[0].index("metric")
    assert all(line[column - 2 : column] == "  " for line in table)


def test_text_summary_explains_what_is_not_in_the_table(run: RunResult) -> None:
    text = summary_text(run)
    assert "membership.rmia[offline]: skipped: needs population data" in text
    assert "membership.shadow: failed: RuntimeError: out of memory" in text
    assert "warning: 3 non-member records are exact duplicates" in text
    lira = next(line for line in text.splitlines() if line.startswith("membership.lira[online] "))
    assert lira.endswith("FAIL")


def test_text_summary_has_no_gate_column_without_gates(run: RunResult) -> None:
    run.verdicts = []
    assert all(
        not line.startswith("audit ") or "gate" not in line
        for line in summary_text(run).splitlines()
    )


def test_rich_summary_keeps_ids_whole_on_an_80_column_terminal(run: RunResult) -> None:
    run.audits[1].id = "membership.lira[online,variance=per_example]"
    buffer = io.StringIO()
    print_summary(run, Console(file=buffer, width=80, color_system=None))
    out = buffer.getvalue()
    assert max(len(line) for line in out.splitlines() if "│" in line) <= 80
    for audit in run.audits:
        assert audit.id in out
    assert "needs population data" in out and "exact duplicates" in out


def test_docstring_examples() -> None:
    assert doctest.testmod(text_module).failed == 0
