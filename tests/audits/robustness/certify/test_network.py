"""The ReLU-network form computes exactly what the module computes, and refuses what it cannot
represent with a message naming the layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unmeasured.audits.robustness.certify.network import to_relu_network
from unmeasured.errors import TargetError


def _randomise_batch_norm(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(1)
    for layer in model.modules():
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            size = layer.num_features
            layer.running_mean.copy_(torch.randn(size, generator=generator))
            layer.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.randn(size, generator=generator))
            layer.bias.data.copy_(torch.randn(size, generator=generator))
    return model.eval()


ARCHITECTURES = {
    "mlp": (lambda: nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 4)), (6,)),
    "mlp with batch norm, dropout and a nested block": (
        lambda: nn.Sequential(
            nn.Linear(6, 10),
            nn.BatchNorm1d(10),
            nn.ReLU(),
            nn.Sequential(nn.Dropout(0.3), nn.Linear(10, 8), nn.ReLU(), nn.ReLU()),
            nn.BatchNorm1d(8),  # after a ReLU: folded into the next layer
            nn.Linear(8, 4),
        ),
        (6,),
    ),
    "cnn": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1, stride=2),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.Conv2d(3, 4, 2, groups=1, dilation=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 3 * 3, 5),
        ),
        (2, 8, 8),
    ),
    "ends in a ReLU": (
        lambda: nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2), nn.ReLU()),
        (3,),
    ),
}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_network_computes_what_the_module_computes(name: str) -> None:
    torch.manual_seed(0)
    build, shape = ARCHITECTURES[name]
    model = _randomise_batch_norm(build()).double()
    network = to_relu_network(model, shape)
    x = torch.randn(16, *shape, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(network(x), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(network(x.reshape(16, -1)), expected, rtol=1e-10, atol=1e-10)
    pattern = network.activation_pattern(x)
    assert pattern.shape == (16, sum(network.hidden_sizes))


def test_batch_norm_is_folded_into_the_layer_before_it() -> None:
    model = _randomise_batch_norm(
        nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    )
    network = to_relu_network(model, (4,))
    assert len(network.weights) == 2
    assert network.hidden_sizes == (6,)


def test_a_float32_module_gives_a_float64_network() -> None:
    network = to_relu_network(nn.Sequential(nn.Linear(3, 2)), (3,))
    assert network.dtype == torch.float64
    assert not network.weights[0].requires_grad


@pytest.mark.parametrize(
    ("model", "shape", "message"),
    [
        (
            nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.Tanh())),
            (4,),
            "layer '1.1' (Tanh)",
        ),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), (1, 6, 6), "layer '1' (MaxPool2d)"),
        (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).train(), (4,), "eval mode"),
        (nn.Sequential(nn.Dropout(0.5)).train(), (4,), "training mode"),
        (nn.Sequential(nn.Linear(4, 4)), (5,), "takes 4 features"),
        (nn.Sequential(nn.Conv2d(3, 2, 3)), (1, 8, 8), "takes 3 channels"),
        (nn.Sequential(nn.Flatten(0)), (4,), "start_dim=1"),
    ],
)
def test_unsupported_models_are_refused_by_name(
    model: nn.Module, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(TargetError, match="^model: layer ") as error:
        to_relu_network(model, shape)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_dense_matrix_over_the_limit_is_refused() -> None:
    with pytest.raises(TargetError, match=r"layer '0' \(Conv2d\).*max_dense_entries=1000"):
        to_relu_network(
            nn.Sequential(nn.Conv2d(1, 4, 3, padding=1)), (1, 10, 10), max_dense_entries=1000
        )


def test_records_of_the_wrong_size_are_refused() -> None:
    network = to_relu_network(nn.Sequential(nn.Linear(3, 2)), (3,))
    with pytest.raises(TargetError, match="x: records of shape"):
        network(torch.zeros(2, 4))
