"""Evasion attacks as pure functions: FGSM, PGD, APGD (CE and targeted DLR), Square, a worst-case
ensemble and a per-record minimal adversarial distance by bisection.

Every attack takes a ``model`` (any callable from a float batch to logits ``(n, C)``; it is only
called, never modified or switched between train and eval), clean inputs ``x`` and labels ``y``,
a radius ``eps`` (a float, or one radius per record) in the ``norm`` (``"linf"`` or ``"l2"``) and
an optional input box ``bounds = (low, high)``. It returns an `AttackOutput` whose adversarial
batch always lies inside the ball and the box, and whose ``success`` is re-measured on that batch:
a record counts as broken only if the model misclassifies the returned example.

All geometry goes through `unmeasured.audits.robustness.norms`. Gradients are taken with
``torch.enable_grad()`` with respect to the input only, so callers may hold ``torch.no_grad()``.

The methods are written here rather than taken from a peer because none fits: the APGD
reference code is not on PyPI, ART converts every batch to NumPy, and torchattacks pins old
dependencies; all three are compared with these in ``bench/bench_robustness.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unmeasured.audits.robustness.norms import (
    check_norm,
    clip_to_box,
    lp_norm,
    project_to_ball,
)
from unmeasured.errors import ConfigError, DataError, one_of

Model = Callable[[torch.Tensor], torch.Tensor]
Bounds = tuple[float, float] | None
#: an attack with its hyper-parameters bound, e.g. ``functools.partial(pgd, eps=0.1)``
Attack = Callable[..., "AttackOutput"]

LOSSES = ("ce", "dlr", "targeted-dlr")
#: APGD's momentum weight and its step-size test threshold (Croce & Hein 2020, section 3)
APGD_MOMENTUM = 0.75
APGD_RHO = 0.75


@dataclass(frozen=True)
class AttackOutput:
    """What an attack found.

    Attributes:
        x_adv: the adversarial batch, same shape as the input, inside the ball and the box.
        success: bool ``(n,)``, True where the model misclassifies ``x_adv`` (measured on it).
        queries: int ``(n,)``, model evaluations spent per record by a score-based attack;
            None for gradient attacks, whose cost is fixed by their steps.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    queries: torch.Tensor | None = None


# --------------------------------------------------------------------------- shared pieces


def _check_inputs(
    x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, norm: str, bounds: Bounds
) -> torch.Tensor:
    """Validate the common arguments; return ``eps`` as a tensor (scalar or ``(n,)``)."""
    check_norm(norm)
    if x.dim() < 2 or len(x) != len(y):
        raise DataError(
            f"x: expected a batch (n, ...) with one label per record; got x "
            f"{tuple(x.shape)} and y {tuple(y.shape)}"
        )
    radius = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if radius.dim() > 1 or (radius.dim() == 1 and len(radius) != len(x)):
        raise ConfigError(
            f"eps: expected a number or one radius per record ({len(x)}); "
            f"got shape {tuple(radius.shape)}"
        )
    if (radius < 0).any() or not torch.isfinite(radius).all():
        raise ConfigError("eps: must be finite and >= 0")
    if bounds is not None:
        low, high = float(bounds[0]), float(bounds[1])
        if not low < high:
            raise ConfigError(f"bounds: low must be below high; got {bounds}")
        # float rounding in a user's preprocessing may overshoot the box by a hair
        slack = 1e-6 * (high - low)
        if len(x) and (x.min() < low - slack or x.max() > high + slack):
            raise DataError(
                f"x: values lie outside bounds {bounds}; attacks need clean inputs "
                f"inside the input box"
            )
    return radius


def _per_record(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a scalar or ``(n,)`` tensor to broadcast over records of ``like``."""
    return values.reshape(-1, *([1] * (like.dim() - 1))) if values.dim() else values


def _into_region(
    x_new: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str, bounds: Bounds
) -> torch.Tensor:
    """Project onto the ball around ``x`` then clip into the box.

    Clipping after projection keeps the point in the ball because ``x`` is in the box: clipping
    moves every coordinate towards ``x``'s side, so no coordinate of the perturbation grows.
    """
    return clip_to_box(x + project_to_ball(x_new - x, eps, norm), bounds)


def _steepest_step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm ascent direction: the sign for L∞, the normalised gradient for L2."""
    if norm == "linf":
        return grad.sign()
    length = _per_record(lp_norm(grad, "l2"), grad)
    return grad / length.clamp_min(1e-12)


def _random_start(
    x: torch.Tensor, eps: torch.Tensor, norm: str, bounds: Bounds, generator: torch.Generator | None
) -> torch.Tensor:
    """A point drawn uniformly from the ``norm`` ball around ``x``, clipped into the box."""
    if norm == "linf":
        unit = torch.rand(x.shape, generator=generator).to(x) * 2 - 1
    else:
        direction = torch.randn(x.shape, generator=generator).to(x)
        direction = direction / _per_record(lp_norm(direction, "l2"), x).clamp_min(1e-12)
        dimension = x[0].numel() if len(x) else 1
        radius = torch.rand(len(x), generator=generator).to(x)
        unit = direction * _per_record(radius ** (1.0 / dimension), x)
    return _into_region(x + unit * _per_record(eps, x), x, eps, norm, bounds)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per record: negative exactly when the record is misclassified
    (ties aside)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - others.amax(dim=1)


def _loss_values(
    logits: torch.Tensor, y: torch.Tensor, loss: str, target: torch.Tensor | None
) -> torch.Tensor:
    """Per-record loss to maximise.

    ``"dlr"`` is the difference of logits ratio of Croce & Hein (2020), -(z_y - max_{j≠y} z_j) /
    (z_π1 - z_π3); ``"targeted-dlr"`` is -(z_y - z_t) / (z_π1 - (z_π3 + z_π4)/2), with π the
    logits sorted in decreasing order. Both are invariant to shifting and scaling the logits.
    With too few classes for the denominator (3 and 4 respectively), the plain margin is used.
    """
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    ordered = logits.sort(dim=1, descending=True).values
    classes = logits.shape[1]
    if loss == "dlr":
        numerator = -margin(logits, y)
        scale = ordered[:, 0] - ordered[:, 2] if classes >= 3 else None
    else:
        if target is None:
            raise ConfigError("loss: 'targeted-dlr' needs a target class per record")
        numerator = logits.gather(1, target[:, None]).squeeze(1) - logits.gather(
            1, y[:, None]
        ).squeeze(1)
        scale = ordered[:, 0] - (ordered[:, 2] + ordered[:, 3]) / 2 if classes >= 4 else None
    return numerator if scale is None else numerator / (scale + 1e-12)


def _loss_and_gradient(
    model: Model, x: torch.Tensor, y: torch.Tensor, loss: str, target: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-record loss, its gradient with respect to ``x`` and the logits, without touching
    the model's parameters' ``.grad``."""
    with torch.enable_grad():
        x_var = x.detach().requires_grad_(True)
        logits = model(x_var)
        values = _loss_values(logits, y, loss, target)
        (grad,) = torch.autograd.grad(values.sum(), x_var)
    return values.detach(), grad.detach(), logits.detach()


class _Best:
    """Per-record best point seen: a misclassified one if any (the first found), else the one
    with the highest score."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x.clone()
        self.score = torch.full((len(x),), float("-inf"), device=x.device, dtype=x.dtype)
        self.fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)

    def update(self, x: torch.Tensor, score: torch.Tensor, fooled: torch.Tensor) -> None:
        take = (fooled & ~self.fooled) | (~self.fooled & ~fooled & (score > self.score))
        self.x[take] = x[take]
        self.score = torch.where(take, score, self.score)
        self.fooled |= fooled


def _finish(
    model: Model, x_adv: torch.Tensor, y: torch.Tensor, queries: torch.Tensor | None = None
) -> AttackOutput:
    """Re-measure success on the returned batch so that ``success`` never over-claims."""
    with torch.no_grad():
        predicted = model(x_adv).argmax(dim=1)
    return AttackOutput(x_adv=x_adv.detach(), success=predicted != y, queries=queries)


def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ConfigError(f"loss: unknown loss {loss!r}; choose {one_of(LOSSES)}")


def _check_positive(value: int, field: str) -> None:
    if int(value) < 1:
        raise ConfigError(f"{field}: must be an integer >= 1; got {value}")


# --------------------------------------------------------------------------- FGSM


def fgsm(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    norm: str = "linf",
    bounds: Bounds = None,
) -> AttackOutput:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of length ``eps`` along the
    steepest-ascent direction of the cross-entropy (the gradient's sign for L∞, the normalised
    gradient for L2; the latter is often called FGM).

    On a linear model without input box this step is the exact worst case in the ball, so it
    breaks every record whose distance to the boundary is below ``eps``.

    Args:
        model: callable mapping a float batch to logits ``(n, C)``.
        x: clean inputs ``(n, ...)``, inside ``bounds``.
        y: true labels ``(n,)``.
        eps: radius (a float or ``(n,)``).
        norm: ``"linf"`` or ``"l2"``.
        bounds: the input box ``(low, high)``, or None.

    Returns:
        `AttackOutput` with the adversarial batch and per-record success.

    Raises:
        ConfigError: on an unknown norm or a negative radius.
        DataError: when ``x`` and ``y`` disagree in length or ``x`` is outside ``bounds``.
    """
    radius = _check_inputs(x, y, eps, norm, bounds)
    _, grad, _ = _loss_and_gradient(model, x, y, "ce")
    step = _steepest_step(grad, norm) * _per_record(radius, x)
    return _finish(model, _into_region(x + step, x, radius, norm, bounds), y)


# --------------------------------------------------------------------------- PGD


def default_pgd_step(eps: float | torch.Tensor, steps: int) -> float | torch.Tensor:
    """PGD's default step: ``2.5·eps/steps``, so that the steps together can cross the ball
    (diameter ``2·eps``) with room to spare. Foolbox's ``0.033·eps`` cannot, with few steps."""
    return 2.5 * eps / steps


def pgd(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    norm: str = "linf",
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    loss: str = "ce",
    bounds: Bounds = None,
    generator: torch.Generator | None = None,
) -> AttackOutput:
    """Projected gradient descent (Madry et al. 2018): ``steps`` steepest-ascent steps on the
    loss, each projected back onto the ball and the box, from a random start in the ball.

    Every iterate of every restart is a candidate: per record, the first misclassified one is
    kept, else the one with the highest loss.

    Args:
        model, x, y, eps, norm, bounds: as in `fgsm`.
        steps: gradient steps per restart.
        step_size: length of each step in ``norm``; default `default_pgd_step`
            (``2.5·eps/steps``), relative to each record's radius.
        restarts: independent runs from fresh random starts (the first starts at ``x`` when
            ``random_start`` is False).
        random_start: start from a uniform point of the ball rather than from ``x``.
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (difference of logits ratio).
        generator: source of the random starts.

    Returns:
        `AttackOutput` with the best adversarial batch and per-record success.

    Raises:
        ConfigError: on an unknown norm or loss, a negative radius, or steps/restarts < 1.
        DataError: as in `fgsm`.
    """
    radius = _check_inputs(x, y, eps, norm, bounds)
    _check_positive(steps, "steps")
    _check_positive(restarts, "restarts")
    if loss not in ("ce", "dlr"):
        raise ConfigError(f"loss: PGD takes 'ce' or 'dlr'; got {loss!r}")
    alpha = _per_record(
        torch.as_tensor(
            default_pgd_step(radius, steps) if step_size is None else step_size,
            dtype=x.dtype,
            device=x.device,
        ),
        x,
    )
    best = _Best(x)
    for restart in range(restarts):
        start_randomly = random_start or restart > 0
        x_adv = _random_start(x, radius, norm, bounds, generator) if start_randomly else x.clone()
        for _ in range(steps):
            values, grad, logits = _loss_and_gradient(model, x_adv, y, loss)
            best.update(x_adv, values, logits.argmax(dim=1) != y)
            x_adv = _into_region(
                x_adv + alpha * _steepest_step(grad, norm), x, radius, norm, bounds
            )
        with torch.no_grad():
            logits = model(x_adv)
        best.update(x_adv, _loss_values(logits, y, loss, None), logits.argmax(dim=1) != y)
    return _finish(model, best.x, y)


# --------------------------------------------------------------------------- APGD


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step: ``ceil(p_j·steps)`` with ``p_0 = 0``,
    ``p_1 = 0.22`` and ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` (Croce & Hein 2020).

    Example:
        >>> apgd_checkpoints(100)
        [0, 22, 41, 57, 70, 80, 87, 93, 99]
    """
    fractions = [0.0, 0.22]
    while fractions[-1] < 1.0:
        fractions.append(fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06))
    # rounding first keeps float error (0.57 summing to 0.5700000001) from moving a mark
    marks = sorted({math.ceil(round(p * steps, 9)) for p in fractions if p <= 1.0})
    return [m for m in marks if m < steps]


def _apgd_run(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    radius: torch.Tensor,
    norm: str,
    steps: int,
    loss: str,
    target: torch.Tensor | None,
    bounds: Bounds,
    generator: torch.Generator | None,
    best: _Best,
) -> None:
    """One APGD run from a random start, feeding every iterate to ``best``."""
    eps_b = _per_record(radius, x)
    checkpoints = set(apgd_checkpoints(steps)[1:])

    def evaluate(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grad, logits = _loss_and_gradient(model, point, y, loss, target)
        best.update(
            point, -margin(logits, y) if target is not None else values, logits.argmax(dim=1) != y
        )
        return values, grad

    x_cur = _random_start(x, radius, norm, bounds, generator)
    f_cur, grad = evaluate(x_cur)
    # the step starts at 2·eps (the ball's diameter) and only ever halves
    eta = (2 * eps_b).expand(len(x), *([1] * (x.dim() - 1))).clone()
    x_max, f_max, grad_max = x_cur.clone(), f_cur.clone(), grad.clone()
    x_prev = x_cur.clone()
    increases = torch.zeros(len(x), device=x.device)
    last_mark, eta_at_mark, f_max_at_mark = 0, eta.clone(), f_max.clone()
    for k in range(1, steps):
        z = _into_region(x_cur + eta * _steepest_step(grad, norm), x, radius, norm, bounds)
        weight = APGD_MOMENTUM if k > 1 else 1.0
        x_next = _into_region(
            x_cur + weight * (z - x_cur) + (1 - weight) * (x_cur - x_prev), x, radius, norm, bounds
        )
        x_prev, x_cur = x_cur, x_next
        f_new, grad = evaluate(x_cur)
        increases += (f_new > f_cur).to(increases.dtype)
        f_cur = f_new
        improved = f_cur > f_max
        x_max[improved], grad_max[improved] = x_cur[improved], grad[improved]
        f_max = torch.where(improved, f_cur, f_max)
        if k in checkpoints:
            # condition 1: too few of the steps since the last checkpoint increased the loss;
            # condition 2: neither the step nor the best loss changed since the last checkpoint
            too_few = increases < APGD_RHO * (k - last_mark)
            stalled = (eta.reshape(len(x), -1)[:, 0] == eta_at_mark.reshape(len(x), -1)[:, 0]) & (
                f_max == f_max_at_mark
            )
            halve = too_few | stalled
            eta_at_mark, f_max_at_mark = eta.clone(), f_max.clone()
            eta[halve] = eta[halve] / 2
            # a halved run continues from its best point, with no momentum carried over
            x_cur[halve], x_prev[halve], grad[halve] = x_max[halve], x_max[halve], grad_max[halve]
            f_cur = torch.where(halve, f_max, f_cur)
            increases.zero_()
            last_mark = k


def apgd(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    norm: str = "linf",
    steps: int = 100,
    loss: str = "ce",
    target_classes: int = 9,
    restarts: int = 1,
    bounds: Bounds = None,
    generator: torch.Generator | None = None,
) -> AttackOutput:
    """Auto-PGD (Croce & Hein, ICML 2020): PGD with momentum 0.75, a step that starts at
    ``2·eps`` and halves at checkpoints when the loss stops increasing (fewer than 75% of the
    steps since the last checkpoint increased it, or neither the step nor the best loss
    changed), restarting from the best point. No step size to tune.

    Args:
        model, x, y, eps, norm, bounds: as in `fgsm`.
        steps: iterations per run (the paper uses 100).
        loss: ``"ce"`` (APGD-CE), ``"dlr"`` (untargeted difference of logits ratio) or
            ``"targeted-dlr"`` (APGD-T: one run per target class, the ``target_classes``
            highest-scoring wrong classes of the clean input, in turn).
        target_classes: how many target classes APGD-T tries (capped at C - 1; AutoAttack
            uses 9).
        restarts: random restarts per run (per target for APGD-T).
        generator: source of the random starts.

    Returns:
        `AttackOutput`; per record the first misclassified iterate over all runs, else the
        point with the highest loss (APGD-T: the smallest margin).

    Raises:
        ConfigError: on an unknown norm or loss, a negative radius, steps, restarts or
            target_classes < 1.
        DataError: as in `fgsm`.
    """
    radius = _check_inputs(x, y, eps, norm, bounds)
    _check_loss(loss)
    for value, field in (
        (steps, "steps"),
        (restarts, "restarts"),
        (target_classes, "target_classes"),
    ):
        _check_positive(value, field)
    best = _Best(x)
    if loss != "targeted-dlr":
        for _ in range(restarts):
            _apgd_run(model, x, y, radius, norm, steps, loss, None, bounds, generator, best)
        return _finish(model, best.x, y)
    with torch.no_grad():
        clean_logits = model(x)
    ranked = clean_logits.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
    for rank in range(min(target_classes, clean_logits.shape[1] - 1)):
        for _ in range(restarts):
            _apgd_run(
                model, x, y, radius, norm, steps, loss, ranked[:, rank], bounds, generator, best
            )
    return _finish(model, best.x, y)


# --------------------------------------------------------------------------- Square


def _square_fraction(p_init: float, iteration: int, budget: int) -> float:
    """Square's schedule for the fraction of the input a window covers: halved at iterations
    10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10,000-query run, rescaled to
    ``budget`` (Andriushchenko et al. 2020, appendix)."""
    scaled = int(iteration / budget * 10_000)
    halvings = sum(scaled > mark for mark in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2**halvings


def _window(
    shape: torch.Size, fraction: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """A bool mask of one record's shape: for images ``(C, H, W)`` a random square covering
    about ``fraction`` of each channel, in every channel; for any other shape a random subset
    of about ``fraction`` of the coordinates (there is no neighbourhood to make a square of)."""
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    if len(shape) == 3:
        height, width = shape[1], shape[2]
        side = max(1, min(height, width, round(math.sqrt(fraction * height * width))))
        top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
        mask[:, top : top + side, left : left + side] = True
        return mask
    count = max(1, round(fraction * mask.numel()))
    chosen = torch.randperm(mask.numel(), generator=generator)[:count].to(device)
    mask.view(-1)[chosen] = True
    return mask


def _signs(
    shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    """Random ±1 of ``shape``, drawn on the CPU generator and moved to ``like``'s device."""
    return torch.randint(0, 2, shape, generator=generator).to(like) * 2 - 1


def square(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    norm: str = "linf",
    queries: int = 5000,
    p_init: float | None = None,
    bounds: Bounds = None,
    generator: torch.Generator | None = None,
) -> AttackOutput:
    """Square attack (Andriushchenko et al., ECCV 2020): score-based random search that needs
    only the logits. Each iteration proposes a change inside one random square window (for
    non-image inputs, a random subset of coordinates) and keeps it for the records whose margin
    ``z_y - max_{j≠y} z_j`` it lowers; records stop querying once misclassified.

    L∞ starts from vertical stripes of ±eps and sets the window to ±eps with one random sign per
    channel. L2 starts from random ±1 pulses scaled to the sphere of radius eps and adds to the
    window a pulse of random sign per channel whose size matches the window's current
    perturbation, then rescales the whole perturbation back to the sphere; the reference's
    exchange of mass between two windows is not reproduced.

    Args:
        model, x, y, eps, norm, bounds: as in `fgsm`.
        queries: the query budget per record, the initial evaluation included.
        p_init: initial fraction of the input a window covers (default 0.05 for L∞ and 0.1
            for L2, the paper's settings for ImageNet-sized and CIFAR-sized inputs).
        generator: source of all the randomness.

    Returns:
        `AttackOutput` with ``queries``: the model evaluations spent per record (an already
        misclassified clean record costs one).

    Raises:
        ConfigError: on an unknown norm, a negative radius, ``queries < 1`` or ``p_init``
            outside (0, 1].
        DataError: as in `fgsm`.
    """
    radius = _check_inputs(x, y, eps, norm, bounds)
    _check_positive(queries, "queries")
    fraction0 = p_init if p_init is not None else (0.05 if norm == "linf" else 0.1)
    if not 0 < fraction0 <= 1:
        raise ConfigError(f"p_init: must lie in (0, 1]; got {fraction0}")
    eps_b = _per_record(radius, x)
    is_image = x.dim() == 4

    def evaluate(points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return margin(model(points), labels)

    if norm == "linf":
        stripes = (len(x), x.shape[1], 1, x.shape[3]) if is_image else tuple(x.shape)
        delta = _signs(stripes, generator, x) * eps_b
    else:
        delta = _signs(tuple(x.shape), generator, x)
        delta = delta / _per_record(lp_norm(delta, "l2"), x) * eps_b
    x_best = _into_region(x + delta, x, radius, norm, bounds)
    best_margin = evaluate(x_best, y)
    spent = torch.ones(len(x), dtype=torch.long, device=x.device)
    for iteration in range(1, queries):
        active = (best_margin > 0).nonzero().squeeze(1)
        if len(active) == 0:
            break
        mask = _window(
            x.shape[1:], _square_fraction(fraction0, iteration, queries), generator, x.device
        )
        x_act, delta_act = x[active], (x_best - x)[active]
        eps_act = eps_b[active] if eps_b.dim() else eps_b
        sign_shape = (len(active), x.shape[1], 1, 1) if is_image else (len(active), *x.shape[1:])
        signs = _signs(sign_shape, generator, x)
        if norm == "linf":
            candidate = torch.where(mask, signs * eps_act, delta_act)
        else:
            # a pulse as large as what the window holds now, or a fair share of the budget
            inside_window = _per_record(lp_norm(delta_act * mask, "l2"), x_act)
            share = eps_act * math.sqrt(mask.sum().item() / mask.numel())
            pulse = torch.maximum(inside_window, share.expand_as(inside_window))
            window_size = math.sqrt(mask.sum().item() / (x.shape[1] if is_image else 1))
            candidate = delta_act + mask * signs * pulse / max(window_size, 1.0)
            candidate = (
                candidate / _per_record(lp_norm(candidate, "l2"), x_act).clamp_min(1e-12) * eps_act
            )
        eps_active = radius[active] if radius.dim() else radius
        x_new = _into_region(x_act + candidate, x_act, eps_active, norm, bounds)
        new_margin = evaluate(x_new, y[active])
        spent[active] += 1
        better = new_margin < best_margin[active]
        improved = active[better]
        x_best[improved] = x_new[better]
        best_margin[improved] = new_margin[better]
    return _finish(model, x_best, y, queries=spent)


# --------------------------------------------------------------------------- ensembles, distance


def worst_case(
    model: Model, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[Attack]
) -> AttackOutput:
    """Run every attack on every record; a record is robust only if every attack fails.

    Each attack runs on the whole batch, so the ensemble breaks every record any member breaks
    on its own: it is never weaker than its strongest member (at the price of running attacks
    on records already broken).

    Args:
        model: as in `fgsm`.
        x, y: clean inputs and labels.
        attacks: callables ``attack(model, x, y) -> AttackOutput`` with their settings bound,
            e.g. ``functools.partial(apgd, eps=0.1, loss="targeted-dlr")``.

    Returns:
        `AttackOutput` holding per record the first successful member's example (the first
        member's where none succeeds); ``queries`` sums the members' counts where they report
        them.

    Raises:
        ConfigError: when ``attacks`` is empty.
    """
    if not attacks:
        raise ConfigError("attacks: give at least one attack")
    outputs = [attack(model, x, y) for attack in attacks]
    x_adv = outputs[0].x_adv.clone()
    broken = outputs[0].success.clone()
    for output in outputs[1:]:
        take = output.success & ~broken
        x_adv[take] = output.x_adv[take]
        broken |= take
    counted = [o.queries for o in outputs if o.queries is not None]
    total = torch.stack(counted).sum(dim=0) if counted else None
    return _finish(model, x_adv, y, queries=total)


def minimal_distance(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack,
    *,
    norm: str,
    eps_max: float,
    iterations: int = 12,
) -> torch.Tensor:
    """Per-record smallest adversarial distance an attack finds, by bisection over ``eps``.

    Each iteration runs ``attack(model, x, y, eps=radii)`` once on the whole batch with one
    radius per record. A record's result is the norm of the closest adversarial example found
    (an upper bound on its true minimal distance, within ``eps_max / 2**iterations`` of what the
    attack can reach); ``inf`` where the attack fails even at ``eps_max``, ``0`` where the clean
    input is already misclassified.

    Args:
        model: as in `fgsm`.
        x, y: clean inputs and labels.
        attack: an attack taking ``eps`` per record, its other settings bound (``norm`` too).
        norm: the norm the distances are measured in (the attack's).
        eps_max: the largest radius tried.
        iterations: bisection steps.

    Returns:
        float ``(n,)`` distances.

    Raises:
        ConfigError: on an unknown norm, ``eps_max <= 0`` or ``iterations < 1``.
    """
    check_norm(norm)
    if not eps_max > 0:
        raise ConfigError(f"eps_max: must be > 0; got {eps_max}")
    _check_positive(iterations, "iterations")
    with torch.no_grad():
        wrong = model(x).argmax(dim=1) != y
    found = torch.where(wrong, 0.0, float("inf")).to(device=x.device, dtype=x.dtype)
    low = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    high = torch.full_like(low, eps_max)
    output = attack(model, x, y, eps=high)
    reached = output.success & ~wrong
    found[reached] = lp_norm(output.x_adv - x, norm)[reached]
    for _ in range(iterations):
        middle = (low + high) / 2
        output = attack(model, x, y, eps=middle)
        hit = output.success & reached
        found[hit] = torch.minimum(found[hit], lp_norm(output.x_adv - x, norm)[hit])
        high = torch.where(hit, middle, high)
        low = torch.where(hit, low, middle)
    return found
