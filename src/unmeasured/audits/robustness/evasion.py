"""Evasion-attack audits: each is the `EvasionAttack` base plus one call of a method from
`attacks.py`. The base owns the epsilons, the norm, the records, the projection into the ball
and the box, the re-check of every adversarial example on the target, and the robust-accuracy
curve; these classes only choose the method and its hyper-parameters."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from unmeasured.audits.base import AuditContext, Constraint, Requirements, interval, options
from unmeasured.audits.registry import register
from unmeasured.audits.robustness.attacks import LOSSES, Model, apgd, fgsm, pgd, square, worst_case
from unmeasured.audits.robustness.base import EvasionAttack, RobustnessAudit
from unmeasured.audits.robustness.norms import clip_to_box, lp_norm, project_to_ball
from unmeasured.errors import ConfigError

_BASE = RobustnessAudit.constraints
_STEPS = interval(1, 100_000, closed="both", kind=int)
_RESTARTS = interval(1, 1_000, closed="both", kind=int)
_QUERIES = interval(1, 10**7, closed="both", kind=int)


@register
class FGSM(EvasionAttack):
    """One step along the sign (L∞) or direction (L2) of the loss gradient (Goodfellow et al.
    2015): cheap, and weak against anything but a linear model; a floor, not a verdict.

    Args:
        epsilons, norm, max_records, batch_size: as for every evasion attack.
    """

    name = "robustness.fgsm"
    summary = "fast gradient sign method, one step (Goodfellow et al. 2015)"

    def perturb(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        return fgsm(model, x, y, eps=eps, norm=self.norm, bounds=bounds).x_adv


@register
class PGD(EvasionAttack):
    """Projected gradient descent with random restarts (Madry et al. 2018).

    Args:
        epsilons, norm, max_records, batch_size: as for every evasion attack.
        steps: gradient steps per restart.
        restarts: random starts; a record is broken if any start breaks it.
        step_size: the step (default 2.5·ε/steps, strong enough to cross the ball).
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (difference of logits ratio).
    """

    name = "robustness.pgd"
    summary = "projected gradient descent with restarts (Madry et al. 2018)"
    constraints: ClassVar[dict[str, Constraint]] = {
        **_BASE,
        "steps": _STEPS,
        "restarts": _RESTARTS,
        "step_size": Constraint(
            lambda v: (
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0)
            ),
            "None or a positive number",
        ),
        "loss": options("ce", "dlr"),
    }

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 500,
        batch_size: int = 256,
        steps: int = 40,
        restarts: int = 1,
        step_size: float | None = None,
        loss: str = "ce",
    ) -> None:
        self.steps = steps
        self.restarts = restarts
        self.step_size = step_size
        self.loss = loss
        super().__init__(
            epsilons=epsilons, norm=norm, max_records=max_records, batch_size=batch_size
        )

    def perturb(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        return pgd(
            model,
            x,
            y,
            eps=eps,
            norm=self.norm,
            steps=self.steps,
            step_size=self.step_size,
            restarts=self.restarts,
            loss=self.loss,
            bounds=bounds,
            generator=generator,
        ).x_adv


@register
class APGD(EvasionAttack):
    """Auto-PGD (Croce & Hein, ICML 2020): momentum, a checkpoint schedule that halves the step
    when progress stalls, and cross-entropy or targeted DLR loss.

    Args:
        epsilons, norm, max_records, batch_size: as for every evasion attack.
        steps: iterations per run.
        loss: ``"ce"``, ``"dlr"`` or ``"targeted-dlr"`` (APGD-T: one run per target class).
        target_classes: for ``"targeted-dlr"``, how many of the highest other classes to target.
        restarts: random starts.
    """

    name = "robustness.apgd"
    summary = "auto-PGD with CE or targeted DLR loss (Croce & Hein 2020)"
    variant_params = ("norm", "loss")
    constraints: ClassVar[dict[str, Constraint]] = {
        **_BASE,
        "steps": _STEPS,
        "loss": options(*LOSSES),
        "target_classes": interval(1, 10_000, closed="both", kind=int),
        "restarts": _RESTARTS,
    }

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 500,
        batch_size: int = 256,
        steps: int = 100,
        loss: str = "ce",
        target_classes: int = 9,
        restarts: int = 1,
    ) -> None:
        self.steps = steps
        self.loss = loss
        self.target_classes = target_classes
        self.restarts = restarts
        super().__init__(
            epsilons=epsilons, norm=norm, max_records=max_records, batch_size=batch_size
        )

    def perturb(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        return apgd(
            model,
            x,
            y,
            eps=eps,
            norm=self.norm,
            steps=self.steps,
            loss=self.loss,
            target_classes=self.target_classes,
            restarts=self.restarts,
            bounds=bounds,
            generator=generator,
        ).x_adv


@register
class Square(EvasionAttack):
    """The Square attack (Andriushchenko et al., ECCV 2020): random square-shaped updates kept
    when they lower the margin; needs only the target's scores, so it also runs on ONNX models,
    scikit-learn models and prediction endpoints.

    Args:
        epsilons, norm, max_records, batch_size: as for every evasion attack.
        queries: the query budget per record.
    """

    name = "robustness.square"
    summary = "score-based black-box attack with a query budget (Andriushchenko et al. 2020)"
    needs_gradients = False
    constraints: ClassVar[dict[str, Constraint]] = {**_BASE, "queries": _QUERIES}

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 500,
        batch_size: int = 256,
        queries: int = 5000,
    ) -> None:
        self.queries = queries
        super().__init__(
            epsilons=epsilons, norm=norm, max_records=max_records, batch_size=batch_size
        )

    def perturb(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return square(
                model,
                x,
                y,
                eps=eps,
                norm=self.norm,
                queries=self.queries,
                bounds=bounds,
                generator=generator,
            ).x_adv


@register
class WorstCase(EvasionAttack):
    """The worst case over APGD-CE, APGD-T and Square, in the spirit of AutoAttack: a record is
    robust only if every attack fails on it, so it is never weaker than its strongest member.

    Args:
        epsilons, norm, max_records, batch_size: as for every evasion attack.
        steps: iterations of each APGD run.
        queries: Square's query budget per record.
    """

    name = "robustness.worst_case"
    summary = "worst case over APGD-CE, APGD-T and Square (AutoAttack-style)"
    constraints: ClassVar[dict[str, Constraint]] = {**_BASE, "steps": _STEPS, "queries": _QUERIES}

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 500,
        batch_size: int = 256,
        steps: int = 100,
        queries: int = 5000,
    ) -> None:
        self.steps = steps
        self.queries = queries
        super().__init__(
            epsilons=epsilons, norm=norm, max_records=max_records, batch_size=batch_size
        )

    def perturb(self, model: Model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        common = {"eps": eps, "norm": self.norm, "bounds": bounds, "generator": generator}
        attacks = [
            functools.partial(apgd, steps=self.steps, loss="ce", **common),
            functools.partial(apgd, steps=self.steps, loss="targeted-dlr", **common),
            functools.partial(square, queries=self.queries, **common),
        ]
        return worst_case(model, x, y, attacks).x_adv


@register
class Transfer(EvasionAttack):
    """A transfer attack: a surrogate trained through the recipe, labelled by the target's own
    predictions (what an attacker with query access can do), is attacked with PGD, and the
    adversarial examples are replayed on the target. Needs only the target's labels, so it also
    measures black-box targets. The surrogate trains on the population when one is given, else
    on the test records that are not attacked (then at most half of the test set is attacked).

    Args:
        epsilons, norm, max_records, batch_size: as for every evasion attack.
        steps: PGD steps on the surrogate.
        labels: ``"target"`` (the surrogate learns the target's predictions) or ``"true"``.
    """

    name = "robustness.transfer"
    summary = "PGD on a surrogate trained through the recipe, replayed on the target"
    needs_gradients = False
    constraints: ClassVar[dict[str, Constraint]] = {
        **_BASE,
        "steps": _STEPS,
        "labels": options("target", "true"),
    }

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 500,
        batch_size: int = 256,
        steps: int = 40,
        labels: str = "target",
    ) -> None:
        self.steps = steps
        self.labels = labels
        super().__init__(
            epsilons=epsilons, norm=norm, max_records=max_records, batch_size=batch_size
        )

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset({"labels"}),
            roles=frozenset({"test"}),
            recipe=True,
            input_bounds=True,
        )

    def test_records(self, ctx: AuditContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if ctx.data.population is not None:
            return super().test_records(ctx)
        test = ctx.records("test")
        attacked = self._attacked(ctx)
        return test.x[attacked], test.y[attacked], attacked

    def _attacked(self, ctx: AuditContext) -> np.ndarray:
        """Without a population: the test records attacked (at most half), the rest trains the
        surrogate."""
        n = len(ctx.records("test"))
        order = ctx.rng("robustness/transfer-split").permutation(n)
        return np.sort(order[: min(self.max_records, n // 2)])

    def attack_model(self, ctx: AuditContext) -> Model:
        def train() -> Model:
            if ctx.data.population is not None:
                pool = ctx.records("population")
            else:
                test = ctx.records("test")
                pool = test.subset(np.setdiff1d(np.arange(len(test)), self._attacked(ctx)))
            labels = ctx.target.predict_labels(pool.x) if self.labels == "target" else pool.y
            seed = int(ctx.rng(f"{self.audit_id()}/surrogate").integers(2**31))
            surrogate = ctx.recipe.fit(
                pool.x, labels, num_classes=ctx.target.num_classes, seed=seed
            )
            if not isinstance(surrogate, torch.nn.Module):
                raise ConfigError(
                    f"recipe: robustness.transfer needs a torch recipe to attack its surrogate; "
                    f"{type(ctx.recipe).__name__} trains a {type(surrogate).__name__}"
                )
            surrogate.eval()
            device = getattr(ctx.target, "device", torch.device("cpu"))
            return surrogate.to(device)  # type: ignore[no-any-return]

        source = "population" if ctx.data.population is not None else f"test/{self.max_records}"
        return ctx.shared(f"surrogate/{source}/{self.labels}/{ctx.recipe!r}", train)

    def perturb(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        return pgd(
            model,
            x,
            y,
            eps=eps,
            norm=self.norm,
            steps=self.steps,
            bounds=bounds,
            generator=generator,
        ).x_adv


@register
class Universal(EvasionAttack):
    """A universal perturbation (Moosavi-Dezfooli et al., CVPR 2017): one perturbation for all
    records, fitted by projected gradient ascent on the mean loss over the attacked records and
    then added to each of them. It measures how much of the model's fragility is shared across
    inputs; it is fitted on the records it is evaluated on.

    Args:
        epsilons, norm, max_records, batch_size: as for every evasion attack.
        steps: gradient steps of the fit.
    """

    name = "robustness.universal"
    summary = "one perturbation for every record (Moosavi-Dezfooli et al. 2017)"
    constraints: ClassVar[dict[str, Constraint]] = {**_BASE, "steps": _STEPS}

    def __init__(
        self,
        *,
        epsilons: Sequence[float] = (0.01, 0.03),
        norm: str = "linf",
        max_records: int = 500,
        batch_size: int = 256,
        steps: int = 100,
    ) -> None:
        self.steps = steps
        super().__init__(
            epsilons=epsilons, norm=norm, max_records=max_records, batch_size=batch_size
        )

    def prepare(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        delta = torch.zeros_like(x[:1])
        step = 2.5 * eps / self.steps
        for _ in range(self.steps):
            delta.requires_grad_(True)
            with torch.enable_grad():
                adv = clip_to_box(x + delta, bounds)
                loss = torch.nn.functional.cross_entropy(model(adv), y)
                (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                if self.norm == "linf":
                    direction = grad.sign()
                else:
                    direction = grad / lp_norm(grad, "l2").clamp_min(1e-12).reshape(
                        -1, *[1] * (grad.dim() - 1)
                    )
                delta = project_to_ball(delta + step * direction, eps, self.norm)
        self.delta_ = delta.detach()

    def perturb(self, model, x, y, *, eps, bounds, generator):  # type: ignore[no-untyped-def]
        return clip_to_box(x + self.delta_, bounds)
