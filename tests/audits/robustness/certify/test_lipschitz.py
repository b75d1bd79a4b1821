"""Lipschitz margins: exact on a linear classifier, the constants bound every sampled slope,
per-pair constants within √2 of the global one, and nothing certified has a counterexample."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unmeasured.audits.robustness.certify.exact import exact_certify
from unmeasured.audits.robustness.certify.lipschitz import (
    layer_norms,
    lipschitz_certify,
    pairwise_lipschitz,
)
from unmeasured.audits.robustness.certify.network import to_relu_network
from unmeasured.errors import ConfigError

from .conftest import BOX, linear_network, pgd_attack, random_network


def test_a_linear_classifier_gets_its_exact_distance() -> None:
    # class 0 beats class 1 by 1.2 − x0 − x1: the boundary is 0.4/√2 away from (0.4, 0.4) in
    # L2 and 0.2 away in L∞, which the √d conversion turns into 0.4/√2/√2 = 0.2 too
    network = linear_network([[-1.0, -1.0], [0.0, 0.0]], [1.2, 0.0])
    x = torch.tensor([[0.4, 0.4]], dtype=torch.float64)
    l2 = lipschitz_certify(network, x, 0.4 / math.sqrt(2) * 0.99, "l2")
    assert l2.certified.item()
    assert l2.radius.item() == pytest.approx(0.4 / math.sqrt(2), rel=1e-9)
    assert not lipschitz_certify(network, x, 0.4 / math.sqrt(2) * 1.01, "l2").certified.item()
    linf = lipschitz_certify(network, x, 0.19, "linf")
    assert linf.certified.item()
    assert linf.radius.item() == pytest.approx(0.2, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_the_constants_bound_every_sampled_slope(seed: int) -> None:
    network = random_network(seed, inputs=5, widths=(12, 12))
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(2000, 5, generator=generator, dtype=torch.float64)
    b = a + 0.05 * torch.randn(2000, 5, generator=generator, dtype=torch.float64)
    fa, fb = network(a), network(b)
    change = ((fa[:, :, None] - fa[:, None, :]) - (fb[:, :, None] - fb[:, None, :])).abs()
    slope = (change / (a - b).norm(dim=1)[:, None, None]).amax(dim=0)
    constants = pairwise_lipschitz(network)
    assert (slope <= constants).all()
    global_constant = layer_norms(network).prod() * torch.linalg.matrix_norm(
        network.weights[-1], ord=2
    )
    assert (constants <= math.sqrt(2) * global_constant * (1 + 1e-9)).all()


def test_convolutions_and_batch_norm_count_with_their_own_norm() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 3)
    )
    model[1].running_var.fill_(0.01)  # a batch norm that amplifies tenfold
    network = to_relu_network(model.eval(), (1, 4, 4))
    conv_only = to_relu_network(nn.Sequential(model[0]), (1, 4, 4))
    norm = layer_norms(network)[0].item()
    assert norm == pytest.approx(
        torch.linalg.matrix_norm(conv_only.weights[0], ord=2).item() * 10 / math.sqrt(1 + 1e-3),
        rel=1e-6,
    )


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_nothing_certified_has_a_counterexample(trained, norm: str) -> None:
    network, points = trained
    eps = {"linf": 0.005, "l2": 0.01}[norm]
    certificate = lipschitz_certify(network, points, eps, norm)
    assert certificate.certified.any()
    for x, label in zip(
        points[certificate.certified], certificate.labels[certificate.certified], strict=True
    ):
        if norm == "linf":
            assert exact_certify(network, x, eps, norm, BOX).verdict == "robust"
        assert pgd_attack(network, x, int(label), eps, norm, restarts=2, steps=20) is None


def test_a_wrong_label_is_never_certified() -> None:
    network = random_network(0)
    x = torch.rand(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    wrong = (network(x).argmax(dim=1) + 1) % 3
    certificate = lipschitz_certify(network, x, 0.0, "l2", labels=wrong)
    assert not certificate.certified.any()
    assert (certificate.radius == 0).all()


def test_bad_radius_is_refused() -> None:
    with pytest.raises(ConfigError, match="eps"):
        lipschitz_certify(random_network(0), torch.zeros(1, 3), -1.0, "l2")
