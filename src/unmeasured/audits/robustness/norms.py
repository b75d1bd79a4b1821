"""Perturbation geometry shared by every evasion attack and certifier: per-record norms, their
duals, projection onto an epsilon ball and clipping into the input box.

Everything works on batches (the first axis indexes records) of any shape, on the tensors'
own device, and supports the two norms the robustness family speaks: ``"linf"`` and ``"l2"``.
"""

from __future__ import annotations

import torch

from unmeasured.errors import ConfigError, one_of

NORMS = ("linf", "l2")
#: the dual of each norm: the distance from x to a hyperplane {w·z + b = 0} in norm p is
#: |w·x + b| / ||w||_q with q the dual of p
DUAL = {"linf": "l1", "l2": "l2"}


def check_norm(norm: str, *, field: str = "norm") -> str:
    """Return ``norm`` if it is one of `NORMS`.

    Raises:
        ConfigError: naming ``field`` and the allowed values.
    """
    if norm not in NORMS:
        raise ConfigError(f"{field}: unknown norm {norm!r}; choose {one_of(NORMS)}")
    return norm


def lp_norm(v: torch.Tensor, norm: str) -> torch.Tensor:
    """The ``norm`` (``"linf"``, ``"l2"`` or ``"l1"``) of each record of ``v``; shape ``(n,)``.

    Example:
        >>> lp_norm(torch.tensor([[3.0, -4.0]]), "l2")
        tensor([5.])
    """
    flat = v.reshape(len(v), -1)
    if norm == "linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(len(v))
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    if norm == "l1":
        return flat.abs().sum(dim=1)
    raise ConfigError(f"norm: unknown norm {norm!r}; choose {one_of((*NORMS, 'l1'))}")


def project_to_ball(delta: torch.Tensor, eps: float | torch.Tensor, norm: str) -> torch.Tensor:
    """The closest point to each record's ``delta`` inside the ``norm`` ball of radius ``eps``
    (a float, or one radius per record).

    Example:
        >>> project_to_ball(torch.tensor([[3.0, 4.0]]), 1.0, "l2")
        tensor([[0.6000, 0.8000]])
    """
    eps_t = torch.as_tensor(eps, dtype=delta.dtype, device=delta.device)
    per_record = eps_t.reshape(-1, *([1] * (delta.dim() - 1))) if eps_t.dim() else eps_t
    if norm == "linf":
        return torch.maximum(torch.minimum(delta, per_record), -per_record)
    if norm == "l2":
        length = lp_norm(delta, "l2").reshape(-1, *([1] * (delta.dim() - 1)))
        scale = torch.clamp(per_record / length.clamp_min(1e-12), max=1.0)
        return delta * scale
    raise ConfigError(f"norm: unknown norm {norm!r}; choose {one_of(NORMS)}")


def clip_to_box(x: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    """``x`` clipped into the input box ``bounds = (low, high)`` (unchanged if None)."""
    if bounds is None:
        return x
    return x.clamp(min=float(bounds[0]), max=float(bounds[1]))


def inside(
    x_adv: torch.Tensor,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None,
    *,
    tolerance: float = 1e-5,
) -> torch.Tensor:
    """Which records of ``x_adv`` lie inside the ``eps`` ball around ``x`` and inside the box
    (up to ``tolerance``, for float rounding); bool ``(n,)``."""
    ok = (
        lp_norm(x_adv - x, norm) <= torch.as_tensor(eps, dtype=x.dtype, device=x.device) + tolerance
    )
    if bounds is not None:
        flat = x_adv.reshape(len(x_adv), -1)
        in_box = (flat >= bounds[0] - tolerance) & (flat <= bounds[1] + tolerance)
        ok &= in_box.all(dim=1)
    return ok
