"""Train K models of one recipe, fast, and never lose a finished one.

Backends:

* ``"vmap"``: the K models train in one loop, each on its own data subset, with their
  parameters stacked along a leading model axis. Three engines: ``"bmm"`` for MLPs and
  logistic models (weights ``[K, in, out]``, ``torch.baddbmm``; a query shared by all models
  goes as a broadcast view), ``"grouped"`` for plain CNNs (``Conv2d``/``ReLU``/pooling then one
  ``Linear``: the K models' convolutions as one grouped convolution over ``channels_last``
  activations) and ``"torch.func"`` for any other architecture (``stack_module_state`` +
  ``functional_call`` + ``vmap``). ``"auto"`` picks ``bmm``, then ``grouped``, whichever fits
  the network, else ``torch.func`` after a dry run, else sequential training, and says why in
  the `TrainingReport`.
* ``"sequential"``: a plain loop over `Recipe.fit` (the baseline).
* ``"process"``: models trained in a local pool of processes, one thread each: forked on Linux
  (the parent's torch and recipe come along, a pool is ready in a fraction of a second),
  spawned elsewhere (where forking a process with threads is unsafe).
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

``backend="auto"`` does not assume that stacking wins: it times a few steps of each candidate
(stacked, one model at a time, and a process pool predicted from a one-thread probe) on the
run's own recipe and data, picks the fastest when it is more than `AUTO_MARGIN` ahead of the
loop (else the loop) and writes the figures into `TrainingReport.notes` (on a 2-core CPU
stacking wins for MLPs; for small CNNs the backends are within about 10% of each other).

Before training, one line estimates the time (from the probe) and the memory, with a warning
when the memory exceeds what the machine has free or a budget. Progress counts model-epochs and
moves with every step. Every finished model's outputs go to the `OutputCache` at once (for
vmap: every finished chunk of models), so a run killed even by ``kill -9`` resumes where it
stopped; on Ctrl-C the trainer starts nothing new, keeps what finished, says how many models are
cached and how to resume, and re-raises ``KeyboardInterrupt`` (the CLI exits 130).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unmeasured.errors import ConfigError, MissingDependencyError, one_of
from unmeasured.progress import Progress
from unmeasured.provenance import sha256_arrays
from unmeasured.training.cache import OutputCache, model_key
from unmeasured.training.recipes import Recipe, TorchRecipe, steps_per_epoch
from unmeasured.training.resources import (
    PROCESS_BASELINE_BYTES,
    TrainingEstimate,
    activation_floats,
    budget_bytes,
    check_memory,
    free_device_bytes,
    free_host_bytes,
)

BACKENDS = ("auto", "vmap", "sequential", "process", "ray")
ENGINES = ("auto", "bmm", "grouped", "torch.func")

#: parameters per stacked chunk: beyond this the stack and its optimiser state leave the CPU
#: caches and each step gets slower per model (measured on 784-256-10 MLPs, docs/training.md)
CHUNK_PARAMETERS = 3_000_000
#: floats in the widest activation of a query pass (bounds the memory of querying a chunk)
_QUERY_FLOATS = 1 << 22
#: optimiser steps a probe times (after one untimed step that pays one-off costs)
PROBE_STEPS = 2
#: most models a probe of stacked training stacks
PROBE_MODELS = 8
#: the most a probe of stacking may cost, as a share of training one model at a time (a short
#: run of large models trains sequentially rather than pay for a probe it cannot win back; a
#: probe that finds stacking slower then costs at most this)
PROBE_BUDGET = 0.05
#: seconds until a pool's workers are ready, paid once per pool: a spawned worker imports torch
#: and this package (measured 2-3 s on a 2-core CPU); a forked one has them already
PROCESS_START_SECONDS = {"fork": 0.3, "spawn": 3.0}
#: how much faster than training one model at a time a probed backend must look before `auto`
#: takes it: two-step probes of a loaded machine are noisy, and the loop is the safe choice
AUTO_MARGIN = 0.1
#: seconds between progress updates (a step of a small model takes well under a millisecond)
_PROGRESS_INTERVAL = 0.1


@dataclass
class TrainingReport:
    """What one `train_ensemble` call did; pass one in to have it filled.

    Attributes:
        backend: the backend that trained (after ``"auto"`` and fallbacks).
        engine: for vmap, ``"bmm"``, ``"grouped"`` or ``"torch.func"``.
        device: the device type the models trained on.
        chunk_size: for vmap, the most models stacked at once.
        trained: models trained by this call.
        cached: models whose outputs came from the cache.
        seconds: wall time of the call.
        probe: seconds per model-step each candidate took in the probe (``"process"``:
            predicted from a one-thread probe), when one ran.
        estimate: the time and memory estimate made before training.
        interrupted: whether Ctrl-C stopped the call (it then re-raised ``KeyboardInterrupt``).
        notes: why a backend or engine was chosen or not used, in words.
    """

    backend: str = ""
    engine: str = ""
    device: str = ""
    chunk_size: int = 0
    trained: int = 0
    cached: int = 0
    seconds: float = 0.0
    probe: dict[str, float] = field(default_factory=dict)
    estimate: TrainingEstimate | None = None
    interrupted: bool = False
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
    memory_budget_mb: float | None = None,
    report: TrainingReport | None = None,
) -> np.ndarray:
    """Train one model per row of ``masks`` and return their logits on ``query_x``.

    Args:
        recipe: how to train each model (a torch recipe's ``device`` says where).
        x, y: the training pool (labels in ``0..num_classes-1``).
        masks: bool ``(K, n)``: which pool records model k trains on.
        query_x: records to query every model on.
        seeds: one seed per model (its initialisation and batch order).
        num_classes: number of classes.
        backend: ``"auto"``, ``"vmap"``, ``"sequential"``, ``"process"`` or ``"ray"``.
            ``"auto"``: for torch recipes the fastest of a short probe of vmap, sequential and
            (with several cores on a CPU) a process pool; for other recipes a process pool
            when there are several models and cores, else sequential.
        cache_dir: where finished models' outputs are kept (None: no cache).
        progress: progress reporter, in model-epochs; its ``log`` gets the estimate, the
            warnings and the notes.
        chunk_size: most models stacked at once by vmap (default: about `CHUNK_PARAMETERS`
            parameters per chunk).
        workers: processes (or Ray CPUs) for ``"process"`` and a local Ray runtime (default:
            the usable cores).
        ray_address: a running Ray cluster to use (default: start a local runtime).
        memory_budget_mb: warn before training when the estimated memory exceeds this (default:
            ``$UNMEASURED_MEMORY_BUDGET_MB``, else only the machine's free memory).
        report: filled with what was trained, what came from the cache, and why.

    Returns:
        float32 logits of shape ``(K, len(query_x), num_classes)``.

    Raises:
        ConfigError: inconsistent shapes, seeds, an unknown backend or an unavailable device.
        MissingDependencyError: ``backend="ray"`` without Ray installed.
        KeyboardInterrupt: on Ctrl-C, after every finished model is cached and the count and
            how to resume are logged.

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
    report.device = recipe.device_type()

    cache = OutputCache(cache_dir) if cache_dir is not None else None
    keys: list[str] = []
    hits: dict[int, np.ndarray] = {}
    if cache is not None:
        recipe_key = recipe.cache_key()
        data_digest = sha256_arrays(x, y, np.array([num_classes]))
        query_digest = sha256_arrays(query_x)
        keys = [
            model_key(recipe_key, data_digest, masks[k], seeds[k], query_digest)
            for k in range(k_total)
        ]
        for k in range(k_total):
            hit = cache.get(keys[k])
            if hit is not None and hit.shape == (len(query_x), num_classes):
                hits[k] = hit
    todo = [k for k in range(k_total) if k not in hits]
    report.cached = len(hits)

    job = _Job(recipe, x, y, num_classes, query_x)
    plan = None
    if todo:
        plan = _plan(job, backend, masks, seeds, todo, chunk_size, workers, report)
        for note in report.notes:
            progress.log(note)
        report.estimate = _estimate(job, plan, masks, todo, k_total, memory_budget_mb)
        progress.log(report.estimate.line())
        warn = getattr(progress, "warn", progress.log)  # a progress object of an older shape
        for warning in report.estimate.warnings:
            warn(warning)
    # allocated only after the estimate had its say
    out = np.zeros((k_total, len(query_x), num_classes), dtype=np.float32)
    for k, hit in hits.items():
        out[k] = hit
    if plan is None:
        report.backend = "cache"
        report.seconds = time.perf_counter() - start
        return out
    report.backend, report.engine = plan.backend, plan.engine
    try:
        _train(job, plan, masks, seeds, todo, out, cache, keys, progress, report, ray_address)
    except KeyboardInterrupt:
        report.interrupted = True
        progress.log(_interrupted_message(report, k_total, cache_dir))
        raise
    finally:
        report.seconds = time.perf_counter() - start
    return out


@dataclass
class _Plan:
    """How the models will train: the backend, the vmap engine and chunks, the workers."""

    backend: str
    engine: str = ""
    chunks: list[list[int]] = field(default_factory=list)
    workers: int = 1
    probe: _Probe | None = None


def _train(
    job: _Job,
    plan: _Plan,
    masks: np.ndarray,
    seeds: list[int],
    todo: list[int],
    out: np.ndarray,
    cache: OutputCache | None,
    keys: list[str],
    progress: Progress,
    report: TrainingReport,
    ray_address: str | None,
) -> None:
    epochs = _epochs(job.recipe)
    total = len(todo) * epochs
    what = f"Training {len(todo)} models ({plan.backend}, {report.device}), model-epochs"
    with progress.task(what, total=total) as advance:
        ticker = _Ticker(advance)

        def done(index: Sequence[int], logits: np.ndarray) -> None:
            for k, lg in zip(index, logits, strict=True):
                out[k] = lg
                if cache is not None:
                    cache.put(keys[k], lg)
                report.trained += 1
            ticker.finish(len(index) * epochs)

        if plan.backend == "vmap":
            for index in plan.chunks:
                report.chunk_size = max(report.chunk_size, len(index))
                per_step = len(index) / _steps_per_epoch(job.recipe, int(masks[index[0]].sum()))
                logits = job.stacked(
                    masks[index],
                    [seeds[k] for k in index],
                    plan.engine,
                    functools.partial(ticker.step, per_step),
                )
                done(index, logits)
        elif plan.backend == "sequential":
            for k in todo:
                per_step = 1 / _steps_per_epoch(job.recipe, int(masks[k].sum()))
                step = functools.partial(ticker.step, per_step)
                done([k], job.one_by_one(masks[[k]], [seeds[k]], step))
        else:
            _fan_out(plan.backend, job, masks, seeds, todo, done, plan.workers, ray_address)


class _Ticker:
    """Advances a progress bar by fractions of model-epochs as steps go by, at most every
    `_PROGRESS_INTERVAL` seconds, and by the exact remainder when models finish (so the bar ends
    on whole numbers)."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        self.advance = advance
        self.pending = 0.0  # stepped but not yet shown
        self.shown = 0.0  # shown for the models in flight
        self.last = time.perf_counter()

    def step(self, amount: float = 1.0) -> None:
        self.pending += amount
        now = time.perf_counter()
        if now - self.last >= _PROGRESS_INTERVAL:
            self.advance(self.pending)
            self.shown += self.pending
            self.pending, self.last = 0.0, now

    def finish(self, model_epochs: float) -> None:
        """Models worth ``model_epochs`` finished: show what is left of them."""
        self.advance(model_epochs - self.shown)
        self.pending = self.shown = 0.0
        self.last = time.perf_counter()


def _steps_per_epoch(recipe: Recipe, n: int) -> int:
    """Optimiser steps per epoch of a model trained on ``n`` records (1 without batches)."""
    return steps_per_epoch(n, recipe.batch_size) if isinstance(recipe, TorchRecipe) else 1


def _epochs(recipe: Recipe) -> int:
    """Epochs per model: a torch recipe's ``epochs``; one for recipes without epochs."""
    return recipe.epochs if isinstance(recipe, TorchRecipe) else 1


def _interrupted_message(report: TrainingReport, k_total: int, cache_dir: str | Path | None) -> str:
    if cache_dir is None:
        return (
            f"interrupted: {report.trained} of {k_total} models had finished but no cache "
            "directory is set, so none is kept; set cache_dir to make training resumable"
        )
    kept = report.cached + report.trained
    return (
        f"interrupted: {kept} of {k_total} models are cached in {cache_dir} ({report.trained} "
        f"trained by this run); run the same command again to resume: the cached models are "
        f"reused and the other {k_total - kept} train"
    )


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


class _ProbeDone(Exception):
    """Raised from a step callback to end a probe after its timed steps."""


def _time_steps(run: Callable[[Callable[[], None]], object]) -> tuple[float, float] | None:
    """Seconds of the fastest of `PROBE_STEPS` optimiser steps of ``run`` (which calls its
    argument after every step), not counting the first, and seconds until the first step ended
    (building models, the optimiser, one step); None if ``run`` took fewer than two steps."""
    stamps: list[float] = []

    def on_step() -> None:
        stamps.append(time.perf_counter())
        if len(stamps) > PROBE_STEPS:
            raise _ProbeDone

    start = time.perf_counter()
    with contextlib.suppress(_ProbeDone):
        run(on_step)
    if len(stamps) < 2:
        return None
    step = float(np.diff(stamps).min())
    return step, max(stamps[0] - start - step, 0.0)


@dataclass
class _Probe:
    """What a probe measured, per model: one optimiser step, and the setup before the steps."""

    step: float
    setup: float

    def seconds(self, model_steps: int, models: int) -> float:
        return model_steps * self.step + models * self.setup


def _plan(
    job: _Job,
    backend: str,
    masks: np.ndarray,
    seeds: list[int],
    todo: list[int],
    chunk_size: int | None,
    workers: int | None,
    report: TrainingReport,
) -> _Plan:
    """The backend (vmap engine, chunks, workers) to train with, from a short probe where the
    choice is ``"auto"``; why is noted in ``report``."""
    recipe = job.recipe
    cores = workers or _usable_cores()
    if not isinstance(recipe, TorchRecipe):
        if backend == "vmap":
            raise ConfigError(
                f"backend: {type(recipe).__name__} trains with 'sequential', 'process' or 'ray', "
                "not 'vmap' (only torch recipes stack)"
            )
        if backend == "auto":
            backend = "process" if len(todo) > 1 and cores > 1 else "sequential"
        return _Plan(backend, workers=cores)
    first = todo[0]
    pool_workers = min(cores, len(todo))

    def probe_one_by_one() -> _Probe | None:
        timed = _time_steps(lambda on_step: job.one_by_one(masks[[first]], [seeds[first]], on_step))
        return None if timed is None else _Probe(*timed)

    def probe_process() -> _Probe | None:
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # as in a worker
        try:
            one = probe_one_by_one()
        finally:
            torch.set_num_threads(before)
        if one is None:
            return None
        return _Probe(one.step / pool_workers, one.setup / pool_workers)

    single = {"sequential": probe_one_by_one, "process": probe_process, "ray": probe_process}
    if backend in single:
        return _Plan(backend, workers=cores, probe=single[backend]())
    engine, reason = job.engine(recipe)
    if engine is None:
        report.notes.append(f"vmap not possible ({reason}); training one model at a time")
        return _Plan("sequential", probe=probe_one_by_one())
    if reason:
        report.notes.append(reason)
    size = chunk_size or auto_chunk_size(recipe, job.x.shape[1:], job.num_classes)
    chunks = _stack_chunks(recipe.batch_size, masks, todo, size)
    stacked = _Plan("vmap", engine, chunks)

    def probe_stacked() -> _Probe | None:
        # a probe of the first chunk's first models: a chunk of thousands of tiny models
        # would take longer to build than the probe is worth
        index = chunks[0][:PROBE_MODELS]
        timed = _time_steps(
            lambda on_step: job.stacked(masks[index], [seeds[k] for k in index], engine, on_step)
        )
        return None if timed is None else _Probe(timed[0] / len(index), timed[1] / len(index))

    if backend == "vmap":
        stacked.probe = probe_stacked()
        return stacked
    if len(todo) <= 1:
        return _Plan("sequential", probe=probe_one_by_one())
    model_steps = _model_steps(recipe, masks, todo)
    alone = probe_one_by_one()
    if alone is None:  # fewer than two steps per model: nothing to time, and little to lose
        return stacked
    # a probe of stacking trains a few steps of up to PROBE_MODELS models (about what as many
    # steps of each model alone cost); where that would cost more than PROBE_BUDGET of
    # training one model at a time, it cannot pay for itself
    sequential_seconds = alone.seconds(model_steps, len(todo))
    probed = min(PROBE_MODELS, len(chunks[0]))
    stacked_probe_seconds = probed * (PROBE_STEPS + 1) * alone.step
    candidates: dict[str, Callable[[], _Probe | None]] = {}
    over_budget = stacked_probe_seconds > PROBE_BUDGET * sequential_seconds
    if over_budget:
        report.notes.append(
            f"auto: a probe of stacking (~{stacked_probe_seconds:.2g} s) would cost more than "
            f"{PROBE_BUDGET:.0%} of training one model at a time (~{sequential_seconds:.2g} s); "
            "not stacking"
        )
    else:
        candidates["vmap"] = probe_stacked
    if cores > 1 and recipe.device_type() == "cpu":
        candidates["process"] = probe_process  # as cheap as the probe of one model alone
    measured = {name: probe() for name, probe in candidates.items()}
    timed = {"sequential": alone} | {n: p for n, p in measured.items() if p is not None}
    report.probe = {name: p.step for name, p in timed.items()}
    start_seconds = PROCESS_START_SECONDS[_start_method()]

    def total(name: str) -> float:
        start = start_seconds if name == "process" else 0.0
        return timed[name].seconds(model_steps, len(todo)) + start

    best = min(timed, key=total)
    why = ""
    if best != "sequential" and total(best) > (1 - AUTO_MARGIN) * total("sequential"):
        why = f" ({best} less than {AUTO_MARGIN:.0%} ahead, within the probes' noise)"
        best = "sequential"
    figures = ", ".join(f"{name} {1e3 * p.step:.3g} ms" for name, p in timed.items())
    process_note = (
        f" (process: {pool_workers} workers, predicted from a one-thread probe, "
        f"+{start_seconds:.2g} s to start)"
        if "process" in timed
        else ""
    )
    report.notes.append(
        f"auto: probe of {PROBE_STEPS} steps, per model-step {figures}{process_note}; "
        f"chose {best}{why}"
    )
    if best == "vmap":
        stacked.probe = timed[best]
        return stacked
    return _Plan(best, workers=cores, probe=timed[best])


def _model_steps(recipe: TorchRecipe, masks: np.ndarray, todo: Sequence[int]) -> int:
    """Optimiser steps of all models to train, each on its own batch schedule."""
    sizes = masks[list(todo)].sum(axis=1)
    return int(sum(steps_per_epoch(int(n), recipe.batch_size) for n in sizes)) * recipe.epochs


def _estimate(
    job: _Job,
    plan: _Plan,
    masks: np.ndarray,
    todo: list[int],
    k_total: int,
    memory_budget_mb: float | None,
) -> TrainingEstimate:
    """Time (from the plan's probe) and memory of training ``todo``, checked against the free
    memory and the budget."""
    recipe = job.recipe
    n_query, classes = len(job.query_x), job.num_classes
    output_bytes = 4 * k_total * n_query * classes
    device = recipe.torch_device() if isinstance(recipe, TorchRecipe) else torch.device("cpu")
    # per model (or chunk): training state, activations and query pass
    stacked = max((len(c) for c in plan.chunks), default=1)
    if isinstance(recipe, TorchRecipe):
        model = recipe.build(job.x.shape[1:], classes, seed=0)
        parameters = sum(p.numel() for p in model.parameters())
        moments = {"adam": 2, "sgd": 1 if recipe.momentum > 0 else 0}[recipe.optimizer]
        per_record, widest = activation_floats(model, job.x.shape[1:])
        rows = min(n_query, max(64, _QUERY_FLOATS // max(stacked * widest, 1)))
        floats = stacked * (
            parameters * (2 + moments)  # weights, gradients, optimiser state
            + 2 * recipe.batch_size * per_record  # activations and their gradients
            + rows * per_record  # one slice of the query pass
            + n_query * classes  # the chunk's logits before they join the outputs
        )
        working = 4 * floats + 12 * stacked * int(masks.sum(axis=1).max())  # batch indices
    else:
        working = 2 * job.x.nbytes + 4 * n_query * classes  # a subset's copy, one model's logits
    device_bytes = working + (job.x.nbytes + job.query_x.nbytes if device.type != "cpu" else 0)
    if plan.backend == "process":
        host_bytes = output_bytes + plan.workers * (
            PROCESS_BASELINE_BYTES + job.x.nbytes + job.query_x.nbytes + working
        )
    else:
        host_bytes = output_bytes + (working if device.type == "cpu" else 0)
    seconds = None
    if plan.probe is not None and isinstance(recipe, TorchRecipe):
        seconds = plan.probe.seconds(_model_steps(recipe, masks, todo), len(todo))
        seconds += PROCESS_START_SECONDS[_start_method()] if plan.backend == "process" else 0.0
    estimate = TrainingEstimate(
        models=len(todo),
        model_epochs=len(todo) * _epochs(recipe),
        backend=plan.backend,
        device=device.type,
        seconds=seconds,
        seconds_per_model_step=plan.probe.step if plan.probe is not None else None,
        memory_bytes=int(host_bytes),
        output_bytes=output_bytes,
        free_bytes=free_host_bytes(),
        budget_bytes=budget_bytes(memory_budget_mb),
        device_bytes=int(device_bytes) if device.type != "cpu" else None,
        device_free_bytes=free_device_bytes(device),
    )
    check_memory(estimate)
    return estimate


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

    def one_by_one(
        self,
        masks: np.ndarray,
        seeds: Sequence[int],
        on_step: Callable[[], None] | None = None,
    ) -> np.ndarray:
        """Train the given models one after another; their query logits ``(k, nq, C)``.
        ``on_step`` is called after every optimiser step of a torch recipe."""
        outs = []
        for mask, seed in zip(masks, seeds, strict=True):
            x, y = self.x[mask], self.y[mask]
            if isinstance(self.recipe, TorchRecipe):
                model = self.recipe.fit(
                    x, y, num_classes=self.num_classes, seed=int(seed), on_step=on_step
                )
            else:
                model = self.recipe.fit(x, y, num_classes=self.num_classes, seed=int(seed))
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
        if _ConvStack.layers(models[0]):
            return "grouped", ""
        try:  # a dry run: one step of two stacked models on two records
            stack = _FuncStack(models)
            xb = torch.from_numpy(np.stack([self.x[:2], self.x[:2]]))
            stack.forward(xb).sum().backward()
        except Exception as e:
            return None, f"torch.func cannot run this network: {type(e).__name__}: {e}"
        return "torch.func", "not a Flatten/Linear/ReLU stack: stacking with torch.func"

    def stacked(
        self,
        masks: np.ndarray,
        seeds: Sequence[int],
        engine: str,
        on_step: Callable[[], None] | None = None,
    ) -> np.ndarray:
        return train_stacked(
            self.recipe,
            self.x,
            self.y,
            self.num_classes,
            self.query_x,
            masks,
            seeds,
            engine,
            on_step=on_step,
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


def _start_method() -> str:
    """``"fork"`` on Linux (workers inherit torch and the recipe: no import, no pickling of the
    data; torch re-creates its thread pools in a forked child), ``"spawn"`` elsewhere."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _init_worker(job: _Job) -> None:
    """Runs once in each worker process: one thread (the pool supplies the parallelism), and
    Ctrl-C left to the parent, which stops the pool."""
    global _WORKER_JOB
    _WORKER_JOB = job
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    """One task per model (each result is cached as soon as it arrives; on Ctrl-C the results
    that already arrived are kept and the workers are stopped)."""
    workers = max(1, min(workers or _usable_cores(), len(todo)))
    if kind == "process":
        _process_pool(job, masks, seeds, todo, done, workers)
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


def _process_pool(
    job: _Job,
    masks: np.ndarray,
    seeds: Sequence[int],
    todo: Sequence[int],
    done: Callable[[Sequence[int], np.ndarray], None],
    workers: int,
) -> None:
    import multiprocessing as mp

    arrived: queue.SimpleQueue = queue.SimpleQueue()
    pool = mp.get_context(_start_method()).Pool(workers, initializer=_init_worker, initargs=(job,))
    try:
        for k in todo:
            pool.apply_async(
                _worker_train,
                (masks[[k]], [seeds[k]]),
                callback=functools.partial(_put_logits, arrived, k),
                error_callback=functools.partial(_put_error, arrived, k),
            )
        for _ in todo:
            while True:  # a timeout keeps the wait interruptible by Ctrl-C
                try:
                    k, logits, error = arrived.get(timeout=0.5)
                    break
                except queue.Empty:
                    continue
            if error is not None:
                raise error
            done([k], logits)
    except KeyboardInterrupt:
        pool.terminate()  # models in flight are dropped, not finished
        while not arrived.empty():  # finished before the interrupt: keep them
            k, logits, error = arrived.get()
            if error is None:
                done([k], logits)
        raise
    finally:
        pool.terminate()
        pool.join()


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

    @torch.no_grad()
    def sgd_step(
        self,
        xb: torch.Tensor,
        yb: torch.Tensor,
        weight: torch.Tensor,
        lr: float,
        momentum: float,
        weight_decay: float,
    ) -> None:
        """One step of ``torch.optim.SGD`` (no dampening, no Nesterov) on the loss
        ``Σ weight · cross_entropy``, each weight gradient landing in its momentum buffer
        inside the product that computes it (``buffer ← momentum·buffer + aᵀ·g``, one
        ``baddbmm``), or, without momentum, in the weights themselves: no gradient is written
        and read back by an optimiser. The same arithmetic as autograd and ``SGD`` up to
        rounding; measured 1.2-1.35x faster per step on the 784-256-10 MLP at batch 64
        (``bench/bench_training_peak.py``).

        Args:
            xb: per-model inputs ``(K, B, ...)``; yb: labels ``(K, B)``; weight: ``(K, B)``.
        """
        if momentum and not hasattr(self, "buffers"):
            self.buffers = [torch.zeros_like(p) for p in self.params]
        for i, a, g in self._backward(xb, yb, weight):
            w, b = self.params[2 * i], self.params[2 * i + 1]
            if momentum:
                bw, bb = self.buffers[2 * i], self.buffers[2 * i + 1]
                bw.baddbmm_(a, g, beta=momentum)
                bb.mul_(momentum).add_(g.sum(dim=1, keepdim=True))
                if weight_decay:
                    torch._foreach_add_([bw, bb], [w, b], alpha=weight_decay)
                torch._foreach_add_([w, b], [bw, bb], alpha=-lr)
            else:
                w.baddbmm_(a, g, beta=1.0 - lr * weight_decay, alpha=-lr)
                b.mul_(1.0 - lr * weight_decay).sub_(g.sum(dim=1, keepdim=True), alpha=lr)

    def _backward(
        self, xb: torch.Tensor, yb: torch.Tensor, weight: torch.Tensor
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """The forward pass and the backward pass written out, last layer first: per layer
        ``i`` its input transposed ``aᵀ`` ``(K, in, B)`` and the loss's gradient ``g`` by its
        output ``(K, B, out)``, so that ``aᵀ·g`` and ``Σ_B g`` are the weight's and the bias's
        gradients. The layer's weights may be changed once it is yielded."""
        inputs, pre = [xb.flatten(2)], []
        for i in range(len(self.params) // 2):
            z = torch.baddbmm(self.params[2 * i + 1], inputs[-1], self.params[2 * i])
            pre.append(z)
            inputs.append(torch.relu(z))
        # d(loss)/d(logits): (softmax − one-hot) · weight
        g = torch.softmax(pre[-1], dim=-1)
        g.scatter_add_(-1, yb[..., None], torch.full_like(g[..., :1], -1.0))
        g.mul_(weight[..., None])
        for i in range(len(self.params) // 2 - 1, -1, -1):
            below = None
            if i:  # through this layer's weights before they change
                below = torch.bmm(g, self.params[2 * i].transpose(1, 2)).mul_(pre[i - 1] > 0)
            yield i, inputs[i].transpose(1, 2), g
            if below is not None:
                g = below


class _ConvStack:
    """K CNNs as one network of grouped convolutions: model k's channels are group k, its
    batch is stacked along the channel axis, and activations are kept ``channels_last``
    (measured 1.5x faster than K separate convolutions at batch 64, and than ``torch.func``,
    in ``bench/bench_conv_stacking.py``). The closing Linear layer runs as one ``baddbmm``.

    Takes ``Sequential`` stacks of ``Conv2d`` (ungrouped, with bias), ``ReLU``, ``MaxPool2d``/
    ``AvgPool2d``, then ``Flatten`` and one ``Linear``; `layers` says whether a network is one.
    """

    _ELEMENTWISE = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d)

    def __init__(self, models: Sequence[nn.Module]) -> None:
        per_model = [list(m.children()) for m in models]
        self.k = len(models)
        self.plan: list[nn.Module | str] = []
        self.params: list[torch.Tensor] = []
        for i, layer in enumerate(per_model[0]):
            if isinstance(layer, nn.Conv2d):
                pairs = [_weight_and_bias(m[i]) for m in per_model]
                w = torch.cat([weight for weight, _ in pairs])
                b = torch.cat([bias for _, bias in pairs])
                self.params += [
                    w.contiguous(memory_format=torch.channels_last).requires_grad_(),
                    b.contiguous().requires_grad_(),
                ]
                self.plan.append(layer)
            elif isinstance(layer, nn.Linear):
                pairs = [_weight_and_bias(m[i]) for m in per_model]
                w = torch.stack([weight.T for weight, _ in pairs])
                b = torch.stack([bias[None] for _, bias in pairs])
                self.params += [w.contiguous().requires_grad_(), b.contiguous().requires_grad_()]
                self.plan.append("linear")
            elif isinstance(layer, nn.Flatten):
                self.plan.append("flatten")
            else:
                self.plan.append(layer)
        self.widest = 16_384  # floats per record of the widest activation: assumed, as vmap

    @classmethod
    def layers(cls, module: nn.Module) -> bool:
        """Whether ``module`` is a network this stack can run."""
        mods = list(module.children()) if isinstance(module, nn.Sequential) else []
        if len(mods) < 3 or not isinstance(mods[-1], nn.Linear) or mods[-1].bias is None:
            return False
        if not isinstance(mods[-2], nn.Flatten) or not isinstance(mods[0], nn.Conv2d):
            return False
        for m in mods[:-2]:
            if isinstance(m, nn.Conv2d):
                if m.groups != 1 or m.bias is None or m.padding_mode != "zeros":
                    return False
            elif not isinstance(m, cls._ELEMENTWISE):
                return False
        return True

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        """Per-model inputs ``(K, B, C, H, W)`` → logits ``(K, B, classes)``."""
        k, b = xb.shape[:2]
        h = xb.transpose(0, 1).reshape(b, -1, *xb.shape[3:])
        h = h.contiguous(memory_format=torch.channels_last)
        params = iter(self.params)
        for step in self.plan:
            if isinstance(step, nn.Conv2d):
                w, bias = next(params), next(params)
                h = nn.functional.conv2d(
                    h, w, bias, step.stride, step.padding, step.dilation, groups=k
                )
            elif step == "flatten":
                h = h.reshape(b, k, -1).transpose(0, 1)
            elif step == "linear":
                w, bias = next(params), next(params)
                h = torch.baddbmm(bias, h, w)
            else:
                h = step(h)  # type: ignore[operator]
        return h

    def forward_shared(self, q: torch.Tensor) -> torch.Tensor:
        """One input ``(B, ...)`` for all models → ``(K, B, classes)``."""
        return self.forward(q.expand(self.k, *q.shape))


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
    *,
    on_step: Callable[[], None] | None = None,
) -> np.ndarray:
    """Train ``len(seeds)`` models of a torch recipe at once, on the recipe's device; their
    query logits ``(K, nq, C)``.

    Every model must have the same number of batches per epoch (``train_ensemble`` groups
    them so). ``engine``: ``"bmm"`` (MLPs only), ``"grouped"`` (plain CNNs only), ``"torch.func"``
    or ``"auto"`` (the first of those that fits). ``on_step`` (if given) is called after every
    optimiser step.

    Raises:
        ConfigError: not a torch recipe, an unknown engine, ``"bmm"``/``"grouped"`` for a
            network they do not fit, or models with different numbers of batches per epoch.
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
    device = recipe.torch_device()
    models = [recipe.build(x.shape[1:], num_classes, int(s)).to(device) for s in seeds]
    stack: _BmmStack | _ConvStack | _FuncStack
    if engine in ("auto", "bmm") and _BmmStack.layers(models[0]) is not None:
        stack = _BmmStack(models)
    elif engine == "bmm":
        raise ConfigError("engine: 'bmm' stacks Flatten/Linear/ReLU networks only")
    elif engine in ("auto", "grouped") and _ConvStack.layers(models[0]):
        stack = _ConvStack(models)
    elif engine == "grouped":
        raise ConfigError(
            "engine: 'grouped' stacks Conv2d/ReLU/pooling networks with one closing Linear only"
        )
    else:
        stack = _FuncStack(models)
    del models
    # SGD on a stacked MLP: the written-out step (`_BmmStack.sgd_step`), else autograd
    by_hand = isinstance(stack, _BmmStack) and recipe.optimizer == "sgd"
    opt = None if by_hand else recipe.make_optimizer(stack.params)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    rngs = [np.random.default_rng([int(s), 7]) for s in seeds]  # as in recipes.batch_schedule
    n_steps = steps.pop()
    for _ in range(recipe.epochs):
        index, weight = _epoch_batches(train_index, rngs, bs, n_steps)
        index, weight = index.to(device), weight.to(device)
        for it, wt in zip(index, weight, strict=True):
            flat = it.view(-1)
            # index_select, not xt[it]: advanced indexing is several times slower on CPU
            xb = torch.index_select(xt, 0, flat).view(k, bs, *xt.shape[1:])
            if opt is None:
                yb = torch.index_select(yt, 0, flat).view(k, bs)
                stack.sgd_step(  # type: ignore[union-attr]
                    xb, yb, wt, recipe.lr, recipe.momentum, recipe.weight_decay
                )
                if on_step is not None:
                    on_step()
                continue
            opt.zero_grad(set_to_none=True)
            logits = stack.forward(xb).reshape(-1, num_classes)
            ce = nn.functional.cross_entropy(
                logits, torch.index_select(yt, 0, flat), reduction="none"
            )
            ce.dot(wt.view(-1)).backward()
            opt.step()
            if on_step is not None:
                on_step()
    rows = max(64, _QUERY_FLOATS // (k * stack.widest))
    with torch.no_grad():
        out = [
            stack.forward_shared(torch.from_numpy(query_x[i : i + rows]).to(device))
            for i in range(0, len(query_x), rows)
        ]
    return torch.cat(out, dim=1).cpu().numpy()


def _put_logits(arrived: queue.SimpleQueue, k: int, logits: np.ndarray) -> None:
    """A pool worker's finished model (``apply_async``'s callback)."""
    arrived.put((k, logits, None))


def _put_error(arrived: queue.SimpleQueue, k: int, error: BaseException) -> None:
    """A pool worker's failure (``apply_async``'s error callback)."""
    arrived.put((k, None, error))


def _weight_and_bias(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A Conv2d's or Linear's weight and bias, detached (the grouped stack takes only layers
    with a bias, see `_ConvStack.layers`)."""
    weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
    if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
        raise RuntimeError(f"{layer!r}: a stacked layer needs a weight and a bias")
    return weight.detach(), bias.detach()
