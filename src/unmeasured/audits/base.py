"""The `Audit` base class, its run context and parameter validation.

An audit is one concern in one class: keyword-only hyper-parameters stored as given (so `repr`,
`get_params` and config round-trips work for every audit alike), declared constraints checked at
construction, a `check` that lists problems before any work starts, and ``run(ctx) -> AuditResult``.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from unmeasured.data.records import Records, Split
from unmeasured.errors import ConfigError, TargetError
from unmeasured.progress import Progress
from unmeasured.results import AuditResult
from unmeasured.targets.base import Target

T = TypeVar("T")


@dataclass(frozen=True)
class Constraint:
    """A declared constraint on one hyper-parameter: a predicate and how to say it."""

    check: Callable[[Any], bool]
    description: str


def interval(low: float, high: float, *, closed: str = "neither", kind: type = float) -> Constraint:
    """A number in an interval, e.g. ``interval(0, 1)`` for a rate in (0, 1)."""
    lo_ok = (lambda v: v >= low) if closed in ("left", "both") else (lambda v: v > low)
    hi_ok = (lambda v: v <= high) if closed in ("right", "both") else (lambda v: v < high)
    left = "[" if closed in ("left", "both") else "("
    right = "]" if closed in ("right", "both") else ")"
    name = "an int" if kind is int else "a float"
    numeric = (int,) if kind is int else (int, float)

    def check(v: Any) -> bool:
        return isinstance(v, numeric) and not isinstance(v, bool) and lo_ok(v) and hi_ok(v)

    return Constraint(check, f"{name} in the range {left}{low}, {high}{right}")


def options(*values: Any) -> Constraint:
    """One of a fixed set of values."""
    return Constraint(lambda v: v in values, "one of " + ", ".join(repr(v) for v in values))


BOOLEAN = Constraint(lambda v: isinstance(v, bool), "a bool")


@dataclass
class AuditContext:
    """Everything an audit may use. Built once per run and shared by all audits.

    Attributes:
        target: the model under audit.
        split: members, non-members and optional population.
        seed: the run's seed; audits derive their own generators from it.
        recipe: how to train models like the target (reference-model attacks); optional.
        cache_dir: where trained reference models and other reusable work are kept.
        progress: progress reporter for long loops.
        confidence: coverage of every confidence interval.
    """

    target: Target
    split: Split
    seed: int = 0
    recipe: Any = None
    cache_dir: Path | None = None
    progress: Progress = field(default_factory=Progress)
    confidence: float = 0.95
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per run under ``key``, then the same value to every audit that asks
        (the target's outputs, reference models, fitted attack classifiers)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[no-any-return]

    def records(self, which: str) -> Records:
        """``"members"``, ``"nonmembers"``, ``"population"`` or ``"audit"`` (members then
        non-members)."""
        if which == "audit":
            return self.split.audit_records()[0]
        recs = getattr(self.split, which)
        if recs is None:
            raise ConfigError(f"data.{which}: this audit needs it, and none was given")
        return recs

    def log_probs(self, which: str) -> np.ndarray:
        """The target's log-probabilities on a record set, computed once per run."""
        if which == "audit":
            return self.shared(
                "log_probs/audit",
                lambda: np.concatenate([self.log_probs("members"), self.log_probs("nonmembers")]),
            )
        return self.shared(f"log_probs/{which}", lambda: self._query(which))

    def _query(self, which: str) -> np.ndarray:
        recs = self.records(which)
        out = self.target.log_probs(recs.x)
        bad = int((~np.isfinite(out)).any(axis=1).sum())
        if bad:
            raise TargetError(
                f"target: {self.target.description} returned NaN or infinite outputs "
                f"for {bad} of {len(recs)} {which} records"
            )
        return out

    def rng(self, salt: str) -> np.random.Generator:
        """A generator seeded from the run seed and a per-use salt (so audits are independent)."""
        digest = int.from_bytes(_sha(f"{self.seed}/{salt}")[:8], "little")
        return np.random.default_rng(digest)


def _sha(text: str) -> bytes:
    import hashlib

    return hashlib.sha256(text.encode()).digest()


class Audit(ABC):
    """Base class of every audit.

    Subclasses set ``name`` (registry name), ``summary`` (one line), ``requires`` (target
    capabilities, plus ``"population"`` or ``"recipe"`` when needed) and ``constraints``, take their
    hyper-parameters as keyword-only arguments stored under the same names, and implement `run`.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"scores"})
    constraints: ClassVar[dict[str, Constraint]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.param_names()}

    def validate(self) -> None:
        """Check every declared constraint; raise `ConfigError` naming the parameter."""
        for key, constraint in self.constraints.items():
            value = getattr(self, key)
            if not constraint.check(value):
                raise ConfigError(
                    f"The '{key}' parameter of {self.name} must be {constraint.description}. "
                    f"Got {value!r} instead."
                )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def check(self, ctx: AuditContext) -> list[str]:
        """Reasons this audit cannot run in ``ctx`` (empty when it can)."""
        problems = []
        missing = (self.requires - {"population", "recipe"}) - set(ctx.target.capabilities)
        if missing:
            problems.append(
                f"needs a target that gives {', '.join(sorted(missing))}; "
                f"{ctx.target.description} gives {', '.join(sorted(ctx.target.capabilities))}"
            )
        if "population" in self.requires and ctx.split.population is None:
            problems.append("needs population data (data.population)")
        if "recipe" in self.requires and ctx.recipe is None:
            problems.append("needs a training recipe ([recipe] in the config)")
        return problems

    @abstractmethod
    def run(self, ctx: AuditContext) -> AuditResult:
        """Run the audit and return its result."""

    def __call__(self, ctx: AuditContext) -> AuditResult:
        """Run with checks and timing; a failed check gives a ``skipped`` result with the reason."""
        problems = self.check(ctx)
        if problems:
            return AuditResult(
                name=self.name,
                status="skipped",
                reason="; ".join(problems),
                params=self.get_params(),
            )
        start = time.perf_counter()
        result = self.run(ctx)
        result.params = self.get_params()
        result.duration_s = time.perf_counter() - start
        return result
