"""BatchNorm adaptation: it undoes a planted input shift, mixes with the prior as N/(N+n), and
never touches the original module."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from unmeasured.audits.robustness.bn_adaptation import adapt_batchnorm, batchnorm_layers
from unmeasured.errors import ConfigError, TargetError


@pytest.fixture(scope="module")
def bn_net():
    """A conv + BatchNorm net trained on digits images; an unpadded convolution is linear, so a
    contrast and brightness shift of the input is an affine shift of what BatchNorm sees."""
    from unmeasured.data import load_builtin

    records = load_builtin("digits", image=True)
    torch.manual_seed(0)
    order = torch.randperm(len(records))
    x, y = torch.from_numpy(records.x)[order], torch.from_numpy(records.y)[order]
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x[300:]), y[300:]).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return net.eval(), x[:300], y[:300]


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(x).argmax(dim=1) == y).float().mean().item()


def _shift(x: torch.Tensor) -> torch.Tensor:
    """Low contrast on a bright background: 0.2·x + 0.7."""
    return 0.2 * x + 0.7


def test_full_adaptation_recovers_the_clean_accuracy_under_a_planted_shift(bn_net) -> None:
    net, x, y = bn_net
    clean = _accuracy(net, x, y)
    shifted = _accuracy(net, _shift(x), y)
    adapted = _accuracy(adapt_batchnorm(net, _shift(x)), _shift(x), y)
    assert clean > 0.9
    assert shifted < clean - 0.4
    # the shift is affine before the BatchNorm layer, so re-estimated statistics undo it up to
    # the difference between the test batch's statistics and the training ones
    assert adapted > clean - 0.05
    assert adapted > shifted + 0.4


def test_prior_strength_mixes_the_statistics_as_n_over_n_plus_n(bn_net) -> None:
    net, x, _ = bn_net
    shifted = _shift(x)
    full = batchnorm_layers(adapt_batchnorm(net, shifted))[0]
    original = batchnorm_layers(net)[0]
    strength = 100.0
    mixed = batchnorm_layers(adapt_batchnorm(net, shifted, prior_strength=strength))[0]
    keep = strength / (strength + len(x))
    torch.testing.assert_close(
        mixed.running_mean, keep * original.running_mean + (1 - keep) * full.running_mean
    )
    torch.testing.assert_close(
        mixed.running_var, keep * original.running_var + (1 - keep) * full.running_var
    )


def test_accuracy_moves_from_adapted_to_original_as_the_prior_grows(bn_net) -> None:
    net, x, y = bn_net
    shifted = _shift(x)
    accuracy = [
        _accuracy(adapt_batchnorm(net, shifted, prior_strength=n), shifted, y)
        for n in (0.0, 300.0, 3000.0, 1e7)
    ]
    assert accuracy[0] > accuracy[-1] + 0.4
    assert all(a >= b for a, b in itertools.pairwise(accuracy)), accuracy
    assert accuracy[-1] == pytest.approx(_accuracy(net, shifted, y), abs=0.01)


def test_the_original_module_is_bit_identical_after(bn_net) -> None:
    net, x, _ = bn_net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    momentum, training = batchnorm_layers(net)[0].momentum, net.training
    adapted = adapt_batchnorm(net, _shift(x), prior_strength=16)
    after = net.state_dict()
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert torch.equal(value, after[name]), name
    assert batchnorm_layers(net)[0].momentum == momentum and net.training == training
    assert not adapted.training
    assert not torch.equal(
        batchnorm_layers(adapted)[0].running_mean, batchnorm_layers(net)[0].running_mean
    )


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TargetError, match="module"):
        adapt_batchnorm(nn.Linear(3, 2), torch.rand(4, 3))
    with pytest.raises(ConfigError, match="prior_strength"):
        adapt_batchnorm(nn.BatchNorm1d(3), torch.rand(4, 3), prior_strength=-1)
