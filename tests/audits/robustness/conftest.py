"""Small models with known robustness, shared by the robustness tests: linear classifiers with
their exact minimal adversarial distance, a trained digits MLP, and two tiny audits (an optimal
attack and an exact certifier of a binary linear classifier) registered for the tests of the
family bases."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from unmeasured.audits.base import AuditContext
from unmeasured.audits.registry import REGISTRY, register
from unmeasured.audits.robustness import Certificate, Certifier, EvasionAttack
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


# ---- the binary linear classifier of the family-base tests

W = torch.tensor([[0.0, 0.0], [2.0, -1.0]])  # logit_1 - logit_0 = 2 x0 - x1 + 0.1
B = torch.tensor([0.0, 0.1])


def linear_model() -> nn.Linear:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(W)
        model.bias.copy_(B)
    return model.eval()


def linear_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Records inside [0, 1]^2 with some labels wrong, so clean accuracy is below 1."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.3, 0.7, size=(n, 2)).astype(np.float32)
    margin = x @ np.array([2.0, -1.0]) + 0.1
    y = (margin > 0).astype(np.int64)
    flip = rng.random(n) < 0.1
    y[flip] = 1 - y[flip]
    return x, y


def exact_distance(x: np.ndarray, norm: str) -> np.ndarray:
    w = np.array([2.0, -1.0])
    dual = np.abs(w).sum() if norm == "linf" else np.linalg.norm(w)
    return np.abs(x @ w + 0.1) / dual


def _optimal_step(x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """The optimal perturbation of a binary linear classifier: straight at the boundary."""
    w = (W[1] - W[0]).to(x)
    side = torch.sign(x @ w + (B[1] - B[0]))[:, None]
    direction = torch.sign(w) if norm == "linf" else w / w.norm()
    return x - side * direction * eps


class OptimalLinearAttack(EvasionAttack):
    name = "robustness.test_linear_attack"

    def perturb(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        return _optimal_step(x, self.norm, eps)


class ExactLinearCertifier(Certifier):
    name = "robustness.test_linear_certifier"

    def certify(self, ctx: AuditContext, x, y, *, eps, bounds) -> Sequence[Certificate]:  # type: ignore[no-untyped-def]
        dist = exact_distance(x.cpu().numpy(), self.norm)
        wrong = (x @ (W[1] - W[0]) + (B[1] - B[0]) > 0).long() != y
        # a misclassified record is its own witness; any other is pushed across the boundary
        witness = torch.where(wrong[:, None], x, _optimal_step(x, self.norm, eps))
        return [
            Certificate("not_robust", witness[i]) if wrong[i] or d <= eps else Certificate("robust")
            for i, d in enumerate(dist)
        ]


class LyingCertifier(Certifier):
    """Claims every record is not robust, with the record itself as the 'witness'."""

    name = "robustness.test_lying_certifier"

    def certify(self, ctx, x, y, *, eps, bounds):  # type: ignore[no-untyped-def]
        return [Certificate("not_robust", x[i]) for i in range(len(x))]


TEST_AUDITS = (OptimalLinearAttack, ExactLinearCertifier, LyingCertifier)


@pytest.fixture()
def robustness_test_audits() -> Iterator[None]:
    """Register the test audits for one test, then remove them."""
    for cls in TEST_AUDITS:
        register(cls)
    yield
    for cls in TEST_AUDITS:
        REGISTRY.pop(cls.name, None)
