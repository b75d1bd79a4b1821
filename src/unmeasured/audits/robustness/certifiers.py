"""Certification audits: each is the `Certifier` base plus one method of `certify/`. The base
draws the records, re-checks every witness on the target and turns verdicts into certified
accuracy per epsilon; these classes turn the target into a `ReluNetwork` (once per run) and call
the method.

Randomized smoothing certifies a different classifier: the Gaussian-smoothed version of the
target, not the target itself. Its certified accuracy says what that smoothed classifier
guarantees, which is why it has its own audit and its own headline wording.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import ClassVar, cast

from unmeasured.audits.base import AuditContext, Constraint, Requirements, interval, options
from unmeasured.audits.registry import register
from unmeasured.audits.robustness.base import Certificate, Certifier, RobustnessAudit, target_model
from unmeasured.audits.robustness.certify.bounds import bound_certify
from unmeasured.audits.robustness.certify.exact import exact_certify
from unmeasured.audits.robustness.certify.fgp import fgp_certify
from unmeasured.audits.robustness.certify.lipschitz import lipschitz_certify
from unmeasured.audits.robustness.certify.network import ReluNetwork, to_relu_network
from unmeasured.audits.robustness.certify.smoothing import smoothing_certify
from unmeasured.errors import TargetError

_BASE = RobustnessAudit.constraints
_SECONDS = interval(0, 86_400, closed="right")


def relu_network(ctx: AuditContext) -> ReluNetwork:
    """The target as a `ReluNetwork`, built once per run."""

    def build() -> ReluNetwork:
        module = getattr(ctx.target, "module", None)
        if module is None:
            raise TargetError(
                f"target: {ctx.target.description} exposes no torch module to certify"
            )
        # the test role is required, so the data has a shape
        return to_relu_network(module, cast(tuple[int, ...], ctx.data.input_shape))

    return ctx.shared("relu-network", build)


def _point_certificates(results) -> list[Certificate]:  # type: ignore[no-untyped-def]
    return [Certificate(r.verdict, r.witness) for r in results]


class _PointCertifier(Certifier):
    """A certifier that decides one record at a time, with a time limit per record."""

    constraints: ClassVar[dict[str, Constraint]] = {**_BASE, "timeout": _SECONDS}

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 100,
        batch_size: int = 64,
        timeout: float = 60.0,
    ) -> None:
        self.timeout = timeout
        super().__init__(
            epsilons=epsilons, norm=norm, max_records=max_records, batch_size=batch_size
        )


@register
class FGP(_PointCertifier):
    """Fast Geometric Projections (Fromherz, Leino, Fredrikson, Parno, Pasareanu, ICLR 2021):
    a breadth-first search over the activation regions the ball reaches, projecting onto
    decision boundaries with the projection of the right norm and inside the input box.

    Args:
        epsilons, norm, max_records, batch_size: as for every certifier.
        timeout: seconds per record before the verdict is ``timeout``.
        max_regions: regions per record before the verdict is ``timeout``.
        branch: a record whose search passes 500 regions or a tenth of ``timeout`` is
            attacked (APGD) for a witness, then goes on as branch and bound over its unstable
            ReLUs (one relaxation bounds many regions; L2 needs the ``certify`` extra's cone
            solver); False keeps the region search of the paper to the end.
    """

    name = "robustness.fgp"
    summary = "Fast Geometric Projections: decide local robustness of ReLU nets (ICLR 2021)"
    constraints: ClassVar[dict[str, Constraint]] = {
        **_PointCertifier.constraints,
        "max_regions": interval(1, 10**9, closed="both", kind=int),
    }

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 100,
        batch_size: int = 64,
        timeout: float = 60.0,
        max_regions: int = 10_000,
        branch: bool = True,
    ) -> None:
        self.max_regions = max_regions
        self.branch = branch
        super().__init__(
            epsilons=epsilons,
            norm=norm,
            max_records=max_records,
            batch_size=batch_size,
            timeout=timeout,
        )

    def certify(self, ctx, x, y, *, eps, bounds):  # type: ignore[no-untyped-def]
        network = relu_network(ctx)
        return _point_certificates(
            fgp_certify(
                network,
                x[i],
                eps,
                self.norm,
                bounds,
                label=int(y[i]),
                max_regions=self.max_regions,
                timeout=self.timeout,
                branch_after=500 if self.branch else None,
            )
            for i in range(len(x))
        )


@register
class Exact(_PointCertifier):
    """The exact checker: big-M mixed-integer encodings of the ReLU network with interval
    pre-bounds; L∞ as a MILP (SciPy's HiGHS), L2 as a MIQCP (SCIP, ``pip install
    'unmeasured[certify]'``). Complete but slow: for small networks.

    Args:
        epsilons, norm, max_records, batch_size: as for every certifier.
        timeout: seconds per record before the verdict is ``timeout``.
    """

    name = "robustness.exact"
    summary = "exact MILP/MIQCP check of small ReLU networks (complete, slow)"

    def certify(self, ctx, x, y, *, eps, bounds):  # type: ignore[no-untyped-def]
        network = relu_network(ctx)
        return _point_certificates(
            exact_certify(
                network, x[i], eps, self.norm, bounds, label=int(y[i]), timeout=self.timeout
            )
            for i in range(len(x))
        )


class _BoundCertifier(Certifier):
    """Sound but incomplete certificates for a whole batch: a record is robust or unknown."""

    method: ClassVar[str]

    def certify(self, ctx, x, y, *, eps, bounds):  # type: ignore[no-untyped-def]
        network = relu_network(ctx)
        result = bound_certify(network, x, eps, self.norm, bounds, labels=y, method=self.method)
        return [Certificate("robust" if c else "unknown") for c in result.certified.tolist()]


@register
class IBP(_BoundCertifier):
    """Interval bound propagation: the loosest and cheapest sound bounds.

    Args:
        epsilons, norm, max_records, batch_size: as for every certifier.
    """

    name = "robustness.ibp"
    summary = "interval bound propagation (sound, loose, cheap)"
    method = "ibp"


@register
class CROWN(_BoundCertifier):
    """CROWN: linear relaxations of each ReLU, back-substituted to the input (Zhang et al.
    2018); sound and tighter than IBP.

    Args:
        epsilons, norm, max_records, batch_size: as for every certifier.
    """

    name = "robustness.crown"
    summary = "CROWN linear bound propagation (sound, tighter than IBP)"
    method = "crown"


@register
class Lipschitz(Certifier):
    """A global Lipschitz margin (GloRo-style, Leino et al. 2021): certified when the margin
    exceeds the pairwise Lipschitz constant times ε; L∞ through ||δ||₂ ≤ √d·||δ||∞.

    Args:
        epsilons, norm, max_records, batch_size: as for every certifier.
    """

    name = "robustness.lipschitz"
    summary = "global Lipschitz margin from layer norms (GloRo-style)"

    def certify(self, ctx, x, y, *, eps, bounds):  # type: ignore[no-untyped-def]
        result = lipschitz_certify(relu_network(ctx), x, eps, self.norm, labels=y)
        return [Certificate("robust" if c else "unknown") for c in result.certified.tolist()]


@register
class Smoothing(Certifier):
    """Randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019): the Gaussian-smoothed
    classifier's prediction with a Clopper–Pearson bound from separate selection and estimation
    samples; certified L2 radius σ·Φ⁻¹(p_lower), abstaining below 1/2. It certifies the smoothed
    classifier, not the target itself, and needs only the target's scores. A record counts as
    certified when the smoothed classifier's class is the true label with a radius of at least
    ε and the target itself also classifies it correctly (a conservative count).

    Args:
        epsilons: L2 radii.
        max_records, batch_size: as for every certifier (``norm`` is always ``"l2"``).
        sigma: the noise's standard deviation.
        n0: selection samples per record.
        n: estimation samples per record.
        alpha: the probability that a certificate is wrong.
    """

    name = "robustness.smoothing"
    summary = (
        "randomized smoothing: certified L2 radius of the smoothed classifier (Cohen et al. 2019)"
    )
    constraints: ClassVar[dict[str, Constraint]] = {
        **_BASE,
        "norm": options("l2"),
        "sigma": interval(0, 1e6),
        "n0": interval(1, 10**9, closed="both", kind=int),
        "n": interval(1, 10**9, closed="both", kind=int),
        "alpha": interval(0, 1),
    }

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.25, 0.5),
        norm: str = "l2",
        max_records: int = 100,
        batch_size: int = 1000,
        sigma: float = 0.25,
        n0: int = 100,
        n: int = 10_000,
        alpha: float = 0.001,
    ) -> None:
        self.sigma = sigma
        self.n0 = n0
        self.n = n
        self.alpha = alpha
        super().__init__(
            epsilons=epsilons, norm=norm, max_records=max_records, batch_size=batch_size
        )

    def requirements(self) -> Requirements:
        return Requirements(roles=frozenset({"test"}), input_bounds=True)

    def certify(self, ctx, x, y, *, eps, bounds):  # type: ignore[no-untyped-def]
        key = hashlib.sha256(x.detach().cpu().numpy().tobytes()).hexdigest()
        result = ctx.shared(
            f"{self.audit_id()}/{self.get_params()}/{key}",
            lambda: smoothing_certify(
                target_model(ctx.target),
                x,
                sigma=self.sigma,
                n0=self.n0,
                n=self.n,
                alpha=self.alpha,
                num_classes=ctx.target.num_classes,
                batch_size=self.batch_size,
                seed=int(ctx.rng(self.audit_id()).integers(2**31)),
            ),
        )
        certified = (result.prediction == y.to(result.prediction.device)) & (result.radius >= eps)
        return [Certificate("robust" if c else "unknown") for c in certified.tolist()]
