"""The credibility block of every membership attack: false alarms at the operating point per
class and per difficulty band, and the neighbour check."""

from __future__ import annotations

import numpy as np

from unmeasured.audits.membership.attack import credibility_groups
from unmeasured.report import render_html
from unmeasured.results import AuditResult, Headline, RunResult
from unmeasured.stats import Estimate


def _block(html: str, audit_id: str) -> str:
    anchor = 'id="audit-' + audit_id.replace("[", "-").replace("]", "-") + '"'
    section = html[html.index(anchor) :]
    end = section.find('<details class="audit"', 10)
    section = section[: end if end > 0 else None]
    return section[section.index('<details class="credibility"') :]


def test_every_membership_attack_shows_a_credibility_block(run: RunResult) -> None:
    check = AuditResult(
        "membership.credibility",
        metrics={
            "member_flag_rate": Estimate(0.4, (0.35, 0.45), 400),
            "neighbour_flag_rate": Estimate(0.38, (0.33, 0.43), 400),
            "false_alarm_rate": Estimate(0.05, (0.03, 0.08), 400),
            "neighbour_to_member_ratio": Estimate(0.95, None, 400),
        },
        details={"attack": "membership.loss", "noise": 0.05, "threshold": 1.0},
        headline=Headline("neighbour_to_member_ratio", "discredible.", concern=True, severity=1),
    )
    html = render_html(RunResult(audits=[*run.audits, check], target=run.target))
    loss, lira = _block(html, "membership.loss"), _block(html, "membership.lira[online]")
    for block in (loss, lira):
        # results without a stored breakdown: per class from the arrays at the operating point
        assert "At a threshold of 2 (the attack&#39;s operating point)" in block
        assert "<td>class=0</td>" in block and "false alarms" in block
    # the loss attack was checked against its neighbours, and failed the check
    assert "DISCREDIBLE" in loss and "0.380 [0.330, 0.430]" in loss
    assert '<details class="credibility" open>' in loss
    assert "Neighbour check not run for this attack (run for membership.loss)" in lira


def test_without_a_neighbour_check_the_block_says_how_to_run_one(run: RunResult) -> None:
    html = render_html(run)
    assert "Neighbour check not run: add membership.credibility" in _block(html, "membership.loss")


def test_breakdown_on_planted_scores() -> None:
    """Class 0's members score 1 and its non-members 0; in class 1 every record scores 1: at a
    threshold of 0.5, class 0 has no false alarm and class 1 accuses all its non-members."""
    scores = np.r_[np.ones(30), np.zeros(30), np.ones(25), np.ones(25)]
    is_member = np.r_[np.ones(30), np.zeros(30), np.ones(25), np.zeros(25)].astype(np.int8)
    klass = np.r_[np.zeros(60), np.ones(50)]
    small = np.zeros(110, dtype=bool)
    small[:5] = True  # 5 members, 0 non-members: too few, left out
    groups = credibility_groups(
        scores, is_member, 0.5, {"class=0": klass == 0, "class=1": klass == 1, "tiny": small}
    )
    assert set(groups) == {"class=0", "class=1"}
    zero, one = groups["class=0"], groups["class=1"]
    assert zero["operating_tpr"].value == 1.0 and zero["false_alarm_rate"].value == 0.0
    assert one["operating_tpr"].value == 1.0 and one["false_alarm_rate"].value == 1.0
    assert zero["false_alarm_rate"].n == 30 and one["false_alarm_rate"].n == 25
    # Clopper-Pearson: 0 of 30 has the upper bound 1 - 0.025 ** (1 / 30)
    assert np.isclose(zero["false_alarm_rate"].ci[1], 1 - 0.025 ** (1 / 30))
    assert zero["auc"].value == 1.0 and one["auc"].value == 0.5
