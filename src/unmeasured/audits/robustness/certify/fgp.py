"""Fast Geometric Projections (Fromherz, Leino, Fredrikson, Parno, Pasareanu, ICLR 2021): local
robustness of a ReLU network by a search over the linear regions around a record.

Inside one activation region (a fixed on/off pattern of the ReLUs) the network is affine, so
every pre-activation is ``z_i(x) = g_i·x + h_i`` and every logit difference is a hyperplane
too. The search starts from the record's own region and visits regions breadth-first, many per
batched pass:

* a decision boundary (``logit_label = logit_j``) that the input set reaches is projected on,
  with the projection of the norm at hand, inside the input box, and the point is run through
  the real network. A changed label is a witness: ``not_robust``. Otherwise the paper leaves
  the record ``unknown``; here the boundary is settled inside the region, where the margin is
  affine: a rival beats the label in region ∩ box only if the region's sign constraints plus
  ``margin ≤ 0`` have a solution, which a Farkas certificate or a linear program rules out
  (the boundary is then harmless) or finds (its point of least margin, run through the
  network, is the witness). Only a boundary neither settles leaves the record ``unknown``
  (for L2, where the program sees the box around the ball, a point outside the ball); the
  branch and bound below then takes the record over.
* a neuron boundary ``z_i = 0`` that the input set reaches opens the neighbouring region with
  that neuron flipped; a set of visited patterns keeps each region to one visit.
* an empty queue with no open decision boundary proves ``robust``: any input in the set lies
  at the end of a segment from the record that crosses regions only through boundaries the
  search found (the set is convex), so a label change on the way would have shown as a
  reachable decision boundary with a point of the region beyond it.

"Reaches" is decided on the set actually certified, the epsilon ball intersected with the input
box: for L∞ that set is a box and the test is exact; for L2 a hyperplane counts when it is
within ε in L2 and meets the enclosing box. Decision boundaries are projected exactly onto the
part of the hyperplane inside the box (a one-dimensional search over the step, see
`_nearest_points`), so the witness needs no clipping and a boundary reachable only outside the
box does not count. The original implementation projected in L2 even for L∞ and ignored the box.

By default bound propagation (CROWN) prunes the search first: a neuron that is stable over the
whole input set cannot flip on a segment inside it, and a rival class whose margin CROWN bounds
above zero cannot be reached, so neither is searched (``prune=None`` runs the search of the
paper alone). The verdicts stay FGP's; only the work shrinks. When no rival is left there is
no boundary to look for and the record is robust without a region visited (``regions`` 0).

A search that runs long (more than ``lp_after`` regions) also drops the regions that do not
meet the input set: flipping one neuron whose hyperplane crosses the set opens a neighbouring
pattern even where that hyperplane crosses it outside the current region, and such patterns,
which no input in the set has, spawn patterns of their own. A linear program over the input box
(HiGHS through highspy) with the sign constraint of every searchable neuron decides
whether a pattern's region meets the box (a constraint no point of the box meets rules the
region out without it, and one every point meets is left out of it; one HiGHS model per search
whose rows are swapped, see `_BoxProgram`); one that does not holds no input of the set, so it can
hold no counterexample and no segment from the record passes through it. For L2 the test is the
distance from the record to the region's polyhedron first: any multipliers ``λ ≥ 0`` of its
constraints ``A·x ≤ b`` give the lower bound ``λ·(A·x₀ − b) − |Aᵀλ|²/4`` on the squared
distance (weak duality), so multipliers found by L-BFGS-B that push the bound above ε² prove the
region misses the ball, whatever the optimiser's accuracy (the bound is evaluated, not trusted);
a region it keeps still faces the linear program over the box enclosing the ball. Both tests cost about a millisecond, far more than a region's affine forms, which is why short
searches do without them.

A search that still runs after ``branch_after`` regions or ``branch_share`` of its time is
attacked (APGD) for a witness, then goes on as branch and bound over the unstable ReLUs
(`branch`): one linear program of the triangle relaxation bounds the margin over
a whole set of regions at once (those that share the phases fixed so far), so the tens of
thousands of regions around a record with a few dozen unstable neurons come down to tens or
hundreds of programs (for L2, cone programs inside the ball). Its verdicts are as sound and its
witnesses are checked the same way; the certificate counts its ``nodes`` beside the
``regions``. ``branch_after=None`` keeps the region search to the end.

`fgp_radius` pops regions by distance instead (a Dijkstra-like order over regions) and returns a
certified lower bound on the distance to the nearest input with another label.

The search is written here (no maintained package implements it for torch); it is exact in
float64 up to the tolerance of the reachability tests, which err towards "reachable".
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque

import numpy as np
import torch

from unmeasured.audits.robustness.attacks import apgd
from unmeasured.audits.robustness.certify.bounds import (
    TriangleProgram,
    input_box,
    margin_lower_bounds,
    pre_activation_bounds,
)
from unmeasured.audits.robustness.certify.branch import (
    NODE_BOUNDS,
    branch_certify,
    cone_solver_available,
)
from unmeasured.audits.robustness.certify.certificate import WITNESS_TOLERANCE, PointCertificate
from unmeasured.audits.robustness.certify.network import ReluNetwork
from unmeasured.audits.robustness.norms import DUAL, check_norm, inside, lp_norm
from unmeasured.errors import ConfigError, one_of

#: a projected point is pushed this fraction past its boundary so that the label really changes
OVERSHOOT = 1e-4
#: entries of the per-batch hyperplane tensors (regions × neurons × inputs) kept in memory at once
BATCH_ENTRIES = 8_000_000
#: batched supergradient steps of the region test's Farkas screen before a solver is asked
FARKAS_ITERATIONS = 30
#: slack of the region test's constraints, relative to their size: rounding never drops a region
LP_SLACK = 1e-7
#: share of the time budget after which a region search hands over to branch and bound
BRANCH_SHARE = 0.1
#: APGD's steps and runs when a search hands over to branch and bound
ATTACK_STEPS = 100
ATTACK_RESTARTS = 3
#: how branch and bound bounds its nodes by default, per norm (`branch.NODE_BOUNDS`)
NODE_BOUND = {"linf": "program", "l2": "beta"}


def fgp_certify(
    network: ReluNetwork,
    x: torch.Tensor,
    eps: float,
    norm: str,
    bounds: tuple[float, float] | None = None,
    *,
    label: int | None = None,
    max_regions: int = 10_000,
    timeout: float = 60.0,
    batch_size: int = 64,
    prune: str | None = "crown",
    lp_after: int | None = 200,
    branch_after: int | None = 500,
    branch_share: float = BRANCH_SHARE,
    node_bound: str | None = None,
) -> PointCertificate:
    """Decide whether every input within ``eps`` of ``x`` (and inside ``bounds``) keeps the label.

    Args:
        network: the ReLU network.
        x: one record, flat or in the network's input shape (a leading axis of 1 is allowed).
        eps: the radius of the ball, > 0.
        norm: ``"linf"`` or ``"l2"``.
        bounds: the input box ``(low, high)``; ``x`` must lie inside it. None for no box.
        label: the label to certify; default the network's prediction at ``x``.
        max_regions: stop with ``timeout`` after visiting this many regions.
        timeout: stop with ``timeout`` after this many seconds.
        batch_size: regions whose affine forms are computed in one pass (fewer when they
            would not fit in `BATCH_ENTRIES`).
        prune: ``"crown"`` (default) or ``"ibp"`` to skip the neurons that bound propagation
            proves stable over the input set and the rivals it rules out, or None for the
            search of the paper alone.
        lp_after: once this many regions were visited, drop each further region that a linear
            program finds outside the input box (see the module's docstring); None never.
        branch_after: once this many regions were visited, hand the rest of the budget to
            branch and bound over the unstable ReLUs (`branch.branch_certify`; needs ``prune``,
            and for L2 the cone solver of the ``certify`` extra); also a search that ends with
            a boundary it could not settle (L2). None never.
        branch_share: hand over as well once this share of ``timeout`` has passed, whatever the
            regions (a region of a convolutional network costs tens of milliseconds). Before
            branch and bound, an attack (`ATTACK_STEPS` steps of APGD, `ATTACK_RESTARTS` runs)
            looks for a witness.
        node_bound: how branch and bound bounds its nodes (`branch.NODE_BOUNDS`): ``"beta"``
            (β-CROWN, many nodes per pass) or ``"program"`` (a linear or cone program per node);
            None: `NODE_BOUND` of the norm.

    Returns:
        A `PointCertificate` (``radius`` None). ``not_robust`` comes with a witness checked on
        the network: inside the ball, inside the box, labelled otherwise.

    Raises:
        ConfigError: a bad norm, radius or limit, or ``x`` outside the box.

    Example:
        >>> from torch import nn
        >>> from unmeasured.audits.robustness.certify.network import to_relu_network
        >>> net = to_relu_network(nn.Sequential(nn.Linear(2, 2)), (2,))
        >>> fgp_certify(net, torch.tensor([1.0, 0.0]), 0.1, "l2").verdict in ("robust", "not_robust")
        True
    """
    if not 0 <= branch_share <= 1:
        raise ConfigError(f"branch_share: must be in [0, 1], got {branch_share}")
    if node_bound is not None and node_bound not in NODE_BOUNDS:
        raise ConfigError(f"node_bound: choose {one_of(NODE_BOUNDS)}, got {node_bound!r}")
    search = _Search(network, x, eps, norm, bounds, label, max_regions, timeout, batch_size, prune)
    search.node_bound = NODE_BOUND.get(norm, "program") if node_bound is None else node_bound
    if search.first_witness(search.x[None]) is not None:  # a given label the network disputes
        return search.answer("not_robust", search.x)
    if not len(search.rivals):  # the bounds rule out every rival: no boundary to search for
        return search.answer("robust")
    queue = deque([search.start])
    visited = {_key(search.start)}
    unresolved = tightened = False
    while queue:
        if search.out_of_budget():
            return search.answer("timeout")
        if (
            branch_after is not None
            and search.can_branch
            and search.long(branch_after, branch_share)
        ):
            return search.branch()
        patterns = torch.stack([queue.popleft() for _ in range(min(len(queue), search.batch))])
        hidden, decision = search.hyperplanes(patterns)
        if lp_after is not None and search.regions > lp_after:
            if not tightened:
                tightened = True
                kept = search.tighten_rivals()
                if not len(search.rivals):
                    return search.answer("robust")
                decision = (decision[0][:, kept], decision[1][:, kept])
            meets, systems = search.meets_input_set(patterns, *hidden)
            if not bool(meets.any()):
                continue
            patterns = patterns[meets]
            hidden = (hidden[0][meets], hidden[1][meets])
            decision = (decision[0][meets], decision[1][meets])
            systems = [system for system, kept in zip(systems, meets.tolist(), strict=True) if kept]
        else:
            systems = None
        distance, points = search.decision_points(*decision, search.radius)
        witness = search.first_witness(points[torch.isfinite(distance)])
        if witness is not None:
            return search.answer("not_robust", witness)
        reached = torch.isfinite(distance).reshape(len(patterns), -1)
        if reached.any():
            witness, still_open = search.settle_decisions(
                patterns, hidden, decision, reached, systems
            )
            if witness is not None:
                return search.answer("not_robust", witness)
            unresolved |= still_open
        region, neuron = search.neuron_reachable(*hidden).nonzero(as_tuple=True)
        for child in _flipped(patterns, region, search.searched[neuron]):
            key = _key(child)
            if key not in visited:
                visited.add(key)
                queue.append(child)
    if unresolved and branch_after is not None and search.can_branch:
        return search.branch()  # a boundary the region's program could not settle (L2)
    return search.answer("unknown" if unresolved else "robust")


def fgp_radius(
    network: ReluNetwork,
    x: torch.Tensor,
    norm: str,
    bounds: tuple[float, float] | None = None,
    *,
    max_radius: float,
    label: int | None = None,
    max_regions: int = 10_000,
    timeout: float = 60.0,
    batch_size: int = 64,
    prune: str | None = "crown",
) -> PointCertificate:
    """A certified lower bound on the distance from ``x`` to the nearest input (inside
    ``bounds``) that the network labels otherwise, searched up to ``max_radius``.

    Regions are visited nearest first; the first decision boundary to come off the queue bounds
    the distance from below, and when its projection changes the label the bound is exact.

    Args:
        network, x, norm, bounds, label, max_regions, timeout, batch_size, prune: as in
            `fgp_certify` (bounds for pruning are taken over the ``max_radius`` ball).
        max_radius: the search stops at this distance, > 0.

    Returns:
        A `PointCertificate` with ``radius`` set: ``not_robust`` (radius exact, witness at that
        distance), ``unknown`` (radius a lower bound: the nearest boundary's projection did not
        change the label), ``timeout`` (radius the lower bound reached so far) or ``robust``
        (nothing within ``max_radius``; radius ``max_radius``).

    Raises:
        ConfigError: as in `fgp_certify`.
    """
    search = _Search(
        network, x, max_radius, norm, bounds, label, max_regions, timeout, batch_size, prune
    )
    if search.first_witness(search.x[None]) is not None:
        return search.answer("not_robust", search.x, radius=0.0)
    if not len(search.rivals):  # the bounds rule out every rival within max_radius
        return search.answer("robust", radius=float(max_radius))
    order = itertools.count()
    # entries: (distance, tie-breaker, pattern or None, candidate point or None)
    heap: list[tuple[float, int, torch.Tensor | None, torch.Tensor | None]] = [
        (0.0, next(order), search.start, None)
    ]
    best = {_key(search.start): 0.0}
    done: set[bytes] = set()
    while heap:
        if search.out_of_budget():
            return search.answer("timeout", radius=heap[0][0])
        distance, _, pattern, point = heapq.heappop(heap)
        if pattern is None and point is not None:
            witness = search.first_witness(point[None])
            verdict = "not_robust" if witness is not None else "unknown"
            return search.answer(verdict, witness, radius=distance)
        batch = [pattern]
        while heap and heap[0][2] is not None and len(batch) < search.batch:
            batch.append(heapq.heappop(heap)[2])
        fresh: list[torch.Tensor] = []
        for member in batch:
            if member is None:  # only patterns come off the heap here
                continue
            key = _key(member)
            if key not in done:
                done.add(key)
                fresh.append(member)
        if not fresh:
            continue
        patterns = torch.stack(fresh)
        hidden, decision = search.hyperplanes(patterns)
        decision_distance, points = search.decision_points(*decision, search.radius)
        # a segment from x meets the regions on its way in order of distance, so a boundary
        # met from a region is at least as far as the region itself
        entry = search.x.new_tensor([best[_key(p)] for p in fresh])
        decision_distance = torch.maximum(
            decision_distance.reshape(len(fresh), -1), entry[:, None]
        ).reshape(-1)
        for d, candidate in zip(decision_distance.tolist(), points, strict=True):
            if math.isfinite(d):
                heapq.heappush(heap, (d, next(order), None, candidate))
        neuron_distance = torch.maximum(search.neuron_distance(*hidden), entry[:, None])
        region, neuron = torch.isfinite(neuron_distance).nonzero(as_tuple=True)
        for child, d in zip(
            _flipped(patterns, region, search.searched[neuron]),
            neuron_distance[region, neuron].tolist(),
            strict=True,
        ):
            key = _key(child)
            if key not in done and d < best.get(key, math.inf):
                best[key] = d
                heapq.heappush(heap, (d, next(order), child, None))
    return search.answer("robust", radius=float(max_radius))


class _Search:
    """What one record's search shares: the record, its input set, the network in the form the
    batched passes need, the budget, and the constructor of the answer."""

    def __init__(
        self,
        network: ReluNetwork,
        x: torch.Tensor,
        radius: float,
        norm: str,
        bounds: tuple[float, float] | None,
        label: int | None,
        max_regions: int,
        timeout: float,
        batch_size: int,
        prune: str | None,
    ) -> None:
        self.started = time.perf_counter()
        check_norm(norm)
        if not (math.isfinite(radius) and radius > 0):
            raise ConfigError(f"eps: must be a finite number > 0, got {radius}")
        if max_regions < 1 or batch_size < 1 or not timeout > 0:
            raise ConfigError("max_regions, batch_size and timeout: must be > 0")
        self.network, self.norm, self.bounds, self.radius = network, norm, bounds, float(radius)
        self.shape = tuple(x.shape)
        self.x = network.flatten(x.reshape(1, -1))[0]
        if bounds is not None and not inside(self.x[None], self.x[None], 0.0, norm, bounds)[0]:
            raise ConfigError(f"x: the record lies outside the input box {tuple(bounds)}")
        self.low, self.high = input_box(self.x, self.radius, bounds)
        #: the box around the input set as ``(d, 2)`` low and high, for the linear programs
        self.box = np.stack([self.low.cpu().numpy(), self.high.cpu().numpy()], axis=1)
        self.start = network.activation_pattern(self.x[None])[0]
        self.label = int(network(self.x[None])[0].argmax()) if label is None else int(label)
        if not 0 <= self.label < network.num_classes:
            raise ConfigError(f"label: must be in [0, {network.num_classes}), got {label}")
        width = sum(network.hidden_sizes) + network.num_classes
        self.batch = max(1, min(batch_size, BATCH_ENTRIES // (width * network.in_features)))
        self.max_regions, self.timeout = max_regions, timeout
        self.regions = self.nodes = 0
        self.node_bound = "program"  # how `branch` bounds its nodes
        self.program: _BoxProgram | None = None  # built by the first region test
        self.triangle: TriangleProgram | None = None  # built by `tighten_rivals`
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        others = torch.arange(network.num_classes, device=self.x.device)
        self.others = others[others != self.label]
        self.rivals = self.others
        self.flippable = torch.ones(
            sum(network.hidden_sizes), dtype=torch.bool, device=self.x.device
        )
        if prune is not None:
            # a neuron stable over the whole input set never flips on a segment inside it, and
            # a rival whose margin is bounded away from zero is never reached: neither needs
            # to be searched
            layers = pre_activation_bounds(
                network, self.x[None], self.radius, norm, bounds, method=prune
            )
            self.layers = layers
            if len(layers) > 1:
                self.flippable = torch.cat([(lo[0] < 0) & (hi[0] > 0) for lo, hi in layers[:-1]])
            label_t = torch.tensor([self.label], device=self.x.device)
            margin = margin_lower_bounds(
                network, self.x[None], label_t, self.radius, norm, bounds, method=prune
            )[0]
            self.rivals = self.others[margin[self.others] <= 0]
        #: the neurons the search may flip; the hyperplanes of the others are never needed
        self.searched = self.flippable.nonzero().flatten()
        self._second_layer_base()

    def tighten_rivals(self) -> torch.Tensor:
        """Drop the rivals the linear program of the triangle relaxation, its layers tightened
        first, rules out over the box around the input set (as `lp_margin_lower_bounds`;
        tighter than CROWN and dearer, so it waits for a search that runs long; a later
        `branch` starts from the same program). Needs the bounds of ``prune``. Returns which of the
        rivals so far are kept, bool."""
        kept = torch.ones(len(self.rivals), dtype=torch.bool, device=self.x.device)
        if self.layers is None or not len(self.rivals):
            return kept
        # the same program as `lp_margin_lower_bounds`, kept for a later `branch`
        self.triangle = TriangleProgram(
            self.network, self.low, self.high, self.layers[:-1], tighten=True
        )
        kept = torch.tensor(
            [
                self.triangle.least(*self.triangle.margin(self.label, int(j))) <= 0
                for j in self.rivals
            ],
            device=self.x.device,
        )
        self.rivals = self.rivals[kept]
        return kept

    @property
    def can_branch(self) -> bool:
        """Whether `branch` applies: with the bounds of ``prune`` to relax the ReLUs, and for
        L2 with the cone solver installed."""
        if self.layers is None:
            return False
        return self.norm == "linf" or cone_solver_available()

    def long(self, regions: int, share: float) -> bool:
        """Whether the search has visited ``regions`` regions or spent ``share`` of its time."""
        return self.regions >= regions or time.perf_counter() - self.started >= share * self.timeout

    def attack(self) -> torch.Tensor | None:
        """A witness found by APGD (difference-of-logits-ratio loss, or cross-entropy for fewer
        than three classes) on the network, checked like every witness; None if none."""
        classes = len(self.others) + 1
        generator = torch.Generator(device=self.x.device).manual_seed(0)
        found = apgd(
            self.network,
            self.x[None],
            torch.tensor([self.label], device=self.x.device),
            eps=self.radius,
            norm=self.norm,
            steps=ATTACK_STEPS,
            loss="dlr" if classes >= 3 else "ce",
            restarts=ATTACK_RESTARTS,
            bounds=self.bounds,
            generator=generator,
        )
        return self.first_witness(found.x_adv.detach())

    def branch(self) -> PointCertificate:
        """The rest of the budget spent on an attack, then on branch and bound over the
        unstable ReLUs."""
        witness = self.attack()
        if witness is not None:
            return self.answer("not_robust", witness)
        result = branch_certify(
            self.network,
            self.x,
            self.radius,
            self.norm,
            self.low,
            self.high,
            self.layers[:-1],  # type: ignore[index]
            self.label,
            self.rivals.tolist(),
            self.first_witness,
            deadline=self.started + self.timeout,
            program=self.triangle,
            node_bound=self.node_bound,
        )
        self.nodes = result.nodes
        return self.answer(result.verdict, result.witness)

    def out_of_budget(self) -> bool:
        spent = time.perf_counter() - self.started
        return self.regions >= self.max_regions or spent >= self.timeout

    def answer(
        self, verdict: str, witness: torch.Tensor | None = None, *, radius: float | None = None
    ) -> PointCertificate:
        return PointCertificate(
            verdict=verdict,
            label=self.label,
            witness=None if witness is None else witness.reshape(self.shape),
            regions=self.regions,
            nodes=self.nodes,
            seconds=time.perf_counter() - self.started,
            radius=None if radius is None else min(float(radius), self.radius),
        )

    def _second_layer_base(self) -> None:
        """The part of the second layer's affine form that no region changes: the first layer's
        neurons that are never flipped keep their on/off state, so ``W2 · diag(mask) · W1``
        splits into a constant over those and a product over the searched ones alone (for a
        CNN's wide first layer, a tenth of the work per region or less)."""
        net = self.network
        self.base = None
        if len(net.weights) < 3:
            return
        width = net.hidden_sizes[0]
        fixed = (self.start[:width] & ~self.flippable[:width]).to(net.dtype)
        self.first_searched = self.searched[self.searched < width]
        self.base = (
            net.weights[1] @ (net.weights[0] * fixed[:, None]),
            net.weights[1] @ (net.biases[0] * fixed) + net.biases[1],
        )

    def hyperplanes(
        self, patterns: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """The affine forms of a batch of regions ``(R, Σ widths)``: the hyperplanes of the
        searched neurons (`searched`) ``(R, S, d)``, ``(R, S)`` and the decision hyperplanes
        ``logit_label - logit_j`` for every rival ``(R, rivals, d)``, ``(R, rivals)``."""
        self.regions += len(patterns)
        net = self.network
        gradients, offsets = [], []
        gradient = net.weights[0].expand(len(patterns), -1, -1)
        offset = net.biases[0].expand(len(patterns), -1)
        start = 0
        for k, (weight, bias) in enumerate(zip(net.weights[1:], net.biases[1:], strict=True)):
            width = gradient.shape[1]
            rows = self.searched[(self.searched >= start) & (self.searched < start + width)]
            gradients.append(gradient[:, rows - start])
            offsets.append(offset[:, rows - start])
            mask = patterns[:, start : start + width].to(gradient.dtype)
            if k == 0 and self.base is not None:
                # the constant part plus the searched first-layer neurons that are on
                on = mask[:, self.first_searched]
                gradient = (
                    self.base[0]
                    + (weight[:, self.first_searched] * on[:, None, :])
                    @ (net.weights[0][self.first_searched])
                )
                offset = self.base[1] + (on * net.biases[0][self.first_searched]) @ (
                    weight[:, self.first_searched].T
                )
            else:
                gradient = weight @ (gradient * mask[:, :, None])
                offset = (offset * mask) @ weight.T + bias
            start += width
        decision_gradient = gradient[:, self.label : self.label + 1] - gradient[:, self.rivals]
        decision_offset = offset[:, self.label : self.label + 1] - offset[:, self.rivals]
        if not gradients:
            empty = gradient.new_zeros(len(patterns), 0, net.in_features)
            return (empty, empty[:, :, 0]), (decision_gradient, decision_offset)
        return (torch.cat(gradients, 1), torch.cat(offsets, 1)), (
            decision_gradient,
            decision_offset,
        )

    def reachable(
        self, gradient: torch.Tensor, offset: torch.Tensor, radius: float
    ) -> torch.Tensor:
        """Which hyperplanes ``gradient·x' + offset = 0`` meet the input set; bool ``(R, m)``.
        Exact for L∞ (the set is a box); for L2 the hyperplane must be within ``radius`` and
        meet the box enclosing the ball."""
        # over the box [low, high], w·x' ranges over w·center ± |w|·half-width
        center, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        signed = gradient @ torch.stack([self.x, center], dim=1)
        absolute = gradient.abs() @ torch.stack([half, self.x.abs() + 1.0], dim=1)
        value = signed[..., 0] + offset
        most = signed[..., 1] + offset + absolute[..., 0]
        least = signed[..., 1] + offset - absolute[..., 0]
        # rounding must never hide a boundary: a tolerance relative to the magnitudes involved
        slack = 1e-9 * (value.abs() + absolute[..., 1])
        hit = (least <= slack) & (most >= -slack)
        if self.norm == "l2":
            hit &= value.abs() <= radius * gradient.norm(dim=-1) + slack
        return hit

    def meets_input_set(
        self, patterns: torch.Tensor, gradient: torch.Tensor, offset: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[np.ndarray, np.ndarray] | None]]:
        """Which regions of ``patterns`` may meet the input set, bool ``(R,)``: False only where
        it is proven that no point of the set satisfies the sign constraints of the region's
        searchable neurons: a constraint the box cannot satisfy, for L2 a dual bound on the
        distance to the region above ε, or a Farkas certificate or a linear program over the
        box on the constraints the whole box does not already satisfy (an unsolved one keeps
        the region). Also the regions' systems (`region_systems`), for `settle_decisions`."""
        meets, systems = self.region_systems(patterns, gradient, offset)
        questions = [(r, *system) for r, system in enumerate(systems) if system is not None]
        if questions:
            empty, settled = _farkas_screen([(a, b) for _, a, b in questions], self.box)
            for (r, a, b), no, known in zip(questions, empty, settled, strict=True):
                if no:
                    meets[r] = False
                elif not known:
                    meets[r] = not self.solver().infeasible(a, b)
        return meets.to(patterns.device), systems

    def settle_decisions(
        self,
        patterns: torch.Tensor,
        hidden: tuple[torch.Tensor, torch.Tensor],
        decision: tuple[torch.Tensor, torch.Tensor],
        reached: torch.Tensor,
        systems: list[tuple[np.ndarray, np.ndarray] | None] | None = None,
    ) -> tuple[torch.Tensor | None, bool]:
        """Decide the decision boundaries a region reaches but whose projection kept the label
        (bool ``reached`` ``(R, rivals)``): inside the region the margin is affine, so a rival
        beats the label somewhere in region ∩ box only if the system of the region's
        constraints plus ``margin ≤ 0`` has a solution. A Farkas certificate (or HiGHS) that it
        has none settles the boundary; otherwise the solver's point of least margin is run
        through the network and is a witness when the label changes. Returns the first
        witness (or None) and whether a boundary stayed open. For L2 the box encloses the
        ball, so "none" is proof, and a point outside the ball is no witness. ``systems``: the
        regions' systems where `meets_input_set` already built them (its regions all meet the
        set), else they are built here for the regions that reach a boundary."""
        box = self.box
        rows = reached.any(dim=1).nonzero().flatten()
        meets = torch.ones(len(patterns), dtype=torch.bool)
        if systems is None:
            systems = [None] * len(patterns)
            some_meet, some = self.region_systems(patterns[rows], hidden[0][rows], hidden[1][rows])
            for r, met, system in zip(rows.tolist(), some_meet.tolist(), some, strict=True):
                meets[r], systems[r] = met, system
        gradients, offsets = decision[0].cpu().numpy(), decision[1].cpu().numpy()
        magnitude = np.abs(box).max(axis=1)
        questions = []
        for r, j in reached.nonzero().tolist():
            if not meets[r]:  # no point of the input set lies in the region
                continue
            g, h = gradients[r, j], float(offsets[r, j])
            slack = LP_SLACK * (abs(h) + np.abs(g) @ magnitude + 1.0)
            a, b = systems[r] or (np.zeros((0, len(g))), np.zeros(0))
            # the rival at least level with the label: g·x + h ≤ 0
            questions.append((np.vstack([a, g[None]]), np.append(b, -h + slack)))
        if not questions:
            return None, False
        empty, _ = _farkas_screen(questions, box)
        open_ = False
        for (a, b), no in zip(questions, empty, strict=True):
            if no:
                continue
            point = self.solver().minimise(a, b, a[-1])
            if point is None:
                continue
            point = np.clip(point, box[:, 0], box[:, 1])  # the solver's bounds hold to 1e-7
            witness = self.first_witness(torch.from_numpy(point).to(self.x)[None])
            if witness is not None:
                return witness, open_
            open_ = True
        return None, open_

    def solver(self) -> _BoxProgram:
        if self.program is None:
            self.program = _BoxProgram(self.box)
        return self.program

    def region_systems(
        self, patterns: torch.Tensor, gradient: torch.Tensor, offset: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[np.ndarray, np.ndarray] | None]]:
        """For each region: whether it may still meet the input set after the cheap tests, and
        its sign constraints ``a·x ≤ b`` (loosened by `LP_SLACK`) on the searchable neurons that
        the whole box does not already satisfy, or None where none is left or the region is
        ruled out. ``gradient`` and ``offset`` are the searched neurons' (`hyperplanes`)."""
        box = self.box
        x0 = self.x.cpu().numpy()
        # over the box each pre-activation ranges over [least, most]: a neuron the region
        # wants on the side the box never reaches rules the region out at once, and one the
        # whole box satisfies adds nothing to the program
        center, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        mid = gradient @ center + offset
        spread = gradient.abs() @ half
        active = patterns[:, self.searched]
        tolerance = 1e-9 * (mid.abs() + spread + 1.0)
        impossible = torch.where(active, mid + spread < -tolerance, mid - spread > tolerance)
        needed = torch.where(active, mid - spread < tolerance, mid + spread > -tolerance)
        meets = ~impossible.any(dim=1).cpu()
        # an active neuron has g·x + h ≥ 0, an inactive one g·x + h ≤ 0: as A·x ≤ b
        sign = np.where(active.cpu().numpy(), -1.0, 1.0)
        gradients, offsets = gradient.cpu().numpy(), offset.cpu().numpy()
        needed_rows = needed.cpu().numpy()
        magnitude = np.abs(box).max(axis=1)
        systems: list[tuple[np.ndarray, np.ndarray] | None] = []
        for r in range(len(patterns)):
            if not meets[r]:
                systems.append(None)
                continue
            g, h = gradients[r], offsets[r]
            slack = LP_SLACK * (np.abs(h) + np.abs(g) @ magnitude + 1.0)
            a, b = sign[r][:, None] * g, -sign[r] * h + slack
            if self.norm == "l2" and _beyond_l2(a, b, x0, self.radius):
                meets[r] = False
                systems.append(None)
                continue
            row = needed_rows[r]
            systems.append((a[row], b[row]) if row.any() else None)
        return meets, systems

    def neuron_reachable(self, gradient: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Which searched neuron boundaries meet the input set; bool ``(R, S)``."""
        return self.reachable(gradient, offset, self.radius)

    def neuron_distance(self, gradient: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """The distance from the record to each neuron's hyperplane ``(R, m)`` in the dual norm
        (a lower bound on the distance inside the box), ``inf`` where it does not meet the
        input set."""
        value = gradient @ self.x + offset
        dual = DUAL[self.norm]
        size = gradient.norm(p=1, dim=-1) if dual == "l1" else gradient.norm(dim=-1)
        distance = value.abs() / size
        return distance.where(self.neuron_reachable(gradient, offset), torch.inf)

    def decision_points(
        self, gradient: torch.Tensor, offset: torch.Tensor, radius: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For every decision hyperplane of the batch: the distance from the record to its
        nearest point inside the box (``inf`` beyond ``radius``) and that point pushed
        `OVERSHOOT` past the boundary, flattened to ``(m,)`` and ``(m, d)``."""
        gradient = gradient.reshape(-1, gradient.shape[-1])
        offset = offset.reshape(-1)
        hit = self.reachable(gradient, offset, radius)
        distance = torch.full_like(offset, torch.inf)
        points = self.x.expand(len(offset), -1).clone()
        if hit.any():
            change = -(gradient[hit] @ self.x + offset[hit])
            pushed, length = _nearest_points(
                gradient[hit], change, self.x, self.low, self.high, self.norm
            )
            distance[hit] = length.where(length <= radius, torch.inf)
            # the push past the boundary may leave the L2 ball; pull it back along the step
            too_far = (lp_norm(pushed, self.norm) / (radius * (1 - 1e-12))).clamp_min(1.0)
            points[hit] = self.x + pushed / too_far[:, None]
        return distance, points

    def first_witness(self, points: torch.Tensor) -> torch.Tensor | None:
        """The first of ``points`` that lies in the input set and that the network labels
        otherwise, or None."""
        if not len(points):
            return None
        logits = self.network(points)
        own = logits[:, self.label]
        rival = logits[:, self.others].amax(dim=1)
        ok = (rival > own) & inside(
            points,
            self.x.expand_as(points),
            self.radius,
            self.norm,
            self.bounds,
            tolerance=WITNESS_TOLERANCE,
        )
        found = ok.nonzero()
        return points[int(found[0])].clone() if len(found) else None


def _nearest_points(
    gradient: torch.Tensor,
    change: torch.Tensor,
    x: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    norm: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row: the shortest step ``δ`` (in ``norm``) with ``gradient·δ = change`` and
    ``low ≤ x + δ ≤ high``, pushed `OVERSHOOT` further, and the length of the shortest step.

    Without a box these are the textbook projections, ``x − (w·x+b) w/||w||²`` for L2 and
    ``x − sign(w)(w·x+b)/||w||₁`` for L∞. Inside a box, each coordinate moves in the direction
    that helps (``sign(change·w_i)``) by ``min(t, room_i)`` for L∞ and by ``clip(λ·|w_i|,
    room_i)`` for L2 (the KKT form of the L2 projection onto hyperplane ∩ box); the one scalar
    ``t`` or ``λ`` that reaches ``change`` is found by bisection, which suits a batch better
    than sorting the breakpoints of every row. Rows where the box cannot reach ``change`` get
    an infinite length.
    """
    direction = torch.sign(change)[:, None] * torch.sign(gradient)
    room = torch.where(direction > 0, high - x, x - low).clamp_min(0)
    weight = gradient.abs()
    target = change.abs()

    def move(scale: torch.Tensor) -> torch.Tensor:
        if norm == "linf":
            return torch.minimum(scale[:, None].expand_as(room), room)
        return torch.minimum(scale[:, None] * weight, room)

    useful = weight > 0
    if norm == "linf":
        top = room.where(useful, torch.zeros_like(room)).amax(dim=1)
    else:
        top = (
            (room / weight.where(useful, torch.ones_like(weight)))
            .where(useful, torch.zeros_like(room))
            .amax(dim=1)
        )
    reach = (weight * move(top)).sum(dim=1) >= target
    lo, hi = torch.zeros_like(top), top.clone()
    for _ in range(100):
        mid = (lo + hi) / 2
        enough = (weight * move(mid)).sum(dim=1) >= target
        hi, lo = torch.where(enough, mid, hi), torch.where(enough, lo, mid)
        if bool(((hi - lo) <= 1e-15 * hi.clamp_min(1e-300)).all()):
            break
    # the lower end of the bracket never overstates the distance, so a boundary is never
    # judged out of reach by rounding
    length = lp_norm(direction * move(lo), norm).where(reach, torch.inf)
    pushed = direction * move(torch.minimum(hi * (1 + OVERSHOOT), top))
    return pushed, length


class _BoxProgram:
    """Feasibility of ``{x in box : A·x ≤ b}`` for many ``A, b`` over one box: one HiGHS model
    (highspy) whose columns are the box and whose rows are replaced for each question, so the
    dual simplex starts from the previous region's basis (neighbouring regions share most of
    their constraints) and nothing is rebuilt or presolved (measured on a Fashion-MNIST MLP:
    5 ms a region test against 13 ms for a fresh `scipy.optimize.linprog` call)."""

    def __init__(self, box: np.ndarray) -> None:
        import highspy

        self._highs = highspy.Highs()
        self._highs.setOptionValue("output_flag", False)
        self._highs.setOptionValue("presolve", "off")
        self._infeasible = highspy.HighsModelStatus.kInfeasible
        self._optimal = highspy.HighsModelStatus.kOptimal
        self._highs.addVars(len(box), box[:, 0], box[:, 1])
        self._rows = 0

    def infeasible(self, a: np.ndarray, b: np.ndarray) -> bool:
        """True only where HiGHS proves that no point of the box satisfies ``a·x ≤ b``."""
        highs, (m, n) = self._highs, a.shape
        if self._rows:
            highs.deleteRows(self._rows, np.arange(self._rows, dtype=np.int32))
        highs.addRows(
            m,
            np.full(m, -np.inf),
            b.astype(np.float64),
            m * n,
            np.arange(0, m * n, n, dtype=np.int32),
            np.tile(np.arange(n, dtype=np.int32), m),
            np.ascontiguousarray(a, dtype=np.float64).ravel(),
        )
        self._rows = m
        highs.run()
        return highs.getModelStatus() == self._infeasible

    def minimise(self, a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> np.ndarray | None:
        """A point of the box with ``a·x ≤ b`` where ``cost·x`` is least, or None where HiGHS
        finds no such point (or no optimum)."""
        n = len(cost)
        index = np.arange(n, dtype=np.int32)
        self._highs.changeColsCost(n, index, np.asarray(cost, dtype=np.float64))
        try:
            self.infeasible(a, b)
            if self._highs.getModelStatus() != self._optimal:
                return None
            return np.asarray(self._highs.getSolution().col_value, dtype=np.float64)
        finally:
            self._highs.changeColsCost(n, index, np.zeros(n))


def _farkas_screen(
    questions: list[tuple[np.ndarray, np.ndarray]],
    box: np.ndarray,
    iterations: int = FARKAS_ITERATIONS,
    step: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """For many systems ``a·x ≤ b`` over one box at once: which are proven empty, and which
    have a corner of the box that satisfies them (bool arrays); the rest need a solver.

    Any ``λ ≥ 0`` with ``min over the box of λᵀa·x > λ·b`` proves a system empty (Farkas); the
    minimum sits at the corner ``x*`` taking the low end where ``(aᵀλ)_i > 0``, and ``a·x* − b``
    is a supergradient of that gap, so projected supergradient ascent on the simplex of
    multipliers finds a proof for most empty systems in a few batched steps, and stops early
    on a corner that meets every constraint. The steps run in float32, the proof is evaluated
    in float64 at the best multipliers, with a margin for rounding; a "satisfied" corner only
    skips the solver for a region that is then kept, which never weakens a verdict.
    """
    rows = max(len(b) for _, b in questions)
    n = box.shape[0]
    a_all = np.zeros((len(questions), rows, n))
    b_all = np.ones((len(questions), rows))  # padding rows: 0 ≤ 1
    for k, (a, b) in enumerate(questions):
        scale = np.maximum(np.abs(a).sum(axis=1), 1e-300)  # a positive scale keeps the row
        a_all[k, : len(b)], b_all[k, : len(b)] = a / scale[:, None], b / scale
    exact_a, exact_b = torch.from_numpy(a_all), torch.from_numpy(b_all)
    low64, high64 = torch.from_numpy(box[:, 0].copy()), torch.from_numpy(box[:, 1].copy())
    a32, b32, low, high = exact_a.float(), exact_b.float(), low64.float(), high64.float()
    lam = torch.full((len(questions), rows), 1.0 / rows)
    best = lam.clone()
    best_gap = torch.full((len(questions),), -math.inf)
    corner = torch.zeros(len(questions), dtype=torch.bool)
    open_ = torch.arange(len(questions))
    for it in range(iterations):
        rows_a, rows_b, m = a32[open_], b32[open_], lam[open_]
        x = torch.where(torch.bmm(m[:, None], rows_a)[:, 0] > 0, low, high)
        slope = torch.bmm(rows_a, x[:, :, None])[..., 0] - rows_b
        gap = (m * slope).sum(dim=1)
        better = gap > best_gap[open_]
        best[open_[better]] = m[better]
        best_gap[open_] = torch.maximum(best_gap[open_], gap)
        satisfied = (slope <= 0).all(dim=1)
        corner[open_[satisfied]] = True
        m = (m + step / math.sqrt(it + 1) * slope).clamp_min(0)
        lam[open_] = m / m.sum(dim=1, keepdim=True).clamp_min(1e-30)
        open_ = open_[~satisfied & (gap <= 0)]
        if not len(open_):
            break
    multipliers = best.double()
    combined = torch.bmm(multipliers[:, None], exact_a)[:, 0]
    least = torch.where(combined > 0, combined * low64, combined * high64)
    gap = least.sum(dim=1) - (multipliers * exact_b).sum(dim=1)
    rounding = 1e-9 * (least.abs().sum(dim=1) + (multipliers * exact_b).abs().sum(dim=1)) + 1e-12
    empty = (gap > rounding).numpy()
    return empty, corner.numpy() & ~empty


def _beyond_l2(a: np.ndarray, b: np.ndarray, x0: np.ndarray, radius: float) -> bool:
    """Whether the polyhedron ``a·x ≤ b`` provably lies farther than ``radius`` (L2) from
    ``x0``: multipliers ``λ ≥ 0`` maximising the dual bound ``λ·(a·x0 − b) − |aᵀλ|²/4`` on the
    squared distance, found by L-BFGS-B, and the bound evaluated at them."""
    from scipy.optimize import minimize

    if not len(a):
        return False
    gram, violation = a @ a.T, a @ x0 - b
    if not (violation > 0).any():  # x0 satisfies every constraint: distance 0
        return False

    def negative_bound(lam: np.ndarray) -> tuple[float, np.ndarray]:
        q = gram @ lam
        return 0.25 * lam @ q - lam @ violation, 0.5 * q - violation

    start = np.maximum(violation, 0.0) / np.maximum(np.diag(gram), 1e-300)
    found = minimize(
        negative_bound, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(b)
    )
    lam = np.maximum(found.x, 0.0)
    bound = lam @ violation - 0.25 * float(np.sum((a.T @ lam) ** 2))
    return bool(bound > radius**2 * (1 + 1e-9) + 1e-12)


def _flipped(patterns: torch.Tensor, region: torch.Tensor, neuron: torch.Tensor) -> torch.Tensor:
    """One copy of ``patterns[region[k]]`` per ``k`` with ``neuron[k]`` flipped."""
    children = patterns[region].clone()
    children[torch.arange(len(region)), neuron] ^= True
    return children


def _key(pattern: torch.Tensor) -> bytes:
    return np.packbits(pattern.cpu().numpy()).tobytes()
