"""Intentional leakage from a TOML config: a model whose training code hid its members in the
low bits of its weights, saved as safetensors, is simulated against and detected by the CLI;
both audits appear in results.json and the report. A config that lacks what an audit needs is
refused before any training (exit 2).

Measured: the detector flags the saved model (low-bit entropy 5.56 bits against 7.94 for 4
reference models; Holm-adjusted p 2.6e-6) and the simulation hides 300 records with lsb,
all of whose values come back.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits

from unmeasured.cli import main
from unmeasured.training import MLPRecipe
from unmeasured.training.malicious import MaliciousRecipe

MODEL_PY = """
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
"""
RECIPE_TOML = (
    '[recipe]\nkind = "mlp"\nhidden = [64]\nepochs = 40\nbatch_size = 64\nlr = 0.003\n'
    'device = "cpu"\n'
)
TARGET_TOML = (
    '[target]\nkind = "torch"\nfactory = "model.py:build"\nweights = "model.safetensors"\n'
    "input_bounds = [0.0, 1.0]\n"
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    recipe = MLPRecipe(hidden=(64,), epochs=40, batch_size=64, lr=3e-3, device="cpu")
    model = MaliciousRecipe(base=recipe, encoding="lsb").fit(
        x[:800], y[:800], num_classes=10, seed=3
    )
    root = tmp_path_factory.mktemp("leakage-config")
    (root / "model.py").write_text(textwrap.dedent(MODEL_PY))
    save_file(model.state_dict(), str(root / "model.safetensors"))
    np.savez(root / "members.npz", x=x[:800], y=y[:800])
    np.savez(root / "test.npz", x=x[1000:], y=y[1000:])
    return root


def _config(root: Path, name: str, data: str, audits: str) -> Path:
    path = root / f"{name}.toml"
    path.write_text(
        f'cache_dir = "cache-{name}"\n{TARGET_TOML}[data]\n{data}{RECIPE_TOML}{textwrap.dedent(audits)}'
    )
    return path


def test_leakage_audits_from_a_config(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(
        root,
        "leakage",
        'members = "members.npz"\ntest = "test.npz"\n',
        """
        [[audits]]
        name = "memorization.leakage_simulate"
        encodings = ["lsb", "capacity"]
        [[audits]]
        name = "memorization.leakage_detect"
        num_models = 4
        """,
    )
    out = root / "run"
    code = main(["audit", str(config), "--out", str(out), "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    simulate, detect = results["audits"]
    assert simulate["status"] == detect["status"] == "ok"
    assert simulate["metrics"]["recovered_lsb"]["value"] == 1.0
    assert simulate["details"]["hidden_records"]["lsb"] == 300
    assert detect["metrics"]["flagged"]["value"] == 1.0
    assert detect["details"]["smallest"] == "low_bit_entropy"
    html = (out / "report.html").read_text()
    assert "audit-memorization.leakage_simulate-encodings" in html
    assert "audit-memorization.leakage_detect-statistics" in html
    assert "flagged: the model hides data" in html


def test_unmet_needs_are_refused_before_training(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(
        root,
        "no-test",
        'members = "members.npz"\n',
        """
        [[audits]]
        name = "memorization.leakage_simulate"
        [[audits]]
        name = "memorization.leakage_detect"
        data = "train_sample"
        """,
    )
    code = main(["audit", str(config), "--out", str(root / "refused"), "-q"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "data.test" in err and "data.train_sample" in err
    assert not any((root / "cache-no-test").rglob("*.npy"))  # nothing was trained
