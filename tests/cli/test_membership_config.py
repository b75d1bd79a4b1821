"""The membership audits beyond the black box run from a TOML config through the CLI and reach
the report: the white-box attack on the target's layers, the user-level and subpopulation
audits on `user` and `group` columns stored beside the records in the .npz files."""

from __future__ import annotations

import json

import numpy as np

from unmeasured.cli import main

from .conftest import CONFIG


def test_whitebox_user_and_subpopulation_from_a_config(project, capsys, trained_digits) -> None:
    config = project(
        config=CONFIG
        + '[[audits]]\nname = "membership.whitebox"\n'
        + '[[audits]]\nname = "membership.user"\n'
        + '[[audits]]\nname = "membership.subpopulation"\n'
    )
    root = config.parent
    for role in ("members", "nonmembers"):
        x, y = trained_digits[role]
        # users of 5 records each, groups of 50 (role-specific names: no user on both sides)
        users = np.array([f"{role}-{i // 5}" for i in range(len(x))])
        groups = np.array([f"{role}-{i // 50}" for i in range(len(x))])
        np.savez(root / f"{role}.npz", x=x, y=y, user=users, group=groups)
    out = root / "run"
    code = main(["audit", str(config), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    status = {a["id"]: a["status"] for a in results["audits"]}
    for name in ("membership.whitebox", "membership.user", "membership.subpopulation"):
        assert status[name] == "ok", (name, status)
    html = (out / "report.html").read_text()
    for name in ("membership.whitebox", "membership.user", "membership.subpopulation"):
        assert name in html
    assert html.count("Credibility") >= 4  # one block per membership audit
    # measured: record-level loss AUC 0.571, white-box 0.556 [0.501, 0.611] (half the audited
    # records go to calibration), user level (5 records each) 0.832, groups of 50 0.917
    auc = {
        k: v["metrics"]["auc"]["value"] for k, v in {a["id"]: a for a in results["audits"]}.items()
    }
    assert auc["membership.whitebox"] > 0.5
    assert auc["membership.user"] > auc["membership.loss"] + 0.1
    assert auc["membership.subpopulation"] > auc["membership.loss"]
