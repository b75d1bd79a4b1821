"""Devices: "auto" resolves to what this machine has; a missing GPU is a config error naming
the field; GPU cases run where there is a GPU and are skipped with the reason elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmeasured.errors import ConfigError
from unmeasured.training import MLPRecipe, TrainingReport, train_ensemble
from unmeasured.training.devices import gpu_skip_reason, resolve_device

GPU_SKIP = pytest.mark.skipif(gpu_skip_reason() is not None, reason=gpu_skip_reason() or "")


def test_auto_resolves_to_the_best_device_here() -> None:
    expected = (
        "cuda" if torch.cuda.is_available() else "mps" if gpu_skip_reason() is None else "cpu"
    )
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


def test_unknown_devices_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="recipe.device: .*'auto', 'cpu', 'cuda'.*got 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="recipe.device"):
        MLPRecipe(device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_missing_gpu_is_a_config_error_before_any_training() -> None:
    with pytest.raises(ConfigError, match="recipe.device: 'cuda' but torch sees no CUDA GPU"):
        MLPRecipe(device="cuda").cache_key()


@GPU_SKIP
@pytest.mark.parametrize("backend", ["vmap", "sequential"])
def test_training_on_the_gpu_matches_the_cpu(digits, masks, backend: str) -> None:
    x, y = digits
    kw = dict(seeds=[0, 1, 2, 3], num_classes=10, backend=backend)
    on_cpu = train_ensemble(MLPRecipe(hidden=(16,), epochs=2, device="cpu"), x, y, masks, x, **kw)
    report = TrainingReport()
    on_gpu = train_ensemble(
        MLPRecipe(hidden=(16,), epochs=2, device="auto"), x, y, masks, x, report=report, **kw
    )
    assert report.device in ("cuda", "mps") and report.backend == backend
    # the same models up to float32 rounding (GPU reductions add in another order)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-3)
    assert (on_gpu.argmax(2) == on_cpu.argmax(2)).mean() > 0.99
