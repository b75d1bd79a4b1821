"""LiRA, the likelihood-ratio attack (Carlini et al., S&P 2022, "Membership inference attacks
from first principles").

Per record, the logit-scaled confidence ``φ = log(p_y / (1 − p_y))`` of reference models that
trained on it (IN) and that did not (OUT) is modelled as Gaussian; the target's ``φ`` is scored by
the likelihood ratio (online) or by how far it lies above the OUT distribution (offline,
one-sided). With few reference models a global variance (the median of the per-record standard
deviations) is far more stable than per-record variances, as the paper reports.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.stats import norm

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
    pool,
    target_log_probs,
)
from unmeasured.audits.membership.scores import logit_scaled_confidence
from unmeasured.audits.registry import register
from unmeasured.errors import ConfigError

_MIN_STD = 1e-6


def _logit_conf(log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """φ for log-probs of shape (..., n, q, C) and labels (n,) → (..., n, q)."""
    lead = log_probs.shape[:-1]
    flat = log_probs.reshape(-1, log_probs.shape[-1])
    yy = np.broadcast_to(y[:, None], lead[-2:])
    yy = np.broadcast_to(yy, lead).reshape(-1)
    return logit_scaled_confidence(flat, yy).reshape(lead)


def _masked_moments(stats: np.ndarray, mask: np.ndarray, global_variance: bool):
    """Mean and std over the models axis of ``stats`` (K, n, q) where ``mask`` (K, n) holds."""
    w = mask[:, :, None].astype(np.float64)
    count = w.sum(axis=0)
    mean = (stats * w).sum(axis=0) / np.maximum(count, 1)
    var = (((stats - mean) ** 2) * w).sum(axis=0) / np.maximum(count - 1, 1)
    std = np.sqrt(var)
    count = np.broadcast_to(count, std.shape)
    enough = count >= 2
    pooled = float(np.median(std[enough])) if enough.any() else 1.0
    if global_variance:
        std = np.full_like(std, pooled)
    elif not enough.all():  # a record with fewer than 2 models has no variance of its own
        std = np.where(enough, std, pooled)
    return mean, np.maximum(std, _MIN_STD), count


@register
class LiRA(PoolAttack):
    """Likelihood-ratio attack with reference models.

    Args:
        mode: ``"online"`` (reference models train on random halves of the audited records plus
            the population; each record is IN for half of them) or ``"offline"`` (reference
            models never see audited records; needs population data).
        num_models: number of reference models (online needs at least 2).
        variance: ``"global"`` (one variance for all records; best with few models),
            ``"per_example"``, or ``"auto"`` (global below 64 models).
        augmentation: query augmentations for images: ``"none"``, ``"flip"``, ``"flip_shift"``.
        fpr, per_class: as for every membership attack.
    """

    name = "membership.lira"
    variant_params = ("mode",)
    summary = "likelihood-ratio attack with reference models (Carlini et al. 2022)"
    constraints: ClassVar[dict[str, Constraint]] = {
        "mode": options("online", "offline"),
        "num_models": interval(1, 100_000, closed="left", kind=int),
        "variance": options("auto", "global", "per_example"),
        "augmentation": options("none", "flip", "flip_shift"),
        "fpr": interval(0, 1),
        "per_class": BOOLEAN,
    }

    def __init__(
        self,
        *,
        mode: str = "online",
        num_models: int = 16,
        variance: str = "auto",
        augmentation: str = "none",
        fpr: float = 0.01,
        per_class: bool = True,
    ) -> None:
        self.mode = mode
        self.num_models = num_models
        self.variance = variance
        self.augmentation = augmentation
        self.fpr = fpr
        self.per_class = per_class
        self.validate()
        if mode == "online" and num_models < 2:
            raise ConfigError(
                f"num_models: {self.name}'s 'num_models' must be at least 2 in online mode "
                f"(each record needs IN and OUT models); got {num_models}"
            )

    def requirements(self) -> Requirements:
        offline = {"population"} if self.mode == "offline" else set()
        return Requirements(
            roles=MEMBERSHIP_ROLES | offline,
            recipe=True,
            image_inputs=self.augmentation != "none",
        )

    def pool_scores(self, ctx: AuditContext) -> np.ndarray:
        refs = self.references(ctx)
        _, y, _ = pool(ctx)
        ref_stats = _logit_conf(refs.log_probs, y)  # (K, n, q)
        target_stats = _logit_conf(target_log_probs(ctx, self.augmentation), y)  # (n, q)
        global_variance = self.variance == "global" or (
            self.variance == "auto" and self.num_models < 64
        )
        mean_out, std_out, _ = _masked_moments(ref_stats, ~refs.masks, global_variance)
        if self.mode == "offline":
            score = norm.logcdf(target_stats, mean_out, std_out).sum(axis=1)
        else:
            mean_in, std_in, count_in = _masked_moments(ref_stats, refs.masks, global_variance)
            score = (
                norm.logpdf(target_stats, mean_in, std_in)
                - norm.logpdf(target_stats, mean_out, std_out)
            ).sum(axis=1)
            # population records outside the online plan have no IN models: no score
            score = np.where(count_in[:, 0] > 0, score, np.nan)
        return score
