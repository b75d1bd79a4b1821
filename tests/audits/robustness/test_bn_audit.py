"""`robustness.bn_adaptation` on planted truth: a batch-norm network loses accuracy when its
images get brighter or lose contrast, and re-estimating the statistics on the shifted records
recovers it; the target itself is left untouched; a network without batch norm is refused before work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unmeasured.api import audit
from unmeasured.errors import ConfigError


@pytest.fixture(scope="module")
def bn_net(digits_mlp):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    x, y = digits_mlp.x, digits_mlp.y
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x[100:]), y[100:]).backward()
        optimizer.step()
    return net.eval(), x[:100].numpy().reshape(-1, 1, 8, 8), y[:100].numpy()


def test_adaptation_recovers_accuracy_under_drift(bn_net) -> None:
    net, x, y = bn_net
    state = {k: v.clone() for k, v in net.state_dict().items()}
    (result,) = audit(
        net,
        test=(x, y),
        input_bounds=(0.0, 1.0),
        audits=[
            ("robustness.bn_adaptation", {"corruptions": ["brightness", "contrast"], "severity": 5})
        ],
    ).audits
    m = result.metrics
    with torch.no_grad():
        clean = float((net(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())
    assert m["accuracy_before"].value < clean - 0.1  # the drift hurts
    assert m["adaptation_gain"].ci[0] > 0  # and adaptation recovers part of it
    assert m["accuracy_after"].value > m["accuracy_before"].value
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_a_network_without_batch_norm_is_refused_before_work(digits_mlp) -> None:
    x, y = digits_mlp.x[:50].numpy(), digits_mlp.y[:50].numpy()
    with pytest.raises(ConfigError, match="needs a target that gives batchnorm"):
        audit(digits_mlp.model, test=(x, y), audits=["robustness.bn_adaptation"])
    assert np.isfinite(x).all()
