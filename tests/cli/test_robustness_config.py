"""The robustness family from a config that gives only a test set: every evasion, corruption
and adaptation audit runs on a torch model, the score-based ones on an ONNX file too, and each
appears in results.json and the report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from torch import nn

from unmeasured.cli import main

MODEL_PY = """
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.BatchNorm1d(24), nn.ReLU(), nn.Linear(24, 10))
"""
SMALL = "epsilons = [0.05, 0.15]\nmax_records = 40\n"
RECIPE = '[recipe]\nkind = "mlp"\nhidden = [32]\nepochs = 20\nbatch_size = 32\nlr = 0.003\n'
TORCH_AUDITS = {
    "robustness.fgsm": SMALL,
    "robustness.pgd": SMALL + "steps = 5\n",
    "robustness.apgd": SMALL + "steps = 5\n",
    "robustness.square": SMALL + "queries = 50\n",
    "robustness.transfer": SMALL + "steps = 5\n",
    "robustness.universal": SMALL + "steps = 10\n",
    "robustness.corruptions": 'severities = [1, 5]\nmax_records = 60\ncorruptions = ["gaussian_noise", "contrast"]\n',
    "robustness.bn_adaptation": 'max_records = 60\ncorruptions = ["brightness"]\n',
}
SCORES_ONLY = ("robustness.square", "robustness.transfer", "robustness.corruptions")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    digits = load_digits()
    x = (digits.data / 16).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    namespace: dict = {}
    exec(textwrap.dedent(MODEL_PY), namespace)
    torch.manual_seed(0)
    model = namespace["build"]()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(
            model(torch.from_numpy(x[200:])), torch.from_numpy(y[200:])
        ).backward()
        optimizer.step()
    root = tmp_path_factory.mktemp("robustness")
    (root / "model.py").write_text(textwrap.dedent(MODEL_PY))
    save_file(model.state_dict(), str(root / "model.safetensors"))
    np.savez(root / "test.npz", x=x[:200], y=y[:200])
    model.eval()
    torch.onnx.export(
        model,
        (torch.from_numpy(x[:1]),),
        str(root / "model.onnx"),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return root


def _audit(root: Path, target: str, audits: dict[str, str], capsys) -> dict:
    entries = "".join(f'[[audits]]\nname = "{name}"\n{params}' for name, params in audits.items())
    config = root / f"{target.split()[0]}.toml"
    config.write_text(
        f'[target]\n{target}\ninput_bounds = [0.0, 1.0]\n[data]\ntest = "test.npz"\n{RECIPE}{entries}'
    )
    out = root / f"run-{config.stem}"
    code = main(["audit", str(config), "--out", str(out), "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    html = (out / "report.html").read_text()
    for a in results["audits"]:
        assert a["status"] == "ok", (a["id"], a["reason"])
        assert a["id"] in html
    return results


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_robustness_audit_from_a_test_set_alone(trained: Path, capsys) -> None:
    results = _audit(
        trained,
        'kind = "torch"\nfactory = "model.py:build"\nweights = "model.safetensors"',
        TORCH_AUDITS,
        capsys,
    )
    assert [a["name"] for a in results["audits"]] == list(TORCH_AUDITS)
    assert set(results["target"]["accuracy"]) == {"test"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_score_based_robustness_audits_on_an_onnx_file(trained: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    audits = {name: TORCH_AUDITS[name] for name in SCORES_ONLY}
    results = _audit(trained, 'kind = "onnx"\npath = "model.onnx"', audits, capsys)
    assert [a["name"] for a in results["audits"]] == list(SCORES_ONLY)
