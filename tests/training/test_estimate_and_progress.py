"""Before training: a one-line estimate of time and memory that warns before a run too big to
fit allocates anything; during training: progress in model-epochs that moves within an epoch."""

from __future__ import annotations

import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest

from unmeasured.errors import ConfigError
from unmeasured.progress import Progress
from unmeasured.training import MLPRecipe, TrainingReport, resources, train_ensemble
from unmeasured.training import ensemble as ensemble_module


class Recorder(Progress):
    """Keeps every log line and every advance; optionally stops at the first warning."""

    def __init__(self, stop_at_warning: bool = False) -> None:
        self.lines: list[str] = []
        self.advances: list[float] = []
        self.totals: list[float | None] = []
        self.stop_at_warning = stop_at_warning

    @contextmanager
    def task(self, description: str, total: float | None = None):
        self.totals.append(total)
        yield self.advances.append

    def log(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(message)
        if self.stop_at_warning and message.startswith("warning:"):
            raise StopIteration(message)


@pytest.mark.parametrize("limit", ["budget", "free memory"])
def test_five_thousand_models_warn_before_allocating(digits, monkeypatch, limit: str) -> None:
    """K = 5,000 models queried on 10,000 records need 2 GB of outputs alone: the warning comes
    before that array (or any model) exists."""
    x, y = digits
    query = np.tile(x, (34, 1))[:10_000]
    masks = np.random.default_rng(0).random((5000, len(x))) < 0.5
    if limit == "free memory":
        monkeypatch.setattr(ensemble_module, "free_host_bytes", lambda: 1 << 30)
    recorder = Recorder(stop_at_warning=True)
    report = TrainingReport()
    tracemalloc.start()
    try:
        with pytest.raises(StopIteration, match="warning: training needs about [0-9.]+ GB"):
            train_ensemble(
                MLPRecipe(hidden=(8,), epochs=1, batch_size=64),
                x,
                y,
                masks,
                query,
                seeds=range(5000),
                num_classes=10,
                memory_budget_mb=1000 if limit == "budget" else None,
                progress=recorder,
                report=report,
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 500 * 2**20, f"{peak / 2**20:.0f} MiB allocated before the warning"
    assert recorder.totals == [] and report.trained == 0  # no training started
    estimate = report.estimate
    assert estimate is not None and estimate.output_bytes == 5000 * 10_000 * 10 * 4
    assert estimate.memory_bytes > estimate.output_bytes
    assert recorder.lines[-2] == estimate.line()
    assert ("budget" in recorder.lines[-1]) == (limit == "budget")


def test_a_run_that_fits_says_how_long_and_how_much(digits, masks) -> None:
    x, y = digits
    recorder = Recorder()
    report = TrainingReport()
    train_ensemble(
        MLPRecipe(hidden=(8,), epochs=2, batch_size=32),
        x,
        y,
        masks,
        x[:50],
        seeds=[0, 1, 2, 3],
        num_classes=10,
        memory_budget_mb=10_000,
        progress=recorder,
        report=report,
    )
    estimate = report.estimate
    assert estimate is not None and not estimate.warnings
    assert estimate.seconds is not None and estimate.seconds > 0
    assert estimate.model_epochs == 8 and estimate.output_bytes == 4 * 50 * 10 * 4
    assert estimate.line() in recorder.lines
    assert not any(line.startswith("warning") for line in recorder.lines)


def test_the_budget_can_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(resources.MEMORY_BUDGET_ENV, "512")
    assert resources.budget_bytes(None) == 512 * 2**20
    assert resources.budget_bytes(64) == 64 * 2**20
    monkeypatch.setenv(resources.MEMORY_BUDGET_ENV, "lots")
    with pytest.raises(ConfigError, match="UNMEASURED_MEMORY_BUDGET_MB: must be"):
        resources.budget_bytes(None)


@pytest.mark.parametrize("backend", ["vmap", "sequential"])
def test_progress_counts_model_epochs_and_moves_within_the_first(
    digits, masks, monkeypatch, backend: str
) -> None:
    monkeypatch.setattr(ensemble_module, "_PROGRESS_INTERVAL", 0.0)  # every step is shown
    x, y = digits
    recorder = Recorder()
    train_ensemble(
        MLPRecipe(hidden=(8,), epochs=3, batch_size=32),
        x,
        y,
        masks,
        x[:10],
        seeds=[0, 1, 2, 3],
        num_classes=10,
        backend=backend,
        progress=recorder,
    )
    assert recorder.totals == [12]  # 4 models x 3 epochs
    # about 150 records in batches of 32: 5 steps per epoch, each shown as it happens
    per_model_step = 4 if backend == "vmap" else 1
    assert recorder.advances[0] == pytest.approx(per_model_step / 5)
    assert sum(recorder.advances) == pytest.approx(12)
    assert len(recorder.advances) >= 4 * 3 * 5 // per_model_step


def test_format_helpers() -> None:
    assert resources.format_bytes(512) == "512 B"
    assert resources.format_bytes(1536) == "1.5 KB"
    assert resources.format_bytes(2 * 2**30) == "2.0 GB"
    assert resources.format_seconds(12.34) == "12.3 s"
    assert resources.format_seconds(125) == "2 min 5 s"
    assert resources.format_seconds(7260) == "2 h 1 min"


def test_the_terminal_bar_shows_fractions_of_a_model_epoch() -> None:
    import io

    from rich.console import Console

    from unmeasured.progress import RichProgress

    bar = RichProgress(enabled=True)
    bar.console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with bar.task("Training, model-epochs", total=12) as advance:
        advance(0.4)
        advance(0.4)
    assert "0.8/12" in bar.console.file.getvalue()
