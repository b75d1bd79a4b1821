"""A small project on disk: a torch MLP (factory + safetensors), .npz data and a config."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from torch import nn

MODEL_PY = """
from torch import nn

def build(hidden=64):
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
"""

CONFIG = """
seed = 0
[target]
kind = "torch"
factory = "model.py:build"
weights = "model.safetensors"

[data]
members = "members.npz"
nonmembers = "nonmembers.npz"
population = "population.npz"

[[audits]]
name = "membership.loss"
"""


def _train(x: np.ndarray, y: np.ndarray) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model


@pytest.fixture(scope="session")
def trained_digits() -> dict[str, np.ndarray | dict]:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    members = (x[:300], y[:300])
    model = _train(*members)
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "members": members,
        "nonmembers": (x[300:900], y[300:900]),
        "population": (x[900:1500], y[900:1500]),
    }


@pytest.fixture()
def project(tmp_path: Path, trained_digits) -> Callable[..., Path]:
    """Write the project; keyword arguments override files (``config=...``, ``members=(x, y)``)."""

    def make(**overrides) -> Path:
        (tmp_path / "model.py").write_text(textwrap.dedent(overrides.get("model_py", MODEL_PY)))
        save_file(trained_digits["state"], str(tmp_path / "model.safetensors"))
        for role in ("members", "nonmembers", "population"):
            x, y = overrides.get(role, trained_digits[role])
            np.savez(tmp_path / f"{role}.npz", x=x, y=y)
        (tmp_path / "audit.toml").write_text(textwrap.dedent(overrides.get("config", CONFIG)))
        return tmp_path / "audit.toml"

    return make
