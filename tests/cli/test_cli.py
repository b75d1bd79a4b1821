"""The CLI end to end: exit codes, one-line errors, run directories."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from unmeasured.cli import main
from unmeasured.results import load_schema

from .conftest import CONFIG


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_audit_end_to_end(project, tmp_path: Path, capsys) -> None:
    config = project()
    out_dir = tmp_path / "run"
    code, out, err = _run(capsys, "audit", str(config), "--out", str(out_dir), "--quiet")
    assert code == 0, err
    assert "membership.loss" in out
    results = json.loads((out_dir / "results.json").read_text())
    jsonschema.validate(results, load_schema())
    assert results["audits"][0]["status"] == "ok"
    assert results["audits"][0]["metrics"]["auc"]["value"] > 0.5
    inputs = results["provenance"]["inputs"]
    assert {"config", "members", "nonmembers", "population"} <= set(inputs)
    assert any(k.startswith("target") for k in inputs)
    assert (out_dir / "report.html").stat().st_size > 1000
    assert (out_dir / "config.toml").read_text() == config.read_text()
    with np.load(out_dir / "arrays.npz") as z:
        assert len(z["membership.loss/scores"]) == 900


def test_fail_on_breach_exits_1(project, tmp_path: Path, capsys) -> None:
    config = project()
    code, out, _ = _run(
        capsys,
        "audit",
        str(config),
        "--out",
        str(tmp_path / "r"),
        "-q",
        "--fail-on",
        "membership.*.auc>0.5",
    )
    assert code == 1
    assert "FAIL membership.loss.auc" in out
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["verdicts"][0]["breached"] is True


def test_fail_on_not_breached_exits_0(project, tmp_path: Path, capsys) -> None:
    config = project()
    code, _, err = _run(
        capsys,
        "audit",
        str(config),
        "--out",
        str(tmp_path / "r"),
        "-q",
        "--fail-on",
        "membership.loss.auc>0.999",
    )
    assert code == 0, err


def test_report_rerenders(project, tmp_path: Path, capsys) -> None:
    config = project()
    run_dir = tmp_path / "r"
    assert _run(capsys, "audit", str(config), "--out", str(run_dir), "-q")[0] == 0
    (run_dir / "report.html").unlink()
    code, _out, _ = _run(capsys, "report", str(run_dir))
    assert code == 0
    assert (run_dir / "report.html").exists()


def test_list_shows_audits(capsys) -> None:
    code, out, _ = _run(capsys, "list")
    assert code == 0
    assert "membership.loss" in out and "membership.modified_entropy" in out


def test_same_seed_same_results(project, tmp_path: Path, capsys) -> None:
    config = project()
    metrics = []
    for name in ("a", "b"):
        assert _run(capsys, "audit", str(config), "--out", str(tmp_path / name), "-q")[0] == 0
        metrics.append(
            json.loads((tmp_path / name / "results.json").read_text())["audits"][0]["metrics"]
        )
    assert metrics[0] == metrics[1]


def _with(config: str, old: str, new: str) -> str:
    assert old in config
    return config.replace(old, new)


MALFORMED = {
    "missing config": (lambda p, t: [str(t / "nope.toml")], "nope.toml"),
    "bad toml": (lambda p, t: [str(p(config="seed = = 1"))], "invalid TOML"),
    "unknown top-level key": (
        lambda p, t: [str(p(config="bogus = 1\n" + CONFIG))],
        "bogus: unknown key",
    ),
    "unknown target key": (
        lambda p, t: [
            str(p(config=_with(CONFIG, 'kind = "torch"', 'kind = "torch"\nwieghts = 1')))
        ],
        "target.wieghts",
    ),
    "unknown target kind": (
        lambda p, t: [str(p(config=_with(CONFIG, 'kind = "torch"', 'kind = "tensorflow"')))],
        "target.kind",
    ),
    "missing members file": (
        lambda p, t: [str(p(config=_with(CONFIG, '"members.npz"', '"absent.npz"')))],
        "absent.npz",
    ),
    "unknown audit": (
        lambda p, t: [str(p(config=_with(CONFIG, '"membership.loss"', '"membership.los"')))],
        "membership.los",
    ),
    "unknown audit parameter": (lambda p, t: [str(p(config=CONFIG + "fpp = 0.1\n"))], "fpp"),
    "invalid audit parameter": (
        lambda p, t: [str(p(config=CONFIG + "fpr = 2.0\n"))],
        "audits[0].fpr: membership.loss's 'fpr' must be a float in the range (0, 1); got 2.0",
    ),
    "missing factory file": (
        lambda p, t: [str(p(config=_with(CONFIG, '"model.py:build"', '"nomodel.py:build"')))],
        "nomodel.py",
    ),
    "missing factory function": (
        lambda p, t: [str(p(config=_with(CONFIG, '"model.py:build"', '"model.py:make"')))],
        "make",
    ),
    "weights do not fit the architecture": (
        lambda p, t: [
            str(
                p(
                    config=_with(
                        CONFIG,
                        'weights = "model.safetensors"',
                        'weights = "model.safetensors"\nfactory_kwargs = {hidden = 32}',
                    )
                )
            )
        ],
        "target",
    ),
    "pickle without --trust-pickle": (lambda p, t: [str(_pickled_sklearn(p, t))], "--trust-pickle"),
    "labels out of range": (
        lambda p, t: [str(p(members=(np.zeros((10, 64), np.float32), np.full(10, 12))))],
        "label",
    ),
    "nan in data": (
        lambda p, t: [
            str(p(nonmembers=(np.full((10, 64), np.nan, np.float32), np.zeros(10, int))))
        ],
        "NaN",
    ),
    "wrong shape": (
        lambda p, t: [str(p(members=(np.zeros((10, 30), np.float32), np.zeros(10, int))))],
        "shape",
    ),
    "npz without y": (lambda p, t: [str(_npz_without_y(p, t))], "'y'"),
    "malformed --fail-on": (
        lambda p, t: [str(p()), "--fail-on", "membership.loss.auc ~ 3"],
        "--fail-on",
    ),
    "--fail-on matching nothing": (
        lambda p, t: [str(p()), "--fail-on", "robustness.*.accuracy<0.5"],
        "names no metric of this run (audits: membership.loss; membership.loss reports auc,",
    ),
    "negative seed": (lambda p, t: [str(p()), "--seed", "-1"], "--seed"),
}


def _pickled_sklearn(project, tmp: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    config = project(
        config=_with(
            _with(CONFIG, 'kind = "torch"', 'kind = "sklearn"'),
            'factory = "model.py:build"\nweights = "model.safetensors"',
            'path = "model.joblib"',
        )
    )
    x = np.random.default_rng(0).random((40, 64))
    joblib.dump(LogisticRegression().fit(x, np.arange(40) % 10), tmp / "model.joblib")
    return config


def _npz_without_y(project, tmp: Path) -> Path:
    config = project()
    np.savez(tmp / "members.npz", x=np.zeros((5, 64), np.float32), labels=np.zeros(5))
    return config


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_exits_2_with_one_line(case: str, project, tmp_path: Path, capsys) -> None:
    make_args, expected = MALFORMED[case]
    args = make_args(project, tmp_path)
    code, _out, err = _run(capsys, "audit", *args, "--out", str(tmp_path / "run"), "-q")
    assert code == 2, (case, err)
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, (case, err)
    assert expected in lines[0], (case, lines[0])
    assert "Traceback" not in err


def test_debug_adds_a_traceback_and_keeps_the_exit_code(tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "audit", str(tmp_path / "nope.toml"), "--debug")
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1] == f"error: {tmp_path / 'nope.toml'}: no such config file"


def test_report_on_empty_directory_exits_2(tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "report", str(tmp_path))
    assert code == 2
    assert "results.json" in err


RECIPE_CONFIG = (
    CONFIG
    + """
[[audits]]
name = "membership.lira"
mode = "online"
num_models = 4

[[audits]]
name = "membership.rmia"
num_models = 2

[recipe]
kind = "mlp"
hidden = [64]
epochs = 20
batch_size = 32
lr = 0.01
"""
)


def test_reference_attacks_from_a_config_alone(project, tmp_path: Path, capsys) -> None:
    config = project(config='cache_dir = "cache"\n' + RECIPE_CONFIG)
    run_dir = tmp_path / "r"
    code, _, err = _run(capsys, "audit", str(config), "--out", str(run_dir), "-q")
    assert code == 0, err
    results = json.loads((run_dir / "results.json").read_text())
    by_name = {a["name"]: a for a in results["audits"]}
    assert by_name["membership.lira"]["status"] == "ok"
    assert by_name["membership.rmia"]["status"] == "ok"
    assert by_name["membership.lira"]["metrics"]["auc"]["ci"][0] > 0.5
    assert list((tmp_path / "cache").rglob("*.npy"))  # reference models were cached


def test_sklearn_skops_model_from_a_config(tmp_path: Path, trained_digits, capsys) -> None:
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    x, y = trained_digits["members"]
    sio.dump(
        RandomForestClassifier(n_estimators=30, random_state=0).fit(x, y), tmp_path / "model.skops"
    )
    for role in ("members", "nonmembers"):
        np.savez(tmp_path / f"{role}.npz", x=trained_digits[role][0], y=trained_digits[role][1])
    (tmp_path / "audit.toml").write_text(
        '[target]\nkind = "sklearn"\npath = "model.skops"\n'
        'trusted_types = ["sklearn.tree._tree.Tree"]\n'
        '[data]\nmembers = "members.npz"\nnonmembers = "nonmembers.npz"\n'
    )
    code, _, err = _run(
        capsys, "audit", str(tmp_path / "audit.toml"), "--out", str(tmp_path / "r"), "-q"
    )
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    # a random forest is far more confident on the records its trees were grown on
    assert results["audits"][0]["metrics"]["auc"]["ci"][0] > 0.7
