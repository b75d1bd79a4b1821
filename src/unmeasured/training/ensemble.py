"""Train K models of one recipe, fast, and never lose a finished one.

Backends:

* ``"vmap"``: the K models train in one loop, each on its own data subset. Their parameters are
  stacked along a leading model axis; MLPs run as batched matrix products (``torch.baddbmm``),
  other architectures through ``torch.func`` (``stack_module_state`` + ``functional_call`` +
  ``vmap``). The optimiser (Adam or SGD, as in the recipe) is applied to the stacked tensors
  with a per-model step count, so models whose epoch has fewer batches simply skip a step. Each
  model follows exactly the batch schedule it would follow alone (`recipes.batch_schedule`), so
  the result equals sequential training up to floating-point rounding.
* ``"sequential"``: a plain loop over `Recipe.fit` (the baseline, and the fallback for layers
  that cannot be stacked, e.g. batch normalisation).
* ``"process"``: slices of the models trained in a local process pool (spawned workers, one
  thread each); opt-in: on 2 cores it lost to the plain loop for scikit-learn MLPs, whose BLAS
  already uses both cores.
* ``"ray"``: slices trained as Ray tasks, on a local runtime (``ray.init()``) or an existing
  cluster (``ray_address``); needs ``pip install 'unmeasured[ray]'``.

Every finished model's outputs go to the `OutputCache` at once (for ``vmap``: every finished
chunk of models), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unmeasured.errors import ConfigError, MissingDependencyError, one_of
from unmeasured.progress import Progress
from unmeasured.provenance import sha256_arrays
from unmeasured.training.cache import OutputCache, model_key
from unmeasured.training.recipes import Recipe, TorchRecipe

BACKENDS = ("auto", "vmap", "sequential", "process", "ray")
_QUERY_CHUNK = 4096


@dataclass
class TrainingReport:
    """What one `train_ensemble` call did (pass one in to have it filled)."""

    backend: str = ""
    trained: int = 0
    cached: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def train_ensemble(
    recipe: Recipe,
    x: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    query_x: np.ndarray,
    *,
    seeds: Sequence[int],
    num_classes: int,
    backend: str = "auto",
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    report: TrainingReport | None = None,
) -> np.ndarray:
    """Train one model per row of ``masks`` and return their logits on ``query_x``.

    Args:
        recipe: how to train each model.
        x, y: the training pool.
        masks: bool ``(K, n)``: which pool records model k trains on.
        query_x: records to query every model on.
        seeds: one seed per model (initialisation and batch order).
        num_classes: number of classes.
        backend: ``"auto"``, ``"vmap"``, ``"sequential"``, ``"process"`` or ``"ray"``.
        cache_dir: where finished models' outputs are kept (no cache if None).
        progress: progress reporter.
        chunk_size: models per vmap chunk (default: `auto_chunk_size`).
        workers: process-pool size (default: the number of cores).
        ray_address: a Ray cluster to join (default: start a local runtime).
        report: filled with what was trained and what came from the cache.

    Returns:
        float32 logits of shape ``(K, len(query_x), num_classes)``.
    """
    start = time.perf_counter()
    report = report if report is not None else TrainingReport()
    progress = progress or Progress()
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2 or masks.shape[1] != len(x):
        raise ConfigError(f"masks: expected shape (K, {len(x)}), got {masks.shape}")
    if len(seeds) != len(masks):
        raise ConfigError(f"seeds: expected {len(masks)} seeds, got {len(seeds)}")
    if backend not in BACKENDS:
        raise ConfigError(f"backend: unknown backend '{backend}'; choose {one_of(BACKENDS)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    query_x = np.ascontiguousarray(query_x, dtype=np.float32)
    k_total = len(masks)
    out = np.zeros((k_total, len(query_x), num_classes), dtype=np.float32)

    cache = OutputCache(cache_dir) if cache_dir is not None else None
    keys: list[str | None] = [None] * k_total
    todo = list(range(k_total))
    if cache is not None:
        recipe_key = recipe.cache_key()
        data_digest = sha256_arrays(x, y, np.array([num_classes]))
        query_digest = sha256_arrays(query_x)
        todo = []
        for k in range(k_total):
            keys[k] = model_key(recipe_key, data_digest, masks[k], int(seeds[k]), query_digest)
            hit = cache.get(keys[k])  # type: ignore[arg-type]
            if hit is not None and hit.shape == out.shape[1:]:
                out[k] = hit
            else:
                todo.append(k)
    report.cached = k_total - len(todo)

    def done(index: list[int], logits: np.ndarray) -> None:
        for k, lg in zip(index, logits, strict=True):
            out[k] = lg
            if cache is not None:
                cache.put(keys[k], lg)  # type: ignore[arg-type]
        report.trained += len(index)

    chosen = _choose_backend(recipe, backend, len(todo), report)
    report.backend = chosen
    if todo:
        args = (recipe, x, y, num_classes, query_x)
        with progress.task(
            f"Training {len(todo)} reference models ({chosen})", total=len(todo)
        ) as advance:
            if chosen == "vmap":
                step = chunk_size or auto_chunk_size(recipe, x.shape[1:], num_classes)
                for i in range(0, len(todo), step):
                    index = todo[i : i + step]
                    done(index, train_stacked(*args, masks[index], [int(seeds[k]) for k in index]))
                    advance(len(index))
            elif chosen == "sequential":
                for k in todo:
                    done([k], _train_slice(*args, masks[[k]], [int(seeds[k])]))
                    advance(1)
            else:
                _fan_out(chosen, args, masks, seeds, todo, done, advance, workers, ray_address)
    report.seconds = time.perf_counter() - start
    return out


#: parameters per stacked chunk: large stacks stop fitting in the CPU caches, and the optimiser's
#: passes over them then cost more than the Python overhead that stacking saves (measured on
#: 784-256-10 MLPs: chunks of 8-16 models beat both 4 and 64)
CHUNK_PARAMETERS = 3_000_000


def auto_chunk_size(recipe: Recipe, input_shape: tuple[int, ...], num_classes: int) -> int:
    """How many models to stack at once so a chunk holds about `CHUNK_PARAMETERS`."""
    if not isinstance(recipe, TorchRecipe):
        return 1
    model = recipe.build(input_shape, num_classes, seed=0)
    per_model = sum(p.numel() for p in model.parameters())
    return max(1, CHUNK_PARAMETERS // max(per_model, 1))


def _choose_backend(recipe: Recipe, backend: str, k: int, report: TrainingReport) -> str:
    if isinstance(recipe, TorchRecipe):
        reason = stack_blocker(recipe)
        if backend == "vmap" and reason:
            report.notes.append(f"vmap not possible ({reason}); trained sequentially")
            return "sequential"
        if backend == "auto":
            return "sequential" if reason or k <= 1 else "vmap"
        return backend
    if backend == "vmap":
        report.notes.append(f"{type(recipe).__name__} cannot be stacked; trained sequentially")
        return "sequential"
    if backend == "auto":
        # measured on 2 cores (docs/benchmarks.md): scikit-learn's own BLAS threads already use
        # the cores, and spawned workers pay start-up and data copies, so a plain loop wins
        return "sequential"
    return backend


def stack_blocker(recipe: TorchRecipe) -> str | None:
    """Why the recipe's models cannot be trained stacked, or None."""
    module = recipe.build((1, 8, 8) if _needs_image(recipe) else (4,), 2, seed=0)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return "batch normalisation keeps running statistics"
        if isinstance(m, nn.Dropout) and m.p > 0:
            return "dropout needs per-model random masks"
    return None


def _needs_image(recipe: TorchRecipe) -> bool:
    from unmeasured.training.recipes import CNNRecipe

    return isinstance(recipe, CNNRecipe)


# ---------------------------------------------------------------- sequential and fan-out


def _train_slice(
    recipe: Recipe,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    query_x: np.ndarray,
    masks: np.ndarray,
    seeds: Sequence[int],
) -> np.ndarray:
    """Train the given models one after another; their query logits ``(k, nq, C)``."""
    outs = []
    for mask, seed in zip(masks, seeds, strict=True):
        model = recipe.fit(x[mask], y[mask], num_classes=num_classes, seed=int(seed))
        outs.append(recipe.predict_logits(model, query_x))
    return np.stack(outs).astype(np.float32)


def _worker_slice(*args: Any) -> np.ndarray:
    torch.set_num_threads(1)
    return _train_slice(*args)


def _fan_out(kind, args, masks, seeds, todo, done, advance, workers, ray_address) -> None:  # type: ignore[no-untyped-def]
    workers = workers or os.cpu_count() or 1
    # a few models per task: enough to amortise start-up, small enough to cache progress often
    per_task = max(1, min(4, len(todo) // workers))
    slices = [todo[i : i + per_task] for i in range(0, len(todo), per_task)]
    if kind == "process":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {
                pool.submit(_worker_slice, *args, masks[s], [int(seeds[k]) for k in s]): s
                for s in slices
            }
            for fut in as_completed(futures):
                s = futures[fut]
                done(s, fut.result())
                advance(len(s))
        return
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "backend 'ray' needs Ray: pip install 'unmeasured[ray]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_worker_slice)
        shared = [ray.put(a) for a in args]
        pending = {remote.remote(*shared, masks[s], [int(seeds[k]) for k in s]): s for s in slices}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                s = pending.pop(ref)
                done(s, ray.get(ref))
                advance(len(s))
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------- stacked (vmap) training


def _mlp_layers(module: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of a Flatten → (Linear → ReLU)* → Linear stack, else None."""
    mods = list(module.children()) if isinstance(module, nn.Sequential) else []
    if not mods or not isinstance(mods[0], nn.Flatten):
        return None
    rest = mods[1:]
    linears = rest[0::2]
    relus = rest[1::2]
    if not linears or len(relus) != len(linears) - 1:
        return None
    if not all(isinstance(m, nn.Linear) for m in linears) or not all(
        isinstance(m, nn.ReLU) for m in relus
    ):
        return None
    return linears  # type: ignore[return-value]


Forward = Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]


def _stacked_mlp(models: list[nn.Module]) -> tuple[list[torch.Tensor], Forward] | None:
    layers = [_mlp_layers(m) for m in models]
    if any(lay is None for lay in layers):
        return None
    params: list[torch.Tensor] = []
    for i in range(len(layers[0])):  # type: ignore[arg-type]
        params.append(torch.stack([lay[i].weight.detach().T for lay in layers]).contiguous())  # type: ignore[index]
        params.append(torch.stack([lay[i].bias.detach()[None] for lay in layers]).contiguous())  # type: ignore[index]

    def forward(p: list[torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        h = xb.flatten(2)
        n_layers = len(p) // 2
        for i in range(n_layers):
            h = torch.baddbmm(p[2 * i + 1], h, p[2 * i])
            if i < n_layers - 1:
                h = torch.relu(h)
        return h

    return params, forward


def _stacked_func(models: list[nn.Module]) -> tuple[list[torch.Tensor], Forward]:
    from torch.func import functional_call, stack_module_state, vmap

    stacked, buffers = stack_module_state(models)
    names = list(stacked)
    base = copy.deepcopy(models[0]).to("meta")

    def one(
        p: tuple[torch.Tensor, ...], b: dict[str, torch.Tensor], xb: torch.Tensor
    ) -> torch.Tensor:
        return functional_call(base, ({n: t for n, t in zip(names, p, strict=True)}, b), (xb,))

    def forward(p: list[torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        return vmap(one)(tuple(p), buffers, xb)

    return [stacked[n].detach().clone() for n in names], forward


class _StackedOptimizer:
    """Adam or SGD on stacked parameters, stepping only the models marked active.

    Matches ``torch.optim.Adam`` / ``torch.optim.SGD`` (L2 weight decay, classic momentum)
    applied to each model separately.
    """

    def __init__(self, recipe: TorchRecipe, params: list[torch.Tensor], k: int) -> None:
        self.recipe = recipe
        self.params = params
        self.steps = torch.zeros(k)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params] if recipe.optimizer == "adam" else []

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        r = self.recipe
        self.steps += active.float()
        everyone = bool(active.all())
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            per_model = (-1,) + (1,) * (p.ndim - 1)
            if r.weight_decay:
                g = g.add(p, alpha=r.weight_decay)
            if not everyone:  # models without a batch this step keep their state untouched
                keep = ~active.view(per_model)
                g = g.masked_fill(keep, 0.0)
            if r.optimizer == "adam":
                b1, b2, eps = 0.9, 0.999, 1e-8
                m, v = self.m[i], self.v[i]
                if everyone:
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                else:
                    m.copy_(torch.where(keep, m, b1 * m + (1 - b1) * g))
                    v.copy_(torch.where(keep, v, b2 * v + (1 - b2) * g * g))
                t = self.steps.clamp(min=1).view(per_model)
                step_size = (r.lr / (1 - b1**t)).neg_()
                if not everyone:
                    step_size = step_size.masked_fill(keep, 0.0)
                denom = v.sqrt().div_((1 - b2**t).sqrt()).add_(eps)
                p.addcdiv_(m * step_size, denom)
            else:
                if r.momentum:
                    buf = self.m[i]
                    if everyone:
                        buf.mul_(r.momentum).add_(g)
                    else:
                        buf.copy_(torch.where(keep, buf, r.momentum * buf + g))
                    g = buf
                p.sub_(g if everyone else g.masked_fill(keep, 0.0), alpha=r.lr)
            p.grad = None


def train_stacked(
    recipe: Recipe,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    query_x: np.ndarray,
    masks: np.ndarray,
    seeds: Sequence[int],
) -> np.ndarray:
    """Train ``len(seeds)`` models of a torch recipe at once; their query logits ``(K, nq, C)``."""
    if not isinstance(recipe, TorchRecipe):
        raise ConfigError(f"vmap training needs a torch recipe, got {type(recipe).__name__}")
    k = len(seeds)
    models = [recipe.build(x.shape[1:], num_classes, int(s)) for s in seeds]
    built = _stacked_mlp(models) or _stacked_func(models)
    params, forward = built
    for p in params:
        p.requires_grad_(True)
    opt = _StackedOptimizer(recipe, params, k)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    train_index = [np.flatnonzero(m) for m in masks]
    rngs = [np.random.default_rng([int(s), 7]) for s in seeds]  # = recipes.batch_schedule
    bs = recipe.batch_size
    for _ in range(recipe.epochs):
        perms = [idx[rng.permutation(len(idx))] for idx, rng in zip(train_index, rngs, strict=True)]
        n_steps = max((len(p) + bs - 1) // bs for p in perms)
        for step in range(n_steps):
            index = np.zeros((k, bs), dtype=np.int64)
            weight = np.zeros((k, bs), dtype=np.float32)
            for j, perm in enumerate(perms):
                batch = perm[step * bs : (step + 1) * bs]
                if len(batch):
                    index[j, : len(batch)] = batch
                    weight[j, : len(batch)] = 1.0 / len(batch)
            it = torch.from_numpy(index)
            wt = torch.from_numpy(weight)
            logits = forward(params, xt[it])
            ce = nn.functional.cross_entropy(
                logits.reshape(-1, num_classes), yt[it].reshape(-1), reduction="none"
            ).view(k, bs)
            (ce * wt).sum().backward()
            opt.step(wt.sum(dim=1) > 0)
    out = []
    with torch.no_grad():
        for start in range(0, len(query_x), _QUERY_CHUNK):
            q = torch.from_numpy(query_x[start : start + _QUERY_CHUNK])
            out.append(forward(params, q.unsqueeze(0).expand(k, *q.shape)).float())
    return torch.cat(out, dim=1).numpy()
