"""The registered certifiers on one small trained ReLU network, against each other, the exact
checker and the strongest attack: no record certified robust is broken by an attack or refuted
by the exact checker; FGP agrees with the exact checker wherever it decides; IBP ≤ CROWN ≤
exact on certified accuracy; every method's certified accuracy stays below the attacked one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unmeasured.api import audit
from unmeasured.audits.robustness.base import STATUS_CODES

EPSILONS = [0.01, 0.03, 0.06]
ROBUST = STATUS_CODES["robust"]


@pytest.fixture(scope="module")
def small_net(digits_mlp):  # type: ignore[no-untyped-def]
    """A 64-12-10 ReLU net trained on the digits MLP's training records, and 60 test records."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    x, y = digits_mlp.x, digits_mlp.y
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x[60:]), y[60:]).backward()
        optimizer.step()
    return net.eval(), x[:60].numpy(), y[:60].numpy()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_certificates_never_contradict_the_exact_checker_or_an_attack(small_net, norm: str) -> None:
    net, x, y = small_net
    # the exact L2 checker (a mixed-integer quadratic program) is slow: fewer records there
    epsilons = EPSILONS if norm == "linf" else [0.1, 0.6]
    common = {"epsilons": epsilons, "norm": norm, "max_records": 40 if norm == "linf" else 20}
    names = [
        "robustness.ibp",
        "robustness.crown",
        "robustness.lipschitz",
        "robustness.fgp",
        "robustness.exact",
    ]
    run = audit(
        net,
        test=(x, y),
        input_bounds=(0.0, 1.0),
        audits=[(n, common) for n in names] + [("robustness.apgd", {**common, "steps": 50})],
    )
    results = {a.name: a for a in run.audits}
    assert all(a.status == "ok" for a in run.audits), [(a.id, a.reason) for a in run.audits]
    status = {n: results[n].arrays["status"] for n in names}
    attacked_robust = results["robustness.apgd"].arrays["robust"].astype(bool)
    exact = status["robustness.exact"]
    assert (exact != STATUS_CODES["timeout"]).all()
    for n in names:
        certified = status[n] == ROBUST
        assert not (certified & ~attacked_robust).any(), n  # never broken by the attack
        assert not (certified & (exact == STATUS_CODES["not_robust"])).any(), n
        assert results[n].details["invalid_witnesses"] == 0
    fgp = status["robustness.fgp"]
    decided = (fgp == ROBUST) | (fgp == STATUS_CODES["not_robust"])
    assert (fgp[decided] == exact[decided]).all()
    assert decided.mean() > 0.9
    count = {n: (s == ROBUST).sum(axis=0) for n, s in status.items()}
    assert (count["robustness.ibp"] <= count["robustness.crown"]).all()
    assert (count["robustness.crown"] <= count["robustness.exact"]).all()
    # the curve falls with epsilon, and the largest radius breaks something
    exact_accuracy = [
        results["robustness.exact"].metrics[f"certified_accuracy_at_{e:g}"].value for e in epsilons
    ]
    assert (
        exact_accuracy == sorted(exact_accuracy, reverse=True)
        and exact_accuracy[-1] < exact_accuracy[0]
    )


def test_smoothing_certifies_the_smoothed_classifier(small_net) -> None:
    net, x, y = small_net
    (result,) = audit(
        net,
        test=(x, y),
        input_bounds=(0.0, 1.0),
        audits=[("robustness.smoothing", {"epsilons": [0.0, 0.25, 1.0], "sigma": 0.25, "n": 2000})],
    ).audits
    m = result.metrics
    at = [m[f"certified_accuracy_at_{e:g}"].value for e in (0.0, 0.25, 1.0)]
    assert at[0] > 0.5 and at[0] >= at[1] >= at[2]
    assert at[2] == 0.0  # with n = 2000 and alpha = 0.001 no radius reaches 1.0 at sigma 0.25
    assert np.isin(result.arrays["status"], [STATUS_CODES["robust"], STATUS_CODES["unknown"]]).all()
