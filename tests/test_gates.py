import pytest

from unmeasured.errors import InputError
from unmeasured.gates import check_rules, evaluate, parse_rule
from unmeasured.results import AuditResult, RunResult
from unmeasured.stats import Estimate


def _run() -> RunResult:
    return RunResult(
        audits=[
            AuditResult(
                "membership.loss",
                metrics={
                    "auc": Estimate(0.7, (0.65, 0.75), 100),
                    "tpr_at_fpr_0.01": Estimate(0.08, (0.05, 0.1), 100),
                    "tpr_at_fpr_0.001": Estimate.not_estimable("too few", 100),
                },
            ),
            AuditResult(
                "membership.entropy",
                metrics={
                    "auc": Estimate(0.55, (0.5, 0.6), 100),
                    "tpr_at_fpr_0.01": Estimate(0.02, (0.01, 0.03), 100),
                },
            ),
        ]
    )


def test_wildcards_and_dotted_metric_names() -> None:
    verdicts = evaluate(_run(), ["membership.*.tpr_at_fpr_0.01>0.05"])
    assert {v.metric: v.breached for v in verdicts} == {
        "membership.loss.tpr_at_fpr_0.01": True,
        "membership.entropy.tpr_at_fpr_0.01": False,
    }


@pytest.mark.parametrize(
    ("rule", "breached"),
    [
        ("membership.loss.auc>=0.7", True),
        ("membership.loss.auc>0.7", False),
        ("membership.loss.auc<0.71", True),
        ("membership.loss.auc <= 0.69", False),
    ],
)
def test_operators(rule: str, breached: bool) -> None:
    assert evaluate(_run(), [rule])[0].breached is breached


def test_not_estimable_breaches_unless_the_rule_allows_it() -> None:
    (v,) = evaluate(_run(), ["membership.loss.tpr_at_fpr_0.001>0"])
    assert v.value is None and v.breached and "not estimable: too few" in v.reason
    (v,) = evaluate(_run(), ["membership.loss.tpr_at_fpr_0.001>0 if estimable"])
    assert v.value is None and not v.breached


def test_variants_are_literal_and_optional() -> None:
    run = _run()
    run.audits[0].id = "membership.lira[online]"
    run.audits[1].id = "membership.lira[offline]"
    assert [v.metric for v in evaluate(run, ["membership.lira[online].auc>0.9"])] == [
        "membership.lira[online].auc"
    ]
    assert len(evaluate(run, ["membership.lira.auc>0.9"])) == 2


def test_a_rule_whose_audit_did_not_produce_it_is_breached() -> None:
    run = _run()
    run.audits[1].status, run.audits[1].metrics = "skipped", {}
    (v,) = evaluate(run, ["membership.entropy.auc>0.9"])
    assert v.breached and "skipped or failed" in v.reason


@pytest.mark.parametrize("rule", ["auc", "membership.loss.auc=0.5", "membership.loss.auc>x", ""])
def test_malformed_rules(rule: str) -> None:
    with pytest.raises(InputError, match="--fail-on"):
        parse_rule(rule)


def test_rule_matching_nothing_lists_the_real_audits_before_the_run() -> None:
    planned = {"membership.loss": ("auc", "tpr_at_fpr_0.01"), "membership.lira[online]": ("auc",)}
    with pytest.raises(
        InputError,
        match=r"audits: membership.loss, membership.lira\[online\]; membership.loss reports auc, tpr_at_fpr_0.01",
    ):
        check_rules(["robustness.*.acc<0.5"], planned)
    assert check_rules(["membership.lira.auc>0.6"], planned)[0].pattern == "membership.lira.auc"
