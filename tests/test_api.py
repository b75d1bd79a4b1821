"""The run loop keeps finished work: a broken audit is marked failed, an input error stops the run
after saving what finished."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unmeasured.api import resolve_audits, run_audits
from unmeasured.audits.base import Audit, AuditContext
from unmeasured.data import Records, Split
from unmeasured.errors import DataError, InputError
from unmeasured.provenance import collect
from unmeasured.targets import CallableTarget


class _Broken(Audit):
    name = "test.broken"

    def __init__(self, *, error: str = "runtime") -> None:
        self.error = error

    def run(self, ctx: AuditContext):
        if self.error == "input":
            raise DataError("data.members: planted input error")
        raise RuntimeError("planted bug")


def _ctx() -> AuditContext:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = rng.integers(0, 2, 200)
    target = CallableTarget(lambda a: np.stack([a[:, 0], -a[:, 0]], axis=1), num_classes=2)
    split = Split(Records(x[:100], y[:100]), Records(x[100:], y[100:]))
    return AuditContext(target=target, split=split)


def test_broken_audit_is_failed_and_others_run(tmp_path: Path) -> None:
    audits = [
        *resolve_audits(["membership.loss"]),
        _Broken(),
        *resolve_audits(["membership.entropy"]),
    ]
    run = run_audits(_ctx(), audits, provenance=collect(seed=0), out=tmp_path)
    assert [a.status for a in run.audits] == ["ok", "failed", "ok"]
    assert "planted bug" in run.audits[1].reason
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [a["status"] for a in saved["audits"]] == ["ok", "failed", "ok"]


def test_input_error_stops_but_keeps_finished_work(tmp_path: Path) -> None:
    audits = [*resolve_audits(["membership.loss"]), _Broken(error="input")]
    with pytest.raises(InputError, match="planted"):
        run_audits(_ctx(), audits, provenance=collect(seed=0), out=tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [a["name"] for a in saved["audits"]] == ["membership.loss"]


def test_resolve_audits_rejects_garbage() -> None:
    with pytest.raises(InputError, match=r"audits\[0\]"):
        resolve_audits([42])  # type: ignore[list-item]
