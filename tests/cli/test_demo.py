"""The embedded demo end to end, with a smaller recipe so it runs in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from unmeasured import demo
from unmeasured.cli import main
from unmeasured.results import load_schema
from unmeasured.training import MLPRecipe


def test_demo_writes_a_report(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo, "DEMO_RECIPE", MLPRecipe(hidden=(64,), epochs=40, batch_size=32))
    monkeypatch.setattr(
        demo,
        "DEMO_AUDITS",
        ("membership.loss", ("membership.lira", {"mode": "online", "num_models": 4})),
    )
    code = main(["demo", "--out", str(tmp_path / "demo"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "membership.lira" in out and "report:" in out
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    jsonschema.validate(results, load_schema())
    loss = results["audits"][0]
    assert loss["name"] == "membership.loss" and loss["metrics"]["auc"]["ci"][0] > 0.5
    assert (tmp_path / "demo" / "report.html").exists()
    assert list((tmp_path / "demo" / "cache").rglob("*.npy"))
