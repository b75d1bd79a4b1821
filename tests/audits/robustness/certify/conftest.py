"""Shared fixtures and helpers for the certifier tests: tiny ReLU networks (random and trained),
planted linear classifiers whose distances are known in closed form, and a small PGD attack used
as an independent source of counterexamples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unmeasured.audits.robustness.certify.network import ReluNetwork, to_relu_network
from unmeasured.audits.robustness.norms import clip_to_box, lp_norm, project_to_ball

BOX = (0.0, 1.0)


def random_network(
    seed: int, inputs: int = 3, widths: tuple[int, ...] = (8, 8), classes: int = 3
) -> ReluNetwork:
    """A randomly initialised MLP with weights scaled up so that its regions and decision
    boundaries are dense inside the unit box."""
    generator = torch.Generator().manual_seed(seed)
    sizes = (inputs, *widths, classes)
    weights = tuple(
        torch.randn(sizes[k + 1], sizes[k], generator=generator, dtype=torch.float64) * 1.5
        for k in range(len(sizes) - 1)
    )
    biases = tuple(
        torch.randn(sizes[k + 1], generator=generator, dtype=torch.float64)
        for k in range(len(sizes) - 1)
    )
    return ReluNetwork(weights, biases, (inputs,))


def linear_network(weight: list[list[float]], bias: list[float]) -> ReluNetwork:
    """A classifier with no hidden layer: its decision boundaries are planted hyperplanes."""
    return ReluNetwork(
        (torch.tensor(weight, dtype=torch.float64),),
        (torch.tensor(bias, dtype=torch.float64),),
        (len(weight[0]),),
    )


def blobs(
    seed: int = 0, n: int = 600, inputs: int = 4, classes: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, inputs, generator=generator) * 0.25 + 0.5
    labels = torch.randint(0, classes, (n,), generator=generator)
    x = (centers[labels] + 0.12 * torch.randn(n, inputs, generator=generator)).clamp(*BOX)
    return x, labels


def train_mlp(
    seed: int = 0, widths: tuple[int, ...] = (16, 16)
) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """A small MLP trained full-batch on Gaussian blobs in the unit box (about 96% accuracy)."""
    torch.manual_seed(seed)
    x, y = blobs(seed)
    sizes = (x.shape[1], *widths)
    layers: list[nn.Module] = []
    for k in range(len(widths)):
        layers += [nn.Linear(sizes[k], sizes[k + 1]), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-1], int(y.max()) + 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small only lose from threads on a busy machine
    try:
        for _ in range(300):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), x, y


@pytest.fixture(scope="session")
def trained() -> tuple[ReluNetwork, torch.Tensor]:
    """The trained blobs MLP as a `ReluNetwork`, and 40 of its training points (float64)."""
    model, x, _ = train_mlp()
    return to_relu_network(model, (x.shape[1],)), x[:40].double()


def pgd_attack(
    network: ReluNetwork,
    x: torch.Tensor,
    label: int,
    eps: float,
    norm: str,
    bounds: tuple[float, float] | None = BOX,
    *,
    restarts: int = 8,
    steps: int = 60,
    seed: int = 0,
) -> torch.Tensor | None:
    """A margin-loss PGD with random restarts; an input in the set labelled otherwise, or None."""
    generator = torch.Generator().manual_seed(seed)
    start = x.reshape(1, -1).double().expand(restarts, -1)
    delta = (torch.rand(start.shape, generator=generator, dtype=torch.float64) * 2 - 1) * eps
    delta = project_to_ball(delta, eps, norm)
    step = 2.5 * eps / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        logits = network(clip_to_box(start + delta, bounds))
        own = logits[:, label]
        rival = torch.cat([logits[:, :label], logits[:, label + 1 :]], dim=1).amax(dim=1)
        (rival - own).sum().backward()
        with torch.no_grad():
            grad = delta.grad
            if norm == "linf":
                move = grad.sign()
            else:
                move = grad / lp_norm(grad, "l2").clamp_min(1e-12)[:, None]
            candidate = clip_to_box(start + project_to_ball(delta + step * move, eps, norm), bounds)
            delta = candidate - start
            logits = network(candidate)
            flipped = logits.argmax(dim=1) != label
            if flipped.any():
                return candidate[flipped.nonzero()[0, 0]]
    return None
