"""Planted truth for `membership.whitebox`: a model that memorized random labels is caught with
the calibrated precision on held-out records, and the layers near the output carry the signal;
a model that never saw the members is not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unmeasured.api import audit
from unmeasured.audits.membership.whitebox import default_layers, precision_threshold
from unmeasured.errors import TargetError

DIM, CLASSES, N = 20, 5, 200


def _train(x: np.ndarray, y: np.ndarray) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(DIM, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, CLASSES)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def planted() -> dict:
    """Random inputs with random labels: whatever the model learns of its members is memorized.
    ``overfit`` trained on the members; ``clean`` on other records of the same distribution."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3 * N, DIM)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=3 * N)
    members, nonmembers = (x[:N], y[:N]), (x[N : 2 * N], y[N : 2 * N])
    return {
        "members": members,
        "nonmembers": nonmembers,
        "overfit": _train(*members),
        "clean": _train(x[2 * N :], y[2 * N :]),
    }


def _run(planted: dict, model: str, **params):  # type: ignore[no-untyped-def]
    run = audit(
        planted[model],
        members=planted["members"],
        nonmembers=planted["nonmembers"],
        audits=[("membership.whitebox", params)],
        seed=0,
    )
    result = run["membership.whitebox"]
    assert result.status == "ok", result.reason
    return result


def test_memorizing_model_is_caught_at_the_calibrated_precision(planted: dict) -> None:
    result = _run(planted, "overfit")
    # measured: AUC 0.923 [0.876, 0.970]; at the threshold calibrated for 90% precision (75%
    # confidence on 100 + 100 calibration records), held-out precision 0.873 [0.765, 0.944] and
    # recall 0.550 [0.447, 0.650] on 100 + 100 held-out records: consistent with the target and
    # far above the base rate (0.5)
    auc = result.metrics["auc"]
    assert auc.value > 0.85 and auc.ci[0] > 0.5
    precision = result.metrics["operating_precision"]
    assert precision.ci[0] <= 0.9 <= precision.ci[1] and precision.value > 0.8
    assert precision.ci[0] > result.details["base_rate"] == 0.5
    assert result.metrics["operating_tpr"].value > result.metrics["false_alarm_rate"].value
    assert result.headline.metric == "operating_precision" and result.headline.concern
    # held out: half of each side calibrated, the other half is what the figures rest on
    assert result.details["n_members"] == result.details["n_nonmembers"] == N // 2
    assert len(result.arrays["scores"]) == N
    calibration = set(range(2 * N)) - set(result.arrays["record_index"].tolist())
    assert len(calibration) == result.details["n_calibration"] == N
    # which layers carry the signal: measured AUC 0.712 (first), 0.887, 0.924 (logits)
    layer_auc = {k: g["auc"].value for k, g in result.groups.items() if k.startswith("layer=")}
    assert list(layer_auc) == ["layer=0", "layer=2", "layer=4"]
    assert layer_auc["layer=4"] > layer_auc["layer=0"] + 0.2
    assert result.details["strongest_layer"] == "4"


def test_model_that_never_saw_the_members_is_not_flagged(planted: dict) -> None:
    result = _run(planted, "clean")
    # measured: AUC 0.455 [0.375, 0.535]; no threshold reaches 90% precision on the calibration
    # records (the best point precision is 0.735), so no operating point
    auc = result.metrics["auc"]
    assert auc.ci[0] <= 0.5 <= auc.ci[1]
    precision = result.metrics["operating_precision"]
    assert precision.value is None or precision.ci[0] <= result.details["base_rate"]
    assert not result.headline.concern


def test_known_members_and_population_calibrate(planted: dict) -> None:
    """``known``: a training sample and the population calibrate; audited copies of a
    calibration record are never judged."""
    members, nonmembers = planted["members"], planted["nonmembers"]
    rng = np.random.default_rng(7)
    population = (rng.normal(size=(N, DIM)).astype(np.float32), rng.integers(0, CLASSES, N))
    run = audit(
        planted["overfit"],
        members=members,
        nonmembers=nonmembers,
        train_sample=(members[0][: N // 2], members[1][: N // 2]),
        population=population,
        audits=[("membership.whitebox", {"signal": "activations"})],
        seed=0,
    )
    result = run["membership.whitebox"]
    assert result.status == "ok", result.reason
    assert "training sample" in result.details["calibrated_on"]
    assert result.details["n_calibration"] == N // 2 + N
    # the members in the training sample are left out; every non-member is judged
    assert result.details["n_members"] == N // 2 and result.details["n_nonmembers"] == N
    assert set(result.arrays["record_index"].tolist()) == set(range(N // 2, 2 * N))
    assert result.metrics["auc"].value > 0.8


def test_unknown_layer_lists_the_model_layers(planted: dict) -> None:
    with pytest.raises(TargetError, match="no layer 'fc9'.*choose from"):
        _run(planted, "overfit", layers=["fc9"])


def test_default_layers_are_linear_and_convolution_layers() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    assert default_layers(model) == ["0", "3"]


def test_precision_threshold() -> None:
    scores = np.arange(30.0)
    is_member = np.r_[np.zeros(10), np.ones(20)].astype(np.int8)
    base_rate = 2 / 3
    # from 10 up only members are flagged; 9 adds one non-member: 20 of 21 still has a
    # one-sided 60% lower bound above 0.9, 8 (20 of 22) does not
    assert precision_threshold(scores, is_member, 0.9, base_rate, 0.6) == (9.0, 1.0)
    # with 95% confidence, even 20 of 20 (lower bound 0.05 ** (1 / 20) = 0.861) is not enough
    assert precision_threshold(scores, is_member, 0.9, base_rate, 0.95) == (None, 1.0)
    # were members 10% of the records judged, one false alarm in ten non-members would cost
    # half the precision
    assert precision_threshold(scores, is_member, 0.5, 0.1, 0.6)[0] == 10.0
    # thresholds flagging fewer than min_flagged records are never chosen
    assert precision_threshold(scores, is_member, 0.9, base_rate, 0.6, min_flagged=22) == (
        None,
        20 / 22,
    )
