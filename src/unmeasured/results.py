"""Results of an audit run: per-audit metrics (`Estimate`s), per-record arrays, provenance.

Serialised to ``results.json`` (schema in ``results.schema.json``, documented in
``docs/results-schema.md``) plus ``arrays.npz`` holding each audit's per-record arrays under
``"<audit name>/<array name>"`` keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unmeasured.stats.estimate import Estimate

SCHEMA_VERSION = 1
Status = Literal["ok", "skipped", "failed"]


@dataclass
class AuditResult:
    """What one audit found.

    Attributes:
        name: registry name, e.g. ``"membership.loss"``.
        status: ``"ok"``, ``"skipped"`` (the target or data cannot support it; see ``reason``)
            or ``"failed"`` (an error inside the audit; see ``reason``).
        reason: why skipped or failed.
        metrics: headline metrics, each an `Estimate`, e.g. ``"auc"``, ``"tpr_at_fpr_0.01"``.
        groups: metrics per subgroup, e.g. ``{"class=3": {"auc": Estimate, ...}}``.
        arrays: per-record arrays (scores, membership labels, record indices) for ``arrays.npz``.
        params: the audit's hyper-parameters as given.
        details: other JSON-serialisable facts (operating threshold, calibration source, ...).
        duration_s: wall-clock seconds the audit took.
    """

    name: str
    status: Status = "ok"
    reason: str | None = None
    metrics: dict[str, Estimate] = field(default_factory=dict)
    groups: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "groups": {g: {k: v.to_dict() for k, v in m.items()} for g, m in self.groups.items()},
            "arrays": sorted(self.arrays),
            "params": _jsonable(self.params),
            "details": _jsonable(self.details),
            "duration_s": round(float(self.duration_s), 3),
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> AuditResult:
        return cls(
            name=d["name"],
            status=d["status"],
            reason=d.get("reason"),
            metrics={k: Estimate.from_dict(v) for k, v in d.get("metrics", {}).items()},
            groups={
                g: {k: Estimate.from_dict(v) for k, v in m.items()}
                for g, m in d.get("groups", {}).items()
            },
            arrays=arrays or {},
            params=d.get("params", {}),
            details=d.get("details", {}),
            duration_s=d.get("duration_s", 0.0),
        )


@dataclass
class Verdict:
    """The outcome of one ``--fail-on`` rule."""

    rule: str
    metric: str
    value: float | None
    breached: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "metric": self.metric,
            "value": self.value,
            "breached": self.breached,
        }


@dataclass
class RunResult:
    """All audits of one run, plus provenance and gate verdicts."""

    audits: list[AuditResult]
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    def __getitem__(self, name: str) -> AuditResult:
        for a in self.audits:
            if a.name == name:
                return a
        raise KeyError(
            f"no audit named '{name}' in this run; have: {[a.name for a in self.audits]}"
        )

    @property
    def breached(self) -> bool:
        return any(v.breached for v in self.verdicts)

    def metric_table(self) -> dict[str, Estimate]:
        """Every headline metric keyed ``"<audit>.<metric>"`` (the names ``--fail-on`` matches)."""
        return {f"{a.name}.{k}": v for a in self.audits for k, v in a.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "audits": [a.to_dict() for a in self.audits],
            "warnings": list(self.warnings),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "provenance": _jsonable(self.provenance),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save(self, directory: str | Path) -> Path:
        """Write ``results.json`` and ``arrays.npz`` into ``directory``; return the JSON path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"{a.name}/{k}": v for a in self.audits for k, v in a.arrays.items()}
        tmp = directory / "arrays.npz.tmp"
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        tmp.replace(directory / "arrays.npz")
        path = directory / "results.json"
        tmp_json = directory / "results.json.tmp"
        tmp_json.write_text(self.to_json() + "\n")
        tmp_json.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> RunResult:
        """Read a run directory written by `save`."""
        from unmeasured.errors import DataError

        directory = Path(directory)
        path = directory / "results.json"
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"{path}: no results.json in this run directory") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        if d.get("schema_version") != SCHEMA_VERSION:
            raise DataError(
                f"{path}: schema_version {d.get('schema_version')!r} is not supported "
                f"(this version reads {SCHEMA_VERSION})"
            )
        arrays: dict[str, dict[str, np.ndarray]] = {}
        npz = directory / "arrays.npz"
        if npz.exists():
            with np.load(npz, allow_pickle=False) as z:
                for key in z.files:
                    audit, _, name = key.rpartition("/")
                    arrays.setdefault(audit, {})[name] = z[key]
        return cls(
            audits=[AuditResult.from_dict(a, arrays.get(a["name"])) for a in d["audits"]],
            provenance=d.get("provenance", {}),
            warnings=d.get("warnings", []),
            verdicts=[Verdict(**v) for v in d.get("verdicts", [])],
        )

    def _repr_html_(self) -> str:
        from unmeasured.report import render_html

        return render_html(self)


def load_schema() -> dict[str, Any]:
    """The JSON Schema that ``results.json`` follows."""
    text = resources.files("unmeasured").joinpath("results.schema.json").read_text()
    return json.loads(text)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj != obj:  # NaN is not valid JSON
        return None
    return obj
