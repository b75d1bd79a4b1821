import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from unmeasured.errors import DataError
from unmeasured.provenance import collect
from unmeasured.results import AuditResult, RunResult, load_schema
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
            AuditResult("membership.lira", status="skipped", reason="needs a recipe"),
        ],
        provenance=collect(seed=3, files={"data": f}),
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


def test_schema_rejects_a_not_estimable_value_without_reason(tmp_path: Path) -> None:
    doc = _run(tmp_path).to_dict()
    doc["audits"][0]["metrics"]["tpr_at_fpr_0.001"].pop("reason")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, load_schema())


def test_load_rejects_other_schema_versions(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"schema_version": 99, "audits": []}))
    with pytest.raises(DataError, match="schema_version"):
        RunResult.load(tmp_path)
