import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from unmeasured.errors import DataError
from unmeasured.provenance import collect
from unmeasured.results import AuditResult, Headline, RunResult, TargetCard, load_schema
from unmeasured.stats import Estimate


def _run(tmp_path: Path) -> RunResult:
    f = tmp_path / "data.bin"
    f.write_bytes(b"abc")
    return RunResult(
        audits=[
            AuditResult(
                "membership.loss",
                metrics={
                    "auc": Estimate(0.81, (0.78, 0.84), 2000),
                    "tpr_at_fpr_0.001": Estimate.not_estimable("needs 5000", 1000),
                },
                groups={"class=1": {"auc": Estimate(0.7, (0.6, 0.8), 100)}},
                arrays={"scores": np.arange(4, dtype=np.float32)},
                params={"fpr": 0.01},
                details={"threshold": np.float64(1.5), "nan": float("nan")},
            ),
            AuditResult(
                "membership.lira",
                id="membership.lira[online]",
                arrays={"scores": np.ones(3, dtype=np.float32)},
                headline=Headline("auc", "AUC 0.7.", concern=True, severity=0.2),
            ),
            AuditResult("membership.rmia", status="skipped", reason="needs a recipe"),
        ],
        provenance=collect(seed=3, files={"data": f}),
        target=TargetCard(
            "torch Linear",
            3,
            parameters=12,
            input_shape=(3,),
            input_bounds=(0.0, 1.0),
            bounds_source="data",
            accuracy={"test": Estimate(0.9, (0.8, 0.95), 50)},
            files={"/m.pt": "ab" * 32},
        ),
    )


def test_round_trip_and_schema(tmp_path: Path) -> None:
    run = _run(tmp_path)
    run.save(tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    jsonschema.validate(doc, load_schema())
    assert doc["provenance"]["inputs"]["data"]["sha256"] == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    loaded = RunResult.load(tmp_path / "r")
    assert loaded.to_dict() == run.to_dict() | {"provenance": doc["provenance"]}
    np.testing.assert_array_equal(loaded["membership.loss"].arrays["scores"], np.arange(4))
    np.testing.assert_array_equal(loaded["membership.lira[online]"].arrays["scores"], np.ones(3))
    assert loaded.target == run.target and loaded.outcome == "complete"


def test_version_1_runs_are_still_read(tmp_path: Path) -> None:
    doc = _run(tmp_path).to_dict()
    for key in ("outcome", "target"):
        doc.pop(key)
    doc["schema_version"] = 1
    for a in doc["audits"]:
        a.pop("id")
        a.pop("headline")
    (tmp_path / "results.json").write_text(json.dumps(doc))
    np.savez(tmp_path / "arrays.npz", **{"membership.loss/scores": np.arange(4)})
    loaded = RunResult.load(tmp_path)
    assert [a.id for a in loaded.audits] == [
        "membership.loss",
        "membership.lira",
        "membership.rmia",
    ]
    np.testing.assert_array_equal(loaded["membership.loss"].arrays["scores"], np.arange(4))
    assert loaded.target is None


def test_schema_rejects_a_not_estimable_value_without_reason(tmp_path: Path) -> None:
    doc = _run(tmp_path).to_dict()
    doc["audits"][0]["metrics"]["tpr_at_fpr_0.001"].pop("reason")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, load_schema())


def test_load_rejects_other_schema_versions(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"schema_version": 99, "audits": []}))
    with pytest.raises(DataError, match="schema_version"):
        RunResult.load(tmp_path)
