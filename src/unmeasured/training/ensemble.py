"""Train K models of one recipe, fast, and never lose a finished one.

Backends:

* ``"vmap"``: the K models train in one loop, each on its own data subset, with their
  parameters stacked along a leading model axis. Two engines: ``"bmm"`` for MLPs and logistic
  models (weights ``[K, in, out]``, ``torch.baddbmm``; a query shared by all models goes
  as a broadcast view) and ``"torch.func"`` for any other
  architecture (``stack_module_state`` + ``functional_call`` + ``vmap``). ``"auto"`` picks
  ``bmm`` whenever the network is a plain ``Flatten → (Linear → ReLU)* → Linear`` stack (it was
  faster in every measurement, see docs/training.md), else ``torch.func`` after a dry run,
  else sequential training, and says why in the `TrainingReport`.
* ``"sequential"``: a plain loop over `Recipe.fit` (the baseline).
* ``"process"``: models trained in a local pool of spawned processes, one thread each.
* ``"ray"``: models trained as Ray tasks on a local runtime or an existing cluster
  (``ray_address``); needs ``pip install 'unmeasured[ray]'``.

The batch schedule. Each model follows exactly the schedule it would follow alone
(`recipes.batch_schedule`: a fresh permutation of *its own* training records per epoch, cut
into batches, the last one smaller). Stacked models are grouped by their number of batches
per epoch, so within a chunk every model takes every step: one optimiser from the recipe
(``torch.optim.Adam``/``SGD``) steps the stacked tensors, and because Adam's and SGD's state is
per element this is exactly the per-model optimiser. Shorter last batches are padded with
records of weight zero. So the vmap backend trains the same models as the sequential loop, up to
floating-point rounding.

Every finished model's outputs go to the `OutputCache` at once (for vmap: every finished chunk
of models), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from unmeasured.errors import ConfigError, MissingDependencyError, one_of
from unmeasured.progress import Progress
from unmeasured.provenance import sha256_arrays
from unmeasured.training.cache import OutputCache, model_key
from unmeasured.training.recipes import Recipe, TorchRecipe, steps_per_epoch

BACKENDS = ("auto", "vmap", "sequential", "process", "ray")
ENGINES = ("auto", "bmm", "torch.func")

#: parameters per stacked chunk: beyond this the stack and its optimiser state leave the CPU
#: caches and each step gets slower per model (measured on 784-256-10 MLPs, docs/training.md)
CHUNK_PARAMETERS = 3_000_000
#: floats in the widest activation of a query pass (bounds the memory of querying a chunk)
_QUERY_FLOATS = 1 << 22


@dataclass
class TrainingReport:
    """What one `train_ensemble` call did; pass one in to have it filled.

    Attributes:
        backend: the backend that trained (after ``"auto"`` and fallbacks).
        engine: for vmap, ``"bmm"`` or ``"torch.func"``.
        chunk_size: for vmap, the most models stacked at once.
        trained: models trained by this call.
        cached: models whose outputs came from the cache.
        seconds: wall time of the call.
        notes: why a backend or engine was not used, in words.
    """

    backend: str = ""
    engine: str = ""
    chunk_size: int = 0
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
        x, y: the training pool (labels in ``0..num_classes-1``).
        masks: bool ``(K, n)``: which pool records model k trains on.
        query_x: records to query every model on.
        seeds: one seed per model (its initialisation and batch order).
        num_classes: number of classes.
        backend: ``"auto"``, ``"vmap"``, ``"sequential"``, ``"process"`` or ``"ray"``.
            ``"auto"``: vmap for torch recipes that stack, a process pool for other recipes
            when there are several models and cores, else sequential.
        cache_dir: where finished models' outputs are kept (None: no cache).
        progress: progress reporter (its ``log`` also gets the fallback notes).
        chunk_size: most models stacked at once by vmap (default: about `CHUNK_PARAMETERS`
            parameters per chunk).
        workers: processes (or Ray CPUs) for ``"process"`` and a local Ray runtime (default:
            the usable cores).
        ray_address: a running Ray cluster to use (default: start a local runtime).
        report: filled with what was trained, what came from the cache, and why.

    Returns:
        float32 logits of shape ``(K, len(query_x), num_classes)``.

    Raises:
        ConfigError: inconsistent shapes, seeds or an unknown backend.
        MissingDependencyError: ``backend="ray"`` without Ray installed.

    Example:
        >>> from unmeasured.training import LogisticRecipe
        >>> x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
        >>> y, masks = (x[:, 0] > 0).astype(int), np.ones((2, 40), bool)
        >>> train_ensemble(LogisticRecipe(epochs=1), x, y, masks, x[:5], seeds=[0, 1],
        ...                num_classes=2).shape
        (2, 5, 2)
    """
    start = time.perf_counter()
    report = report if report is not None else TrainingReport()
    progress = progress or Progress()
    x, y, masks, query_x = _check_inputs(x, y, masks, query_x, seeds, num_classes, backend)
    k_total = len(masks)
    seeds = [int(s) for s in seeds]
    out = np.zeros((k_total, len(query_x), num_classes), dtype=np.float32)

    cache = OutputCache(cache_dir) if cache_dir is not None else None
    keys: list[str] = []
    todo = list(range(k_total))
    if cache is not None:
        recipe_key = recipe.cache_key()
        data_digest = sha256_arrays(x, y, np.array([num_classes]))
        query_digest = sha256_arrays(query_x)
        keys = [
            model_key(recipe_key, data_digest, masks[k], seeds[k], query_digest)
            for k in range(k_total)
        ]
        todo = []
        for k in range(k_total):
            hit = cache.get(keys[k])
            if hit is not None and hit.shape == out.shape[1:]:
                out[k] = hit
            else:
                todo.append(k)
    report.cached = k_total - len(todo)

    def done(index: Sequence[int], logits: np.ndarray) -> None:
        for k, lg in zip(index, logits, strict=True):
            out[k] = lg
            if cache is not None:
                cache.put(keys[k], lg)
        report.trained += len(index)
        advance(len(index))

    if not todo:
        report.backend = "cache"
        report.seconds = time.perf_counter() - start
        return out
    job = _Job(recipe, x, y, num_classes, query_x)
    chosen, engine = _choose(job, backend, len(todo), workers, report)
    for note in report.notes:
        progress.log(note)
    report.backend = chosen
    with progress.task(f"Training {len(todo)} models ({chosen})", total=len(todo)) as advance:
        if chosen == "vmap":
            report.engine = engine
            size = chunk_size or auto_chunk_size(recipe, x.shape[1:], num_classes)
            batch_size = cast(TorchRecipe, recipe).batch_size
            for index in _stack_chunks(batch_size, masks, todo, size):
                report.chunk_size = max(report.chunk_size, len(index))
                done(index, job.stacked(masks[index], [seeds[k] for k in index], engine))
        elif chosen == "sequential":
            for k in todo:
                done([k], job.one_by_one(masks[[k]], [seeds[k]]))
        else:
            _fan_out(chosen, job, masks, seeds, todo, done, workers, ray_address)
    report.seconds = time.perf_counter() - start
    return out


def _check_inputs(
    x: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    query_x: np.ndarray,
    seeds: Sequence[int],
    num_classes: int,
    backend: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if backend not in BACKENDS:
        raise ConfigError(f"backend: unknown backend '{backend}'; choose {one_of(BACKENDS)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"y: expected {len(x)} integer labels, got {y.dtype} of shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ConfigError(f"y: labels must be in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    masks = np.asarray(masks)
    if masks.dtype != bool or masks.ndim != 2 or masks.shape[1] != len(x):
        raise ConfigError(
            f"masks: expected a bool array of shape (K, {len(x)}), got {masks.dtype} {masks.shape}"
        )
    if not masks.any(axis=1).all():
        raise ConfigError(
            f"masks: model {int(np.argmin(masks.any(axis=1)))} has no training record"
        )
    if len(seeds) != len(masks):
        raise ConfigError(f"seeds: expected {len(masks)} seeds (one per mask), got {len(seeds)}")
    query_x = np.ascontiguousarray(query_x, dtype=np.float32)
    if query_x.shape[1:] != x.shape[1:]:
        raise ConfigError(
            f"query_x: records of shape {query_x.shape[1:]} do not match x's {x.shape[1:]}"
        )
    return x, y.astype(np.int64), masks, query_x


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _choose(
    job: _Job, backend: str, k: int, workers: int | None, report: TrainingReport
) -> tuple[str, str]:
    """The backend (and vmap engine) to train with, noting in ``report`` why not another."""
    recipe = job.recipe
    if not isinstance(recipe, TorchRecipe):
        if backend == "vmap":
            raise ConfigError(
                f"backend: {type(recipe).__name__} trains with 'sequential', 'process' or 'ray', "
                "not 'vmap' (only torch recipes stack)"
            )
        if backend == "auto":
            cores = workers or _usable_cores()
            return ("process" if k > 1 and cores > 1 else "sequential"), ""
        return backend, ""
    if backend not in ("auto", "vmap"):
        return backend, ""
    engine, reason = job.engine(recipe)
    if engine is None:
        report.notes.append(f"vmap not possible ({reason}); training one model at a time")
        return "sequential", ""
    if reason:
        report.notes.append(reason)
    if backend == "auto" and k <= 1:
        return "sequential", ""
    return "vmap", engine


def auto_chunk_size(recipe: Recipe, input_shape: tuple[int, ...], num_classes: int) -> int:
    """How many models to stack at once so that a chunk holds about `CHUNK_PARAMETERS`."""
    if not isinstance(recipe, TorchRecipe):
        return 1
    model = recipe.build(input_shape, num_classes, seed=0)
    per_model = sum(p.numel() for p in model.parameters())
    return max(1, CHUNK_PARAMETERS // max(per_model, 1))


def _stack_chunks(
    batch_size: int, masks: np.ndarray, todo: Sequence[int], size: int
) -> list[list[int]]:
    """Chunks of at most ``size`` models with the same number of batches per epoch, so that
    every model of a chunk takes every optimiser step (see the module docstring)."""
    groups: dict[int, list[int]] = {}
    for k in todo:
        groups.setdefault(steps_per_epoch(int(masks[k].sum()), batch_size), []).append(k)
    chunks = []
    for members in groups.values():
        n_chunks = math.ceil(len(members) / size)
        # equal-sized chunks: a last chunk of one model would lose what stacking gains
        chunks += [list(part) for part in np.array_split(members, n_chunks)]
    return chunks


@dataclass
class _Job:
    """One ensemble's fixed inputs, shared by every backend (and sent once to each worker)."""

    recipe: Recipe
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    query_x: np.ndarray

    def one_by_one(self, masks: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """Train the given models one after another; their query logits ``(k, nq, C)``."""
        outs = []
        for mask, seed in zip(masks, seeds, strict=True):
            model = self.recipe.fit(
                self.x[mask], self.y[mask], num_classes=self.num_classes, seed=int(seed)
            )
            outs.append(
                self.recipe.predict_logits(model, self.query_x, num_classes=self.num_classes)
            )
        return np.stack(outs).astype(np.float32, copy=False)

    def engine(self, recipe: TorchRecipe) -> tuple[str | None, str]:
        """The vmap engine for this (torch) recipe, None if none works, and a note on why."""
        models = [recipe.build(self.x.shape[1:], self.num_classes, seed) for seed in (0, 1)]
        blocker = _unstackable_layer(models[0])
        if blocker:
            return None, blocker
        if _BmmStack.layers(models[0]) is not None:
            return "bmm", ""
        try:  # a dry run: one step of two stacked models on two records
            stack = _FuncStack(models)
            xb = torch.from_numpy(np.stack([self.x[:2], self.x[:2]]))
            stack.forward(xb).sum().backward()
        except Exception as e:
            return None, f"torch.func cannot run this network: {type(e).__name__}: {e}"
        return "torch.func", "not a Flatten/Linear/ReLU stack: stacking with torch.func"

    def stacked(self, masks: np.ndarray, seeds: Sequence[int], engine: str) -> np.ndarray:
        return train_stacked(
            self.recipe, self.x, self.y, self.num_classes, self.query_x, masks, seeds, engine
        )


def _unstackable_layer(module: nn.Module) -> str | None:
    """Why a network's models cannot be trained stacked like alone, or None."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return f"{type(m).__name__} keeps running statistics"
        if isinstance(m, nn.Dropout) and m.p > 0:
            return "dropout draws random masks that would differ from training alone"
    return None


# ---------------------------------------------------------------- process and Ray fan-out

_WORKER_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    """Runs once in each worker process: one thread (the pool supplies the parallelism)."""
    global _WORKER_JOB
    _WORKER_JOB = job
    _one_thread()


def _one_thread() -> None:
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy/scipy BLAS, used by scikit-learn


def _worker_train(masks: np.ndarray, seeds: list[int]) -> np.ndarray:
    return _WORKER_JOB.one_by_one(masks, seeds)  # type: ignore[union-attr]


def _ray_train(job: _Job, masks: np.ndarray, seeds: list[int]) -> np.ndarray:
    _one_thread()
    return job.one_by_one(masks, seeds)


def _fan_out(
    kind: str,
    job: _Job,
    masks: np.ndarray,
    seeds: Sequence[int],
    todo: Sequence[int],
    done: Callable[[Sequence[int], np.ndarray], None],
    workers: int | None,
    ray_address: str | None,
) -> None:
    """One task per model (each result is cached as soon as it arrives)."""
    workers = max(1, min(workers or _usable_cores(), len(todo)))
    if kind == "process":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(job,),
        ) as pool:
            futures = {pool.submit(_worker_train, masks[[k]], [seeds[k]]): k for k in todo}
            for fut in as_completed(futures):
                done([futures[fut]], fut.result())
        return
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "backend: 'ray' needs Ray: pip install 'unmeasured[ray]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_ray_train)
        shared = ray.put(job)
        pending = {remote.remote(shared, masks[[k]], [seeds[k]]): k for k in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done([pending.pop(ref)], ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------- stacked (vmap) training


class _BmmStack:
    """K MLPs as stacked weights ``[K, in, out]`` and biases ``[K, 1, out]``, run with
    ``torch.baddbmm``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        per_model = [self.layers(m) for m in models]
        self.params: list[torch.Tensor] = []
        for i in range(len(per_model[0])):  # type: ignore[arg-type]
            w = torch.stack([lay[i].weight.detach().T for lay in per_model])  # type: ignore[index]
            b = torch.stack([lay[i].bias.detach()[None] for lay in per_model])  # type: ignore[index]
            self.params += [w.contiguous().requires_grad_(), b.contiguous().requires_grad_()]
        self.widest = max(p.shape[-1] for p in self.params)

    @staticmethod
    def layers(module: nn.Module) -> list[nn.Linear] | None:
        """The Linear layers of a ``Flatten → (Linear → ReLU)* → Linear`` stack, else None."""
        mods = list(module.children()) if isinstance(module, nn.Sequential) else []
        if len(mods) < 2 or not isinstance(mods[0], nn.Flatten) or len(mods) % 2:
            return None
        linears, relus = mods[1::2], mods[2::2]
        if all(isinstance(m, nn.Linear) and m.bias is not None for m in linears) and all(
            isinstance(m, nn.ReLU) for m in relus
        ):
            return linears  # type: ignore[return-value]
        return None

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        """Per-model inputs ``(K, B, ...)`` → logits ``(K, B, C)``."""
        h = xb.flatten(2)
        for i in range(len(self.params) // 2):
            h = torch.baddbmm(self.params[2 * i + 1], torch.relu(h) if i else h, self.params[2 * i])
        return h

    def forward_shared(self, q: torch.Tensor) -> torch.Tensor:
        """One input ``(B, ...)`` for all models → ``(K, B, C)`` (a broadcast view, not K copies;
        measured faster than one wide ``(B, in) @ (in, K * out)`` product)."""
        return self.forward(q.expand(self.params[0].shape[0], *q.shape))


class _FuncStack:
    """K copies of any network through ``torch.func``: stacked parameters, ``functional_call``
    under ``vmap``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        from torch.func import stack_module_state

        stacked, self.buffers = stack_module_state(list(models))
        self.names = list(stacked)
        self.params = [stacked[n].detach().clone().requires_grad_() for n in self.names]
        self.base = copy.deepcopy(models[0]).to("meta")
        self.widest = 16_384  # floats per record of the widest activation: unknown, assumed

    def _one(
        self, params: tuple[torch.Tensor, ...], buffers: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        from torch.func import functional_call

        named = dict(zip(self.names, params, strict=True))
        return functional_call(self.base, (named, buffers), (x,))

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        from torch.func import vmap

        return vmap(self._one)(tuple(self.params), self.buffers, xb)

    def forward_shared(self, q: torch.Tensor) -> torch.Tensor:
        from torch.func import vmap

        return vmap(self._one, in_dims=(0, 0, None))(tuple(self.params), self.buffers, q)


def _epoch_batches(
    train_index: Sequence[np.ndarray], rngs: Sequence[np.random.Generator], bs: int, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of every model's batches, as ``(steps, K, bs)`` record indices and loss
    weights (``1 / batch length``, 0 for padding), drawn exactly as `batch_schedule` does."""
    k = len(train_index)
    index = np.zeros((k, steps * bs), dtype=np.int64)
    weight = np.zeros((k, steps * bs), dtype=np.float32)
    for j, (idx, rng) in enumerate(zip(train_index, rngs, strict=True)):
        n = len(idx)
        index[j, :n] = idx[rng.permutation(n)]
        batch = np.arange(n) // bs
        lengths = np.minimum(bs, n - batch * bs)
        weight[j, :n] = 1.0 / lengths
    as_steps = (k, steps, bs)
    return (
        torch.from_numpy(index.reshape(as_steps).transpose(1, 0, 2).copy()),
        torch.from_numpy(weight.reshape(as_steps).transpose(1, 0, 2).copy()),
    )


def train_stacked(
    recipe: Recipe,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    query_x: np.ndarray,
    masks: np.ndarray,
    seeds: Sequence[int],
    engine: str = "auto",
) -> np.ndarray:
    """Train ``len(seeds)`` models of a torch recipe at once; their query logits ``(K, nq, C)``.

    Every model must have the same number of batches per epoch (``train_ensemble`` groups
    them so). ``engine``: ``"bmm"`` (MLPs only), ``"torch.func"`` or ``"auto"`` (bmm when it
    applies).

    Raises:
        ConfigError: not a torch recipe, an unknown engine, or ``"bmm"`` for a network that is
            not an MLP, or models with different numbers of batches per epoch.
    """
    if not isinstance(recipe, TorchRecipe):
        raise ConfigError(f"backend: vmap needs a torch recipe, got {type(recipe).__name__}")
    if engine not in ENGINES:
        raise ConfigError(f"engine: unknown engine '{engine}'; choose {one_of(ENGINES)}")
    k, bs = len(seeds), recipe.batch_size
    train_index = [np.flatnonzero(m) for m in masks]
    steps = {steps_per_epoch(len(idx), bs) for idx in train_index}
    if len(steps) != 1:
        raise ConfigError(
            f"masks: stacked models need the same number of batches per epoch, got {sorted(steps)}"
        )
    models = [recipe.build(x.shape[1:], num_classes, int(s)) for s in seeds]
    stack: _BmmStack | _FuncStack
    if engine != "torch.func" and _BmmStack.layers(models[0]) is not None:
        stack = _BmmStack(models)
    elif engine == "bmm":
        raise ConfigError("engine: 'bmm' stacks Flatten/Linear/ReLU networks only")
    else:
        stack = _FuncStack(models)
    del models
    opt = recipe.make_optimizer(stack.params)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    rngs = [np.random.default_rng([int(s), 7]) for s in seeds]  # as in recipes.batch_schedule
    n_steps = steps.pop()
    for _ in range(recipe.epochs):
        index, weight = _epoch_batches(train_index, rngs, bs, n_steps)
        for it, wt in zip(index, weight, strict=True):
            flat = it.view(-1)
            # index_select, not xt[it]: advanced indexing is several times slower on CPU
            xb = torch.index_select(xt, 0, flat).view(k, bs, *xt.shape[1:])
            opt.zero_grad(set_to_none=True)
            logits = stack.forward(xb).reshape(-1, num_classes)
            ce = nn.functional.cross_entropy(
                logits, torch.index_select(yt, 0, flat), reduction="none"
            )
            ce.dot(wt.view(-1)).backward()
            opt.step()
    rows = max(64, _QUERY_FLOATS // (k * stack.widest))
    with torch.no_grad():
        out = [
            stack.forward_shared(torch.from_numpy(query_x[i : i + rows]))
            for i in range(0, len(query_x), rows)
        ]
    return torch.cat(out, dim=1).numpy()
