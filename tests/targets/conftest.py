"""Tiny seeded models and data shared by the target tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


@pytest.fixture()
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(23, 4)).astype(np.float32)


@pytest.fixture()
def y() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 3, 23)


@pytest.fixture()
def mlp() -> nn.Module:
    """A 4 → 3 classifier whose dropout makes train-mode outputs random."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))


def eval_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The reference answer: the module itself, in eval mode, without autograd."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x)).double().numpy()
    model.train(was_training)
    return out
