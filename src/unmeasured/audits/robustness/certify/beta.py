"""Node bounds for branch and bound, many nodes per pass: β-CROWN (Wang et al. 2021).

A node of the branch and bound (`branch`) fixes the phase of some unstable ReLUs. Its bound on
``logit_label − logit_rival`` comes here from CROWN's back-substitution (`bounds`) with three
changes, all batched over nodes and rivals in one torch pass:

* a fixed neuron is exact: its relaxation is the identity (active) or zero (inactive);
* the split constraints ``z ≥ 0`` (active) and ``z ≤ 0`` (inactive) enter as Lagrange
  multipliers ``β ≥ 0`` on the neuron's pre-activation (``f − β·z`` and ``f + β·z`` are below
  ``f`` wherever the constraint holds, so any ``β ≥ 0`` keeps the bound valid);
* the slope ``α ∈ [0, 1]`` of each free unstable neuron's lower line is optimised (α-CROWN).

``α`` and ``β`` are raised by projected gradient ascent on the bound; every iterate is a valid
bound, so the best one per node and rival is kept, and a child never reports less than its
parent (its domain is a part of the parent's). A child starts from its parent's ``α`` and
``β``. The pre-activation bounds of the layers stay those of the root (CROWN's, tightened by the
linear program where the search built one), clamped at zero for the fixed neurons.

Against the node programs of `branch` (the triangle relaxation solved exactly, one cone or
linear program per node and rival) a node bound here is looser but costs a small share of a
matrix product per node instead of an interior-point solve: on a 876-ReLU CNN at L2 0.25 a cone
program takes about 0.1 s. Written here rather than taken from auto_LiRPA / α,β-CROWN for the
reason given in `bounds` (the package does not install against current torch with its pins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unmeasured.audits.robustness.certify.bounds import ball_in_box
from unmeasured.audits.robustness.certify.network import ReluNetwork

#: gradient steps on ``α`` and ``β`` per batch of nodes, and at the root
STEPS = 5
ROOT_STEPS = 50
#: Adam's step sizes for ``α`` and ``β``
ALPHA_LR = 0.1
BETA_LR = 1.0


@dataclass
class NodeBatch:
    """What `NodeBounder.bound` returns for ``n`` nodes and ``r`` rivals.

    Attributes:
        lower: ``(n, r)`` lower bounds on ``logit_label − logit_rival`` over each node.
        alpha, beta: ``(n, r, u)`` the multipliers reached, for the nodes' children.
        points: ``(n, r, d)`` the minimisers of the last bound over the input set (witness
            candidates).
        scores: ``(n, u)`` per free neuron, what the worst open rival's bound loses to its
            relaxation (the chord's intercept times the coefficient it is taken with, BaBSR);
            ``-inf`` where the neuron is fixed.
    """

    lower: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    points: torch.Tensor
    scores: torch.Tensor


class NodeBounder:
    """The β-CROWN bound of nodes around one record.

    Args:
        network: the ReLU network.
        x: the record, flat.
        radius, norm: the ball.
        low, high: the box around the input set (the input box clipped to the ball's box;
            for L2 the set is the ball inside it).
        hidden: valid ``(low, high)`` bounds ``(width,)`` on each ReLU layer's pre-activations
            over the input set; their unstable neurons (``low < 0 < high``), layer by layer,
            are the ones a node may fix.
        label, rivals: the label and the classes to bound it against.
    """

    def __init__(
        self,
        network: ReluNetwork,
        x: torch.Tensor,
        radius: float,
        norm: str,
        low: torch.Tensor,
        high: torch.Tensor,
        hidden: list[tuple[np.ndarray, np.ndarray]],
        label: int,
        rivals: list[int],
    ) -> None:
        self.network, self.norm, self.radius = network, norm, float(radius)
        self.x, self.low, self.high = x, low, high
        dtype, device = network.dtype, network.device
        self.unstable: list[torch.Tensor] = []
        self.stable_slope: list[torch.Tensor] = []
        self.chord: list[torch.Tensor] = []
        self.intercept: list[torch.Tensor] = []
        self.initial_alpha: list[torch.Tensor] = []
        self.starts = [0]
        for lo_np, hi_np in hidden:
            lo = torch.as_tensor(lo_np, dtype=dtype, device=device)
            hi = torch.as_tensor(hi_np, dtype=dtype, device=device)
            unstable = ((lo < 0) & (hi > 0)).nonzero().flatten()
            self.unstable.append(unstable)
            self.stable_slope.append((lo >= 0).to(lo.dtype))
            l_u, h_u = lo[unstable], hi[unstable]
            chord = h_u / (h_u - l_u)
            self.chord.append(chord)
            self.intercept.append(-chord * l_u)
            self.initial_alpha.append((h_u >= -l_u).to(lo.dtype))  # CROWN's adaptive choice
            self.starts.append(self.starts[-1] + len(unstable))
        self.size = self.starts[-1]
        eye = torch.eye(network.num_classes, dtype=dtype, device=device)
        self.spec = eye[label] - eye[rivals]
        self.rivals = len(rivals)

    def initial(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``α`` (CROWN's choice) and ``β`` (zero) for ``n`` nodes."""
        alpha = torch.cat(self.initial_alpha) if self.size else self.spec.new_zeros(0)
        alpha = alpha.expand(n, self.rivals, -1).clone()
        return alpha, torch.zeros_like(alpha)

    def bound(
        self,
        phases: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        *,
        steps: int = STEPS,
    ) -> NodeBatch:
        """Bound ``n`` nodes: ``phases`` ``(n, u)`` int8 (-1 free, 0 inactive, 1 active) over
        the unstable neurons, starting from ``alpha`` and ``beta`` ``(n, r, u)``."""
        alpha = alpha.detach().clone().requires_grad_()
        beta = (beta.detach() * (phases >= 0)[:, None, :]).requires_grad_()
        optimiser = torch.optim.Adam(
            [{"params": [alpha], "lr": ALPHA_LR}, {"params": [beta], "lr": BETA_LR}],
            maximize=True,
        )
        best = torch.full(alpha.shape[:2], -torch.inf, dtype=alpha.dtype, device=alpha.device)
        for step in range(steps + 1):
            last = step == steps
            with torch.set_grad_enabled(not last):
                value, coefficients, points = self._pass(phases, alpha, beta, last)
            best = torch.maximum(best, value.detach())
            if last:
                break
            optimiser.zero_grad()
            value.sum().backward()
            for p in (alpha, beta):
                torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)  # type: ignore[arg-type]
            optimiser.step()
            with torch.no_grad():
                alpha.clamp_(0.0, 1.0)
                beta.clamp_(min=0.0)
        worst = best.argmin(dim=1)
        scores = (
            torch.cat([c[torch.arange(len(c)), worst] for c in coefficients], dim=-1)
            if coefficients
            else best.new_zeros(len(best), 0)
        )
        scores = scores.masked_fill(phases >= 0, -torch.inf)
        return NodeBatch(best, alpha.detach(), beta.detach(), points, scores)

    def _pass(
        self, phases: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, keep: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """One back-substitution: the bounds ``(n, r)``, with ``keep`` the per-layer BaBSR
        scores ``(n, r, u_k)`` and the minimisers ``(n, r, d)``."""
        weights, biases = self.network.weights, self.network.biases
        n = len(phases)
        coefficients = (self.spec @ weights[-1]).expand(n, -1, -1)
        constant = (self.spec @ biases[-1]).expand(n, -1)
        scores: list[torch.Tensor] = []
        for k in range(len(self.unstable) - 1, -1, -1):
            start, stop = self.starts[k], self.starts[k + 1]
            phase = phases[:, None, start:stop]
            free, active = phase < 0, (phase == 1).to(coefficients.dtype)
            on = coefficients[..., self.unstable[k]]
            positive, negative = on.clamp_min(0), on.clamp_max(0)
            upper = torch.where(free, self.chord[k], active)
            lower = torch.where(free, alpha[..., start:stop], active)
            intercept = torch.where(free, self.intercept[k], torch.zeros_like(active))
            constant = constant + (negative * intercept).sum(-1)
            if keep:
                scores.insert(0, (-negative * intercept).detach())
            sign = torch.where(free, torch.zeros_like(active), 1.0 - 2.0 * active)
            relaxed = positive * lower + negative * upper + beta[..., start:stop] * sign
            through = (coefficients * self.stable_slope[k]).index_copy(
                -1, self.unstable[k], relaxed
            )
            constant = constant + through @ biases[k]
            coefficients = through @ weights[k]
        value, points = self._over_input(coefficients, keep)
        return constant + value, scores, points

    def _over_input(self, c: torch.Tensor, keep: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The minimum of ``c @ x'`` over the input set ``(n, r)``, and (with ``keep``) where
        it is reached ``(n, r, d)``."""
        x, points = self.x, torch.empty(0)
        if self.norm == "linf":
            value = c.clamp_min(0) @ self.low + c.clamp_max(0) @ self.high
            if keep:
                points = torch.where(c > 0, self.low, self.high)
            return value, points
        centre = c @ x
        flat = c.reshape(-1, c.shape[-1])
        down, up = (self.low - x).expand_as(flat), (self.high - x).expand_as(flat)
        radius = flat.new_full((len(flat),), self.radius)
        inside, t = ball_in_box(flat, down, up, radius)
        if keep:
            delta = torch.minimum(torch.maximum(-flat.detach() * t.detach(), down), up)
            points = (x + delta).reshape(c.shape)
        return centre + inside.reshape(c.shape[:-1]), points
