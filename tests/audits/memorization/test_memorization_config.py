"""Overlearning and inversion from a TOML config, as in docs/memorization.md: both run and
appear in results.json and the report."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import tomllib
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from torch import nn

from unmeasured.cli import main

DOC = Path(__file__).resolve().parents[3] / "docs" / "memorization.md"
MODEL_PY = """
from torch import nn

def build():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2))
"""


def test_overlearning_and_inversion_from_the_documented_config(tmp_path: Path, capsys) -> None:
    block = re.search(r"```toml\n# memorization.toml\n(.*?)```", DOC.read_text(), re.S)
    assert block, "no memorization.toml example in docs/memorization.md"
    config = tomllib.loads(block.group(1))
    config["audits"][0] |= {"embedding_points": 100, "probes": ["logistic"]}
    config["audits"][1]["steps"] = 50
    digits = load_digits()
    x, digit = (digits.data / 16).astype(np.float32), digits.target
    y = (digit >= 5).astype(np.int64)  # the task: small or large digit; the attribute: the digit
    namespace: dict = {}
    exec(textwrap.dedent(MODEL_PY), namespace)
    torch.manual_seed(0)
    model = namespace["build"]()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(
            model(torch.from_numpy(x[:800])), torch.from_numpy(y[:800])
        ).backward()
        optimizer.step()
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL_PY))
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    np.savez(tmp_path / "members.npz", x=x[:800], y=y[:800])
    np.savez(tmp_path / "test.npz", x=x[800:1200], y=y[800:1200], sensitive=digit[800:1200])
    # the documented file, its audits with cheaper parameters
    lines = [block.group(1).split("[[audits]]")[0]]
    for entry in config["audits"]:
        params = "\n".join(f"{k} = {json.dumps(v)}" for k, v in entry.items())
        lines.append(f"[[audits]]\n{params}")
    path = tmp_path / "memorization.toml"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    code = main(["audit", str(path), "--out", str(out), "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    html = (out / "report.html").read_text()
    assert [a["id"] for a in results["audits"]] == [
        "memorization.overlearning",
        "memorization.inversion",
    ]
    for a in results["audits"]:
        assert a["status"] == "ok", a["reason"]
        assert a["id"] in html
    assert "random weights" in html and "nearest record" in html
