"""RMIA, the robust membership inference attack (Zarifzadeh, Liu & Shokri, ICML 2024).

The likelihood ratio of a record ``x``, ``LR(x) = Pr(x | θ) / Pr(x)``, is compared with the ratio
of population records ``z``; the score is the fraction of ``z`` that ``x`` dominates by a factor
``gamma``. ``Pr(x | θ)`` is the target's probability of the true label; ``Pr(x)`` averages the
reference models. Online it averages every reference model; offline (models that never saw
``x``) it is corrected linearly, ``Pr(x) = ½((1 + a)·Pr_OUT(x) + (1 − a))``, with ``a`` chosen
without the audited ground truth as the paper does: one reference model plays the target, the
others attack it on the population, and the ``a`` that attacks it best is kept.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from unmeasured.audits.base import (
    BOOLEAN,
    AuditContext,
    Constraint,
    Requirements,
    interval,
    options,
)
from unmeasured.audits.membership.attack import MEMBERSHIP_ROLES, PoolAttack
from unmeasured.audits.membership.reference import (
    ReferenceOutputs,
    pool,
    target_log_probs,
)
from unmeasured.audits.registry import register
from unmeasured.stats import auc as auc_estimate

A_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)
A_FALLBACK = 0.5  # with a single reference model nothing can play the target


def _true_class_prob(log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``p_y`` averaged over query augmentations: (..., n, q, C) → (..., n)."""
    idx = np.broadcast_to(y[:, None, None], (*log_probs.shape[-3:-1], 1))
    idx = np.broadcast_to(idx, (*log_probs.shape[:-1], 1))
    return np.exp(np.take_along_axis(log_probs, idx, axis=-1)[..., 0]).mean(axis=-1)


def _out_mean(probs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean over the models that did not train on each record; NaN where every model did
    (such a record has no OUT estimate, and must not count as ``Pr_OUT = 0``)."""
    out = ~masks
    count = out.sum(axis=0)
    total = (probs * out).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def dominance_scores(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """For each x, the fraction of z with ``ratio_x / ratio_z > gamma``; z without a finite
    ratio are left out, and x without one scores NaN."""
    sorted_z = np.sort(ratio_z[np.isfinite(ratio_z)])
    scores = np.searchsorted(sorted_z, ratio_x / gamma, side="left") / max(len(sorted_z), 1)
    return np.where(np.isfinite(ratio_x), scores, np.nan)


@register
class RMIA(PoolAttack):
    """Robust membership inference with reference models and population comparisons.

    Args:
        mode: ``"offline"`` (reference models train on population halves) or ``"online"``.
        num_models: number of reference models; RMIA is strong with 1 to 4.
        a: the offline correction, a float in [0, 1], or ``"auto"`` (chosen on the reference
            models, never on the audited ground truth). Ignored online.
        gamma: the dominance factor (the paper's γ).
        num_population: how many population records serve as ``z`` (all if None).
        augmentation: ``"none"``, ``"flip"`` or ``"flip_shift"`` (images).
        fpr, per_class: as for every membership attack.
    """

    name = "membership.rmia"
    summary = "robust membership inference (Zarifzadeh et al. 2024)"
    variant_params = ("mode",)

    def requirements(self) -> Requirements:
        return Requirements(roles=MEMBERSHIP_ROLES | {"population"}, recipe=True)

    constraints: ClassVar[dict[str, Constraint]] = {
        "mode": options("online", "offline"),
        "num_models": interval(1, 100_000, closed="left", kind=int),
        "a": Constraint(
            lambda v: (
                v == "auto"
                or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1)
            ),
            "'auto' or a float in the range [0, 1]",
        ),
        "gamma": interval(0, float("inf")),
        "num_population": Constraint(
            lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 10),
            "None or an int >= 10",
        ),
        "augmentation": options("none", "flip", "flip_shift"),
        "fpr": interval(0, 1),
        "per_class": BOOLEAN,
    }

    def __init__(
        self,
        *,
        mode: str = "offline",
        num_models: int = 4,
        a: float | str = "auto",
        gamma: float = 1.0,
        num_population: int | None = None,
        augmentation: str = "none",
        fpr: float = 0.01,
        per_class: bool = True,
    ) -> None:
        self.mode = mode
        self.num_models = num_models
        self.a = a
        self.gamma = gamma
        self.num_population = num_population
        self.augmentation = augmentation
        self.fpr = fpr
        self.per_class = per_class
        self.validate()

    def run(self, ctx: AuditContext):  # type: ignore[no-untyped-def]
        result = super().run(ctx)
        result.details["a"] = ctx.shared(f"rmia-a/{self!r}", lambda: None)
        return result

    def pool_scores(self, ctx: AuditContext) -> np.ndarray:
        refs = self.references(ctx)
        _, y, n_audit = pool(ctx)
        ref_probs = _true_class_prob(refs.log_probs, y)  # (K, n)
        target_probs = _true_class_prob(target_log_probs(ctx, self.augmentation), y)  # (n,)
        if self.mode == "online":
            a = None
            marginal = ref_probs.mean(axis=0)
        else:
            a = self._choose_a(refs, ref_probs, n_audit) if self.a == "auto" else float(self.a)
            marginal = 0.5 * ((1 + a) * _out_mean(ref_probs, refs.masks) + (1 - a))
        with np.errstate(invalid="ignore"):
            ratio = target_probs / np.maximum(marginal, 1e-30)
        z = self._population_index(ctx, n_audit, len(y))
        scores = dominance_scores(ratio, ratio[z], self.gamma)
        ctx.shared(f"rmia-a/{self!r}", lambda: a)
        return scores

    def _population_index(self, ctx: AuditContext, n_audit: int, n: int) -> np.ndarray:
        z = np.arange(n_audit, n)
        if self.num_population is not None and self.num_population < len(z):
            z = ctx.rng(f"rmia-z/{self!r}").choice(z, self.num_population, replace=False)
        return z

    def _choose_a(self, refs: ReferenceOutputs, ref_probs: np.ndarray, n_audit: int) -> float:
        """Let each reference model in turn play the target and attack it on the population
        with the others; keep the ``a`` with the best mean AUC."""
        k = refs.num_models
        if k < 2:
            return A_FALLBACK
        pop = slice(n_audit, None)
        masks, probs = refs.masks[:, pop], ref_probs[:, pop]
        aucs = np.zeros(len(A_GRID))
        for t in range(min(k, 4)):
            others = np.arange(k) != t
            out_mean = _out_mean(probs[others], masks[others])
            known = np.isfinite(out_mean)  # records every other model trained on say nothing
            truth = masks[t][known].astype(np.int8)
            if truth.min() == truth.max():
                continue
            for i, a in enumerate(A_GRID):
                marginal = 0.5 * ((1 + a) * out_mean[known] + (1 - a))
                ratio = probs[t][known] / np.maximum(marginal, 1e-30)
                scores = dominance_scores(ratio, ratio, self.gamma)
                aucs[i] += auc_estimate(scores, truth).value
        if not aucs.any():
            return A_FALLBACK
        return float(A_GRID[int(np.argmax(aucs))])
