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
from typing import Any

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
    high]`` of one record, from the linear program of the triangle relaxation with each layer's
    unstable neurons tightened first (`TriangleProgram` with ``tighten=True``). Tighter than
    CROWN, at the price of two solves per unstable neuron past the first layer and one per
    rival. ``-inf`` where the solver finds no optimum; every figure stays a valid bound."""
    program = TriangleProgram(network, low, high, hidden, tighten=True)
    return {rival: program.least(*program.margin(label, rival)) for rival in rivals}


@dataclass
class _Unstable:
    """The unstable ReLUs of one layer in a `TriangleProgram`: which neurons, their bounds, the
    columns of their relaxed outputs ``a`` and the rows ``a - z ≥ c`` (then ``count`` rows of
    the chords), and their pre-activations ``z = expression @ v + constant`` over the variables
    that precede the layer."""

    neurons: np.ndarray
    low: np.ndarray
    high: np.ndarray
    column: int
    row: int
    expression: np.ndarray
    constant: np.ndarray


class TriangleProgram:
    """The triangle relaxation of a `ReluNetwork` over an input box as one HiGHS model (highspy,
    kept and re-solved): variables are the inputs, then one ``a`` per unstable ReLU (``l < 0 <
    u``) with ``a ≥ 0``, ``a ≥ z`` and ``a ≤ u(z − l)/(u − l)``; stable ReLUs are exact.
    ``hidden`` holds valid bounds to start from, one ``(1, width)`` pair per ReLU layer (e.g.
    CROWN's); with ``tighten`` the program over the layers below first tightens each later
    layer's unstable neurons (two solves each), so fewer stay unstable and their triangles
    shrink. `least` returns the solver's optimum less a margin for its tolerances, so the
    figures stay valid bounds (``inf`` when the program has no point); branch and bound
    (`branch.branch_certify`) fixes neurons' phases in the same model through their bounds
    (`fix`)."""

    def __init__(
        self,
        network: ReluNetwork,
        low: torch.Tensor,
        high: torch.Tensor,
        hidden: list[Bounds],
        *,
        tighten: bool = False,
    ) -> None:
        import highspy

        weights = [w.detach().cpu().double().numpy() for w in network.weights]
        biases = [b.detach().cpu().double().numpy() for b in network.biases]
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self._optimal = highspy.HighsModelStatus.kOptimal
        self._infeasible = highspy.HighsModelStatus.kInfeasible
        lower_x, upper_x = low.cpu().double().numpy(), high.cpu().double().numpy()
        self.inputs = len(lower_x)
        self.highs.addVars(self.inputs, lower_x, upper_x)
        self._magnitude = [np.maximum(np.abs(lower_x), np.abs(upper_x))]
        self.columns, self.rows = self.inputs, 0
        self.layers: list[_Unstable] = []
        #: each ReLU layer's pre-activation bounds as the program uses them (tightened with
        #: ``tighten``), ``(low, high)`` of shape ``(width,)``
        self.hidden: list[tuple[np.ndarray, np.ndarray]] = []
        # the pre-activation of the current layer as expression @ variables + constant
        expression, constant = weights[0], biases[0]
        for k, (given_low, given_high) in enumerate(hidden):
            lo = given_low[0].cpu().double().numpy().copy()
            hi = given_high[0].cpu().double().numpy().copy()
            if tighten and k > 0:
                for j in np.flatnonzero((lo < 0) & (hi > 0)):
                    lo[j] = max(float(lo[j]), self.least(expression[j], constant[j]))
                    hi[j] = min(float(hi[j]), -self.least(-expression[j], -constant[j]))
            self.hidden.append((lo, hi))
            unstable = np.flatnonzero((lo < 0) & (hi > 0))
            active = lo >= 0
            variables, new = self.columns, len(unstable)
            post = np.zeros((len(lo), variables + new))
            post[active, :variables] = expression[active]
            post[unstable, variables + np.arange(new)] = 1.0
            post_constant = np.where(active, constant, 0.0)
            layer = _Unstable(
                unstable,
                lo[unstable],
                hi[unstable],
                variables,
                self.rows,
                expression[unstable],
                constant[unstable],
            )
            self.layers.append(layer)
            if new:
                self._add_triangles(layer)
            expression = weights[k + 1] @ post
            constant = weights[k + 1] @ post_constant + biases[k + 1]
        #: the logits as ``expression @ v + constant`` over every variable
        self.expression, self.constant = expression, constant

    def _add_triangles(self, layer: _Unstable) -> None:
        new, variables = len(layer.neurons), layer.column
        lo, hi, c = layer.low, layer.high, layer.constant
        self.highs.addVars(new, np.zeros(new), hi)
        self._magnitude.append(hi)
        z = np.hstack([layer.expression, np.zeros((new, new))])
        slope = hi / (hi - lo)
        unit = np.hstack([np.zeros((new, variables)), np.eye(new)])
        block = np.vstack([unit - z, unit - slope[:, None] * z])  # a − z ≥ c, a − s·z ≤ …
        nonzero = block != 0
        self.highs.addRows(
            2 * new,
            np.concatenate([c, np.full(new, -np.inf)]),
            np.concatenate([np.full(new, np.inf), slope * (c - lo)]),
            int(nonzero.sum()),
            np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))[:-1]]).astype(np.int32),
            np.nonzero(nonzero)[1].astype(np.int32),
            block[nonzero],
        )
        self.columns += new
        self.rows += 2 * new

    def margin(self, label: int, rival: int) -> tuple[np.ndarray, float]:
        """``logit_label − logit_rival`` as ``(cost, offset)`` over the variables."""
        return (
            self.expression[label] - self.expression[rival],
            float(self.constant[label] - self.constant[rival]),
        )

    def least(self, cost: np.ndarray, offset: float) -> float:
        """The minimum of ``cost·v + offset`` over the program (``cost`` may cover only the
        first variables), less a margin for the solver's tolerances; ``-inf`` without an
        optimum."""
        full = np.zeros(self.columns)
        full[: len(cost)] = cost
        self.highs.changeColsCost(self.columns, np.arange(self.columns, dtype=np.int32), full)
        self.highs.run()
        status = self.highs.getModelStatus()
        if status == self._infeasible:  # no point at all (fixed phases that contradict)
            return math.inf
        if status != self._optimal:
            return -math.inf
        value = self.highs.getInfo().objective_function_value + offset
        return float(value - self.tolerance(full, offset))

    def tolerance(self, cost: np.ndarray, offset: float) -> float:
        """What a solver's optimum of ``cost·v + offset`` (``cost`` over every variable) may be
        off by: 1e-6 of the largest the terms can be over the variables' bounds."""
        return 1e-6 * (float(np.abs(cost) @ np.concatenate(self._magnitude)) + abs(offset) + 1.0)

    def solution(self) -> np.ndarray:
        """The variables at the last optimum."""
        return np.asarray(self.highs.getSolution().col_value)

    def fix(self, layer: int, index: int, phase: int) -> None:
        """Fix unstable neuron ``index`` of ``self.layers[layer]`` to its ``phase``: 1 active
        (``a = z``, so ``z ≥ 0``), 0 inactive (``a = 0``, so ``z ≤ 0``), -1 free again."""
        unstable = self.layers[layer]
        column, row = unstable.column + index, unstable.row + index
        c = float(unstable.constant[index])
        self.highs.changeColBounds(column, 0.0, 0.0 if phase == 0 else float(unstable.high[index]))
        self.highs.changeRowBounds(row, c, c if phase == 1 else math.inf)

    def rows_and_bounds(self) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The program as it stands (phases fixed included): its rows as a SciPy CSR matrix,
        the rows' lower and upper bounds and the variables' lower and upper bounds."""
        import highspy
        from scipy import sparse

        lp = self.highs.getLp()
        matrix = lp.a_matrix_
        parts = (np.asarray(matrix.value_), np.asarray(matrix.index_), np.asarray(matrix.start_))
        shape = (lp.num_row_, lp.num_col_)
        columnwise = matrix.format_ == highspy.MatrixFormat.kColwise
        rows = (sparse.csc_matrix if columnwise else sparse.csr_matrix)(parts, shape=shape)
        return (
            rows.tocsr(),
            np.asarray(lp.row_lower_),
            np.asarray(lp.row_upper_),
            np.asarray(lp.col_lower_),
            np.asarray(lp.col_upper_),
        )


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
    lower = _input_lower(spec, x, radius, norm, bounds, torch.cat([bias, -bias]))
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
    return constant + _input_lower(coefficients, x, radius, norm, bounds, constant)


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
    offset: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """The minimum of ``coefficients @ x'`` ``(n, m)`` over the input set around each ``x``.

    For L2 inside a box the better of the ball's and the box's bounds is tightened to the
    bound over the ball inside the box (`_ball_in_box_lower`) on the rows where the bound plus
    ``offset`` (the rest of the quantity bounded, e.g. CROWN's constant) is still negative: a
    bound already above zero decides nothing more when raised."""
    low, high = input_box(x, radius[:, None], bounds)
    over_box = (
        coefficients.clamp_min(0) @ low[:, :, None] + coefficients.clamp_max(0) @ high[:, :, None]
    ).squeeze(-1)
    if norm == "linf":
        return over_box
    centre = (coefficients @ x[:, :, None]).squeeze(-1)
    best = torch.maximum(centre - radius[:, None] * coefficients.norm(dim=-1), over_box)
    if bounds is None:
        return best
    # where neither the ball nor the box alone proves the bound positive, the ball inside the box
    rows = (best + offset < 0).nonzero(as_tuple=True)
    if not len(rows[0]):
        return best
    best = best.clone()
    down, up = low - x, high - x
    step = max(1, BALL_IN_BOX_ENTRIES // coefficients.shape[-1])  # rows per chunk
    for start in range(0, len(rows[0]), step):
        record, row = rows[0][start : start + step], rows[1][start : start + step]
        inside = _ball_in_box_lower(
            coefficients[record, row], down[record], up[record], radius[record]
        )
        best[record, row] = torch.maximum(best[record, row], centre[record, row] + inside)
    return best


#: entries (rows × inputs) of the coefficients `_ball_in_box_lower` takes at once: its sort and
#: temporaries stay a few hundred MB whatever the batch
BALL_IN_BOX_ENTRIES = 1 << 22


def _ball_in_box_lower(
    c: torch.Tensor, a: torch.Tensor, b: torch.Tensor, radius: torch.Tensor
) -> torch.Tensor:
    """`ball_in_box` without the minimiser."""
    return ball_in_box(c, a, b, radius)[0]


def ball_in_box(
    c: torch.Tensor, a: torch.Tensor, b: torch.Tensor, radius: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A lower bound on ``min c·δ`` over ``|δ|₂ ≤ radius`` and ``a ≤ δ ≤ b`` (``a ≤ 0 ≤ b``),
    one per row of ``c`` ``(R, d)``, tight up to rounding.

    The Lagrangian of the ball, ``c·δ + λ(|δ|² − r²)``, is minimised over the box coordinate by
    coordinate at ``δ(λ) = clip(−c/(2λ), a, b)``, so its value at any ``λ ≥ 0`` is a valid lower
    bound (weak duality). The best ``λ`` makes ``|δ(λ)| = r``; with ``t = 1/(2λ)``, ``|δ|²`` is
    ``t²·Σ c_i²`` over the coordinates not yet at their face plus ``Σ s_i²`` over those that
    are (``s_i`` the face's distance), piecewise quadratic between the times ``s_i/|c_i|`` at which
    coordinates reach their face: sorted once, the piece where it crosses ``r²`` gives ``t``
    in closed form. Where the whole box corner lies in the ball, ``λ = 0`` (the box's bound).

    Returns the bound ``(R,)`` and ``t`` ``(R, 1)``: ``clip(−c·t, a, b)`` is the minimiser.
    Differentiable in ``c`` (almost everywhere), for bounds that optimise the coefficients.
    """
    used = int((c != 0).sum(-1).max()) if c.numel() else 0
    if 0 < used <= c.shape[-1] // 4:  # sparse rows (a convolution's): only their nonzeros
        keep = c.abs().topk(used, dim=-1).indices
        c, a, b = c.gather(-1, keep), a.gather(-1, keep), b.gather(-1, keep)
    face = torch.where(c > 0, -a, b)  # how far each coordinate can move against its sign
    square = c * c
    times = torch.where(c != 0, face / c.abs(), torch.full_like(c, math.inf))
    times, order = times.sort(dim=-1)
    square = square.gather(-1, order)
    face_sq = face.gather(-1, order) ** 2 * (square > 0)
    zero = torch.zeros_like(times[:, :1])
    at_face = torch.cat([zero, face_sq.cumsum(-1)], dim=-1)  # S_k: first k at their face
    moving = square.sum(-1, keepdim=True) - torch.cat([zero, square.cumsum(-1)], dim=-1)
    starts = torch.cat([zero, times], dim=-1)  # the piece k starts at t = starts[k]
    # rounding leaves crumbs where no coordinate is left moving
    moving = torch.where(moving > 1e-12 * moving[:, :1], moving, torch.zeros_like(moving))
    reach = torch.where(moving > 0, starts.clamp_max(torch.finfo(c.dtype).max) ** 2 * moving, 0)
    r2 = (radius * radius)[:, None]
    piece = ((reach + at_face) <= r2).sum(-1, keepdim=True) - 1  # the last piece starting inside
    s_k, c_k = at_face.gather(-1, piece), moving.gather(-1, piece)
    t = torch.where(c_k > 0, ((r2 - s_k).clamp_min(0.0) / c_k.clamp_min(1e-300)).sqrt(), math.inf)
    t = t.clamp_min(torch.finfo(c.dtype).tiny)  # radius 0: λ huge, times |δ|² − r² = 0
    lam = torch.where(torch.isfinite(t), 1 / (2 * t), torch.zeros_like(t))
    t = t.clamp_max(torch.finfo(c.dtype).max)
    delta = torch.minimum(torch.maximum(-c * t, a), b)
    value = (c * delta).sum(-1) + lam[:, 0] * ((delta * delta).sum(-1) - r2[:, 0])
    return value, t


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
