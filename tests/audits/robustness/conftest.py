"""Small models with known robustness, shared by the robustness tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from unmeasured.audits.robustness.norms import DUAL, lp_norm
from unmeasured.data import load_builtin


@dataclass
class Planted:
    """A linear classifier, records and each record's exact minimal adversarial distance."""

    model: nn.Linear
    x: torch.Tensor
    y: torch.Tensor
    distance: torch.Tensor

    def robust_count(self, eps: float) -> int:
        return int((self.distance > eps).sum())

    def radius_between_records(self, quantile: float) -> float:
        """A radius at the given quantile of the positive distances, moved half-way to the next
        distance so that no record lies on the boundary of the ball."""
        positive = self.distance[self.distance > 0].sort().values
        index = int(quantile * (len(positive) - 1))
        return float((positive[index] + positive[index + 1]) / 2)


def exact_linear_distance(model: nn.Linear, x: torch.Tensor, y: torch.Tensor, norm: str):
    """Distance from each record to the closest other class's half-space of a linear model:
    min over j != y of (z_y - z_j) / ||w_y - w_j||_dual, and 0 for a misclassified record."""
    with torch.no_grad():
        logits = model(x)
        weight_gaps = model.weight[y][:, None, :] - model.weight[None, :, :]
        dual = lp_norm(weight_gaps.reshape(-1, x.shape[1]), DUAL[norm]).reshape(len(x), -1)
        gaps = (logits.gather(1, y[:, None]) - logits) / dual
        gaps[torch.arange(len(x)), y] = float("inf")
        distance = gaps.min(dim=1).values.clamp_min(0)
        distance[logits.argmax(dim=1) != y] = 0
    return distance


@pytest.fixture(params=["linf", "l2"])
def norm(request) -> str:
    return request.param


def planted_linear(classes: int, norm: str, seed: int, n: int = 200, d: int = 12) -> Planted:
    torch.manual_seed(seed)
    model = nn.Linear(d, classes).eval()
    x = torch.randn(n, d)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    # some records are misclassified from the start: distance 0
    y[: n // 10] = torch.randint(0, classes, (n // 10,))
    return Planted(model, x, y, exact_linear_distance(model, x, y, norm))


@pytest.fixture
def planted():
    return planted_linear


@dataclass
class Trained:
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor

    def accuracy(self, x: torch.Tensor | None = None) -> float:
        with torch.no_grad():
            predicted = self.model(self.x if x is None else x).argmax(dim=1)
        return (predicted == self.y).float().mean().item()


@pytest.fixture(scope="session")
def digits_mlp() -> Trained:
    """A 64-32-10 MLP trained on 1,497 sklearn digits (inputs in [0, 1]); 300 held-out records."""
    records = load_builtin("digits")
    torch.manual_seed(0)
    order = torch.randperm(len(records))
    x, y = torch.from_numpy(records.x)[order], torch.from_numpy(records.y)[order]
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[300:]), y[300:]).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return Trained(model.eval(), x[:300], y[:300])
