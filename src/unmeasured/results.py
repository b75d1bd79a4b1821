"""Results of an audit run: per-audit metrics (`Estimate`s), headlines, per-record arrays, the
target card, gate verdicts and provenance.

Serialised to ``results.json`` (schema in ``results.schema.json``, documented in
``docs/results-schema.md``) plus ``arrays.npz`` holding each audit's per-record arrays under
``"<audit id>/<array name>"`` keys. Version 1 files (before audit ids) are still read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unmeasured.stats.estimate import Estimate

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
Status = Literal["ok", "skipped", "failed"]
#: the run as a whole: a gate breached, an audit failed (or none ran), all gates passed, or
#: everything ran and no gate was set
Outcome = Literal["failed", "incomplete", "passed", "complete"]


@dataclass
class Headline:
    """The one metric of an audit that matters, and what it means in a sentence.

    Attributes:
        metric: the metric's name in ``AuditResult.metrics``.
        sentence: plain words, e.g. "At 1% false positives the attack finds 6.5% of members."
        concern: True when the audit found what it looks for (leakage, a successful attack),
            False when it found no evidence of it, None when the data cannot tell.
        severity: how bad the finding is on a scale shared within the family (larger is
            worse), so that a family's verdict can name its worst audit.
    """

    metric: str
    sentence: str
    concern: bool | None = None
    severity: float | None = None

    def __post_init__(self) -> None:
        self.concern = None if self.concern is None else bool(self.concern)
        self.severity = None if self.severity is None else float(self.severity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "sentence": self.sentence,
            "concern": self.concern,
            "severity": self.severity,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Headline | None:
        if d is None:
            return None
        return cls(d["metric"], d["sentence"], d.get("concern"), d.get("severity"))


@dataclass
class TargetCard:
    """What was audited: the model's description, size, input and accuracy per labelled role.

    Attributes:
        description: the target in words.
        num_classes: number of output classes.
        parameters: number of parameters, when the target exposes its weights.
        input_shape: shape of one record.
        input_bounds: the valid input range used by audits, and ``bounds_source`` says where it
            came from (``"config"``, ``"target"``, ``"data"``).
        accuracy: accuracy on each labelled data role given, as an `Estimate`.
        files: sha256 of each file the target was loaded from.
        kind: ``"classifier"``, or ``"language model"`` (then ``num_classes`` is the size of its
            vocabulary and there is no accuracy).
    """

    description: str
    num_classes: int
    parameters: int | None = None
    input_shape: tuple[int, ...] | None = None
    input_bounds: tuple[float, float] | None = None
    bounds_source: str | None = None
    accuracy: dict[str, Estimate] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    kind: str = "classifier"

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "num_classes": self.num_classes,
            "kind": self.kind,
            "parameters": self.parameters,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "input_bounds": None if self.input_bounds is None else list(self.input_bounds),
            "bounds_source": self.bounds_source,
            "accuracy": {k: v.to_dict() for k, v in self.accuracy.items()},
            "files": dict(self.files),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TargetCard | None:
        if d is None:
            return None
        return cls(
            description=d["description"],
            num_classes=d["num_classes"],
            parameters=d.get("parameters"),
            input_shape=None if d.get("input_shape") is None else tuple(d["input_shape"]),
            input_bounds=None if d.get("input_bounds") is None else tuple(d["input_bounds"]),
            bounds_source=d.get("bounds_source"),
            accuracy={k: Estimate.from_dict(v) for k, v in d.get("accuracy", {}).items()},
            files=dict(d.get("files", {})),
            kind=d.get("kind", "classifier"),
        )


@dataclass
class AuditResult:
    """What one audit found.

    Attributes:
        name: registry name, e.g. ``"membership.lira"``.
        id: unique within a run: the name plus its variant, e.g. ``"membership.lira[online]"``;
            keys arrays, metrics, gates and report anchors (defaults to ``name``).
        status: ``"ok"``, ``"skipped"`` (the target or data cannot support it; see ``reason``)
            or ``"failed"`` (an error inside the audit; see ``reason``).
        reason: why skipped or failed.
        metrics: headline metrics, each an `Estimate`, e.g. ``"auc"``, ``"tpr_at_fpr_0.01"``.
        groups: metrics per subgroup, e.g. ``{"class=3": {"auc": Estimate, ...}}``.
        arrays: per-record arrays (scores, membership labels, record indices) for ``arrays.npz``.
        params: the audit's hyper-parameters as given.
        details: other JSON-serialisable facts (operating threshold, calibration source, ...).
        duration_s: wall-clock seconds the audit took.
        headline: the metric that matters and a sentence on it.
    """

    name: str
    id: str = ""
    status: Status = "ok"
    reason: str | None = None
    metrics: dict[str, Estimate] = field(default_factory=dict)
    groups: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    headline: Headline | None = None

    def __post_init__(self) -> None:
        self.id = self.id or self.name

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    def __repr__(self) -> str:
        head = f" {self.headline.sentence!r}" if self.headline else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"<AuditResult {self.id}: {self.status}{why}{head}, {len(self.metrics)} metrics>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "status": self.status,
            "reason": self.reason,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "groups": {g: {k: v.to_dict() for k, v in m.items()} for g, m in self.groups.items()},
            "arrays": sorted(self.arrays),
            "params": _jsonable(self.params),
            "details": _jsonable(self.details),
            "duration_s": round(float(self.duration_s), 3),
            "headline": None if self.headline is None else self.headline.to_dict(),
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> AuditResult:
        return cls(
            name=d["name"],
            id=d.get("id") or d["name"],
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
            headline=Headline.from_dict(d.get("headline")),
        )


@dataclass
class Verdict:
    """The outcome of one ``--fail-on`` rule on one metric.

    Attributes:
        rule: the rule as written.
        metric: ``"<audit id>.<metric>"``.
        value: the metric's value (None when not estimable or not available).
        breached: whether the rule is breached.
        reason: why, when it is breached without a value (not estimable, audit skipped).
    """

    rule: str
    metric: str
    value: float | None
    breached: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "metric": self.metric,
            "value": self.value,
            "breached": self.breached,
            "reason": self.reason,
        }


@dataclass
class RunResult:
    """All audits of one run, plus the target card, provenance and gate verdicts."""

    audits: list[AuditResult]
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    target: TargetCard | None = None

    def __getitem__(self, key: str) -> AuditResult:
        """The audit with this id, or the only audit with this name."""
        for a in self.audits:
            if a.id == key:
                return a
        named = [a for a in self.audits if a.name == key]
        if len(named) == 1:
            return named[0]
        have = ", ".join(a.id for a in self.audits) or "none"
        if named:
            raise KeyError(f"'{key}' names {len(named)} audits; use an id: {have}")
        raise KeyError(f"no audit '{key}' in this run; have: {have}")

    def __repr__(self) -> str:
        counts = {s: sum(a.status == s for a in self.audits) for s in ("ok", "skipped", "failed")}
        text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return f"<RunResult {self.outcome}: {len(self.audits)} audits ({text or 'none'})>"

    @property
    def breached(self) -> bool:
        return any(v.breached for v in self.verdicts)

    @property
    def outcome(self) -> Outcome:
        """``"failed"`` (a gate breached), ``"incomplete"`` (an audit failed, or none ran),
        ``"passed"`` (every gate passed) or ``"complete"`` (all ran, no gate was set)."""
        if self.breached:
            return "failed"
        if any(a.status == "failed" for a in self.audits) or not any(
            a.status == "ok" for a in self.audits
        ):
            return "incomplete"
        return "passed" if self.verdicts else "complete"

    def metric_table(self) -> dict[str, Estimate]:
        """Every metric keyed ``"<audit id>.<metric>"`` (the names ``--fail-on`` matches)."""
        return {f"{a.id}.{k}": v for a in self.audits for k, v in a.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "outcome": self.outcome,
            "target": None if self.target is None else self.target.to_dict(),
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
        arrays = {f"{a.id}/{k}": v for a in self.audits for k, v in a.arrays.items()}
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
        """Read a run directory written by `save` (this version or version 1)."""
        from unmeasured.errors import DataError

        directory = Path(directory)
        path = directory / "results.json"
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"{path}: no results.json in this run directory") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        if d.get("schema_version") not in READABLE_VERSIONS:
            raise DataError(
                f"{path}: schema_version {d.get('schema_version')!r} is not supported "
                f"(this version reads {', '.join(map(str, READABLE_VERSIONS))})"
            )
        arrays: dict[str, dict[str, np.ndarray]] = {}
        npz = directory / "arrays.npz"
        if npz.exists():
            with np.load(npz, allow_pickle=False) as z:
                for key in z.files:
                    audit, _, name = key.rpartition("/")
                    arrays.setdefault(audit, {})[name] = z[key]
        audits = [
            AuditResult.from_dict(a, arrays.get(a.get("id") or a["name"])) for a in d["audits"]
        ]
        return cls(
            audits=audits,
            provenance=d.get("provenance", {}),
            warnings=d.get("warnings", []),
            verdicts=[Verdict(**v) for v in d.get("verdicts", [])],
            target=TargetCard.from_dict(d.get("target")),
        )


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
