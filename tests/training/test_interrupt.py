"""Ctrl-C during training: nothing new starts, every finished model stays cached and is reused,
the count and how to resume are said, and the process exits 130."""

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

from unmeasured.training import MLPRecipe, TrainingReport, train_ensemble

TRAIN_UNTIL_INTERRUPTED = """
import sys, time
import numpy as np
from sklearn.datasets import load_digits
from unmeasured.progress import RichProgress
from unmeasured.training import MLPRecipe, TorchRecipe, train_ensemble

# slow models down where they train (also in spawned workers, which import this file), without
# touching what they compute or their cache key
_fit = TorchRecipe.fit
def slow_fit(self, *args, **kwargs):
    time.sleep(0.3)
    return _fit(self, *args, **kwargs)
TorchRecipe.fit = slow_fit

class SlowBar(RichProgress):
    # a slow terminal: every progress update takes 0.3 s, so models finish one by one; once two
    # models are cached it hangs, so that the Ctrl-C always lands in the middle of training
    def task(self, description, total=None):
        from contextlib import contextmanager
        from pathlib import Path
        hung = []
        def advance(n=1):
            if not hung and len(list(Path(sys.argv[1]).glob("outputs/*/*.npy"))) >= 2:
                hung.append(True)
                time.sleep(600)  # until the Ctrl-C
            time.sleep(0.3)
        @contextmanager
        def ctx():
            yield advance
        return ctx()

if __name__ == "__main__":  # spawned workers import this file again
    d = load_digits()
    x, y = (d.data[:300] / 16.0).astype(np.float32), d.target[:300]
    masks = np.random.default_rng(0).random((8, 300)) < 0.5
    try:
        train_ensemble(MLPRecipe(hidden=(16,), epochs=2, batch_size=64), x, y, masks, x[:50],
                       seeds=list(range(8)), num_classes=10, backend=sys.argv[2], chunk_size=2,
                       workers=2, cache_dir=sys.argv[1], progress=SlowBar(enabled=False))
    except KeyboardInterrupt:
        sys.exit(130)  # as the command line does
"""


@pytest.mark.parametrize("backend", ["vmap", "process"])
def test_ctrl_c_keeps_finished_models_and_exits_130(digits, tmp_path: Path, backend: str) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN_UNTIL_INTERRUPTED))
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(cache), backend],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(cache.glob("outputs/*/*.npy"))) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    cached = len(list(cache.glob("outputs/*/*.npy")))
    assert proc.returncode == 130, stderr
    assert 2 <= cached < 8, f"{cached} models cached"
    assert not list(cache.glob("outputs/*/.*.tmp"))
    assert f"interrupted: {cached} of 8 models are cached in {cache}" in stderr
    assert "run the same command again to resume" in stderr

    x, y = digits
    masks = np.random.default_rng(0).random((8, 300)) < 0.5
    recipe = MLPRecipe(hidden=(16,), epochs=2, batch_size=64)
    kw = dict(seeds=list(range(8)), num_classes=10)
    report = TrainingReport()
    resumed = train_ensemble(
        recipe, x, y, masks, x[:50], backend="sequential", cache_dir=cache, report=report, **kw
    )
    assert (report.cached, report.trained) == (cached, 8 - cached)
    fresh = train_ensemble(recipe, x, y, masks, x[:50], backend="sequential", **kw)
    np.testing.assert_allclose(resumed, fresh, atol=1e-4)


def test_interrupted_without_a_cache_says_nothing_is_kept(digits, masks) -> None:
    x, y = digits
    logged: list[str] = []

    class InterruptAfterOne:
        """Ctrl-C as the first model's progress arrives."""

        def task(self, description, total=None):
            from contextlib import contextmanager

            def advance(n=1):
                raise KeyboardInterrupt

            @contextmanager
            def ctx():
                yield advance

            return ctx()

        def log(self, message: str) -> None:
            logged.append(message)

    report = TrainingReport()
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(
            MLPRecipe(hidden=(8,), epochs=1),
            x,
            y,
            masks,
            x[:10],
            seeds=[0, 1, 2, 3],
            num_classes=10,
            backend="sequential",
            progress=InterruptAfterOne(),
            report=report,
        )
    assert report.interrupted and report.trained == 1
    assert logged[-1].startswith("interrupted: 1 of 4 models had finished but no cache")
