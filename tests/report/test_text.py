"""The terminal and CI-log summaries."""

from __future__ import annotations

import doctest
import io

from rich.console import Console

from unmeasured.report import print_summary, summary_text
from unmeasured.report import text as text_module
from unmeasured.results import RunResult


def test_text_summary_names_every_audit_without_colours(run: RunResult) -> None:
    text = summary_text(run)
    lines = text.splitlines()
    assert lines[0].split() == [
        "audit",
        "status",
        "AUC",
        "TPR@0.1%FPR",
        "TPR@1%FPR",
        "eps",
        ">=",
        "gate",
    ]
    for audit in run.audits:
        assert any(line.startswith(audit.name + " ") for line in lines[1 : 1 + len(run.audits)])
    assert "\x1b[" not in text
    assert all(ord(c) < 128 for c in text)  # the summary's own text is ASCII: logs may not be UTF-8


def test_text_summary_columns_line_up(run: RunResult) -> None:
    lines = summary_text(run).splitlines()[: 1 + len(run.audits)]
    start = lines[0].index("AUC")
    assert all(line[start - 2 : start] == "  " for line in lines)


def test_text_summary_explains_what_is_not_in_the_table(run: RunResult) -> None:
    text = summary_text(run)
    assert "membership.rmia: skipped: needs population data" in text
    assert "membership.shadow: failed: RuntimeError: out of memory" in text
    assert "robustness.pgd: robust_accuracy 0.400 [0.300, 0.500], certified_accuracy n/e" in text
    assert "n/e = not estimable" in text
    assert "warning: 3 non-member records are exact duplicates" in text
    lira = next(line for line in text.splitlines() if line.startswith("membership.lira"))
    assert lira.endswith("FAIL")


def test_text_summary_has_no_gate_column_without_gates(run: RunResult) -> None:
    run.verdicts = []
    assert "gate" not in summary_text(run).splitlines()[0]


def test_rich_summary(run: RunResult) -> None:
    buffer = io.StringIO()
    print_summary(run, Console(file=buffer, width=200, color_system=None))
    out = buffer.getvalue()
    for audit in run.audits:
        assert audit.name in out
    assert "needs population data" in out and "exact duplicates" in out


def test_docstring_examples() -> None:
    assert doctest.testmod(text_module).failed == 0
