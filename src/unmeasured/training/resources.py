"""What a training run will cost before it starts: memory by arithmetic, time from a probe.

The memory estimate counts the arrays the trainer allocates (the output logits of every model,
each stacked chunk's parameters, gradients, optimiser state and activations, the query pass,
and for a process pool one interpreter with torch per worker). It is an estimate, not a bound:
allocator slack and library workspaces come on top. It is compared with the memory this machine
has free (``MemAvailable`` on Linux, the GPU's free memory for a GPU's part) and with an optional
budget, so that a run that cannot fit says so before it allocates.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from unmeasured.errors import ConfigError

#: resident memory of one spawned worker after importing torch and this package (measured on
#: Linux with torch 2.13 CPU: 330-380 MB); a process pool pays it once per worker (a forked
#: worker shares most of those pages with its parent until it writes them, so there the
#: estimate errs high)
PROCESS_BASELINE_BYTES = 350 * 2**20

#: environment variable with a memory budget in MiB, for runs started from the command line
MEMORY_BUDGET_ENV = "UNMEASURED_MEMORY_BUDGET_MB"


@dataclass
class TrainingEstimate:
    """The plan of one `train_ensemble` call, in numbers, before any model trains.

    Attributes:
        models: models to train (cached ones excluded).
        model_epochs: the progress unit: models times epochs.
        backend: the backend that will train.
        device: the device type.
        seconds: the expected wall time (None when no probe could time a step).
        seconds_per_model_step: what the probe measured for the chosen backend.
        memory_bytes: the expected peak of what training allocates in the host's memory.
        output_bytes: of which the returned logits.
        free_bytes: memory free on this machine now (None if unknown).
        budget_bytes: the budget it was checked against (None: no budget).
        device_bytes: the expected peak on a GPU (None on the CPU).
        device_free_bytes: the GPU's free memory now (None on the CPU or where unknown).
        warnings: one sentence per limit the estimate exceeds.
    """

    models: int
    model_epochs: int
    backend: str
    device: str
    seconds: float | None
    seconds_per_model_step: float | None
    memory_bytes: int
    output_bytes: int
    free_bytes: int | None
    budget_bytes: int | None
    device_bytes: int | None = None
    device_free_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary logged before training."""
        when = "time unknown until a model finishes"
        if self.seconds is not None:
            when = f"about {format_seconds(self.seconds)}"
        free = f", {format_bytes(self.free_bytes)} free" if self.free_bytes is not None else ""
        gpu = ""
        if self.device_bytes is not None:
            gpu = f"; {self.device} memory about {format_bytes(self.device_bytes)}"
            if self.device_free_bytes is not None:
                gpu += f", {format_bytes(self.device_free_bytes)} free"
        return (
            f"Estimate: {self.models} models x {self.model_epochs // max(self.models, 1)} epochs "
            f"({self.backend}, {self.device}): {when}; memory about "
            f"{format_bytes(self.memory_bytes)} (outputs {format_bytes(self.output_bytes)})"
            f"{free}{gpu}"
        )


def check_memory(estimate: TrainingEstimate) -> None:
    """Fill ``estimate.warnings`` for every limit its memory exceeds."""
    need = format_bytes(estimate.memory_bytes)
    if estimate.free_bytes is not None and estimate.memory_bytes > estimate.free_bytes:
        estimate.warnings.append(
            f"warning: training needs about {need} but this machine has "
            f"{format_bytes(estimate.free_bytes)} free; train fewer models or query fewer "
            "records per call"
        )
    if estimate.budget_bytes is not None and estimate.memory_bytes > estimate.budget_bytes:
        estimate.warnings.append(
            f"warning: training needs about {need}, more than the memory budget of "
            f"{format_bytes(estimate.budget_bytes)} (memory_budget_mb or ${MEMORY_BUDGET_ENV})"
        )
    if (
        estimate.device_bytes is not None
        and estimate.device_free_bytes is not None
        and estimate.device_bytes > estimate.device_free_bytes
    ):
        estimate.warnings.append(
            f"warning: training needs about {format_bytes(estimate.device_bytes)} of "
            f"{estimate.device} memory but {format_bytes(estimate.device_free_bytes)} is free; "
            "pass a smaller chunk_size"
        )


def budget_bytes(memory_budget_mb: float | None) -> int | None:
    """The budget from the argument, else from ``$UNMEASURED_MEMORY_BUDGET_MB``, else None."""
    if memory_budget_mb is None:
        raw = os.environ.get(MEMORY_BUDGET_ENV)
        if not raw:
            return None
        try:
            memory_budget_mb = float(raw)
        except ValueError:
            raise ConfigError(
                f"{MEMORY_BUDGET_ENV}: must be a number of MiB; got {raw!r}"
            ) from None
    return int(memory_budget_mb * 2**20)


def free_host_bytes() -> int | None:
    """Memory the kernel could give this process now without swapping (None if unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def free_device_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA device (None for other devices)."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.mem_get_info(device)[0])


def activation_floats(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Floats all leaf modules of ``model`` output for one record (what a training step keeps
    for the backward pass, per record) and the widest single output, measured by a forward pass
    with hooks."""
    sizes: list[int] = []

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model.eval()  # batch norm cannot train on one record
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return sum(sizes), max(sizes, default=0)


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KB"`` (binary units, up to GB)."""
    if n < 1024:
        return f"{n:.0f} B"
    exponent = min(3, int(math.log(n, 1024)))
    return f"{n / 1024**exponent:.1f} {'KMG'[exponent - 1]}B"


def format_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
