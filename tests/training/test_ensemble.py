"""The ensemble trainer: every backend trains the same models as a plain loop, and the cache
never loses a finished model (not even to kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from torch import nn

from unmeasured.errors import ConfigError
from unmeasured.progress import Progress
from unmeasured.training import (
    CNNRecipe,
    LogisticRecipe,
    MLPRecipe,
    SklearnRecipe,
    TorchRecipe,
    TrainingReport,
    train_ensemble,
    train_stacked,
)
from unmeasured.training.ensemble import AUTO_MARGIN, _BmmStack, _Job, _plan

SEEDS = [3, 4, 5, 6]
# float32 rounding differences between one model's matrix products and the stacked ones
ATOL = 1e-4


@pytest.mark.parametrize("engine", ["bmm", "torch.func"])
@pytest.mark.parametrize(
    "recipe",
    [
        MLPRecipe(hidden=(32, 16), epochs=3, batch_size=32),
        MLPRecipe(
            hidden=(32,), epochs=3, batch_size=50, optimizer="sgd", lr=0.05, weight_decay=1e-3
        ),
        MLPRecipe(hidden=(32, 16), epochs=3, batch_size=32, optimizer="sgd", lr=0.05),
        MLPRecipe(
            hidden=(32,), epochs=2, batch_size=50, optimizer="sgd", momentum=0.0, weight_decay=0.01
        ),
        LogisticRecipe(epochs=3, batch_size=64, weight_decay=1e-4),
    ],
    ids=["mlp-adam", "mlp-sgd-decay", "mlp-sgd-deeper", "mlp-sgd-no-momentum", "logistic"],
)
def test_stacked_training_equals_training_alone(digits, masks, recipe, engine: str) -> None:
    x, y = digits
    alone = [
        recipe.predict_logits(recipe.fit(x[m], y[m], num_classes=10, seed=s), x[:100])
        for m, s in zip(masks, SEEDS, strict=True)
    ]
    for k, (m, s) in enumerate(zip(masks, SEEDS, strict=True)):  # one model per stack
        stacked = train_stacked(recipe, x, y, 10, x[:100], m[None], [s], engine)
        np.testing.assert_allclose(stacked[0], alone[k], atol=ATOL)
    # different seeds and subsets give different models: the checks above are not vacuous
    assert np.abs(alone[0] - alone[1]).max() > 0.1


@pytest.mark.parametrize(
    ("momentum", "weight_decay"), [(0.9, 0.0), (0.9, 1e-2), (0.0, 0.0), (0.0, 1e-2)]
)
def test_the_written_out_sgd_step_is_autograd_and_torch_sgd(momentum, weight_decay) -> None:
    """Twenty steps of `_BmmStack.sgd_step` on 3 stacked 20-16-8-4 MLPs, with padded (zero
    weight) records, leave the same weights as autograd and ``torch.optim.SGD`` from the same
    start (to float32 rounding); the weights moved by far more than that."""
    import torch

    torch.manual_seed(0)
    models = [
        nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(),
                      nn.Linear(8, 4))
        for _ in range(3)
    ]  # fmt: skip
    by_hand, reference = _BmmStack(models), _BmmStack(models)
    start = [p.detach().clone() for p in reference.params]
    opt = torch.optim.SGD(reference.params, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for step in range(20):
        xb = torch.randn(3, 10, 20)
        yb = torch.randint(0, 4, (3, 10))
        weight = torch.full((3, 10), 0.1)
        weight[:, 7:] = 0.0 if step % 2 else 0.1  # a last batch shorter than the rest
        by_hand.sgd_step(xb, yb, weight, 0.1, momentum, weight_decay)
        opt.zero_grad()
        ce = nn.functional.cross_entropy(
            reference.forward(xb).reshape(-1, 4), yb.reshape(-1), reduction="none"
        )
        ce.dot(weight.reshape(-1)).backward()
        opt.step()
    for mine, theirs, first in zip(by_hand.params, reference.params, start, strict=True):
        torch.testing.assert_close(mine, theirs.detach(), atol=2e-6, rtol=1e-5)
        assert (theirs.detach() - first).abs().max() > 1e-2


def test_stacked_mlps_with_sgd_take_the_written_out_step(digits, masks, monkeypatch) -> None:
    """The stacked trainer takes `_BmmStack.sgd_step` for an MLP with SGD, autograd for Adam."""
    calls = []
    original = _BmmStack.sgd_step
    monkeypatch.setattr(
        _BmmStack, "sgd_step", lambda self, *a: calls.append(1) or original(self, *a)
    )
    x, y = digits
    sgd = MLPRecipe(hidden=(8,), epochs=1, batch_size=64, optimizer="sgd")
    train_stacked(sgd, x, y, 10, x[:5], masks[:2], SEEDS[:2], "bmm")
    steps = len(calls)
    assert steps == -(-int(masks[0].sum()) // 64)
    train_stacked(MLPRecipe(hidden=(8,), epochs=1, batch_size=64), x, y, 10, x[:5], masks[:2],
                  SEEDS[:2], "bmm")  # fmt: skip
    assert len(calls) == steps


@pytest.mark.parametrize(
    "recipe",
    [MLPRecipe(hidden=(32, 16), epochs=3, batch_size=32), LogisticRecipe(epochs=2)],
    ids=["mlp", "logistic"],
)
def test_vmap_backend_matches_sequential(digits, masks, recipe) -> None:
    x, y = digits
    kw = dict(seeds=SEEDS, num_classes=10)
    seq = train_ensemble(recipe, x, y, masks, x[:100], backend="sequential", **kw)
    report = TrainingReport()
    vm = train_ensemble(recipe, x, y, masks, x[:100], backend="vmap", report=report, **kw)
    assert (report.backend, report.engine, report.trained) == ("vmap", "bmm", 4)
    np.testing.assert_allclose(vm, seq, atol=ATOL)


def test_models_with_different_batch_counts_are_stacked_apart(digits) -> None:
    """Subsets of 60, 100, 100 and 140 records in batches of 32 take 2, 4, 4 and 5 steps per
    epoch: each model still follows its own schedule, as it would alone."""
    x, y = digits
    masks = np.zeros((4, len(x)), dtype=bool)
    for k, n in enumerate((60, 100, 100, 140)):
        masks[k, np.random.default_rng(k).permutation(len(x))[:n]] = True
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=32)
    kw = dict(seeds=SEEDS, num_classes=10)
    seq = train_ensemble(recipe, x, y, masks, x[:50], backend="sequential", **kw)
    report = TrainingReport()
    vm = train_ensemble(recipe, x, y, masks, x[:50], backend="vmap", report=report, **kw)
    assert report.chunk_size == 2  # the two models with 4 steps per epoch
    np.testing.assert_allclose(vm, seq, atol=ATOL)
    with pytest.raises(ConfigError, match="same number of batches"):
        train_stacked(recipe, x, y, 10, x[:5], masks, SEEDS)


def test_chunks_give_the_same_models(digits, masks) -> None:
    x, y = digits
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=SEEDS, num_classes=10, backend="vmap")
    whole = train_ensemble(recipe, x, y, masks, x[:50], **kw)
    report = TrainingReport()
    chunked = train_ensemble(recipe, x, y, masks, x[:50], chunk_size=2, report=report, **kw)
    assert report.chunk_size == 2
    np.testing.assert_allclose(chunked, whole, atol=ATOL)


@pytest.mark.parametrize("engine", ["grouped", "torch.func"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_stacked_cnns_equal_cnns_trained_alone(digits, masks, engine, optimizer) -> None:
    """Two conv layers (one pooled, one not: 8 → 4 pixels) and a linear classifier, stacked
    as grouped convolutions or through torch.func, train the very models of the loop."""
    x, y = digits
    images = x.reshape(-1, 1, 8, 8)
    halves = np.zeros((3, len(x)), dtype=bool)  # equal sizes: one stack, one schedule length
    for k in range(3):
        halves[k, np.random.default_rng(k).permutation(len(x))[:150]] = True
    recipe = CNNRecipe(channels=(4, 6), epochs=2, batch_size=50, optimizer=optimizer, lr=0.01)
    seq = train_ensemble(
        recipe,
        images,
        y,
        halves,
        images[:40],
        seeds=SEEDS[:3],
        num_classes=10,
        backend="sequential",
    )
    stacked = train_stacked(recipe, images, y, 10, images[:40], halves, SEEDS[:3], engine)
    np.testing.assert_allclose(stacked, seq, atol=ATOL)
    assert np.abs(seq[0] - seq[1]).max() > 0.1  # different models: the check is not vacuous


def test_cnns_stack_as_grouped_convolutions(digits, masks) -> None:
    x, y = digits
    images = x.reshape(-1, 1, 8, 8)
    recipe = CNNRecipe(channels=(4,), epochs=1, batch_size=50)
    report = TrainingReport()
    train_ensemble(
        recipe,
        images,
        y,
        masks[:2],
        images[:40],
        seeds=SEEDS[:2],
        num_classes=10,
        backend="vmap",
        report=report,
    )
    assert (report.backend, report.engine) == ("vmap", "grouped")
    with pytest.raises(ConfigError, match="'grouped' stacks Conv2d"):
        train_stacked(MLPRecipe(hidden=(8,), epochs=1), x, y, 10, x[:5], masks[:1], [0], "grouped")


class BatchNormRecipe(TorchRecipe):
    def __init__(self, *, epochs: int = 1, batch_size: int = 64, lr: float = 1e-3) -> None:
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.weight_decay, self.optimizer, self.momentum = 0.0, "adam", 0.9
        self.validate()

    def architecture(self, input_shape, num_classes) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64), nn.Linear(64, num_classes))


def test_unstackable_layers_fall_back_to_sequential_and_say_why(digits, masks) -> None:
    x, y = digits
    logged: list[str] = []

    class Recorder(Progress):
        def log(self, message: str) -> None:
            logged.append(message)

    report = TrainingReport()
    out = train_ensemble(
        BatchNormRecipe(),
        x,
        y,
        masks[:2],
        x[:10],
        seeds=SEEDS[:2],
        num_classes=10,
        backend="vmap",
        progress=Recorder(),
        report=report,
    )
    assert report.backend == "sequential" and out.shape == (2, 10, 10)
    assert logged[: len(report.notes)] == report.notes and "BatchNorm1d" in report.notes[0]
    assert logged[len(report.notes)].startswith("Estimate: 2 models x 1 epochs (sequential, cpu)")


def choose(
    job: _Job, backend: str, k: int, workers: int | None = None
) -> tuple[str, TrainingReport]:
    report = TrainingReport()
    masks = np.ones((k, len(job.x)), dtype=bool)
    plan = _plan(job, backend, masks, list(range(k)), list(range(k)), None, workers, report)
    return plan.backend, report


def test_backend_choice_without_a_probe() -> None:
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    sk = _Job(SklearnRecipe(estimator=LogisticRegression()), x, y, 2, x)
    mlp = _Job(MLPRecipe(hidden=(4,), batch_size=2), x, y, 2, x)
    assert choose(mlp, "auto", 1)[0] == "sequential"
    assert choose(mlp, "vmap", 8)[0] == "vmap"
    assert choose(sk, "auto", 8, workers=2)[0] == "process"
    assert choose(sk, "auto", 8, workers=1)[0] == "sequential"
    assert choose(sk, "auto", 1, workers=2)[0] == "sequential"
    with pytest.raises(ConfigError, match="backend: SklearnRecipe trains with 'sequential'"):
        choose(sk, "vmap", 8)


@pytest.mark.parametrize("slow", ["stacked", "one_by_one"])
def test_auto_picks_what_the_probe_measures_fastest(digits, monkeypatch, slow: str) -> None:
    """A backend made slow on purpose (20 ms per optimiser step) loses the probe. (Only the
    plan is made: 200 epochs make the run long enough for a probe of stacking to pay.)"""
    x, y = digits
    job = _Job(MLPRecipe(hidden=(8,), epochs=200, batch_size=16), x, y, 10, x[:5])
    original = getattr(_Job, slow)

    def sluggish(self, *args, **kwargs):
        on_step = args[-1] if slow == "one_by_one" else args[3]

        def slower() -> None:
            time.sleep(0.02)
            on_step()

        args = (*args[:-1], slower) if slow == "one_by_one" else (*args[:3], slower)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_Job, slow, sluggish)
    backend, report = choose(job, "auto", 4, workers=1)
    assert backend == ("sequential" if slow == "stacked" else "vmap")
    assert set(report.probe) == {"vmap", "sequential"}
    assert report.notes[-1].endswith(f"chose {backend}")
    slowest = "vmap" if slow == "stacked" else "sequential"
    assert report.probe[slowest] > report.probe[backend]


def test_auto_keeps_to_sequential_when_stacking_is_ahead_by_less_than_the_noise(
    digits, monkeypatch
) -> None:
    """Steps slowed to 200 ms alone and 760 ms for 4 stacked models: stacking looks 5% faster,
    less than `AUTO_MARGIN`, so the safe loop is chosen and the note says why. (At 50 and 190 ms
    a loaded machine's few milliseconds of real work per step moved the ratio to 1.14.)"""
    x, y = digits
    job = _Job(MLPRecipe(hidden=(8,), epochs=200, batch_size=16), x, y, 10, x[:5])

    def slowed(original, seconds: float, position: int):
        def run(self, *args, **kwargs):
            on_step = args[position]

            def slower() -> None:
                time.sleep(seconds)
                on_step()

            args = (*args[:position], slower, *args[position + 1 :])
            return original(self, *args, **kwargs)

        return run

    monkeypatch.setattr(_Job, "one_by_one", slowed(_Job.one_by_one, 0.200, 2))
    monkeypatch.setattr(_Job, "stacked", slowed(_Job.stacked, 0.760, 3))
    backend, report = choose(job, "auto", 4, workers=1)
    assert 0.9 < report.probe["sequential"] / report.probe["vmap"] < 1 / (1 - AUTO_MARGIN)
    assert backend == "sequential"
    assert "vmap less than 10% ahead" in report.notes[-1]


def test_auto_trains_a_short_run_one_by_one_without_probing_stacking(digits) -> None:
    """4 models of one epoch (19 steps each): a probe of stacking (3 steps of 4 models) would
    cost 16% of the whole sequential run, more than it could win back."""
    x, y = digits
    job = _Job(MLPRecipe(hidden=(8,), epochs=1, batch_size=16), x, y, 10, x[:5])
    backend, report = choose(job, "auto", 4, workers=1)
    assert backend == "sequential" and set(report.probe) == {"sequential"}
    assert any("would cost more than 5% of training one model at a time" in n for n in report.notes)
    # with a second core the pool is still weighed: its probe costs no more than the loop's
    backend, report = choose(job, "auto", 4, workers=2)
    assert backend == "sequential" and set(report.probe) == {"sequential", "process"}


def test_sklearn_recipe_in_an_ensemble(digits, masks) -> None:
    x, y = digits
    recipe = SklearnRecipe(estimator=LogisticRegression(max_iter=300))
    out = train_ensemble(
        recipe, x, y, masks, x[:40], seeds=SEEDS, num_classes=10, backend="sequential"
    )
    assert out.shape == (4, 40, 10) and out.dtype == np.float32
    assert (out.argmax(axis=2) == y[:40]).mean() > 0.8


def test_process_backend_matches_sequential(digits, masks) -> None:
    x, y = digits
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=SEEDS, num_classes=10)
    seq = train_ensemble(recipe, x, y, masks, x[:40], backend="sequential", **kw)
    report = TrainingReport()
    proc = train_ensemble(
        recipe, x, y, masks, x[:40], backend="process", workers=2, report=report, **kw
    )
    assert (report.backend, report.trained) == ("process", 4)
    np.testing.assert_allclose(proc, seq, atol=ATOL)


def test_cache_hits_skip_training(digits, masks, tmp_path: Path) -> None:
    x, y = digits
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=SEEDS, num_classes=10, cache_dir=tmp_path)
    first, second = TrainingReport(), TrainingReport()
    a = train_ensemble(recipe, x, y, masks, x[:40], report=first, **kw)
    b = train_ensemble(recipe, x, y, masks, x[:40], report=second, **kw)
    assert (first.trained, first.cached) == (4, 0)
    assert (second.trained, second.cached, second.backend) == (0, 4, "cache")
    np.testing.assert_array_equal(a, b)
    # a new model joins: only it trains
    more = np.concatenate([masks, masks[:1]])
    third = TrainingReport()
    c = train_ensemble(recipe, x, y, more, x[:40], report=third, **{**kw, "seeds": [*SEEDS, 99]})
    assert (third.trained, third.cached) == (1, 4)
    np.testing.assert_array_equal(c[:4], a)
    # a torn or foreign file is not trusted: that model trains again
    entry = next(tmp_path.glob("outputs/*/*.npy"))
    entry.write_bytes(b"not an array")
    fourth = TrainingReport()
    train_ensemble(recipe, x, y, masks, x[:40], report=fourth, **kw)
    assert (fourth.trained, fourth.cached) == (1, 3)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_writer(tmp_path: Path) -> None:
    from unmeasured.training.cache import OutputCache

    cache = OutputCache(tmp_path)
    cache.put("ab" * 32, np.zeros((2, 3)))
    orphan = tmp_path / "outputs" / "ab" / ".abababab-killed.tmp"
    orphan.write_bytes(b"half a write")
    cache.put("ab" + "cd" * 31, np.ones((2, 3)))
    assert not orphan.exists()
    assert len(cache) == 2 and cache.get("ab" * 32).shape == (2, 3)


@pytest.mark.parametrize(
    "change",
    ["recipe", "data", "mask", "seed", "query"],
)
def test_cache_key_covers_everything_that_matters(digits, masks, tmp_path, change) -> None:
    x, y = digits
    recipe = MLPRecipe(hidden=(8,), epochs=1, batch_size=64)
    args = dict(recipe=recipe, x=x, y=y, masks=masks[:1], query_x=x[:20], seeds=[1])
    train_ensemble(**args, num_classes=10, cache_dir=tmp_path)
    changed = {
        "recipe": {"recipe": MLPRecipe(hidden=(8,), epochs=1, batch_size=32)},
        "data": {"y": np.where(np.arange(len(y)) == 0, (y + 1) % 10, y)},
        "mask": {"masks": ~masks[:1]},
        "seed": {"seeds": [2]},
        "query": {"query_x": x[1:21]},
    }[change]
    report = TrainingReport()
    train_ensemble(**{**args, **changed}, num_classes=10, cache_dir=tmp_path, report=report)
    assert report.trained == 1


TRAIN_UNTIL_KILLED = """
import sys, time
import numpy as np
from sklearn.datasets import load_digits
from unmeasured.progress import Progress
from unmeasured.training import MLPRecipe, train_ensemble

class StallAfter(Progress):
    # after three finished models of two epochs (vmap: two chunks of two), stall as if the next
    # took forever
    def task(self, description, total=None):
        from contextlib import contextmanager
        finished = [0.0]
        def advance(n=1):
            finished[0] += n
            if finished[0] >= 6 - 1e-9:
                time.sleep(600)
        @contextmanager
        def ctx():
            yield advance
        return ctx()

d = load_digits()
x, y = (d.data[:300] / 16.0).astype(np.float32), d.target[:300]
masks = np.random.default_rng(0).random((8, 300)) < 0.5
train_ensemble(MLPRecipe(hidden=(16,), epochs=2, batch_size=64), x, y, masks, x[:50],
               seeds=list(range(8)), num_classes=10, backend=sys.argv[2], chunk_size=2,
               cache_dir=sys.argv[1], progress=StallAfter())
"""


@pytest.mark.parametrize("backend", ["sequential", "vmap"])
def test_kill_and_resume(digits, tmp_path: Path, backend: str) -> None:
    """kill -9 in the middle of training; the resumed run trains only what had not finished."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN_UNTIL_KILLED))
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, str(script), str(cache), backend])
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(cache.glob("outputs/*/*.npy"))) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    entries = list(cache.glob("outputs/*/*.npy"))
    finished = len(entries)
    assert 2 <= finished < 8, f"{finished} models were cached before the kill"
    # whole entries only (a write the kill interrupted may leave a temporary file, never a .npy)
    assert all(np.load(e, allow_pickle=False).shape == (50, 10) for e in entries)

    x, y = digits
    masks = np.random.default_rng(0).random((8, 300)) < 0.5
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=list(range(8)), num_classes=10)
    report = TrainingReport()
    resumed = train_ensemble(
        recipe, x, y, masks, x[:50], backend="vmap", cache_dir=cache, report=report, **kw
    )
    assert (report.cached, report.trained) == (finished, 8 - finished)
    assert not list(cache.glob("outputs/*/.*.tmp")), "an interrupted write was left behind"
    fresh = train_ensemble(recipe, x, y, masks, x[:50], backend="sequential", **kw)
    np.testing.assert_allclose(resumed, fresh, atol=ATOL)


def test_bad_arguments(digits, masks) -> None:
    x, y = digits
    recipe = MLPRecipe(hidden=(4,), epochs=1)
    kw = dict(seeds=SEEDS, num_classes=10)
    with pytest.raises(ConfigError, match="backend: unknown backend 'gpu-farm'; choose 'auto'"):
        train_ensemble(recipe, x, y, masks, x[:5], backend="gpu-farm", **kw)
    with pytest.raises(ConfigError, match="seeds: expected 4 seeds"):
        train_ensemble(recipe, x, y, masks, x[:5], seeds=[1], num_classes=10)
    with pytest.raises(ConfigError, match="masks: expected a bool array of shape"):
        train_ensemble(recipe, x, y, masks[:, :10], x[:5], **kw)
    with pytest.raises(ConfigError, match="masks: model 1 has no training record"):
        train_ensemble(recipe, x, y, masks & (np.arange(4) != 1)[:, None], x[:5], **kw)
    with pytest.raises(ConfigError, match=r"y: labels must be in 0\.\.9"):
        train_ensemble(recipe, x, y + 1, masks, x[:5], **kw)
    with pytest.raises(ConfigError, match="query_x"):
        train_ensemble(recipe, x, y, masks, x[:5, :10], **kw)
    with pytest.raises(ConfigError, match="engine: unknown engine"):
        train_stacked(recipe, x, y, 10, x[:5], masks[:1], SEEDS[:1], "jax")


@pytest.mark.ray
def test_ray_backend_on_a_local_runtime(digits, masks) -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray", reason="the ray extra is not installed")
    x, y = digits
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=SEEDS, num_classes=10)
    seq = train_ensemble(recipe, x, y, masks, x[:40], backend="sequential", **kw)
    report = TrainingReport()
    remote = train_ensemble(
        recipe, x, y, masks, x[:40], backend="ray", workers=2, report=report, **kw
    )
    assert (report.backend, report.trained) == ("ray", 4)
    np.testing.assert_allclose(remote, seq, atol=ATOL)
