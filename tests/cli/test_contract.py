"""The exit-code contract and the problems a new user met, one CLI test each.

0 = every requested audit ran and no gate was breached; 1 = a gate breached or an audit failed
(never a PASS badge then); 2 = bad input of any kind, found before any expensive work, as one
line naming the file or field, also under --debug; 3 = a bug of ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from unmeasured import training
from unmeasured.audits.base import Audit, AuditContext
from unmeasured.audits.registry import REGISTRY, register
from unmeasured.audits.robustness import EvasionAttack
from unmeasured.cli import main

from .conftest import CONFIG

RECIPE = """
[recipe]
kind = "mlp"
hidden = [16]
epochs = 2
batch_size = 64
"""


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _audit(capsys, config: Path, *extra: str) -> tuple[int, str, str]:
    out_dir = config.parent / "run"
    return _run(capsys, "audit", str(config), "--out", str(out_dir), "-q", *extra)


def _one_line_error(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]


def _no_training():
    """Fail the test if any model is trained."""
    return mock.patch.object(
        training, "train_ensemble", side_effect=AssertionError("trained before checking input")
    )


class _Crashes(Audit):
    name = "membership.test_crash"

    def run(self, ctx: AuditContext):  # type: ignore[no-untyped-def]
        raise RuntimeError("planted bug in an audit")


@pytest.fixture()
def crashing_audit():
    register(_Crashes)
    yield
    REGISTRY.pop(_Crashes.name, None)


def test_a_failed_audit_exits_1_and_is_never_a_pass(project, capsys, crashing_audit) -> None:
    config = project(
        config=CONFIG + '[[audits]]\nname = "membership.test_crash"\n',
    )
    code, out, _ = _audit(capsys, config, "--fail-on", "membership.loss.auc>0.99")
    assert code == 1
    assert "outcome: INCOMPLETE" in out and "FAILED membership.test_crash" in out
    html = (config.parent / "run" / "report.html").read_text()
    banner = html[html.index('id="outcome"') :][:200]
    assert "INCOMPLETE" in banner and "PASS" not in banner
    saved = json.loads((config.parent / "run" / "results.json").read_text())
    assert saved["outcome"] == "incomplete"
    assert [a["status"] for a in saved["audits"]] == ["ok", "failed"]


def test_two_variants_of_one_audit_keep_distinct_ids(project, capsys) -> None:
    config = project(
        config=CONFIG
        + RECIPE
        + '[[audits]]\nname = "membership.lira"\nmode = "online"\nnum_models = 2\n'
        + '[[audits]]\nname = "membership.lira"\nmode = "offline"\nnum_models = 2\n'
    )
    code, out, err = _audit(
        capsys,
        config,
        "--fail-on",
        "membership.lira[offline].auc>0.99",
        "--fail-on",
        "membership.lira.auc>0.99",
    )
    assert code == 0, err
    run = config.parent / "run"
    ids = [a["id"] for a in json.loads((run / "results.json").read_text())["audits"]]
    assert ids == ["membership.loss", "membership.lira[online]", "membership.lira[offline]"]
    with np.load(run / "arrays.npz") as z:
        assert {"membership.lira[online]/scores", "membership.lira[offline]/scores"} <= set(z.files)
    html = (run / "report.html").read_text()
    assert (
        'id="audit-membership.lira-online-"' in html
        and 'id="audit-membership.lira-offline-"' in html
    )
    verdicts = json.loads((run / "results.json").read_text())["verdicts"]
    assert [v["metric"] for v in verdicts] == [
        "membership.lira[offline].auc",
        "membership.lira[online].auc",
        "membership.lira[offline].auc",
    ]
    assert "membership.lira[online]" in out and "membership.lira[offline]" in out


def test_debug_keeps_exit_code_2(project, capsys) -> None:
    config = project(config=CONFIG.replace('members = "members.npz"', 'members = "nope.npz"'))
    code, _, err = _run(capsys, "audit", str(config), "--debug", "-q")
    assert code == 2
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: data.members")


def test_gate_names_are_checked_before_any_work(project, capsys) -> None:
    config = project(
        config=CONFIG + RECIPE + '[[audits]]\nname = "membership.lira"\nnum_models = 2\n'
    )
    with _no_training():
        code, _, err = _audit(capsys, config, "--fail-on", "membership.lira.tpr_at_fpr_0.5>0.1")
    _one_line_error(
        code, err, "names no metric of this run (audits: membership.loss, membership.lira[online];"
    )
    assert not (config.parent / "run" / "results.json").exists()


def test_a_gate_on_a_not_estimable_metric_is_breached(project, capsys) -> None:
    config = project()
    code, out, _ = _audit(capsys, config, "--fail-on", "membership.loss.tpr_at_fpr_0.001>0.5")
    assert code == 1  # 600 non-members cannot estimate TPR at 0.1% FPR
    assert "not estimable" in out
    code, _, err = _audit(
        capsys, config, "--fail-on", "membership.loss.tpr_at_fpr_0.001>0.5 if estimable"
    )
    assert code == 0, err


def test_when_every_audit_is_skipped_the_run_stops_before_work(project, capsys) -> None:
    # the default suite needs members and non-members; a test set alone cannot feed it
    config = project(
        config=CONFIG.replace(
            'members = "members.npz"\nnonmembers = "nonmembers.npz"\npopulation = "population.npz"',
            'test = "nonmembers.npz"',
        ).replace('[[audits]]\nname = "membership.loss"\n', "")
    )
    code, _, err = _audit(capsys, config)
    _one_line_error(
        code,
        err,
        "audits: none of the selected audits can run with this input: membership.loss needs data data.members, data.nonmembers",
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('hidden = "64"', "recipe.hidden: MLPRecipe's 'hidden' must be a list of positive ints"),
        ("cache_dir", "cache_dir: "),
        ("population", "(membership.lira[offline]) needs data data.population"),
    ],
)
def test_bad_recipe_cache_or_missing_role_exit_2_before_training(
    project, capsys, change: str, expected: str
) -> None:
    config_text = (
        CONFIG + RECIPE + '[[audits]]\nname = "membership.lira"\nmode = "offline"\nnum_models = 2\n'
    )
    if change.startswith("hidden"):
        config_text = config_text.replace("hidden = [16]", change)
    elif change == "cache_dir":
        config_text = 'cache_dir = "a-file"\n' + config_text
    else:
        config_text = config_text.replace('population = "population.npz"\n', "")
    config = project(config=config_text)
    (config.parent / "a-file").write_text("not a directory")
    with _no_training():
        code, _, err = _audit(capsys, config)
    _one_line_error(code, err, expected)


def test_members_and_nonmembers_from_one_file(project, capsys) -> None:
    config = project(
        config=CONFIG.replace('nonmembers = "nonmembers.npz"', 'nonmembers = "members.npz"')
    )
    code, _, err = _audit(capsys, config)
    _one_line_error(code, err, "data.nonmembers: members.npz is the same file as data.members")


def test_an_audit_named_twice(project, capsys) -> None:
    config = project(config=CONFIG + '[[audits]]\nname = "membership.loss"\n')
    code, _, err = _audit(capsys, config)
    _one_line_error(
        code, err, "audits[1]: repeats audits[0] (membership.loss with the same parameters)"
    )


def test_npz_without_y(project, capsys) -> None:
    config = project()
    np.savez(config.parent / "members.npz", x=np.zeros((5, 64), np.float32))
    code, _, err = _audit(capsys, config)
    _one_line_error(
        code, err, "no array 'y' (has x); name the arrays with data.x_key and data.y_key"
    )


def test_one_dimensional_x(project, capsys) -> None:
    config = project(members=(np.zeros(300, np.float32), np.zeros(300, np.int64)))
    code, _, err = _audit(capsys, config)
    _one_line_error(code, err, "x has shape (300,), but each record must be an array")


def test_a_config_that_is_not_utf8(project, capsys) -> None:
    config = project()
    config.write_bytes(CONFIG.encode("utf-8").replace(b"seed = 0", b"# caf\xe9\nseed = 0"))
    code, _, err = _audit(capsys, config)
    _one_line_error(code, err, "not UTF-8 text (byte 0xe9 at offset 6); save the config as UTF-8")


def test_a_csv_without_the_label_column(project, capsys) -> None:
    config = project(config=CONFIG.replace("members.npz", "members.csv", 1))
    (config.parent / "members.csv").write_text("a,b,target\n0,1,0\n")
    code, _, err = _audit(capsys, config)
    _one_line_error(code, err, "no label column 'label' (columns: a, b, target); set data.label")


def test_a_recipe_entry_that_raises(project, capsys) -> None:
    (Path(project().parent) / "recipe.py").write_text(
        "def make_recipe():\n    raise ValueError('no GPU here')\n"
    )
    config = project(config=CONFIG + '[recipe]\nkind = "python"\nentry = "recipe.py:make_recipe"\n')
    code, _, err = _audit(capsys, config)
    _one_line_error(code, err, "recipe.entry: recipe.py:make_recipe raised ValueError: no GPU here")


def test_a_recipe_file_imports_its_neighbour(project, capsys) -> None:
    root = Path(project().parent)
    (root / "arch.py").write_text("WIDTHS = [8]\n")
    (root / "recipe.py").write_text(
        "from arch import WIDTHS\nfrom unmeasured.training import MLPRecipe\n\n"
        "def make_recipe():\n    return MLPRecipe(hidden=WIDTHS, epochs=1)\n"
    )
    config = project(
        config=CONFIG
        + '[recipe]\nkind = "python"\nentry = "recipe.py:make_recipe"\n'
        + '[[audits]]\nname = "membership.lira"\nmode = "offline"\nnum_models = 1\n'
    )
    code, _, err = _audit(capsys, config)
    assert code == 0, err


def test_a_config_symlink_loop(tmp_path: Path, capsys) -> None:
    loop = tmp_path / "loop.toml"
    os.symlink(loop, loop)
    code, _, err = _run(capsys, "audit", str(loop), "-q")
    _one_line_error(code, err, "cannot read config file")


def test_print_run_is_one_line(project, tmp_path: Path) -> None:
    from unmeasured.api import audit_config
    from unmeasured.config import load_config

    run = audit_config(load_config(project()), out=tmp_path / "r")
    assert repr(run) == "<RunResult complete: 1 audits (1 ok)>"
    assert repr(run.audits[0]).startswith("<AuditResult membership.loss: ok 'At 1% false positives")


def test_an_80_column_terminal_keeps_audit_ids_whole(project, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws its table as on a terminal
    monkeypatch.setenv("COLUMNS", "80")
    config = project(
        config=CONFIG
        + RECIPE
        + '[[audits]]\nname = "membership.lira"\nmode = "offline"\nnum_models = 1\n'
        + '[[audits]]\nname = "membership.lira"\nmode = "offline"\nnum_models = 1\nvariance = "per_example"\n'
    )
    code, out, err = _audit(capsys, config)
    assert code == 0, err
    assert "┃" in out  # the rich table, not the plain-text one
    assert max(len(line) for line in out.splitlines() if "│" in line) <= 80
    for audit_id in (
        "membership.lira[offline,variance=auto]",
        "membership.lira[offline,variance=per_example]",
    ):
        assert audit_id in out


class _SignNoise(EvasionAttack):
    """A robustness-style audit for the tests: random corners of the L∞ ball."""

    name = "robustness.test_sign_noise"

    def perturb(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        noise = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
        return x + eps * noise


@pytest.fixture()
def sign_noise_audit():
    register(_SignNoise)
    yield
    REGISTRY.pop(_SignNoise.name, None)


def test_a_test_set_alone_feeds_robustness_but_not_membership(
    project, capsys, sign_noise_audit
) -> None:
    data_only_test = CONFIG.replace(
        'members = "members.npz"\nnonmembers = "nonmembers.npz"\npopulation = "population.npz"',
        'test = "nonmembers.npz"',
    )
    robustness = data_only_test.replace(
        'name = "membership.loss"', 'name = "robustness.test_sign_noise"\nepsilons = [0.0, 0.5]'
    )
    code, out, err = _audit(capsys, project(config=robustness))
    assert code == 0, err
    assert "robustness.test_sign_noise[linf]" in out
    membership = data_only_test + RECIPE + '[[audits]]\nname = "membership.lira"\nnum_models = 2\n'
    with _no_training():
        code, _, err = _audit(capsys, project(config=membership))
    _one_line_error(
        code,
        err,
        "audits[0] (membership.loss) needs data data.members, data.nonmembers | audits[1] "
        "(membership.lira[online]) needs data data.members, data.nonmembers",
    )


def test_a_memory_budget_flag_warns_before_training(project, capsys, monkeypatch) -> None:
    """Two reference MLPs need about 390 KB: a budget of 0.1 MB warns before training, and
    the run still finishes with 0 (the budget warns; it does not stop the run)."""
    monkeypatch.delenv("UNMEASURED_MEMORY_BUDGET_MB", raising=False)
    config = project(
        config='cache_dir = "models"\n'  # a fresh cache: the models are trained here
        + CONFIG
        + RECIPE
        + '[[audits]]\nname = "membership.lira"\nmode = "offline"\nnum_models = 2\n'
    )
    code, _, err = _audit(capsys, config, "--memory-budget-mb", "0.1")
    assert code == 0, err
    assert "more than the memory budget of 102.4 KB" in err
    code, _, err = _audit(capsys, config, "--memory-budget-mb", "0")
    _one_line_error(code, err, "--memory-budget-mb")
    assert "UNMEASURED_MEMORY_BUDGET_MB" not in os.environ  # the flag lasts one run
