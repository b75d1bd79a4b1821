"""Where torch recipes train: ``"auto"``, ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"mps"``.

``"auto"`` takes a CUDA GPU when torch sees one, else Apple's MPS, else the CPU. The resolved
device *type* is part of every cached model's key: a GPU's float32 reductions round differently
from a CPU's, so a model trained on one is not handed back for the other.
"""

from __future__ import annotations

import re

import torch

from unmeasured.audits.base import Constraint
from unmeasured.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
_CUDA_INDEX = re.compile(r"cuda:\d+")

DEVICE_CONSTRAINT = Constraint(
    lambda v: isinstance(v, str) and (v in DEVICES or _CUDA_INDEX.fullmatch(v) is not None),
    "one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'",
)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str) -> torch.device:
    """The torch device a recipe's ``device`` setting names on this machine.

    Args:
        spec: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns:
        The device (``"auto"``: CUDA, else MPS, else CPU).

    Raises:
        ConfigError: an unknown name, or a GPU this machine does not have.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if not DEVICE_CONSTRAINT.check(spec):
        raise ConfigError(f"recipe.device: must be {DEVICE_CONSTRAINT.description}; got {spec!r}")
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"recipe.device: '{spec}' but torch sees no CUDA GPU on this machine; "
                "choose 'auto' or 'cpu'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"recipe.device: '{spec}' but this machine has {torch.cuda.device_count()} "
                "CUDA device(s)"
            )
    if device.type == "mps" and not _mps_available():
        raise ConfigError(
            "recipe.device: 'mps' but torch sees no Apple GPU on this machine; "
            "choose 'auto' or 'cpu'"
        )
    return device


def gpu_skip_reason() -> str | None:
    """Why GPU cases cannot run here (for ``pytest.mark.skipif``), or None when a GPU exists."""
    if torch.cuda.is_available() or _mps_available():
        return None
    return "no GPU on this machine: torch sees neither CUDA nor MPS"
