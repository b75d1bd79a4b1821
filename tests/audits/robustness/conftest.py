"""Robustness audits with a known answer: a binary linear classifier, whose exact distance to
the decision boundary is |w·x + b| / ||w||_q (q the dual norm), attacked optimally and certified
exactly by two tiny audits registered for the tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch
from torch import nn

from unmeasured.audits.base import AuditContext
from unmeasured.audits.registry import REGISTRY, register
from unmeasured.audits.robustness import Certificate, Certifier, EvasionAttack

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
