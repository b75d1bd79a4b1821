"""`memorization.inversion`: model inversion (Fredrikson, Jha & Ristenpart, CCS 2015). For each
class, gradient ascent on the input maximises the class's log-probability under a smoothness
and size prior, and the reconstruction is compared with the class's nearest training record.

The objective of class c at input x is ``log softmax(f(x))_c − λ_TV·TV(x) − λ_2·mean(x²)``,
with TV the mean absolute difference between neighbouring pixels (image records ``(C, H, W)``
only; flat records get the L2 prior alone), maximised with Adam on x from a constant start
(zeros, clipped into the input bounds), x clipped to the bounds after every step. The prior
weights are per pixel, so they mean the same at any resolution.

Similarity is Pearson's correlation between the flattened reconstruction and a record (a
cosine of the centred vectors: blind to brightness and contrast, which inversion does not
recover). For each class: the most similar record of that class, the most similar record of
any other class, and whether the most similar record overall is of the class itself. The
records searched are the training records the run has (``members`` or ``train_sample``).

There is no ready-made implementation of this in the libraries the project uses, so the
ascent is written here with torch's autograd and Adam.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np
import torch

from unmeasured.audits.base import Audit, AuditContext, Constraint, Requirements, interval, options
from unmeasured.audits.registry import register
from unmeasured.errors import ConfigError, TargetError
from unmeasured.results import AuditResult, Headline
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import mean_t, proportion

INVERSION_ROLES = ("members", "train_sample")


@register
class ModelInversion(Audit):
    """Reconstruct a representative input of each class from the model alone and measure how
    close it comes to the class's training records.

    Args:
        role: the training records to compare reconstructions with (``members`` or
            ``train_sample``).
        classes: the classes to invert (default: every class).
        steps: Adam steps of the ascent.
        lr: Adam's step size, as a fraction of the input range (high − low).
        tv_weight: λ_TV, weight of the total-variation prior (image records only).
        l2_weight: λ_2, weight of the mean squared input.
        max_records: at most this many training records are searched (a seeded subsample).

    Metrics: ``own_class_nearest`` (share of classes whose reconstruction's most similar record
    is of that class), ``mean_similarity`` (correlation with the most similar record of the
    class, mean over classes), ``similarity_margin`` (that minus the most similar record of
    other classes), ``mean_confidence`` (the target's probability of the class on its
    reconstruction); per class in groups ``class=<c>``.
    """

    name = "memorization.inversion"
    summary = "model inversion: gradient ascent on the input per class vs nearest training record"
    constraints: ClassVar[dict[str, Constraint]] = {
        "role": options(*INVERSION_ROLES),
        "classes": Constraint(
            lambda v: (
                v is None
                or (
                    isinstance(v, (list, tuple))
                    and len(v) > 0
                    and len(set(v)) == len(v)
                    and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in v)
                )
            ),
            "None or a non-empty list of distinct class indices (ints >= 0)",
        ),
        "steps": interval(1, 10**6, closed="both", kind=int),
        "lr": interval(0, 10),
        "tv_weight": interval(0, 1e6, closed="left"),
        "l2_weight": interval(0, 1e6, closed="left"),
        "max_records": interval(1, 10**8, closed="both", kind=int),
    }

    def __init__(
        self,
        *,
        role: str = "members",
        classes: Sequence[int] | None = None,
        steps: int = 300,
        lr: float = 0.05,
        tv_weight: float = 0.01,
        l2_weight: float = 0.3,
        max_records: int = 20000,
    ) -> None:
        self.role = role
        self.classes = classes
        self.steps = steps
        self.lr = lr
        self.tv_weight = tv_weight
        self.l2_weight = l2_weight
        self.max_records = max_records
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset({"gradients"}), roles=frozenset({self.role}), input_bounds=True
        )

    def metric_names(self) -> tuple[str, ...]:
        return ("own_class_nearest", "mean_similarity", "similarity_margin", "mean_confidence")

    def headline(self, result: AuditResult) -> Headline | None:
        share, similarity = result.metrics["own_class_nearest"], result.metrics["mean_similarity"]
        if share.value is None or share.ci is None or similarity.value is None:
            return None
        chance = float(result.details.get("largest_class_share", 1.0))
        hits, n = round(share.value * share.n), share.n
        return Headline(
            "own_class_nearest",
            f"For {hits} of {n} classes the reconstruction from the model alone is most similar "
            f"to a training record of that class ({share.value:.0%} [{share.ci[0]:.0%}, "
            f"{share.ci[1]:.0%}], against {chance:.0%} for the largest class's share of "
            f"records); mean correlation with the class's nearest record {similarity.value:.2f}.",
            concern=share.ci[0] > chance,
            severity=share.value - chance,
        )

    def run(self, ctx: AuditContext) -> AuditResult:
        target = ctx.target
        if not callable(getattr(target, "logits", None)):
            raise TargetError(
                f"target: {target.description} gives no differentiable logits; model inversion "
                "needs a torch target"
            )
        num_classes = target.num_classes
        classes = list(range(num_classes)) if self.classes is None else list(self.classes)
        wrong = [c for c in classes if c >= num_classes]
        if wrong:
            raise ConfigError(
                f"classes: {wrong[0]} is not a class of the target (0..{num_classes - 1})"
            )
        records = ctx.records(self.role)
        index = np.arange(len(records))
        if len(index) > self.max_records:
            rng = ctx.rng(f"{self.audit_id()}/records")
            index = np.sort(rng.choice(len(index), self.max_records, replace=False))
        bounds = cast(tuple[float, float], ctx.input_bounds)  # required, so known
        shape = records.input_shape
        generator = torch.Generator().manual_seed(int(ctx.rng(self.audit_id()).integers(2**31)))
        with ctx.progress.task(self.audit_id(), total=self.steps) as step:
            x = invert(
                target.logits,  # type: ignore[attr-defined]
                classes,
                shape,
                bounds,
                steps=self.steps,
                lr=self.lr,
                tv_weight=self.tv_weight,
                l2_weight=self.l2_weight,
                device=getattr(target, "device", "cpu"),
                generator=generator,
                on_step=step,
            )
        reconstructions = x.cpu().numpy().astype(np.float32)
        confidence = np.exp(target.log_probs(reconstructions)[np.arange(len(classes)), classes])
        labels = records.y[index]
        similarity = correlation(reconstructions, records.x[index])  # (classes, records)
        own = np.full(len(classes), np.nan)
        other = np.full(len(classes), np.nan)
        nearest = np.zeros(len(classes), dtype=np.int64)
        hits = 0
        for k, c in enumerate(classes):
            mine = labels == c
            if mine.any():
                nearest[k] = index[np.flatnonzero(mine)[np.argmax(similarity[k, mine])]]
                own[k] = similarity[k, mine].max()
            if (~mine).any():
                other[k] = similarity[k, ~mine].max()
            hits += int(labels[np.argmax(similarity[k])] == c)
        present = np.isfinite(own)
        counts = np.bincount(labels, minlength=num_classes)
        details: dict[str, Any] = {
            "role": self.role,
            "classes": classes,
            "n_records": len(index),
            "input_bounds": list(bounds),
            "largest_class_share": float(counts.max() / max(len(labels), 1)),
            "classes_without_records": [c for c, p in zip(classes, present, strict=True) if not p],
            "similarity": "Pearson correlation of the flattened input",
            "tv_prior": len(shape) == 3,
        }
        n = int(present.sum())
        metrics = {
            "own_class_nearest": proportion(
                hits, len(classes), ctx.confidence, empty="no classes to invert"
            ),
            "mean_similarity": mean_t(
                own[present], ctx.confidence, bounds=(-1.0, 1.0), empty="no classes with records"
            ),
            # a difference of two correlations lies in [-2, 2]
            "similarity_margin": mean_t(
                (own - other)[present & np.isfinite(other)],
                ctx.confidence,
                bounds=(-2.0, 2.0),
                empty="no classes with records",
            ),
            "mean_confidence": mean_t(
                confidence, ctx.confidence, bounds=(0.0, 1.0), empty="no classes"
            ),
        }
        groups = {
            f"class={c}": {
                "similarity": _point(own[k]),
                "other_similarity": _point(other[k]),
                "confidence": _point(confidence[k]),
            }
            for k, c in enumerate(classes)
        }
        nearest_x = np.where(
            present.reshape(-1, *[1] * len(shape)), records.x[nearest], np.nan
        ).astype(np.float32)
        return AuditResult(
            name=self.name,
            metrics=metrics,
            groups=groups,
            arrays={
                "classes": np.asarray(classes, dtype=np.int64),
                "reconstruction": reconstructions,
                "nearest": nearest_x,
                "nearest_index": np.where(present, nearest, -1),
                "similarity": own,
                "other_similarity": other,
                "confidence": confidence,
            },
            details=details | {"n_classes_with_records": n},
        )


def invert(
    logits: Any,
    classes: Sequence[int],
    shape: tuple[int, ...],
    bounds: tuple[float, float],
    *,
    steps: int,
    lr: float,
    tv_weight: float,
    l2_weight: float,
    device: Any = "cpu",
    generator: torch.Generator | None = None,
    on_step: Any = None,
) -> torch.Tensor:
    """One reconstruction per class by gradient ascent on the input.

    Maximises ``log softmax(logits(x))_c − tv_weight·TV(x) − l2_weight·mean(x²)`` for every
    class ``c`` at once (the classes share nothing but the batch), with Adam on x, x clipped to
    ``bounds`` after every step.

    Args:
        logits: a differentiable function from a batch of inputs to logits.
        classes: the class of each reconstruction.
        shape: the shape of one input; TV applies when it is ``(C, H, W)``.
        bounds: the valid input range ``(low, high)``.
        steps: Adam steps.
        lr: Adam's step size as a fraction of ``high − low``.
        tv_weight, l2_weight: the prior's weights (per pixel).
        device: where to run.
        generator: seeds the tiny noise added to the constant start (breaks ties between
            symmetric pixels).
        on_step: called with 1 after each step (progress).

    Returns:
        ``(len(classes), *shape)`` reconstructions, detached.

    Example:
        >>> net = torch.nn.Linear(4, 2)
        >>> invert(net, [0, 1], (4,), (0.0, 1.0), steps=5, lr=0.1, tv_weight=0, l2_weight=0).shape
        torch.Size([2, 4])
    """
    low, high = bounds
    start = torch.zeros((len(classes), *shape)).clamp(low, high)
    noise = torch.rand(start.shape, generator=generator) - 0.5
    x = (start + 1e-3 * (high - low) * noise).clamp(low, high).to(device).requires_grad_()
    target = torch.as_tensor(list(classes), dtype=torch.long, device=device)
    optimizer = torch.optim.Adam([x], lr=lr * (high - low))
    rows = torch.arange(len(classes), device=device)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            log_p = torch.log_softmax(logits(x), dim=1)[rows, target]
            flat = x.reshape(len(x), -1)
            prior = l2_weight * flat.pow(2).mean(dim=1)
            if len(shape) == 3 and tv_weight > 0:
                prior = prior + tv_weight * total_variation(x)
            (prior - log_p).sum().backward()
            optimizer.step()
            with torch.no_grad():
                x.clamp_(low, high)
            if on_step is not None:
                on_step(1)
    return x.detach()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between vertically and horizontally neighbouring pixels, per
    image of a batch ``(N, C, H, W)``."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(dim=1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(dim=1)
    return dh + dw


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b`` (both flattened per
    record); 0 where a row is constant.

    Example:
        >>> correlation(np.array([[0.0, 1.0, 2.0]]), np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
        array([[ 1., -1.]])
    """

    def standardise(m: np.ndarray) -> np.ndarray:
        m = m.reshape(len(m), -1).astype(np.float64)
        m = m - m.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(m, axis=1, keepdims=True)
        return np.divide(m, norm, out=np.zeros_like(m), where=norm > 0)

    return np.asarray(standardise(a) @ standardise(b).T)


def _point(value: float) -> Estimate:
    if not np.isfinite(value):
        return Estimate.not_estimable("no record of this class to compare with", n=0)
    return Estimate(float(value), None, 1)
