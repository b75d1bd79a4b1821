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
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from unmeasured.errors import ConfigError
from unmeasured.training import (
    CNNRecipe,
    LogisticRecipe,
    MLPRecipe,
    SklearnRecipe,
    TrainingReport,
    train_ensemble,
)


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.data[:400] / 16.0).astype(np.float32)
    y = d.target[:400].astype(np.int64)
    masks = np.random.default_rng(0).random((4, len(x))) < 0.5
    return x, y, masks


@pytest.mark.parametrize(
    "recipe",
    [
        MLPRecipe(hidden=(32, 16), epochs=3, batch_size=32),
        MLPRecipe(
            hidden=(32,), epochs=3, batch_size=50, optimizer="sgd", lr=0.05, weight_decay=1e-3
        ),
        LogisticRecipe(epochs=3, batch_size=64, weight_decay=1e-4),
    ],
    ids=["mlp-adam", "mlp-sgd", "logistic"],
)
def test_vmap_matches_sequential(digits, recipe) -> None:
    x, y, masks = digits
    kw = dict(seeds=[3, 4, 5, 6], num_classes=10)
    seq = train_ensemble(recipe, x, y, masks, x[:100], backend="sequential", **kw)
    vm = train_ensemble(recipe, x, y, masks, x[:100], backend="vmap", **kw)
    np.testing.assert_allclose(vm, seq, atol=2e-3, rtol=1e-3)
    # different seeds really give different models: the check above is not vacuous
    assert np.abs(seq[0] - seq[1]).max() > 0.1


def test_vmap_through_torch_func_for_cnns(digits) -> None:
    x, y, masks = digits
    images = x.reshape(-1, 1, 8, 8)
    recipe = CNNRecipe(channels=(4, 8), epochs=2, batch_size=32)
    kw = dict(seeds=[1, 2, 3, 4], num_classes=10)
    seq = train_ensemble(recipe, images, y, masks, images[:50], backend="sequential", **kw)
    vm = train_ensemble(recipe, images, y, masks, images[:50], backend="vmap", **kw)
    np.testing.assert_allclose(vm, seq, atol=1e-3, rtol=1e-3)


def test_single_model_fit_equals_ensemble_member(digits) -> None:
    x, y, masks = digits
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=32)
    model = recipe.fit(x[masks[2]], y[masks[2]], num_classes=10, seed=9)
    ens = train_ensemble(
        recipe, x, y, masks[[2]], x[:30], seeds=[9], num_classes=10, backend="vmap"
    )
    np.testing.assert_allclose(ens[0], recipe.predict_logits(model, x[:30]), atol=1e-4)


def test_process_backend_matches_sequential(digits) -> None:
    x, y, masks = digits
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=[1, 2, 3, 4], num_classes=10)
    seq = train_ensemble(recipe, x, y, masks, x[:40], backend="sequential", **kw)
    proc = train_ensemble(recipe, x, y, masks, x[:40], backend="process", workers=2, **kw)
    np.testing.assert_allclose(proc, seq, atol=1e-5)


def test_sklearn_recipe(digits) -> None:
    x, y, masks = digits
    recipe = SklearnRecipe(estimator=LogisticRegression(max_iter=200))
    report = TrainingReport()
    out = train_ensemble(
        recipe,
        x,
        y,
        masks,
        x[:40],
        seeds=[0, 1, 2, 3],
        num_classes=10,
        backend="vmap",
        report=report,
    )
    assert report.backend == "sequential" and report.notes  # says why it did not stack
    assert out.shape == (4, 40, 10)
    assert (out.argmax(axis=2) == y[:40]).mean() > 0.8


def test_cache_hits_skip_training(digits, tmp_path: Path) -> None:
    x, y, masks = digits
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=[1, 2, 3, 4], num_classes=10, cache_dir=tmp_path)
    first, second = TrainingReport(), TrainingReport()
    a = train_ensemble(recipe, x, y, masks, x[:40], report=first, **kw)
    b = train_ensemble(recipe, x, y, masks, x[:40], report=second, **kw)
    assert (first.trained, first.cached) == (4, 0)
    assert (second.trained, second.cached) == (0, 4)
    np.testing.assert_array_equal(a, b)
    # anything that changes the models changes the key
    third = TrainingReport()
    train_ensemble(
        MLPRecipe(hidden=(16,), epochs=3, batch_size=64), x, y, masks, x[:40], report=third, **kw
    )
    assert third.trained == 4


SCRIPT = """
import numpy as np, sys
from sklearn.datasets import load_digits
from unmeasured.training import MLPRecipe, train_ensemble
d = load_digits()
x = (d.data[:400] / 16.0).astype(np.float32); y = d.target[:400]
masks = np.random.default_rng(0).random((8, 400)) < 0.5
train_ensemble(MLPRecipe(hidden=(64,), epochs=40, batch_size=16), x, y, masks, x[:50],
               seeds=list(range(8)), num_classes=10, backend="sequential", cache_dir=sys.argv[1])
"""


def test_kill_and_resume(tmp_path: Path) -> None:
    """kill -9 in the middle of training; the resumed run trains only what had not finished."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, str(script), str(cache)])
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            done = list(cache.glob("outputs/*/*.npy"))
            if len(done) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = len(list(cache.glob("outputs/*/*.npy")))
    assert 2 <= finished < 8, f"kill came too late or too early: {finished} models finished"
    assert not list(cache.glob("outputs/*/*.tmp"))

    d = load_digits()
    x = (d.data[:400] / 16.0).astype(np.float32)
    y = d.target[:400]
    masks = np.random.default_rng(0).random((8, 400)) < 0.5
    report = TrainingReport()
    train_ensemble(
        MLPRecipe(hidden=(64,), epochs=40, batch_size=16),
        x,
        y,
        masks,
        x[:50],
        seeds=list(range(8)),
        num_classes=10,
        backend="vmap",
        cache_dir=cache,
        report=report,
    )
    assert report.cached == finished
    assert report.trained == 8 - finished


def test_bad_arguments(digits) -> None:
    x, y, masks = digits
    recipe = MLPRecipe(hidden=(4,), epochs=1)
    with pytest.raises(ConfigError, match="backend"):
        train_ensemble(
            recipe, x, y, masks, x[:5], seeds=[1, 2, 3, 4], num_classes=10, backend="gpu-farm"
        )
    with pytest.raises(ConfigError, match="seeds"):
        train_ensemble(recipe, x, y, masks, x[:5], seeds=[1], num_classes=10)
    with pytest.raises(ConfigError, match="masks"):
        train_ensemble(recipe, x, y, masks[:, :10], x[:5], seeds=[1, 2, 3, 4], num_classes=10)


@pytest.mark.ray
def test_ray_backend_on_a_local_runtime(digits) -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray", reason="the ray extra is not installed")
    x, y, masks = digits
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=[1, 2, 3, 4], num_classes=10)
    seq = train_ensemble(recipe, x, y, masks, x[:40], backend="sequential", **kw)
    report = TrainingReport()
    remote = train_ensemble(
        recipe, x, y, masks, x[:40], backend="ray", workers=2, report=report, **kw
    )
    assert report.backend == "ray" and report.trained == 4
    np.testing.assert_allclose(remote, seq, atol=1e-5)
