"""Branch and bound over the unstable ReLUs, for the records whose region search grows too large.

FGP (`fgp`) visits whole activation regions one at a time; around a record with a few dozen
neurons that flip inside the ball the regions number in the tens of thousands, though most of
them lie far from any decision boundary. Here a node is a *set* of regions: some unstable ReLUs
have their phase fixed (active ``a = z ≥ 0`` or inactive ``a = 0 ≥ z``), the others stay relaxed
to their triangle, and one linear program per rival (the triangle relaxation of
`bounds.TriangleProgram`, one HiGHS model whose bounds are changed from node to node) bounds
``logit_label − logit_rival`` from below over every region of the node at once:

* a bound above zero for every rival still open rules the node out (it holds no input that
  changes the label), and the rivals a node rules out stay ruled out in its children;
* the program's minimiser, moved into the input set and run through the network, is checked as
  a witness (``not_robust``);
* otherwise the node splits on the neuron whose triangle the bound leans on hardest (the dual
  value of its chord times the chord's height, the score of BaBSR, Bunel et al. 2020): on the
  three hardest of seven hard L∞ 0.03 points of a 784-50-50-10 MLP this took 23, 97 and 1,351
  nodes where splitting on the largest violation ``a − max(z, 0)`` took 247, 2,301 and more
  than 2,741 (30 s). Nodes are taken lowest bound first.

For L2 the node's program is the same relaxation inside the ball: a second-order cone program
(``|x − x₀| ≤ ε`` beside the rows and bounds of the linear program as they stand), solved by
Clarabel, an interior-point conic solver (the ``certify`` extra; without it FGP does not branch
in L2). Its bound is the lower of the primal and dual objectives less the linear program's
margin. On points of a 784-50-50-10 MLP at L2 0.25 that the region search could not finish in
30 s, it decided four of five in 0.1–3.3 s (1–41 nodes); with 45 unstable neurons a cone
program took over a second and the fifth timed out. Over the box around the ball alone (the
linear program with cutting planes of the ball) the same five points got through 7–17 nodes
in 30 s and none was decided.

In L2, FGP bounds nodes by default with β-CROWN instead (`beta`; ``node_bound="beta"``): 64
parents split per pass and their children bounded in one batched torch computation, a few
milliseconds a node where a cone program of an 876-ReLU CNN takes about 0.1 s, looser per node
(never above the program); a node with every unstable neuron fixed still goes to its program.

With every unstable neuron fixed the program is exact over the region, so the search is
complete up to the solvers' tolerances; a node whose minimiser already follows the network (no
relaxation left to exploit) with a margin of about zero and no witness is a tie on the boundary
and leaves the answer ``unknown``.

Written here: no maintained package runs this search on a torch network without its own pinned
stack (see `bounds` for auto_LiRPA); the relaxation and solver are the ones the rest of the
certifiers use.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unmeasured.audits.robustness.certify.beta import ROOT_STEPS, STEPS, NodeBounder
from unmeasured.audits.robustness.certify.bounds import Bounds, TriangleProgram
from unmeasured.audits.robustness.certify.network import ReluNetwork
from unmeasured.errors import ConfigError, one_of


def cone_solver_available() -> bool:
    """Whether L2 nodes can be bounded (Clarabel, of the ``certify`` extra, is installed)."""
    try:
        import clarabel  # noqa: F401
    except ImportError:
        return False
    return True


#: relaxation a minimiser must exploit for its neuron to be split on
MIN_VIOLATION = 1e-9
#: how nodes are bounded: one program per node and rival, or β-CROWN many nodes per pass
NODE_BOUNDS = ("program", "beta")
#: parents split per pass of the β-CROWN search (twice as many children bounded at once)
BATCH_PARENTS = 64
#: queued nodes that keep their ``α`` and ``β`` for their children (about 20 kB each on an
#: 876-ReLU CNN); children of nodes queued beyond start again from CROWN's slopes
STORED_MULTIPLIERS = 10_000


@dataclass(frozen=True)
class BranchResult:
    """What the branch and bound found: ``verdict`` (``robust``, ``not_robust``, ``unknown`` or
    ``timeout``), the checked ``witness`` of ``not_robust``, and ``nodes`` (linear programs'
    nodes) spent."""

    verdict: str
    witness: torch.Tensor | None
    nodes: int


def branch_certify(
    network: ReluNetwork,
    x: torch.Tensor,
    radius: float,
    norm: str,
    low: torch.Tensor,
    high: torch.Tensor,
    hidden: list[Bounds],
    label: int,
    rivals: list[int],
    witness_of: Callable[[torch.Tensor], torch.Tensor | None],
    *,
    deadline: float,
    max_nodes: int = 100_000,
    program: TriangleProgram | None = None,
    node_bound: str = "program",
) -> BranchResult:
    """Decide the record ``x`` (flat) by branch and bound over its unstable ReLUs.

    Args:
        network: the ReLU network.
        x: the record, flat, in the network's dtype.
        radius, norm: the ball.
        low, high: the box around the input set (the ball's box clipped to the input box).
        hidden: valid bounds of each ReLU layer's pre-activations over the set (CROWN's).
        label: the label to certify; rivals: the classes still to rule out.
        witness_of: returns the first of a batch of points that lies in the input set and is
            labelled otherwise (checked on the network), or None.
        deadline: ``time.perf_counter()`` value at which to stop with ``timeout``.
        max_nodes: stop with ``timeout`` after this many nodes.
        program: the relaxation over ``low``, ``high`` and ``hidden`` where one was already
            built (with its layers tightened, a tighter start), no phase fixed; None builds it.
        node_bound: ``"program"`` bounds each node by its linear (L∞) or cone (L2) program,
            ``"beta"`` by β-CROWN, many nodes per pass (`beta`), with the program only where
            every unstable neuron is fixed (there it is exact).
    """
    if node_bound not in NODE_BOUNDS:
        raise ConfigError(f"node_bound: choose {one_of(NODE_BOUNDS)}, got {node_bound!r}")
    if program is None:
        program = TriangleProgram(network, low, high, hidden)
    if node_bound == "beta":
        return _branch_beta(
            network,
            x,
            radius,
            norm,
            low,
            high,
            label,
            rivals,
            witness_of,
            deadline,
            max_nodes,
            program,
        )
    where = [(k, i) for k, layer in enumerate(program.layers) for i in range(len(layer.neurons))]
    costs = {rival: program.margin(label, rival) for rival in rivals}
    x0 = x.detach().cpu().double().numpy()
    box = (low.cpu().double().numpy(), high.cpu().double().numpy())
    free = np.full(len(where), -1, dtype=np.int8)
    applied = free.copy()
    order = itertools.count()
    heap: list[tuple[float, int, np.ndarray, tuple[int, ...]]] = [
        (-math.inf, next(order), free, tuple(rivals))
    ]
    nodes, tie = 0, False
    while heap:
        if nodes >= max_nodes or time.perf_counter() >= deadline:
            return BranchResult("timeout", None, nodes)
        _, _, phases, open_rivals = heapq.heappop(heap)
        nodes += 1
        for g in np.flatnonzero(applied != phases):
            program.fix(*where[g], int(phases[g]))
        applied = phases
        still: list[int] = []
        worst, at, at_duals = math.inf, None, None
        for rival in open_rivals:
            value, solution, duals = _least(program, costs[rival], norm, x0, radius)
            if value > 0:
                continue
            still.append(rival)
            if solution is None:  # no optimum: nothing to learn from, split blindly
                continue
            point = _into_set(solution[: len(x0)], x0, radius, norm, box)
            witness = witness_of(torch.from_numpy(point).to(x)[None])
            if witness is not None:
                return BranchResult("not_robust", witness, nodes)
            if value < worst:
                worst, at, at_duals = value, solution, duals
        if not still:
            continue
        split = _split_neuron(program, at, at_duals, phases)
        if split is None:  # the minimiser follows the network: a tie on the boundary
            tie = True
            continue
        for phase in (0, 1):
            child = phases.copy()
            child[split] = phase
            heapq.heappush(heap, (worst, next(order), child, tuple(still)))
    return BranchResult("unknown" if tie else "robust", None, nodes)


def _branch_beta(
    network: ReluNetwork,
    x: torch.Tensor,
    radius: float,
    norm: str,
    low: torch.Tensor,
    high: torch.Tensor,
    label: int,
    rivals: list[int],
    witness_of: Callable[[torch.Tensor], torch.Tensor | None],
    deadline: float,
    max_nodes: int,
    program: TriangleProgram,
) -> BranchResult:
    """`branch_certify` with β-CROWN node bounds: each pass splits the ``BATCH_PARENTS`` nodes
    with the lowest bounds on their best-scored neurons and bounds all children at once."""
    bounder = NodeBounder(network, x, radius, norm, low, high, program.hidden, label, rivals)
    where = [(k, i) for k, layer in enumerate(program.layers) for i in range(len(layer.neurons))]
    x0 = x.detach().cpu().double().numpy()
    box = (low.cpu().double().numpy(), high.cpu().double().numpy())
    order = itertools.count()
    heap: list[tuple[float, int, torch.Tensor, torch.Tensor, Any, Any, int]] = []
    phases = torch.full((1, bounder.size), -1, dtype=torch.int8, device=x.device)
    alpha, beta = bounder.initial(1)
    parents = torch.full((1, len(rivals)), -torch.inf, dtype=x.dtype, device=x.device)
    steps, nodes, tie = ROOT_STEPS, 0, False
    while True:
        batch = bounder.bound(phases, alpha, beta, steps=steps)
        nodes += len(phases)
        lower = torch.maximum(batch.lower, parents)
        open_rows = lower <= 0
        witness = witness_of(batch.points[open_rows]) if open_rows.any() else None
        if witness is not None:
            return BranchResult("not_robust", witness, nodes)
        for i in open_rows.any(dim=1).nonzero().flatten().tolist():
            if not (phases[i] < 0).any():  # every neuron fixed: the exact program decides
                found, leaf_tie = _leaf(
                    program,
                    where,
                    phases[i],
                    label,
                    rivals,
                    open_rows[i],
                    norm,
                    x0,
                    radius,
                    box,
                    x,
                    witness_of,
                )
                if found is not None:
                    return BranchResult("not_robust", found, nodes)
                tie |= leaf_tie
                continue
            heapq.heappush(
                heap,
                (
                    float(lower[i][open_rows[i]].min()),
                    next(order),
                    phases[i],
                    lower[i],
                    batch.alpha[i].float() if len(heap) < STORED_MULTIPLIERS else None,
                    batch.beta[i].float() if len(heap) < STORED_MULTIPLIERS else None,
                    int(batch.scores[i].argmax()),
                ),
            )
        if not heap:
            return BranchResult("unknown" if tie else "robust", None, nodes)
        if nodes >= max_nodes or time.perf_counter() >= deadline:
            return BranchResult("timeout", None, nodes)
        taken = [heapq.heappop(heap) for _ in range(min(BATCH_PARENTS, len(heap)))]
        phases = torch.stack([entry[2] for entry in taken]).repeat(2, 1)
        split = torch.tensor([entry[6] for entry in taken], device=x.device).repeat(2)
        phases[torch.arange(len(phases)), split] = (
            torch.arange(2).repeat_interleave(len(taken)).to(phases)
        )
        parents = torch.stack([entry[3] for entry in taken]).repeat(2, 1)
        start_alpha, start_beta = bounder.initial(1)
        alpha = torch.stack([start_alpha[0] if e[4] is None else e[4] for e in taken])
        beta = torch.stack([start_beta[0] if e[5] is None else e[5] for e in taken])
        alpha, beta = alpha.to(x.dtype).repeat(2, 1, 1), beta.to(x.dtype).repeat(2, 1, 1)
        steps = STEPS


def _leaf(
    program: TriangleProgram,
    where: list[tuple[int, int]],
    phases: torch.Tensor,
    label: int,
    rivals: list[int],
    open_rows: torch.Tensor,
    norm: str,
    x0: np.ndarray,
    radius: float,
    box: tuple[np.ndarray, ...],
    x: torch.Tensor,
    witness_of: Callable[[torch.Tensor], torch.Tensor | None],
) -> tuple[torch.Tensor | None, bool]:
    """A node with every unstable neuron fixed, decided by its program (exact over the
    region): a witness, or None and whether the region ends in a tie on the boundary."""
    for g, phase in enumerate(phases.tolist()):
        program.fix(*where[g], int(phase))
    tie = False
    for r in open_rows.nonzero().flatten().tolist():
        value, solution, _ = _least(program, program.margin(label, rivals[r]), norm, x0, radius)
        if value > 0:
            continue
        if solution is None:
            tie = True  # no optimum: nothing decided
            continue
        point = _into_set(solution[: len(x0)], x0, radius, norm, box)
        witness = witness_of(torch.from_numpy(point).to(x)[None])
        if witness is not None:
            return witness, False
        tie = True
    for g in range(len(phases)):
        program.fix(*where[g], -1)
    return None, tie


def _least(
    program: TriangleProgram,
    margin: tuple[np.ndarray, float],
    norm: str,
    x0: np.ndarray,
    radius: float,
) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """The node's lower bound on a margin, with the minimiser and the rows' dual values (None
    where the bound rules the node out or there is no optimum): the linear program for L∞, the
    second-order cone program of the same relaxation inside the ball for L2."""
    if norm == "l2":
        return _least_in_ball(program, margin, x0, radius)
    value = program.least(*margin)
    if value > 0 or value == -math.inf:
        return value, None, None
    return value, program.solution(), np.asarray(program.highs.getSolution().row_dual)


def _least_in_ball(
    program: TriangleProgram, margin: tuple[np.ndarray, float], x0: np.ndarray, radius: float
) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """`_least` for L2: the program's rows and bounds (as they stand, phases fixed) plus the
    cone ``|x − x₀| ≤ ε``, solved by Clarabel (interior point). The bound is the lower of the
    primal and dual objectives, less the same margin as the linear program's."""
    import clarabel
    from scipy import sparse

    rows, low, high, col_low, col_high = program.rows_and_bounds()
    columns, inputs = rows.shape[1], len(x0)
    upper, lower = np.isfinite(high), np.isfinite(low)
    eye = sparse.identity(columns, format="csr")
    linear = sparse.vstack([rows[upper], -rows[lower], eye, -eye])
    cone = sparse.hstack([-sparse.identity(inputs), sparse.csr_matrix((inputs, columns - inputs))])
    constraints = sparse.vstack([linear, sparse.csr_matrix((1, columns)), cone]).tocsc()
    rhs = np.concatenate([high[upper], -low[lower], col_high, -col_low, [radius], -x0])
    cost, offset = margin
    full = np.zeros(columns)
    full[: len(cost)] = cost
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solution = clarabel.DefaultSolver(
        sparse.csc_matrix((columns, columns)),
        full,
        constraints,
        rhs,
        [clarabel.NonnegativeConeT(linear.shape[0]), clarabel.SecondOrderConeT(inputs + 1)],
        settings,
    ).solve()
    if solution.status == clarabel.SolverStatus.PrimalInfeasible:  # fixed phases contradict
        return math.inf, None, None
    if solution.status != clarabel.SolverStatus.Solved:
        return -math.inf, None, None
    value = min(solution.obj_val, solution.obj_val_dual) + offset - program.tolerance(full, offset)
    if value > 0:
        return value, None, None
    z = np.asarray(solution.z)
    duals = np.zeros(len(high))
    duals[upper] += z[: int(upper.sum())]
    duals[lower] -= z[int(upper.sum()) : int(upper.sum()) + int(lower.sum())]
    return value, np.asarray(solution.x), duals


def _into_set(
    point: np.ndarray, x0: np.ndarray, radius: float, norm: str, box: tuple[np.ndarray, ...]
) -> np.ndarray:
    """``point`` moved into the input set: pulled into the L2 ball along the ray from ``x0``,
    then clipped to the box (which contains ``x0``, so clipping never leaves the ball)."""
    if norm == "l2":
        distance = float(np.linalg.norm(point - x0))
        if distance > radius:
            point = x0 + (point - x0) * (radius / distance)
    return np.clip(point, box[0], box[1])


def _split_neuron(
    program: TriangleProgram,
    solution: np.ndarray | None,
    duals: np.ndarray | None,
    phases: np.ndarray,
) -> int | None:
    """The free neuron to split: the one whose chord the minimiser leans on hardest (the chord
    row's dual value times the chord's height ``u·(−l)/(u − l)`` over ``z = 0``, an estimate of
    what the bound gains once the triangle is gone, as in BaBSR), else the one whose relaxation
    it exploits most (``a − max(z, 0)``). Any free neuron when there is no minimiser; None when
    the minimiser exploits no free neuron's relaxation."""
    free = phases < 0
    if not free.any():
        return None
    if solution is None or duals is None:
        return int(np.flatnonzero(free)[0])
    gaps, scores = [], []
    for layer in program.layers:
        count = len(layer.neurons)
        z = layer.expression @ solution[: layer.column] + layer.constant
        a = solution[layer.column : layer.column + count]
        gaps.append(a - np.maximum(z, 0.0))
        chord = duals[layer.row + count : layer.row + 2 * count]
        scores.append(np.abs(chord) * layer.high * -layer.low / (layer.high - layer.low))
    gap = np.where(free, np.concatenate(gaps), -math.inf)
    if not (gap > MIN_VIOLATION).any():
        return None
    score = np.where(free, np.concatenate(scores), -math.inf)
    return int(np.argmax(score)) if score.max() > 0 else int(np.argmax(gap))
