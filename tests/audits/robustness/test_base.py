"""The robustness bases on a model with a known answer: an optimal attack and an exact
certifier on a binary linear classifier must both give the exact robust accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from unmeasured.api import audit
from unmeasured.errors import ConfigError

from .conftest import exact_distance, linear_data, linear_model

EPSILONS = (0.0, 0.02, 0.05, 0.1, 0.2)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_attack_and_certificate_meet_at_the_exact_robust_accuracy(
    robustness_test_audits, norm: str
) -> None:
    x, y = linear_data()
    run = audit(
        linear_model(),
        test=(x, y),
        input_bounds=(-10.0, 10.0),
        audits=[
            ("robustness.test_linear_attack", {"epsilons": EPSILONS, "norm": norm}),
            ("robustness.test_linear_certifier", {"epsilons": EPSILONS, "norm": norm}),
        ],
    )
    attack, cert = run.audits
    correct = (x @ np.array([2.0, -1.0]) + 0.1 > 0).astype(int) == y
    assert attack.metrics["clean_accuracy"].value == pytest.approx(correct.mean())
    assert 0.85 < correct.mean() < 0.95  # the planted label noise
    for eps in EPSILONS:
        exact = float((correct & (exact_distance(x, norm) > eps)).mean())
        assert attack.metrics[f"robust_accuracy_at_{eps:g}"].value == pytest.approx(exact)
        assert cert.metrics[f"certified_accuracy_at_{eps:g}"].value == pytest.approx(exact)
    assert exact < correct.mean() - 0.2  # eps = 0.2 breaks many records: the test can fail
    assert cert.details["invalid_witnesses"] == 0
    assert attack.id == f"robustness.test_linear_attack[{norm}]"
    assert attack.headline is not None and attack.headline.concern is True
    broken_at = attack.arrays["smallest_breaking_epsilon"]
    assert ((broken_at > 0) & np.isfinite(broken_at)).sum() > 0


def test_witnesses_are_checked_on_the_target(robustness_test_audits) -> None:
    x, y = linear_data(100)
    run = audit(
        linear_model(),
        test=(x, y),
        input_bounds=(-10.0, 10.0),
        audits=[("robustness.test_lying_certifier", {"epsilons": [0.05]})],
    )
    (cert,) = run.audits
    correct = int(((x @ np.array([2.0, -1.0]) + 0.1 > 0).astype(int) == y).sum())
    # the records it misclassifies anyway are valid witnesses; every other claim is refused
    assert cert.details["invalid_witnesses"] == correct
    assert cert.details["verdicts"]["0.05"]["unknown"] == correct
    assert cert.metrics["certified_accuracy_at_0.05"].value == 0.0


def test_a_test_set_alone_runs_robustness_and_refuses_membership(robustness_test_audits) -> None:
    x, y = linear_data(50)
    run = audit(linear_model(), test=(x, y), audits=["robustness"])
    status = {a.name: (a.status, a.reason) for a in run.audits}
    # a family runs what it can: no batch norm to adapt, no population to train a surrogate on
    assert status.pop("robustness.bn_adaptation") == (
        "skipped",
        "needs a target that gives batchnorm; torch Linear gives gradients, labels, layers, logits, scores, weights",
    )
    assert status.pop("robustness.transfer")[0] == "skipped"
    assert {s for s, _ in status.values()} == {"ok"} and len(status) >= 14
    assert run.target is not None and set(run.target.accuracy) == {"test"}
    assert run.target.bounds_source == "data"
    with pytest.raises(
        ConfigError, match=r"membership.lira\[online\]\) needs data data.members, data.nonmembers"
    ):
        audit(linear_model(), test=(x, y), audits=["membership.lira"])


def test_parameters_are_checked_before_the_run(robustness_test_audits) -> None:
    x, y = linear_data(50)
    with pytest.raises(ConfigError, match="'epsilons' must be a non-empty list"):
        audit(
            linear_model(),
            test=(x, y),
            audits=[("robustness.test_linear_attack", {"epsilons": []})],
        )
    with pytest.raises(ConfigError, match="'norm' must be one of 'linf', 'l2'"):
        audit(
            linear_model(), test=(x, y), audits=[("robustness.test_linear_attack", {"norm": "l3"})]
        )
