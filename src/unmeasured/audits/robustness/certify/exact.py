"""An exact robustness checker for small ReLU networks: a mixed-integer program per rival class.

Every unstable ReLU ``a = max(z, 0)`` with pre-bounds ``l < 0 < u`` gets a binary ``s`` and the
big-M encoding ``a ≥ z, a ≥ 0, a ≤ u·s, a ≤ z − l·(1 − s)``; stable ReLUs are fixed as ``a = z``
or ``a = 0``. The pre-bounds come from CROWN (`bounds.pre_activation_bounds`), which keeps the
big-M constants small. For each rival class ``j`` the program maximises ``logit_j −
logit_label`` over the input set; a positive optimum is a counterexample, a non-positive upper
bound a proof. Rivals that CROWN already rules out are skipped; the others are tried from the
most to the least dangerous by their CROWN bound.

* L∞ (the ball inside the box is a box): a MILP solved by HiGHS through
  `scipy.optimize.milp`.
* L2: the same constraints plus ``||x' − x||₂² ≤ ε²``, a mixed-integer quadratically constrained
  program solved by SCIP through ``pyscipopt`` (the ``certify`` extra).

Solvers work to tolerances (about 1e-7 here), so an optimum within `TOLERANCE` of zero whose
witness does not change the label on the network is reported ``unknown`` rather than guessed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, sparse

from unmeasured.audits.robustness.certify.bounds import (
    input_box,
    margin_lower_bounds,
    pre_activation_bounds,
)
from unmeasured.audits.robustness.certify.certificate import WITNESS_TOLERANCE, PointCertificate
from unmeasured.audits.robustness.certify.network import ReluNetwork
from unmeasured.audits.robustness.norms import check_norm, inside
from unmeasured.errors import ConfigError, MissingDependencyError

#: a rival whose best logit advantage is provably at most this is ruled out; an advantage in
#: (−TOLERANCE, TOLERANCE] that no witness confirms leaves the record ``unknown``
TOLERANCE = 1e-6


def scip_available() -> bool:
    """Whether the L2 checker can run (``pyscipopt`` is installed)."""
    try:
        import pyscipopt  # noqa: F401
    except ImportError:
        return False
    return True


def exact_certify(
    network: ReluNetwork,
    x: torch.Tensor,
    eps: float,
    norm: str,
    bounds: tuple[float, float] | None = None,
    *,
    label: int | None = None,
    timeout: float = 60.0,
    screen: bool = True,
) -> PointCertificate:
    """Decide exactly whether every input within ``eps`` of ``x`` (inside ``bounds``) keeps the
    label.

    Args:
        network: the ReLU network.
        x: one record, flat or in the network's input shape.
        eps: the radius, > 0.
        norm: ``"linf"`` (MILP, HiGHS) or ``"l2"`` (MIQCP, SCIP).
        bounds: the input box ``(low, high)`` or None.
        label: the label to certify; default the network's prediction at ``x``.
        timeout: seconds for the whole record, shared by its rival classes.
        screen: skip the rivals that CROWN already rules out (False solves one program per
            rival, as a plain MIP verifier does).

    Returns:
        A `PointCertificate`: ``robust``, ``not_robust`` (witness checked on the network: inside
        the ball and the box, labelled otherwise), ``timeout``, or ``unknown`` when the solver's
        optimum is within `TOLERANCE` of a tie and no witness confirms it. ``regions`` counts
        the solver calls.

    Raises:
        ConfigError: a bad norm, radius or timeout.
        MissingDependencyError: ``norm="l2"`` without ``pyscipopt``.
    """
    started = time.perf_counter()
    check_norm(norm)
    if not (np.isfinite(eps) and eps > 0) or not timeout > 0:
        raise ConfigError(f"eps and timeout: must be finite and > 0, got {eps} and {timeout}")
    if norm == "l2" and not scip_available():
        raise MissingDependencyError(
            "norm: the exact L2 checker needs pyscipopt; pip install 'unmeasured[certify]'"
        )
    flat = network.flatten(x.reshape(1, -1))
    if label is None:
        label = int(network(flat)[0].argmax())
    labels = torch.tensor([label], device=flat.device)
    margins = margin_lower_bounds(network, flat, labels, eps, norm, bounds)[0]
    rivals = [
        j for j in margins.argsort().tolist() if j != label and (margins[j] <= 0 or not screen)
    ]
    encoding = _encode(network, flat, eps, norm, bounds)
    calls = 0
    undecided = False

    def answer(verdict: str, witness: torch.Tensor | None = None) -> PointCertificate:
        return PointCertificate(
            verdict=verdict,
            label=label,
            witness=None if witness is None else witness.reshape(x.shape),
            regions=calls,
            seconds=time.perf_counter() - started,
        )

    solve = _solve_highs if norm == "linf" else _solve_scip
    for rival in rivals:
        remaining = timeout - (time.perf_counter() - started)
        if remaining <= 0:
            return answer("timeout")
        calls += 1
        upper, point, finished = solve(encoding, label, rival, remaining)
        if point is not None:
            witness = _confirmed(network, flat[0], point, label, eps, norm, bounds)
            if witness is not None:
                return answer("not_robust", witness)
        if upper is None or upper > TOLERANCE:
            if not finished:
                return answer("timeout")
            undecided = True  # an optimum above zero that no witness confirms
        elif upper > -TOLERANCE:
            undecided = True
    return answer("unknown" if undecided else "robust")


@dataclass(frozen=True)
class _Encoding:
    """The mixed-integer program over ``v = [x', a_1, ..., a_{K-1}]`` (inputs and post-activation
    values) plus one binary per unstable ReLU: ``row_low ≤ rows·v ≤ row_high``, ``low ≤ v ≤
    high``, integrality flags, and the last layer so that any logit difference can be the
    objective."""

    rows: sparse.csr_array
    row_low: np.ndarray
    row_high: np.ndarray
    low: np.ndarray
    high: np.ndarray
    integral: np.ndarray
    last_start: int  # where the last hidden layer's values begin in v
    last_weight: np.ndarray
    last_bias: np.ndarray
    center: np.ndarray
    eps: float
    input_size: int


def _encode(
    network: ReluNetwork,
    x: torch.Tensor,
    eps: float,
    norm: str,
    bounds: tuple[float, float] | None,
) -> _Encoding:
    hidden = pre_activation_bounds(network, x, eps, norm, bounds)[:-1]
    box_low, box_high = (t[0].cpu().numpy() for t in input_box(x, eps, bounds))
    d = network.in_features
    widths = network.hidden_sizes
    value_count = d + sum(widths)
    unstable_per_layer = [((lo[0] < 0) & (hi[0] > 0)).cpu().numpy() for lo, hi in hidden]
    binary_count = int(sum(u.sum() for u in unstable_per_layer))
    total = value_count + binary_count
    low = np.concatenate([box_low, np.zeros(sum(widths)), np.zeros(binary_count)])
    high = np.concatenate([box_high, np.zeros(sum(widths)), np.ones(binary_count)])
    integral = np.concatenate([np.zeros(value_count), np.ones(binary_count)])
    # the constraint matrix as (row, column, value) triplets
    row_index: list[np.ndarray] = []
    column_index: list[np.ndarray] = []
    values: list[np.ndarray] = []
    row_low: list[float] = []
    row_high: list[float] = []

    def add_row(columns: np.ndarray, coefficients: np.ndarray, lo: float, hi: float) -> None:
        row_index.append(np.full(len(columns), len(row_low)))
        column_index.append(columns)
        values.append(coefficients)
        row_low.append(lo)
        row_high.append(hi)

    previous_start, start, binary = 0, d, value_count
    for k, (lo_t, hi_t) in enumerate(hidden):
        lo, hi = lo_t[0].cpu().numpy(), hi_t[0].cpu().numpy()
        weight = network.weights[k].cpu().numpy()
        bias = network.biases[k].cpu().numpy()
        width, previous_width = weight.shape
        high[start : start + width] = np.maximum(hi, 0)
        previous = np.arange(previous_start, previous_start + previous_width)
        for i in range(width):
            if hi[i] <= 0:
                continue  # always off: a = 0 through its bounds
            # a − W·a_prev, shared by the active equality and the unstable a ≥ z
            columns = np.concatenate([[start + i], previous])
            coefficients = np.concatenate([[1.0], -weight[i]])
            if lo[i] >= 0:
                add_row(columns, coefficients, bias[i], bias[i])
                continue
            add_row(columns, coefficients, bias[i], np.inf)  # a ≥ z
            add_row(  # a ≤ z − l·(1 − s)
                np.append(columns, binary),
                np.append(coefficients, -lo[i]),
                -np.inf,
                bias[i] - lo[i],
            )
            add_row(np.array([start + i, binary]), np.array([1.0, -hi[i]]), -np.inf, 0.0)  # a ≤ u·s
            binary += 1
        previous_start, start = start, start + width
    rows = sparse.csr_array(
        (
            np.concatenate(values) if values else np.zeros(0),
            (
                np.concatenate(row_index) if values else np.zeros(0, int),
                np.concatenate(column_index) if values else np.zeros(0, int),
            ),
        ),
        shape=(len(row_low), total),
    )
    return _Encoding(
        rows=rows,
        row_low=np.asarray(row_low, dtype=float),
        row_high=np.asarray(row_high, dtype=float),
        low=low,
        high=high,
        integral=integral,
        last_start=previous_start,
        last_weight=network.weights[-1].cpu().numpy(),
        last_bias=network.biases[-1].cpu().numpy(),
        center=x[0].cpu().numpy(),
        eps=float(eps),
        input_size=d,
    )


def _objective(encoding: _Encoding, label: int, rival: int) -> tuple[np.ndarray, float]:
    """``logit_rival − logit_label`` as coefficients on ``v`` and a constant."""
    coefficients = np.zeros(len(encoding.low))
    width = encoding.last_weight.shape[1]
    difference = encoding.last_weight[rival] - encoding.last_weight[label]
    coefficients[encoding.last_start : encoding.last_start + width] = difference
    return coefficients, float(encoding.last_bias[rival] - encoding.last_bias[label])


def _solve_highs(
    encoding: _Encoding, label: int, rival: int, seconds: float
) -> tuple[float | None, np.ndarray | None, bool]:
    """Maximise the rival's advantage with HiGHS: (upper bound or None, best input or None,
    whether the solve finished)."""
    coefficients, constant = _objective(encoding, label, rival)
    constraints = (
        [optimize.LinearConstraint(encoding.rows, encoding.row_low, encoding.row_high)]
        if encoding.rows.shape[0]
        else []
    )
    result = optimize.milp(
        -coefficients,
        constraints=constraints,
        integrality=encoding.integral,
        bounds=optimize.Bounds(encoding.low, encoding.high),
        options={"time_limit": seconds, "disp": False},
    )
    point = None if result.x is None else result.x[: encoding.input_size]
    dual = getattr(result, "mip_dual_bound", None)
    if result.status == 0:
        upper = -float(result.fun) + constant
        # a proven optimum: its dual bound may be looser by the gap, the value is the bound
        if dual is not None and np.isfinite(dual):
            upper = max(upper, -float(dual) + constant)
        return upper, point, True
    if dual is not None and np.isfinite(dual):
        return -float(dual) + constant, point, False
    return None, point, False


def _solve_scip(
    encoding: _Encoding, label: int, rival: int, seconds: float
) -> tuple[float | None, np.ndarray | None, bool]:
    """Maximise the rival's advantage with SCIP under the L2 constraint."""
    import pyscipopt

    model = pyscipopt.Model()
    model.hideOutput()
    model.setParam("limits/time", max(seconds, 0.01))
    variables = [
        model.addVar(lb=lo, ub=hi, vtype="B" if flag else "C")
        for lo, hi, flag in zip(encoding.low, encoding.high, encoding.integral, strict=True)
    ]
    indptr, indices, data = encoding.rows.indptr, encoding.rows.indices, encoding.rows.data
    for r in range(encoding.rows.shape[0]):
        span = slice(indptr[r], indptr[r + 1])
        expression = pyscipopt.quicksum(
            float(c) * variables[i] for i, c in zip(indices[span], data[span], strict=True)
        )
        lo, hi = encoding.row_low[r], encoding.row_high[r]
        if lo == hi:
            model.addCons(expression == float(lo))
        else:
            if np.isfinite(lo):
                model.addCons(expression >= float(lo))
            if np.isfinite(hi):
                model.addCons(expression <= float(hi))
    inputs = variables[: encoding.input_size]
    # the ball over offsets d = v − c (unit coefficients): expanding (v − c)² puts c and c² in
    # the model, and a centre coordinate like 1e-24 made SCIP's LP solver fail
    offsets = []
    n = encoding.input_size
    box = zip(inputs, encoding.center, encoding.low[:n], encoding.high[:n], strict=True)
    for v, c, lo, hi in box:
        d = model.addVar(lb=float(lo) - float(c), ub=float(hi) - float(c))
        model.addCons(v - d == float(c))
        offsets.append(d)
    model.addCons(pyscipopt.quicksum(d * d for d in offsets) <= encoding.eps**2)
    coefficients, constant = _objective(encoding, label, rival)
    model.setObjective(
        pyscipopt.quicksum(float(c) * variables[i] for i, c in enumerate(coefficients) if c),
        sense="maximize",
    )
    model.optimize()
    status = model.getStatus()
    point = None
    if model.getNSols() > 0:
        solution = model.getBestSol()
        point = np.array([model.getSolVal(solution, v) for v in inputs])
    if status == "infeasible":
        return -np.inf, None, True
    upper = model.getDualbound()
    finished = status == "optimal"
    return (float(upper) + constant if np.isfinite(upper) else None), point, finished


def _confirmed(
    network: ReluNetwork,
    x: torch.Tensor,
    point: np.ndarray,
    label: int,
    eps: float,
    norm: str,
    bounds: tuple[float, float] | None,
) -> torch.Tensor | None:
    """The solver's input as a witness if, once nudged into the ball and the box (solvers
    violate constraints by their tolerance), the network labels it otherwise."""
    candidate = torch.as_tensor(point, dtype=x.dtype, device=x.device)
    low, high = input_box(x, eps, bounds)
    candidate = torch.minimum(torch.maximum(candidate, low), high)
    if norm == "l2":
        length = (candidate - x).norm()
        if length > eps:
            candidate = x + (candidate - x) * (eps / length) * (1 - 1e-12)
    logits = network(candidate[None])[0]
    rival = torch.cat([logits[:label], logits[label + 1 :]]).max()
    ok = (
        rival > logits[label]
        and inside(candidate[None], x[None], eps, norm, bounds, tolerance=WITNESS_TOLERANCE)[0]
    )
    return candidate if ok else None
