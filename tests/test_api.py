"""The run loop: audits are planned with unique ids before any work, a broken audit is marked
failed, an input error stops the run after saving what finished."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unmeasured.api import PlannedAudit, plan_audits, run_audits
from unmeasured.audits.base import Audit, AuditContext
from unmeasured.data import Datasets, Records
from unmeasured.errors import ConfigError, DataError, InputError
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
    data = Datasets(members=Records(x[:100], y[:100]), nonmembers=Records(x[100:], y[100:]))
    return AuditContext(target=target, data=data)


def _planned(*audits: Audit | str) -> list[PlannedAudit]:
    out = []
    for a in audits:
        out += plan_audits([a]) if isinstance(a, str) else [PlannedAudit(a.name, a, True, "t")]
    return out


def test_broken_audit_is_failed_and_others_run(tmp_path: Path) -> None:
    audits = _planned("membership.loss", _Broken(), "membership.entropy")
    run = run_audits(_ctx(), audits, provenance=collect(seed=0), out=tmp_path)
    assert [a.status for a in run.audits] == ["ok", "failed", "ok"]
    assert "planted bug" in run.audits[1].reason
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [a["status"] for a in saved["audits"]] == ["ok", "failed", "ok"]


def test_input_error_stops_but_keeps_finished_work(tmp_path: Path) -> None:
    audits = _planned("membership.loss", _Broken(error="input"))
    with pytest.raises(InputError, match="planted"):
        run_audits(_ctx(), audits, provenance=collect(seed=0), out=tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [a["name"] for a in saved["audits"]] == ["membership.loss"]


def test_plan_rejects_garbage() -> None:
    with pytest.raises(InputError, match=r"audits\[0\]"):
        plan_audits([42])  # type: ignore[list-item]


def test_variants_get_distinct_ids() -> None:
    planned = plan_audits(
        [
            ("membership.lira", {"mode": "online"}),
            ("membership.lira", {"mode": "offline"}),
            ("membership.rmia", {"num_models": 2}),
            ("membership.rmia", {"num_models": 4}),
            "membership.loss",
        ]
    )
    assert [p.id for p in planned] == [
        "membership.lira[online]",
        "membership.lira[offline]",
        "membership.rmia[offline,num_models=2]",
        "membership.rmia[offline,num_models=4]",
        "membership.loss",
    ]


def test_a_repeated_audit_is_an_error_and_a_family_expands() -> None:
    with pytest.raises(ConfigError, match=r"audits\[1\]: repeats audits\[0\]"):
        plan_audits(["membership.loss", ("membership.loss", {"fpr": 0.01})])
    planned = plan_audits(["membership.loss", "membership"])
    assert [p.id for p in planned].count("membership.loss") == 1
    assert {p.id: p.explicit for p in planned}["membership.loss"] is True
    assert {p.id: p.explicit for p in planned}["membership.entropy"] is False
