"""The `Audit` base class, what an audit needs (`Requirements`) and its run context.

An audit is one concern in one class: keyword-only hyper-parameters stored as given (so `repr`,
`get_params` and config round-trips work for every audit alike), checked against their typed
signature and declared constraints at construction, a `requirements` value that one generic
check compares with the target, the data and the recipe before any work starts, and
``run(ctx) -> AuditResult``. A family base (`MembershipAttack`, `EvasionAttack`, `Certifier`,
`CanaryAudit`, `ProbeAudit`) owns what its audits share, so a new method is one small class.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from unmeasured.data.records import ROLES, Datasets, Records
from unmeasured.errors import TargetError
from unmeasured.params import BOOLEAN, Constraint, check_params, interval, keyword_params, options
from unmeasured.progress import Progress
from unmeasured.results import AuditResult, Headline
from unmeasured.targets.base import CAPABILITIES, Target

__all__ = [
    "BOOLEAN",
    "Audit",
    "AuditContext",
    "Constraint",
    "Requirements",
    "interval",
    "options",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Requirements:
    """What one audit instance needs before it can run.

    Attributes:
        capabilities: what the target must give (`CAPABILITIES`: ``"labels"``, ``"scores"``,
            ``"logits"``, ``"gradients"``, ``"weights"``, ``"layers"``).
        roles: data roles that must be given (``"members"``, ``"test"``, ...).
        columns: per-record columns the roles in ``columns_on`` must carry (``"sensitive"``,
            ``"user"``, ...).
        columns_on: the roles that need those columns (default: every required role).
        recipe: whether a training recipe (``[recipe]``) is needed.
        input_bounds: whether the target's valid input range must be known.
        image_inputs: whether records must be images ``(C, H, W)``.
        alternatives: other sets of needs, any one of which will do instead of this one (an
            audit with one method per kind of target); built with `either`.
    """

    capabilities: frozenset[str] = frozenset({"scores"})
    roles: frozenset[str] = frozenset()
    columns: frozenset[str] = frozenset()
    columns_on: frozenset[str] = frozenset()
    recipe: bool = False
    input_bounds: bool = False
    image_inputs: bool = False
    alternatives: tuple[Requirements, ...] = ()

    @classmethod
    def either(cls, first: Requirements, *others: Requirements) -> Requirements:
        """Needs met when those of ``first`` or of any of ``others`` are (``first``'s fields are
        the instance's own, so code that reads ``capabilities`` sees the first option)."""
        return replace(first, alternatives=(*first.alternatives, *others))

    def __post_init__(self) -> None:
        unknown = (set(self.capabilities) - set(CAPABILITIES)) | (set(self.roles) - set(ROLES))
        if unknown:  # a programming error in an audit class, not a user error
            raise ValueError(f"unknown requirement(s): {sorted(unknown)}")

    def unmet(
        self,
        *,
        target: Target,
        data: Datasets,
        recipe: Any,
        input_bounds: tuple[float, float] | None,
    ) -> list[str]:
        """Every requirement the run does not meet, in words (empty when all are met). With
        `alternatives`, empty when any option is met, else one line naming what each lacks."""
        kwargs = {"target": target, "data": data, "recipe": recipe, "input_bounds": input_bounds}
        problems = self._own_unmet(**kwargs)
        if not problems or not self.alternatives:
            return problems
        options = [problems]
        for alternative in self.alternatives:
            lacking = alternative.unmet(**kwargs)
            if not lacking:
                return []
            options.append(lacking)
        return ["either " + ", or ".join(" and ".join(p) for p in options)]

    def _own_unmet(
        self,
        *,
        target: Target,
        data: Datasets,
        recipe: Any,
        input_bounds: tuple[float, float] | None,
    ) -> list[str]:
        problems = []
        missing = sorted(set(self.capabilities) - set(target.capabilities))
        if missing:
            problems.append(
                f"needs a target that gives {', '.join(missing)}; {target.description} gives "
                f"{', '.join(sorted(target.capabilities))}"
            )
        absent = [r for r in ROLES if r in self.roles and data.get(r) is None]
        if absent:
            problems.append(f"needs data {', '.join(f'data.{r}' for r in absent)}")
        for role in sorted(self.columns_on or self.roles):
            records = data.get(role)
            lacking = sorted(set(self.columns) - set(records.columns)) if records else []
            if lacking:
                problems.append(
                    f"needs column(s) {', '.join(lacking)} in data.{role} (data.columns)"
                )
        if self.recipe and recipe is None:
            problems.append("needs a training recipe ([recipe] in the config)")
        if self.input_bounds and input_bounds is None:
            problems.append("needs the target's input bounds (target.input_bounds)")
        shape = data.input_shape
        if self.image_inputs and shape is not None and len(shape) != 3:
            problems.append(f"needs image records of shape (C, H, W); the data has {shape}")
        return problems

    def describe(self) -> str:
        """A short text for ``unmeasured list``."""
        parts = sorted(self.capabilities) + sorted(self.roles)
        parts += [f"column {c}" for c in sorted(self.columns)]
        parts += ["recipe"] * self.recipe + ["input bounds"] * self.input_bounds
        parts += ["images"] * self.image_inputs
        return " or ".join([", ".join(parts), *(a.describe() for a in self.alternatives)])


@dataclass
class AuditContext:
    """Everything an audit may use. Built once per run and shared by all audits.

    Attributes:
        target: the model under audit.
        data: the run's data by role.
        seed: the run's seed; audits derive their own generators from it.
        recipe: how to train models like the target; optional.
        cache_dir: where trained models and other reusable work are kept.
        progress: progress reporter for long loops.
        confidence: coverage of every confidence interval.
        input_bounds: the valid input range ``(low, high)``, if known.
    """

    target: Target
    data: Datasets
    seed: int = 0
    recipe: Any = None
    cache_dir: Path | None = None
    progress: Progress = field(default_factory=Progress)
    confidence: float = 0.95
    input_bounds: tuple[float, float] | None = None
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per run under ``key``, then the same value to every audit that asks
        (the target's outputs, reference models, fitted attack classifiers)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[no-any-return]

    def records(self, which: str) -> Records:
        """The records of a data role, or ``"audit"``: members then non-members."""
        if which == "audit":
            return self.data.audit_records()[0]
        return self.data.require(which)

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
        digest = hashlib.sha256(f"{self.seed}/{salt}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class Audit(ABC):
    """Base class of every audit.

    Subclasses set ``name`` (registry name, ``"<family>.<method>"``), ``summary`` (one line)
    and ``constraints``, take their hyper-parameters as keyword-only arguments stored under the
    same names (calling `validate` at the end of ``__init__``), say what they need in
    `requirements`, which metrics they report in `metric_names`, and implement `run`.
    ``variant_params`` names the parameters that tell two instances of one audit apart in their
    id (``membership.lira[online]``).
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    constraints: ClassVar[dict[str, Constraint]] = {}
    variant_params: ClassVar[tuple[str, ...]] = ()

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @classmethod
    def param_names(cls) -> list[str]:
        return keyword_params(cls)

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.param_names()}

    def validate(self) -> None:
        """Check every parameter against its annotation and declared constraint.

        Raises:
            ConfigError: ``<param>: <audit>'s '<param>' must be ...; got ...``.
        """
        check_params(self, self.name, self.constraints)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def audit_id(self) -> str:
        """The audit's id in results, arrays, gates and the report: its name, plus the values of
        its ``variant_params`` in brackets (``membership.lira[online]``)."""
        if not self.variant_params:
            return self.name
        return f"{self.name}[{','.join(str(getattr(self, p)) for p in self.variant_params)}]"

    def requirements(self) -> Requirements:
        """What this instance needs (the default: the target's scores, nothing else)."""
        return Requirements()

    def metric_names(self) -> tuple[str, ...]:
        """The names of the metrics `run` reports (gate rules are checked against them before
        the run)."""
        return ()

    def headline(self, result: AuditResult) -> Headline | None:
        """The one metric that matters in ``result`` and a sentence on what it means."""
        return None

    @abstractmethod
    def run(self, ctx: AuditContext) -> AuditResult:
        """Run the audit and return its result."""

    def __call__(self, ctx: AuditContext) -> AuditResult:
        """Run with timing; a requirement not met gives a ``skipped`` result with the reason
        (the run's preflight check normally catches that before any work)."""
        problems = self.requirements().unmet(
            target=ctx.target, data=ctx.data, recipe=ctx.recipe, input_bounds=ctx.input_bounds
        )
        if problems:
            return AuditResult(
                name=self.name,
                id=self.audit_id(),
                status="skipped",
                reason="; ".join(problems),
                params=self.get_params(),
            )
        start = time.perf_counter()
        result = self.run(ctx)
        result.name = self.name
        result.id = self.audit_id()
        result.params = self.get_params()
        result.duration_s = time.perf_counter() - start
        if result.status == "ok" and result.headline is None:
            result.headline = self.headline(result)
        return result
