"""The robustness family's bases: `EvasionAttack` (an upper bound on robust accuracy: what an
attacker achieves) and `Certifier` (a lower bound: what is proven), over one shared base that
owns the epsilons, the norm, the records attacked, the input bounds and the estimates.

A method is one small subclass: an attack writes `EvasionAttack.perturb`, a certifier writes
`Certifier.certify`. The base re-checks every adversarial example and every witness on the
target itself (inside the epsilon ball, inside the input box, misclassified) before counting
it, so a buggy method can make a result weaker, never wrong in the attacker's favour.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch

from unmeasured.audits.base import Audit, AuditContext, Constraint, Requirements, interval, options
from unmeasured.audits.robustness.attacks import Model
from unmeasured.audits.robustness.norms import NORMS, clip_to_box, inside, project_to_ball
from unmeasured.results import AuditResult, Headline
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import proportion
from unmeasured.targets.base import Target

CertificateStatus = Literal["robust", "not_robust", "unknown", "timeout"]
#: codes of certificate statuses in ``arrays.npz``
STATUS_CODES: dict[str, int] = {"robust": 1, "not_robust": 0, "unknown": -1, "timeout": -2}

#: adversarial examples of image records kept for the report, at the largest epsilon
EXAMPLES = 4

EPSILONS = Constraint(
    lambda v: (
        isinstance(v, (list, tuple))
        and len(v) > 0
        and all(isinstance(e, (int, float)) and not isinstance(e, bool) and e >= 0 for e in v)
    ),
    "a non-empty list of non-negative numbers",
)


def accuracy_key(eps: float, kind: str = "robust") -> str:
    """The metric name of (robust or certified) accuracy at ``eps``: ``robust_accuracy_at_0.03``."""
    return f"{kind}_accuracy_at_{eps:g}"


def test_records(ctx: AuditContext, max_records: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, labels and positions (in ``data.test``) of the records a robustness audit uses:
    the same seeded subset for every audit of a run with the same ``max_records``, so attacks,
    certificates and corruptions are compared on the same records."""
    test = ctx.records("test")
    index = np.arange(len(test))
    if len(test) > max_records:
        order = ctx.rng(f"robustness/records/{max_records}").permutation(len(test))
        index = np.sort(order[:max_records])
    return test.x[index], test.y[index], index


def target_model(target: Target) -> Model:
    """The target as a differentiable torch function where it is white-box (its own device and
    dtype), else a gradient-free wrapper around its predictions (for score-based attacks)."""
    logits = getattr(target, "logits", None)
    if callable(logits) and "gradients" in target.capabilities:
        return logits  # type: ignore[no-any-return]

    def black_box(x: torch.Tensor) -> torch.Tensor:
        out = target.predict(x.detach().cpu().numpy())
        return torch.from_numpy(np.asarray(out)).to(x.device)

    return black_box


class RobustnessAudit(Audit):
    """What evasion attacks and certifiers share: the epsilons of the curve, the norm, which
    test records are used, and turning per-record outcomes into estimates.

    Args:
        epsilons: perturbation budgets; one robust-accuracy estimate each (a curve).
        norm: ``"linf"`` or ``"l2"``.
        max_records: at most this many test records (a seeded random subset), since strong
            attacks and certificates cost many forward passes per record.
        batch_size: records per batch.
    """

    constraints: ClassVar[dict[str, Constraint]] = {
        "epsilons": EPSILONS,
        "norm": options(*NORMS),
        "max_records": interval(1, 10**9, closed="both", kind=int),
        "batch_size": interval(1, 10**9, closed="both", kind=int),
    }
    variant_params: ClassVar[tuple[str, ...]] = ("norm",)
    #: the metric kind: ``"robust"`` (attacks) or ``"certified"`` (certificates)
    accuracy_kind: ClassVar[str] = "robust"

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 500,
        batch_size: int = 256,
    ) -> None:
        self.epsilons = epsilons
        self.norm = norm
        self.max_records = max_records
        self.batch_size = batch_size
        self.validate()

    def metric_names(self) -> tuple[str, ...]:
        return ("clean_accuracy", *(accuracy_key(e, self.accuracy_kind) for e in self.epsilons))

    def test_records(self, ctx: AuditContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return test_records(ctx, self.max_records)

    def estimate(self, hits: np.ndarray, ctx: AuditContext) -> Estimate:
        """A proportion with its Clopper–Pearson interval."""
        return proportion(int(hits.sum()), len(hits), ctx.confidence)

    def headline(self, result: AuditResult) -> Headline | None:
        clean = result.metrics.get("clean_accuracy")
        eps = max(self.epsilons)
        at = result.metrics.get(accuracy_key(eps, self.accuracy_kind))
        if clean is None or at is None or at.value is None or at.ci is None:
            return None
        norm = {"linf": "L∞", "l2": "L2"}[self.norm]
        verb = "an attack brings" if self.accuracy_kind == "robust" else "certificates prove"
        drop = clean.value is not None and at.ci[1] < clean.value
        return Headline(
            accuracy_key(eps, self.accuracy_kind),
            f"At {norm} ε = {eps:g}, {verb} accuracy from {clean.value:.1%} to "
            f"{at.value:.1%} [{at.ci[0]:.1%}, {at.ci[1]:.1%}].",
            concern=drop if self.accuracy_kind == "robust" else None,
            severity=(clean.value or 0.0) - at.value,
        )

    def _tensors(self, ctx: AuditContext, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        device = getattr(ctx.target, "device", torch.device("cpu"))
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


class EvasionAttack(RobustnessAudit):
    """Base of evasion attacks: a subclass implements `perturb` for one batch and one epsilon.

    The base draws the records, runs `perturb` batch by batch for every epsilon, projects the
    result into the epsilon ball and the input box (the attack should already have), re-checks
    each adversarial example on the target, and reports clean accuracy, robust accuracy per
    epsilon (a record counts as robust when the target classifies it correctly and the attack
    found no valid adversarial example) and, per record, the smallest epsilon that broke it.
    """

    #: whether the attack needs the target's gradients (white-box) or only its scores
    needs_gradients: ClassVar[bool] = True

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset({"gradients"} if self.needs_gradients else {"scores"}),
            roles=frozenset({"test"}),
            input_bounds=True,
        )

    @abstractmethod
    def perturb(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        bounds: tuple[float, float],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Adversarial versions of ``x`` (same shape) within ``eps`` in `norm` and ``bounds``."""

    def attack_model(self, ctx: AuditContext) -> Model:
        """The model the attack computes its perturbations on: the target itself (a transfer
        attack substitutes a surrogate); success is always measured on the target."""
        return target_model(ctx.target)

    def prepare(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        bounds: tuple[float, float],
        generator: torch.Generator,
    ) -> None:
        """Called once per epsilon with all the attacked records before `perturb` sees them
        batch by batch (a universal perturbation is fitted here); nothing by default."""

    def run(self, ctx: AuditContext) -> AuditResult:
        x, y, index = self.test_records(ctx)
        bounds = cast(tuple[float, float], ctx.input_bounds)  # required: checked before the run
        model = self.attack_model(ctx)
        correct = ctx.target.predict_labels(x) == y
        generator = torch.Generator().manual_seed(int(ctx.rng(self.audit_id()).integers(2**31)))
        broken = np.zeros((len(x), len(self.epsilons)), dtype=bool)
        examples: dict[str, np.ndarray] = {}
        xa, ya = self._tensors(ctx, x, y)
        with ctx.progress.task(f"{self.audit_id()}", total=len(self.epsilons) * len(x)) as step:
            for j, eps in enumerate(self.epsilons):
                self.prepare(model, xa, ya, eps=float(eps), bounds=bounds, generator=generator)
                for start in range(0, len(x), self.batch_size):
                    part = slice(start, start + self.batch_size)
                    xb, yb = self._tensors(ctx, x[part], y[part])
                    adv = self.perturb(
                        model, xb, yb, eps=float(eps), bounds=bounds, generator=generator
                    ).detach()
                    adv = clip_to_box(xb + project_to_ball(adv - xb, float(eps), self.norm), bounds)
                    valid = inside(adv, xb, float(eps), self.norm, bounds).cpu().numpy()
                    predicted = ctx.target.predict_labels(adv.cpu().numpy())
                    broken[part, j] = valid & (predicted != y[part])
                    if j == len(self.epsilons) - 1 and x.ndim == 4:
                        self._keep_examples(
                            examples, x[part], adv, y[part], predicted, broken[part, j]
                        )
                    step(len(yb))
        robust = correct[:, None] & ~broken
        metrics = {"clean_accuracy": self.estimate(correct, ctx)}
        for j, eps in enumerate(self.epsilons):
            metrics[accuracy_key(eps)] = self.estimate(robust[:, j], ctx)
        eps_arr = np.asarray(self.epsilons, dtype=np.float64)
        first = np.where(broken.any(axis=1), eps_arr[np.argmax(broken, axis=1)], np.inf)
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={
                "epsilons": eps_arr,
                "robust": robust.astype(np.int8),
                "smallest_breaking_epsilon": np.where(correct, first, 0.0),
                "label": y.astype(np.int64),
                "record_index": index.astype(np.int64),
                **examples,
            },
            details={"norm": self.norm, "input_bounds": list(bounds), "n_records": len(x)},
        )

    @staticmethod
    def _keep_examples(
        examples: dict[str, np.ndarray],
        clean: np.ndarray,
        adversarial: torch.Tensor,
        label: np.ndarray,
        predicted: np.ndarray,
        broken: np.ndarray,
    ) -> None:
        """Keep up to `EXAMPLES` broken image records (clean and adversarial) for the report."""
        have = len(examples.get("example_label", ()))
        take = np.flatnonzero(broken)[: EXAMPLES - have]
        if not len(take):
            return
        new = {
            "example_clean": clean[take],
            "example_adversarial": adversarial.cpu().numpy()[take],
            "example_label": label[take].astype(np.int64),
            "example_predicted": np.asarray(predicted)[take].astype(np.int64),
        }
        for key, value in new.items():
            examples[key] = np.concatenate([examples[key], value]) if key in examples else value


@dataclass(frozen=True)
class Certificate:
    """A certifier's answer for one record at one epsilon.

    Attributes:
        status: ``"robust"`` (proven: no input in the ball is misclassified), ``"not_robust"``
            (with a ``witness``), ``"unknown"`` (the method cannot decide), ``"timeout"``.
        witness: for ``"not_robust"``, an input in the ball and the box that is misclassified.
    """

    status: CertificateStatus
    witness: torch.Tensor | None = None


class Certifier(RobustnessAudit):
    """Base of certifiers: a subclass implements `certify` for one batch and one epsilon.

    The base does the bookkeeping: clean accuracy, certified accuracy per epsilon (correct and
    proven robust), the count of each verdict, and every witness re-checked on the target (a
    witness that is outside the ball or the box, or not misclassified, turns the verdict into
    ``"unknown"`` and is counted as ``invalid_witnesses``).
    """

    accuracy_kind: ClassVar[str] = "certified"

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset({"weights"}), roles=frozenset({"test"}), input_bounds=True
        )

    @abstractmethod
    def certify(
        self,
        ctx: AuditContext,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        bounds: tuple[float, float],
    ) -> Sequence[Certificate]:
        """One certificate per record of the batch."""

    def run(self, ctx: AuditContext) -> AuditResult:
        x, y, index = self.test_records(ctx)
        bounds = cast(tuple[float, float], ctx.input_bounds)  # required: checked before the run
        correct = ctx.target.predict_labels(x) == y
        codes = np.zeros((len(x), len(self.epsilons)), dtype=np.int8)
        invalid = 0
        with ctx.progress.task(f"{self.audit_id()}", total=len(self.epsilons) * len(x)) as step:
            for j, eps in enumerate(self.epsilons):
                for start in range(0, len(x), self.batch_size):
                    part = slice(start, start + self.batch_size)
                    xb, yb = self._tensors(ctx, x[part], y[part])
                    certs = self.certify(ctx, xb, yb, eps=float(eps), bounds=bounds)
                    for i, cert in enumerate(certs):
                        status = cert.status
                        if status == "not_robust" and not self._witness_holds(
                            ctx, cert.witness, xb[i], int(y[start + i]), float(eps), bounds
                        ):
                            status, invalid = "unknown", invalid + 1
                        codes[start + i, j] = STATUS_CODES[status]
                    step(len(yb))
        metrics = {"clean_accuracy": self.estimate(correct, ctx)}
        counts = {}
        for j, eps in enumerate(self.epsilons):
            metrics[accuracy_key(eps, "certified")] = self.estimate(
                correct & (codes[:, j] == STATUS_CODES["robust"]), ctx
            )
            counts[f"{eps:g}"] = {s: int((codes[:, j] == c).sum()) for s, c in STATUS_CODES.items()}
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={
                "epsilons": np.asarray(self.epsilons, dtype=np.float64),
                "status": codes,
                "label": y.astype(np.int64),
                "record_index": index.astype(np.int64),
            },
            details={
                "norm": self.norm,
                "input_bounds": list(bounds),
                "n_records": len(x),
                "verdicts": counts,
                "invalid_witnesses": invalid,
                "status_codes": STATUS_CODES,
            },
        )

    def _witness_holds(
        self,
        ctx: AuditContext,
        witness: torch.Tensor | None,
        x: torch.Tensor,
        label: int,
        eps: float,
        bounds: tuple[float, float],
    ) -> bool:
        if witness is None:
            return False
        w = witness.reshape(1, *x.shape).to(x.dtype)
        if not bool(inside(w, x[None], eps, self.norm, bounds)[0]):
            return False
        return bool(ctx.target.predict_labels(w.cpu().numpy())[0] != label)
