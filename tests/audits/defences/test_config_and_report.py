"""defences.tradeoff from a config file: it runs through the CLI, lands in results.json, and the
report's defences section shows its figure and its table with the accountant's ε beside the
empirical bound of the DP setting."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from unmeasured.cli import main
from unmeasured.report.html import render_html
from unmeasured.results import RunResult

MODEL_PY = """
from torch import nn

def build():
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
"""
CONFIG = """
[target]
kind = "torch"
factory = "model.py:build"
weights = "model.safetensors"
[data]
members = "members.npz"
nonmembers = "nonmembers.npz"
test = "test.npz"
[recipe]
kind = "mlp"
hidden = [16]
epochs = 4
batch_size = 40
lr = 0.01
[[audits]]
name = "defences.tradeoff"
settings = ["none", "ensemble(2)", "dp(noise=1.0)", "round(1)", "label_only"]
"""


def test_tradeoff_from_a_config_appears_in_the_report(digits, tmp_path: Path, capsys) -> None:
    x, y = digits
    torch.manual_seed(0)
    namespace: dict = {}
    exec(textwrap.dedent(MODEL_PY), namespace)
    model = namespace["build"]()
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL_PY))
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    for name, part in {"members": slice(0, 160), "nonmembers": slice(160, 320)}.items():
        np.savez(tmp_path / f"{name}.npz", x=x[part], y=y[part])
    np.savez(tmp_path / "test.npz", x=x[320:480], y=y[320:480])
    (tmp_path / "audit.toml").write_text(CONFIG)
    out = tmp_path / "run"
    code = main(["audit", str(tmp_path / "audit.toml"), "--out", str(out), "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    (entry,) = results["audits"]
    assert entry["status"] == "ok", entry["reason"]
    dp = entry["groups"]["setting=dp(noise=1.0)"]
    assert dp["accountant_epsilon"]["value"] > dp["epsilon_lower_bound"]["value"]
    html = (out / "report.html").read_text()
    assert 'id="family-defences"' in html and "defences-table" in html
    assert "accountant ε" in html and "dp(noise=1.0)" in html
    assert html.count("<svg") >= 1
    # the section renders again from the saved run (details and groups survive JSON)
    again = render_html(RunResult.load(out))
    assert 'id="family-defences"' in again and "label_only" in again
