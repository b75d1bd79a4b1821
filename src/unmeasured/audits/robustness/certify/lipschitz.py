"""Lipschitz margins in the style of GloRo (Leino, Wang, Fredrikson, ICML 2021): a record is
certified when its logit margin beats what any perturbation of size ε could take away.

For classes ``i`` and ``j``, ``f_i − f_j`` is Lipschitz in L2 with constant
``K_ij = ||w_i − w_j||₂ · ∏_k ||W_k||₂`` over the layers before the last (ReLU is 1-Lipschitz).
The record is certified at L2 radius ``ε`` when ``f_y(x) − f_j(x) > K_yj·ε`` for every ``j``, and
its certified radius is ``min_j (f_y − f_j)/K_yj``. With a single global constant ``L`` (the
product of all layers' norms) the test would read ``margin > √2·L·ε``; the per-pair constant is
never larger (``||w_i − w_j|| ≤ √2·||W_K||``) and is what is used here.

Layer norms are the exact largest singular values of the dense layers of the `ReluNetwork`
(`torch.linalg.matrix_norm`), convolutions included since they are dense there. GloRo
estimates them by power iteration, which approaches the norm from below: after finitely many
steps it may understate it, and an understated constant certifies what it should not. Every
layer is accounted for: `to_relu_network` refuses a layer it does not know instead of taking
it as 1-Lipschitz.

L∞ is handled through ``||δ||₂ ≤ √d·||δ||∞``: an L∞ radius ε is certified as the L2 radius
``√d·ε``, which is sound and loose. The input box is ignored (it only shrinks the set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from unmeasured.audits.robustness.certify.network import ReluNetwork
from unmeasured.audits.robustness.norms import check_norm
from unmeasured.errors import ConfigError


@dataclass(frozen=True)
class LipschitzCertificate:
    """Per-record result of `lipschitz_certify`.

    Attributes:
        certified: bool ``(n,)``.
        radius: ``(n,)`` the certified radius in the norm asked for (0 when the margin is not
            positive, i.e. the label is not the network's prediction).
        margins: ``(n, C)`` ``f_label − f_j`` at the record (0 at the label).
        labels: ``(n,)``.
    """

    certified: torch.Tensor
    radius: torch.Tensor
    margins: torch.Tensor
    labels: torch.Tensor


def layer_norms(network: ReluNetwork) -> torch.Tensor:
    """The L2 operator norm (largest singular value) of every layer but the last; ``(K-1,)``."""
    return (
        torch.stack([torch.linalg.matrix_norm(w, ord=2) for w in network.weights[:-1]])
        if len(network.weights) > 1
        else network.weights[0].new_zeros(0)
    )


def pairwise_lipschitz(network: ReluNetwork) -> torch.Tensor:
    """``K`` ``(C, C)``: ``K_ij`` bounds the L2 Lipschitz constant of ``f_i − f_j``."""
    last = network.weights[-1]
    difference = (last[:, None, :] - last[None, :, :]).norm(dim=-1)
    # a hair of slack for the rounding of the singular values and the product
    return difference * layer_norms(network).prod() * (1 + 1e-12)


def lipschitz_certify(
    network: ReluNetwork,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    *,
    labels: torch.Tensor | None = None,
) -> LipschitzCertificate:
    """Certify each record's label over the ``eps`` ball by its Lipschitz margin.

    Args:
        network: the network.
        x: the records ``(n, ...)``.
        eps: the radius, one for all or one per record ``(n,)``.
        norm: ``"l2"``, or ``"linf"`` (through ``||δ||₂ ≤ √d·||δ||∞``).
        labels: the labels to certify; default the network's predictions.

    Returns:
        A `LipschitzCertificate`. A False entry means "not proven", not "not robust".

    Raises:
        ConfigError: an unknown norm or a negative radius.

    Example:
        >>> from torch import nn
        >>> from unmeasured.audits.robustness.certify.network import to_relu_network
        >>> net = to_relu_network(nn.Sequential(nn.Linear(2, 2)), (2,))
        >>> lipschitz_certify(net, torch.zeros(1, 2), 0.1, "l2").certified.shape
        torch.Size([1])
    """
    check_norm(norm)
    flat = network.flatten(x)
    radius = torch.as_tensor(eps, dtype=flat.dtype, device=flat.device).reshape(-1)
    if (radius < 0).any() or not torch.isfinite(radius).all():
        raise ConfigError("eps: must be finite and non-negative")
    logits = network(flat)
    if labels is None:
        labels = logits.argmax(dim=1)
    labels = labels.to(device=flat.device, dtype=torch.long).reshape(-1)
    margins = logits.gather(1, labels[:, None]) - logits
    constants = pairwise_lipschitz(network)[labels]  # (n, C)
    others = torch.ones_like(margins, dtype=torch.bool).scatter(1, labels[:, None], False)
    # a pair whose difference is constant (K = 0) bounds nothing: its margin never changes
    per_class = torch.where(
        constants > 0, margins / constants, torch.where(margins > 0, torch.inf, 0.0)
    )
    l2_radius = per_class.where(others, torch.inf).amin(dim=1).clamp_min(0)
    # ||δ||₂ ≤ √d·||δ||∞: an L2 radius r covers the L∞ radius r/√d
    scale = math.sqrt(network.in_features) if norm == "linf" else 1.0
    certified_radius = l2_radius / scale
    positive = (margins > 0) | ~others
    return LipschitzCertificate(
        certified=(certified_radius > radius) & positive.all(dim=1),
        radius=certified_radius.where(positive.all(dim=1), torch.zeros_like(certified_radius)),
        margins=margins,
        labels=labels,
    )
