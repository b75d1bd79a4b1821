"""Bound propagation: guaranteed lower and upper bounds on a `ReluNetwork`'s pre-activations and
logits over every input in the epsilon ball around a record (intersected with the input box).

Two methods, both batched over records:

* ``"ibp"`` — interval bound propagation (Gowal et al. 2018): boxes pushed through each layer.
  Cheap and loose.
* ``"crown"`` — CROWN (Zhang et al. 2018): each ReLU is relaxed between two lines, and the
  bound of a linear function of a layer is back-substituted through every earlier layer to the
  input, where it is minimised in closed form. The upper line of an unstable ReLU (``l < 0 <
  u``) is the chord ``u/(u-l)·(z-l)``; the lower line is ``z`` when ``u ≥ -l`` and ``0``
  otherwise (the adaptive choice of the paper). Intermediate bounds are CROWN bounds too.

Over an L2 ball the first layer is bounded exactly (``w·x ± ε·||w||₂``); over an L2 ball inside
an input box, the larger of the ball's and the box's lower bound is kept (both are valid, so
is the better one). Everything is a torch computation on the network's device: the bounds are
written here rather than taken from auto_LiRPA because that package does not install against
current torch with its pins (see REFERENCES) and the ReLU networks here need only this much.

A record is certified when the lower bound of ``logit_label - logit_j`` is positive for every
other class ``j``: no input in the set can then change the prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from unmeasured.audits.robustness.certify.network import ReluNetwork
from unmeasured.audits.robustness.norms import check_norm
from unmeasured.errors import ConfigError, one_of

METHODS = ("ibp", "crown")

Bounds = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class BoundCertificate:
    """Per-record result of `bound_certify`.

    Attributes:
        certified: bool ``(n,)``; True means no input in the set changes the prediction.
        margin_lower: ``(n, C)`` lower bounds on ``logit_label - logit_j`` (``+inf`` at the
            label itself).
        labels: ``(n,)`` the labels that were certified.
    """

    certified: torch.Tensor
    margin_lower: torch.Tensor
    labels: torch.Tensor


def input_box(
    x: torch.Tensor,
    eps: float | torch.Tensor,
    bounds: tuple[float, float] | None,
) -> Bounds:
    """The box ``[x - eps, x + eps]`` intersected with the input box: exactly the L∞ ball inside
    the box, and the smallest box containing the L2 ball inside the box."""
    radius = _per_record(eps, x)
    low, high = x - radius, x + radius
    if bounds is not None:
        low, high = low.clamp_min(float(bounds[0])), high.clamp_max(float(bounds[1]))
    return low, high


def pre_activation_bounds(
    network: ReluNetwork,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None = None,
    *,
    method: str = "crown",
) -> list[Bounds]:
    """Bounds on the input of every ReLU layer and, last, on the logits.

    Args:
        network: the network.
        x: the records ``(n, ...)``.
        eps: the radius, one for all records or one per record ``(n,)``.
        norm: ``"linf"`` or ``"l2"``.
        bounds: the input box ``(low, high)``, or None for an unbounded input.
        method: ``"ibp"`` or ``"crown"``.

    Returns:
        One ``(lower, upper)`` pair of ``(n, width)`` tensors per layer.

    Raises:
        ConfigError: an unknown norm or method, or a negative radius.
    """
    check_norm(norm)
    if method not in METHODS:
        raise ConfigError(f"method: unknown bound method {method!r}; choose {one_of(METHODS)}")
    flat = network.flatten(x)
    radius = _check_eps(eps, flat)
    if method == "ibp":
        return _interval_bounds(network, flat, radius, norm, bounds)
    layers: list[Bounds] = []
    for k, width in enumerate((*network.hidden_sizes, network.num_classes)):
        both = torch.cat([torch.eye(width), -torch.eye(width)]).to(flat)
        lower = _crown_lower(
            network, k, both.expand(len(flat), -1, -1), flat, radius, norm, bounds, layers
        )
        layers.append((lower[:, :width], -lower[:, width:]))
    return layers


def logit_bounds(
    network: ReluNetwork,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None = None,
    *,
    method: str = "crown",
) -> Bounds:
    """Lower and upper bounds ``(n, C)`` on every logit over the input set (arguments as in
    `pre_activation_bounds`)."""
    return pre_activation_bounds(network, x, eps, norm, bounds, method=method)[-1]


def margin_lower_bounds(
    network: ReluNetwork,
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None = None,
    *,
    method: str = "crown",
) -> torch.Tensor:
    """Lower bounds ``(n, C)`` on ``logit_label - logit_j`` over the input set, ``+inf`` at
    ``j = label``. CROWN bounds the differences directly, which is tighter than subtracting
    logit bounds; IBP subtracts (other arguments as in `pre_activation_bounds`)."""
    flat = network.flatten(x)
    labels = labels.to(device=flat.device, dtype=torch.long).reshape(-1)
    classes = network.num_classes
    if method == "ibp":
        lower, upper = logit_bounds(network, flat, eps, norm, bounds, method="ibp")
        margin = lower.gather(1, labels[:, None]) - upper
    else:
        hidden = pre_activation_bounds(network, flat, eps, norm, bounds, method=method)[:-1]
        eye = torch.eye(classes, dtype=flat.dtype, device=flat.device)
        spec = eye[labels][:, None, :] - eye[None, :, :]  # row j: e_label - e_j
        radius = _check_eps(eps, flat)
        margin = _crown_lower(network, len(hidden), spec, flat, radius, norm, bounds, hidden)
    return margin.masked_fill(torch.nn.functional.one_hot(labels, classes).bool(), torch.inf)


def lp_margin_lower_bounds(
    network: ReluNetwork,
    low: torch.Tensor,
    high: torch.Tensor,
    hidden: list[Bounds],
    label: int,
    rivals: list[int],
) -> dict[int, float]:
    """Lower bounds on ``logit_label - logit_j`` for each rival ``j`` over the box ``[low,
    high]`` of one record, from linear programs of the triangle relaxation (one HiGHS model,
    grown layer by layer): every unstable ReLU (``l < 0 < u``) becomes a variable ``a`` with
    ``a ≥ 0``, ``a ≥ z`` and ``a ≤ u(z − l)/(u − l)``; stable ones are exact. Before a layer is
    relaxed, the program over the layers below tightens the bounds of its unstable neurons
    (``hidden``: valid bounds to start from, one ``(1, width)`` pair per ReLU layer, e.g.
    CROWN's), so fewer stay unstable and their triangles shrink. Tighter than CROWN, at the
    price of two solves per unstable neuron past the first layer and one per rival. Every
    figure is the solver's optimum less a margin for its tolerances (``-inf`` where it finds
    none), so the bounds stay valid."""
    import highspy

    weights = [w.detach().cpu().double().numpy() for w in network.weights]
    biases = [b.detach().cpu().double().numpy() for b in network.biases]
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    optimal = highspy.HighsModelStatus.kOptimal
    upper_x = high.cpu().double().numpy()
    lower_x = low.cpu().double().numpy()
    highs.addVars(len(lower_x), lower_x, upper_x)
    magnitude = [np.maximum(np.abs(lower_x), np.abs(upper_x))]

    def least(cost: np.ndarray, offset: float) -> float:
        """The minimum of ``cost·v + offset`` over the program, less a margin."""
        columns = len(cost)
        highs.changeColsCost(columns, np.arange(columns, dtype=np.int32), cost)
        highs.run()
        if highs.getModelStatus() != optimal:
            return -math.inf
        value = highs.getInfo().objective_function_value + offset
        scale = np.abs(cost) @ np.concatenate(magnitude) + abs(offset)
        return float(value - 1e-6 * (scale + 1.0))

    # the pre-activation of the current layer as expression @ variables + constant
    expression, constant = weights[0], biases[0]
    for k, (given_low, given_high) in enumerate(hidden):
        lo = given_low[0].cpu().double().numpy().copy()
        hi = given_high[0].cpu().double().numpy().copy()
        if k > 0:
            for j in np.flatnonzero((lo < 0) & (hi > 0)):
                lo[j] = max(float(lo[j]), least(expression[j], constant[j]))
                hi[j] = min(float(hi[j]), -least(-expression[j], -constant[j]))
        unstable = np.flatnonzero((lo < 0) & (hi > 0))
        active = lo >= 0
        variables, new = expression.shape[1], len(unstable)
        post = np.zeros((len(lo), variables + new))
        post[active, :variables] = expression[active]
        post[unstable, variables + np.arange(new)] = 1.0
        post_constant = np.where(active, constant, 0.0)
        if new:
            highs.addVars(new, np.zeros(new), hi[unstable])
            magnitude.append(hi[unstable])
            z = np.hstack([expression[unstable], np.zeros((new, new))])
            slope = hi[unstable] / (hi[unstable] - lo[unstable])
            unit = np.hstack([np.zeros((new, variables)), np.eye(new)])
            block = np.vstack([unit - z, unit - slope[:, None] * z])  # a − z ≥ c, a − s·z ≤ …
            nonzero = block != 0
            highs.addRows(
                2 * new,
                np.concatenate([constant[unstable], np.full(new, -np.inf)]),
                np.concatenate([np.full(new, np.inf), slope * (constant[unstable] - lo[unstable])]),
                int(nonzero.sum()),
                np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))[:-1]]).astype(np.int32),
                np.nonzero(nonzero)[1].astype(np.int32),
                block[nonzero],
            )
        expression = weights[k + 1] @ post
        constant = weights[k + 1] @ post_constant + biases[k + 1]
    return {
        rival: least(expression[label] - expression[rival], constant[label] - constant[rival])
        for rival in rivals
    }


def bound_certify(
    network: ReluNetwork,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None = None,
    *,
    labels: torch.Tensor | None = None,
    method: str = "crown",
) -> BoundCertificate:
    """Certify each record's label over the ``eps`` ball (inside ``bounds``) by bound
    propagation.

    Args:
        network: the network.
        x: the records ``(n, ...)``.
        eps: the radius, one for all records or one per record ``(n,)``.
        norm: ``"linf"`` or ``"l2"``.
        bounds: the input box, or None.
        labels: the labels to certify; default the network's predictions at ``x``.
        method: ``"ibp"`` or ``"crown"``.

    Returns:
        A `BoundCertificate`. A False entry means "not proven", not "not robust".

    Raises:
        ConfigError: an unknown norm or method, or a negative radius.

    Example:
        >>> from torch import nn
        >>> from unmeasured.audits.robustness.certify.network import to_relu_network
        >>> net = to_relu_network(nn.Sequential(nn.Linear(2, 2)), (2,))
        >>> bound_certify(net, torch.tensor([[1.0, 0.0]]), 0.1, "linf").certified.shape
        torch.Size([1])
    """
    flat = network.flatten(x)
    if labels is None:
        labels = network(flat).argmax(dim=1)
    margin = margin_lower_bounds(network, flat, labels, eps, norm, bounds, method=method)
    return BoundCertificate(
        certified=(margin > 0).all(dim=1), margin_lower=margin, labels=labels.reshape(-1)
    )


def _interval_bounds(
    network: ReluNetwork,
    x: torch.Tensor,
    radius: torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None,
) -> list[Bounds]:
    weight, bias = network.weights[0], network.biases[0]
    spec = torch.cat([weight, -weight]).expand(len(x), -1, -1)
    lower = _input_lower(spec, x, radius, norm, bounds)
    width = weight.shape[0]
    layers = [(lower[:, :width] + bias, -lower[:, width:] + bias)]
    for weight, bias in zip(network.weights[1:], network.biases[1:], strict=True):
        low, high = (b.clamp_min(0) for b in layers[-1])
        center, half = (high + low) / 2, (high - low) / 2
        mid, spread = center @ weight.T + bias, half @ weight.abs().T
        layers.append((mid - spread, mid + spread))
    return layers


def _crown_lower(
    network: ReluNetwork,
    layer: int,
    spec: torch.Tensor,
    x: torch.Tensor,
    radius: torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None,
    hidden: list[Bounds],
) -> torch.Tensor:
    """Lower bounds ``(n, m)`` of ``spec @ z_layer`` (``spec`` is ``(n, m, width)``), given
    bounds on the inputs of the ReLU layers before ``layer``."""
    coefficients = spec @ network.weights[layer]
    constant = spec @ network.biases[layer]
    for k in range(layer - 1, -1, -1):
        upper_slope, upper_intercept, lower_slope = _relu_relaxation(*hidden[k])
        positive, negative = coefficients.clamp_min(0), coefficients.clamp_max(0)
        # a positive coefficient is bounded below through the lower line, a negative one
        # through the upper line
        constant = constant + (negative @ upper_intercept[:, :, None]).squeeze(-1)
        coefficients = positive * lower_slope[:, None, :] + negative * upper_slope[:, None, :]
        constant = constant + coefficients @ network.biases[k]
        coefficients = coefficients @ network.weights[k]
    return constant + _input_lower(coefficients, x, radius, norm, bounds)


def _relu_relaxation(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per neuron: the upper line's slope and intercept and the lower line's slope."""
    unstable = (low < 0) & (high > 0)
    active = low >= 0
    chord = high / (high - low).where(unstable, torch.ones_like(high))
    upper_slope = torch.where(unstable, chord, active.to(low.dtype))
    upper_intercept = torch.where(unstable, -chord * low, torch.zeros_like(low))
    lower_slope = torch.where(unstable, (high >= -low).to(low.dtype), active.to(low.dtype))
    return upper_slope, upper_intercept, lower_slope


def _input_lower(
    coefficients: torch.Tensor,
    x: torch.Tensor,
    radius: torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None,
) -> torch.Tensor:
    """The minimum of ``coefficients @ x'`` ``(n, m)`` over the input set around each ``x``."""
    low, high = input_box(x, radius[:, None], bounds)
    over_box = (
        coefficients.clamp_min(0) @ low[:, :, None] + coefficients.clamp_max(0) @ high[:, :, None]
    ).squeeze(-1)
    if norm == "linf":
        return over_box
    over_ball = (coefficients @ x[:, :, None]).squeeze(-1) - radius[:, None] * coefficients.norm(
        dim=-1
    )
    return torch.maximum(over_ball, over_box)


def _check_eps(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    radius = _per_record(eps, x).reshape(-1)
    if (radius < 0).any() or not torch.isfinite(radius).all():
        raise ConfigError("eps: must be finite and non-negative")
    return radius.expand(len(x)) if radius.numel() == 1 else radius


def _per_record(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    radius = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if radius.dim() == 1 and x.dim() > 1:
        return radius.reshape(-1, *([1] * (x.dim() - 1)))
    return radius
