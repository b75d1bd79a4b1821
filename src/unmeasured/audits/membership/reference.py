"""Reference models for membership attacks: the data plan, training through the recipe, and the
shared per-record signals.

The standard plan (Carlini et al. 2022; Zarifzadeh et al. 2024):

* **online**: the pool is every audited record (members and non-members), topped up with
  population records to twice the target's training-set size when the population allows;
  each reference model trains on a random half of the pool, balanced so that every record is
  IN for exactly half of the models (for an even number of models). Reference models thus
  train on about as many records as the target did.
* **offline**: reference models never see an audited record; each trains on a random half of
  a population subset of twice the target's training-set size (so offline attacks need
  population data). Every population record is scored, IN or OUT of each model.

Reference models are trained through `training.train_ensemble`, which caches every model's
outputs on disk, so audits that share a plan (LiRA and RMIA in one run, or a rerun) train once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unmeasured.audits.base import AuditContext
from unmeasured.errors import ConfigError
from unmeasured.targets.base import to_log_probs


@dataclass(frozen=True)
class ReferenceOutputs:
    """Outputs of K reference models on every record of the pool.

    Attributes:
        log_probs: shape ``(K, n_pool, n_queries, C)``: log-probabilities of each model on each
            record under each query augmentation (``n_queries`` is 1 without augmentation).
        masks: bool ``(K, n_pool)``: which records each model trained on.
        n_audit: the pool's first ``n_audit`` records are the audited ones (members then
            non-members); the rest is the population.
    """

    log_probs: np.ndarray
    masks: np.ndarray
    n_audit: int

    @property
    def num_models(self) -> int:
        return int(self.masks.shape[0])


def balanced_masks(num_models: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Inclusion masks where every record is IN for exactly half of the models (K even) and
    every model trains on about half of the records."""
    if num_models == 1:
        mask = np.zeros((1, n), dtype=bool)
        mask[0, rng.permutation(n)[: n // 2]] = True
        return mask
    rank = rng.random((num_models, n)).argsort(axis=0).argsort(axis=0)
    return rank < num_models // 2


def plan_masks(
    mode: str,
    num_models: int,
    n_audit: int,
    n_population: int,
    n_train: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Training masks over the pool (audited records, then population) for ``mode``, where
    ``n_train`` is the target's training-set size."""
    n = n_audit + n_population
    if mode == "online":
        used = n_audit + min(n_population, max(0, 2 * n_train - n_audit))
        masks = np.zeros((num_models, n), dtype=bool)
        masks[:, :used] = balanced_masks(num_models, used, rng)
        return masks
    if mode == "offline":
        if n_population < 2:
            raise ConfigError("data.population: offline reference models need population data")
        masks = np.zeros((num_models, n), dtype=bool)
        used = min(n_population, 2 * n_train)
        chosen = n_audit + rng.permutation(n_population)[:used]
        masks[:, chosen] = balanced_masks(num_models, used, rng)
        return masks
    raise ConfigError(f"mode: must be 'online' or 'offline', got {mode!r}")


def augment(x: np.ndarray, augmentation: str) -> np.ndarray:
    """Query augmentations, stacked on a new axis 1: ``"none"`` → ``(n, 1, ...)``;
    ``"flip"`` → original and horizontal flip; ``"flip_shift"`` → those plus 1-pixel shifts in
    four directions (images ``(n, C, H, W)`` only)."""
    if augmentation == "none":
        return x[:, None]
    if x.ndim != 4:
        raise ConfigError(
            f"augmentation: '{augmentation}' needs image inputs of shape (n, C, H, W); "
            f"the records have shape {x.shape[1:]}"
        )
    views = [x, x[..., ::-1]]
    if augmentation == "flip_shift":
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            views.append(np.roll(x, shift=(dy, dx), axis=(2, 3)))
    elif augmentation != "flip":
        raise ConfigError(
            f"augmentation: must be 'none', 'flip' or 'flip_shift', got {augmentation!r}"
        )
    return np.ascontiguousarray(np.stack(views, axis=1))


def pool(ctx: AuditContext) -> tuple[np.ndarray, np.ndarray, int]:
    """The pool's inputs and labels (audited records, then population) and the audited count."""
    audit_records, _ = ctx.data.audit_records()
    population = ctx.data.population
    if population is None:
        return audit_records.x, audit_records.y, len(audit_records)
    return (
        np.concatenate([audit_records.x, population.x]),
        np.concatenate([audit_records.y, population.y]),
        len(audit_records),
    )


def reference_outputs(
    ctx: AuditContext, *, mode: str, num_models: int, augmentation: str = "none"
) -> ReferenceOutputs:
    """Train (or load from the cache) the reference models of a plan and query them; shared by
    every audit of the run that uses the same plan."""
    return ctx.shared(
        f"reference/{mode}/{num_models}/{augmentation}",
        lambda: _train_references(ctx, mode, num_models, augmentation),
    )


def _train_references(
    ctx: AuditContext, mode: str, num_models: int, augmentation: str
) -> ReferenceOutputs:
    from unmeasured.training import train_ensemble

    x, y, n_audit = pool(ctx)
    n_population = len(x) - n_audit
    rng = ctx.rng(f"reference-plan/{mode}/{num_models}")
    masks = plan_masks(
        mode, num_models, n_audit, n_population, len(ctx.data.require("members")), rng
    )
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=num_models)]
    queries = augment(x, augmentation)
    n, q = queries.shape[:2]
    flat = queries.reshape(n * q, *queries.shape[2:])
    logits = train_ensemble(
        ctx.recipe,
        x,
        y,
        masks,
        flat,
        seeds=seeds,
        num_classes=ctx.target.num_classes,
        cache_dir=ctx.cache_dir,
        progress=ctx.progress,
    )
    log_probs = np.stack([to_log_probs(m, "logits") for m in logits]).reshape(num_models, n, q, -1)
    return ReferenceOutputs(log_probs=log_probs, masks=masks, n_audit=n_audit)


def target_log_probs(ctx: AuditContext, augmentation: str) -> np.ndarray:
    """The target's log-probabilities on the pool, shape ``(n_pool, n_queries, C)``."""
    return ctx.shared(f"target-pool/{augmentation}", lambda: _query_pool(ctx, augmentation))


def _query_pool(ctx: AuditContext, augmentation: str) -> np.ndarray:
    x, _, n_audit = pool(ctx)
    if augmentation == "none":  # reuse the outputs the whole run shares
        parts = [ctx.log_probs("audit")]
        if len(x) > n_audit:
            parts.append(ctx.log_probs("population"))
        out = np.concatenate(parts)[:, None]
    else:
        queries = augment(x, augmentation)
        n, q = queries.shape[:2]
        flat = queries.reshape(n * q, *queries.shape[2:])
        out = ctx.target.log_probs(flat).reshape(n, q, -1)
    return out
