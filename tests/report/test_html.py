"""The HTML report: self-contained, well-formed, and complete."""

from __future__ import annotations

import doctest
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from unmeasured.report import html as html_module
from unmeasured.report import render_html, write_report
from unmeasured.results import AuditResult, RunResult, Verdict
from unmeasured.stats import Estimate

from .conftest import N_CLASSES, membership_audit

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _Document(HTMLParser):
    """Collects tags, links, table rows, and nesting errors (a close tag that does not match the
    open one)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.links: list[str] = []
        self.ids: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._table: list[str | None] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.append(tag)
        attrs = dict(attrs)
        self.links += [v for k, v in attrs.items() if k in ("src", "href", "xlink:href") and v]
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "table":
            self._table.append(attrs.get("id"))
        elif tag == "tr" and self._table and self._table[-1]:
            self.rows.setdefault(self._table[-1], []).append([])
        elif tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href", "xlink:href") and v]

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "table":
            self._table.pop()
        elif tag in ("td", "th") and self._cell is not None:
            if self._table and self._table[-1]:
                self.rows[self._table[-1]][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> _Document:
    doc = _Document()
    doc.feed(html)
    doc.close()
    return doc


def test_html_is_well_formed(run: RunResult) -> None:
    doc = parse(render_html(run))
    assert doc.errors == []
    assert doc.stack == []
    assert doc.tags[0] == "html"
    assert len(doc.ids) == len(set(doc.ids)), "element ids must be unique on the page"


def test_html_is_self_contained(run: RunResult) -> None:
    html = render_html(run)
    doc = parse(html)
    assert doc.links and all(link.startswith("#") for link in doc.links), doc.links
    assert "<script" not in html and "@import" not in html and "url(http" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "<link" not in html


def test_summary_has_one_row_per_audit(run: RunResult) -> None:
    rows = parse(render_html(run)).rows["summary"]
    header, body = rows[0], rows[1:]
    assert header == ["audit", "status", "headline metric", "value", "gate"]
    assert [r[0] for r in body] == [a.id for a in run.audits]
    by_id = {r[0]: r for r in body}
    assert by_id["membership.lira[online]"][-1] == "fail"
    assert by_id["membership.loss"][-1] == "pass"
    # 400 non-members cannot reach 1% FPR with 5 expected false positives: the AUC leads
    lira = run["membership.lira[online]"]
    assert by_id["membership.lira[online]"][2:4] == [
        "auc",
        f"{lira.metrics['auc'].value:.3f} [{lira.metrics['auc'].ci[0]:.3f}, {lira.metrics['auc'].ci[1]:.3f}]",
    ]
    assert "needs population data" in by_id["membership.rmia[offline]"]
    assert "RuntimeError: out of memory" in by_id["membership.shadow"]
    assert by_id["robustness.pgd[linf]"][2:4] == ["robust_accuracy_at_0.03", "0.400 [0.300, 0.500]"]


def test_verdict_lines_target_card_and_problems_lead_the_page(run: RunResult) -> None:
    html = render_html(run)
    order = [
        html.index(f'id="{i}"')
        for i in ("outcome", "verdicts", "target-card", "problems", "summary")
    ]
    assert order == sorted(order)
    verdicts = html[html.index('id="verdicts"') : html.index('id="target-card"')]
    assert "Membership inference: leakage found." in verdicts
    assert "Robustness: attacks succeed." in verdicts and "from 90.0% to 40.0%" in verdicts
    assert "1,234" in html and "[0, 1] (from the data)" in html
    accuracy = parse(html).rows["accuracy"]
    assert accuracy[1:] == [
        ["members", "trained on", "400", "1.000 [0.990, 1.000]"],
        ["nonmembers", "held out", "400", "0.810 [0.770, 0.850]"],
    ]


def test_not_estimable_gives_its_reason(run: RunResult) -> None:
    html = render_html(run)
    reason = run["membership.lira"].metrics["tpr_at_fpr_0.001"].reason
    assert reason and f'title="{reason}"' in html.replace("&gt;", ">")
    assert 'title="needs a Lipschitz bound"' in html


def test_figures_are_inline_svg(run: RunResult) -> None:
    html = render_html(run)
    n_membership = sum(a.status == "ok" and "scores" in a.arrays for a in run.audits)
    # one combined ROC, per membership audit a histogram and a per-class AUC plot, and the
    # robust-accuracy curve of the robustness section
    assert html.count("<svg") == 1 + 2 * n_membership + 1
    assert html.count("</svg>") == html.count("<svg")
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert "<style" not in html.split("</head>", 1)[1]  # matplotlib's stylesheet is removed


def test_sections_show_what_a_reviewer_needs(run: RunResult) -> None:
    html = render_html(run)
    assert "<strong>FAILED</strong>" in html and "1 of 2 gate checks breached" in html
    assert "exact duplicates" in html
    assert "Most exposed records" in html and "How to read this" in html
    assert "ab" * 32 in html and "inputs.members.sha256" in html  # provenance, flattened
    assert "2 min 5 s" in html  # the run's duration, from provenance
    assert "flags 10 of the 1000 population records (1%), known non-members" in html
    rows = parse(html).rows
    assert len([r for r in rows["provenance"] if r]) == 9
    # the long per-record and per-group tables start collapsed
    assert '<details class="records">' in html and '<details class="groups">' in html


def test_most_exposed_records_are_the_top_scoring_members(run: RunResult) -> None:
    audit = run["membership.lira[online]"]
    html = render_html(run)
    section = html[html.index('id="audit-membership.lira-online-"') :]
    section = section[: section.index('<details class="audit"', 10)]
    table = section[section.index("Most exposed records") :]
    numbers = re.findall(r'<tr><td class="num">(\d+)</td><td class="num">(\d+)</td>', table)
    scores, is_member = audit.arrays["scores"], audit.arrays["is_member"]
    expected = np.argsort(-np.where(is_member == 1, scores, -np.inf))[:10]
    assert [int(i) for i, _ in numbers[:10]] == expected.tolist()
    assert [int(c) for _, c in numbers[:10]] == audit.arrays["label"][expected].tolist()


def test_groups_table_lists_every_group(run: RunResult) -> None:
    html = render_html(run)
    for c in range(N_CLASSES):
        assert f"<td>class={c}</td>" in html
    assert "Not estimable in any group: tpr_at_fpr_0.001" in html


@pytest.mark.parametrize(
    ("verdicts", "drop_failed", "banner"),
    [
        ([], False, "INCOMPLETE"),  # an audit failed: never a green badge
        ([], True, "COMPLETE"),
        (
            [Verdict("membership.*.auc>0.9", "membership.lira[online].auc", 0.76, False)],
            True,
            "PASS",
        ),
        (
            [Verdict("membership.*.auc>0.5", "membership.lira[online].auc", None, True)],
            True,
            "FAILED",
        ),
    ],
)
def test_banner(run: RunResult, verdicts: list[Verdict], drop_failed: bool, banner: str) -> None:
    run.verdicts = verdicts
    if drop_failed:
        run.audits = [a for a in run.audits if a.status != "failed"]
    html = render_html(run)
    header = html[html.index('<header class="top">') : html.index("</header>")]
    assert f"<strong>{banner}</strong>" in header


def test_an_epsilon_bound_of_zero_reads_no_evidence() -> None:
    audit = membership_audit("membership.loss", 0.0, 0)
    audit.metrics["epsilon_lower_bound"] = Estimate(0.0, None, 800)
    html = render_html(RunResult([audit]))
    row = html[html.index("<td><code>epsilon_lower_bound</code></td>") :]
    row = row[: row.index("</tr>")]
    assert ">no evidence<" in row and "≥" not in row


def test_user_text_is_escaped() -> None:
    run = RunResult(
        [AuditResult("membership.loss", status="failed", reason="<script>alert(1)</script>")],
        warnings=["<img src=x onerror=alert(1)>"],
    )
    html = render_html(run)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_renders_runs_without_membership_audits_or_provenance() -> None:
    run = RunResult([AuditResult("robustness.pgd", metrics={"acc": Estimate(0.5, None, 10)})])
    doc = parse(render_html(run))
    assert doc.errors == []
    assert len(doc.rows["summary"]) == 2
    assert "provenance" not in doc.rows


def test_rendering_is_deterministic(run: RunResult) -> None:
    assert render_html(run) == render_html(run)


def test_write_report(run: RunResult, tmp_path: Path) -> None:
    path = write_report(run, tmp_path / "new" / "dir")
    assert path == tmp_path / "new" / "dir" / "report.html"
    assert path.read_text(encoding="utf-8") == render_html(run)
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]


def test_a_single_class_audit_gets_no_figures() -> None:
    audit = membership_audit("membership.loss", 1.0, 0)
    audit.arrays["is_member"] = np.ones_like(audit.arrays["is_member"])
    html = render_html(RunResult([audit]))
    assert parse(html).errors == []
    assert "Most exposed records" not in html


def test_docstring_examples() -> None:
    assert doctest.testmod(html_module).failed == 0


def test_an_attack_run_twice_keeps_both_curves() -> None:
    run = RunResult(
        [membership_audit("membership.loss", 1.0, 0), membership_audit("membership.loss", 0.2, 1)]
    )
    html = render_html(run)
    assert "membership.loss (AUC" in html and "membership.loss #2 (AUC" in html
