"""IBP and CROWN: bounds contain every sampled output, CROWN is tighter than IBP, a linear network
is bounded exactly, and nothing certified has a counterexample (exact checker, PGD)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unmeasured.audits.robustness.certify.bounds import (
    bound_certify,
    input_box,
    logit_bounds,
    lp_margin_lower_bounds,
    margin_lower_bounds,
    pre_activation_bounds,
)
from unmeasured.audits.robustness.certify.exact import exact_certify
from unmeasured.audits.robustness.norms import clip_to_box, project_to_ball
from unmeasured.errors import ConfigError

from .conftest import BOX, linear_network, pgd_attack, random_network


def sample_set(
    x: torch.Tensor, eps: float, norm: str, bounds, count: int, seed: int
) -> torch.Tensor:
    """``count`` points per record in the eps ball inside the box: ``(count, n, d)``, half of them
    on the sphere, where the extremes live."""
    generator = torch.Generator().manual_seed(seed)
    n, d = x.shape
    if norm == "linf":
        delta = (torch.rand(count, n, d, generator=generator, dtype=x.dtype) * 2 - 1) * eps
        delta[: count // 2] = delta[: count // 2].sign() * eps
    else:
        delta = torch.randn(count, n, d, generator=generator, dtype=x.dtype)
        delta = delta / delta.norm(dim=-1, keepdim=True) * eps
        delta[count // 2 :] *= torch.rand(
            count - count // 2, n, 1, generator=generator, dtype=x.dtype
        )
    delta = project_to_ball(delta.reshape(-1, d), eps, norm).reshape(count, n, d)
    return clip_to_box(x + delta, bounds)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    eps=st.floats(0.01, 0.5),
    norm=st.sampled_from(["linf", "l2"]),
    boxed=st.booleans(),
    method=st.sampled_from(["ibp", "crown"]),
)
def test_bounds_contain_every_sampled_output(seed, eps, norm, boxed, method) -> None:
    network = random_network(seed, inputs=4, widths=(10, 10))
    bounds = BOX if boxed else None
    x = torch.rand(5, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    layers = pre_activation_bounds(network, x, eps, norm, bounds, method=method)
    samples = sample_set(x, eps, norm, bounds, 400, seed)
    outputs = [z.reshape(400, 5, -1) for z in network.pre_activations(samples.reshape(-1, 4))]
    for (lower, upper), values in zip(layers, outputs, strict=True):
        assert (lower <= upper + 1e-12).all()
        assert (values >= lower - 1e-9).all()
        assert (values <= upper + 1e-9).all()
    labels = network(x).argmax(dim=1)
    margins = margin_lower_bounds(network, x, labels, eps, norm, bounds, method=method)
    sampled_margins = outputs[-1].gather(2, labels[None, :, None].expand(400, 5, 1)) - outputs[-1]
    assert torch.isinf(margins.gather(1, labels[:, None])).all()
    others = torch.isfinite(margins)
    assert (sampled_margins[:, others] >= margins[others] - 1e-9).all()


def test_crown_is_tighter_than_ibp_on_average() -> None:
    widths = {"ibp": [], "crown": []}
    for seed in range(8):
        network = random_network(seed, inputs=4, widths=(16, 16))
        x = torch.rand(10, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        for norm, eps in (("linf", 0.05), ("l2", 0.1)):
            for method in widths:
                lower, upper = logit_bounds(network, x, eps, norm, BOX, method=method)
                widths[method].append((upper - lower).mean().item())
    assert sum(widths["crown"]) < sum(widths["ibp"])
    # every layer-0 bound is exact for both, so CROWN must not lose anywhere on average
    assert (
        sum(c <= i * (1 + 1e-9) for c, i in zip(widths["crown"], widths["ibp"], strict=True)) >= 12
    )


@pytest.mark.parametrize("method", ["ibp", "crown"])
@pytest.mark.parametrize(("norm", "distance"), [("l2", 0.4 / math.sqrt(2)), ("linf", 0.2)])
def test_a_linear_network_is_bounded_exactly(method: str, norm: str, distance: float) -> None:
    # margin of class 0 over class 1 is 1.2 − x0 − x1, so over the ball its minimum is
    # 1.2 − 0.8 − (eps·√2 for L2, 2·eps for L∞) and the boundary lies at `distance`
    network = linear_network([[-1.0, -1.0], [0.0, 0.0]], [1.2, 0.0])
    x = torch.tensor([[0.4, 0.4]], dtype=torch.float64)
    eps = 0.1
    margins = margin_lower_bounds(network, x, torch.tensor([0]), eps, norm, None, method=method)
    reach = eps * (math.sqrt(2) if norm == "l2" else 2)
    assert margins[0, 1].item() == pytest.approx(0.4 - reach, abs=1e-12)
    assert margins[0, 0].item() == math.inf
    certified = bound_certify(
        network, x.expand(2, 2), torch.tensor([0.99, 1.01]) * distance, norm, method=method
    )
    assert certified.certified.tolist() == [True, False]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 0.2), norm=st.sampled_from(["linf", "l2"]))
def test_nothing_certified_has_a_counterexample(seed, eps, norm) -> None:
    network = random_network(seed, widths=(8, 8))
    x = torch.rand(4, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for method in ("ibp", "crown"):
        certificate = bound_certify(network, x, eps, norm, BOX, method=method)
        for record, label, certified in zip(
            x, certificate.labels, certificate.certified, strict=True
        ):
            if not certified:
                continue
            if norm == "linf":
                assert exact_certify(network, record, eps, norm, BOX).verdict == "robust"
            assert pgd_attack(network, record, int(label), eps, norm, restarts=4, steps=30) is None


def test_crown_certifies_what_ibp_certifies_on_a_trained_net(trained) -> None:
    network, points = trained
    ibp = bound_certify(network, points, 0.03, "linf", BOX, method="ibp").certified
    crown = bound_certify(network, points, 0.03, "linf", BOX, method="crown").certified
    assert crown.sum() >= ibp.sum()
    assert crown.sum() > 0


def test_bad_arguments_are_refused() -> None:
    network = random_network(0)
    x = torch.rand(2, 3, dtype=torch.float64)
    with pytest.raises(ConfigError, match="method"):
        logit_bounds(network, x, 0.1, "linf", method="deeppoly")
    with pytest.raises(ConfigError, match="eps"):
        logit_bounds(network, x, -0.1, "linf")
    with pytest.raises(ConfigError, match="norm"):
        logit_bounds(network, x, 0.1, "l1")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.02, 0.4))
def test_the_triangle_program_bounds_soundly_and_at_least_as_tightly_as_crown(seed, eps) -> None:
    """The linear program's margin bound lies below every sampled margin and below the exact
    minimum (the MILP's witness, where it finds one), and never below CROWN's."""
    network = random_network(seed, inputs=4, widths=(10, 10))
    x = torch.rand(1, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    label = int(network(x).argmax())
    rivals = [j for j in range(network.num_classes) if j != label]
    layers = pre_activation_bounds(network, x, eps, "linf", BOX)
    low, high = input_box(x[0], eps, BOX)
    program = lp_margin_lower_bounds(network, low, high, layers[:-1], label, rivals)
    crown = margin_lower_bounds(network, x, torch.tensor([label]), eps, "linf", BOX)[0]
    samples = sample_set(x, eps, "linf", BOX, 2_000, seed).reshape(-1, 4)
    logits = network(samples)
    for j in rivals:
        assert program[j] >= float(crown[j]) - 1e-4 * (1 + abs(float(crown[j])))  # its margin
        assert (logits[:, label] - logits[:, j] >= program[j] - 1e-9).all()
    exact = exact_certify(network, x[0], eps, "linf", BOX)
    if exact.verdict == "robust":
        return
    assert exact.verdict == "not_robust"
    at_witness = network(exact.witness.reshape(1, -1))[0]
    assert min(float(at_witness[label] - at_witness[j]) - program[j] for j in rivals) >= -1e-9


def test_the_triangle_program_is_tighter_than_crown_on_deeper_nets() -> None:
    """Three hidden layers, where tightening the middle layers pays: on 20 random nets at L∞
    0.05 the program's bound beats CROWN's by more than 1e-3 on 31 of the 40 rival pairs, by
    2.0 on average (measured), and nothing it certifies has a PGD counterexample."""
    eps, tighter, gain, pairs = 0.05, 0, 0.0, 0
    for seed in range(20):
        network = random_network(seed, inputs=6, widths=(12, 12, 12))
        x = torch.rand(6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        label = int(network(x[None]).argmax())
        rivals = [j for j in range(network.num_classes) if j != label]
        layers = pre_activation_bounds(network, x[None], eps, "linf", BOX)
        crown = margin_lower_bounds(network, x[None], torch.tensor([label]), eps, "linf", BOX)[0]
        program = lp_margin_lower_bounds(
            network, *input_box(x, eps, BOX), layers[:-1], label, rivals
        )
        for j in rivals:
            pairs += 1
            tighter += program[j] > float(crown[j]) + 1e-3
            gain += program[j] - float(crown[j])
        if all(program[j] > 0 for j in rivals):
            assert pgd_attack(network, x, label, eps, "linf") is None
    assert tighter >= pairs // 2, (tighter, pairs)
    assert gain / pairs > 0.5


def test_l2_bounds_inside_the_box_are_those_of_the_ball_inside_the_box() -> None:
    """``c = (1, −1, −1)`` at ``x = (0, ½, ½)``, L2 radius ½, box [0, 1]: the box alone gives
    ``−1``, the ball alone ``−½√3``; the first coordinate cannot go below 0, so the minimum is
    ``−½√2`` (the other two on a quarter circle), and a linear network's margin is bounded
    exactly there."""
    network = linear_network([[1.0, -1.0, -1.0], [0.0, 0.0, 0.0]], [0.0, 0.0])
    x = torch.tensor([[0.0, 0.5, 0.5]], dtype=torch.float64)
    margins = margin_lower_bounds(network, x, torch.tensor([0]), 0.5, "l2", BOX, method="crown")
    assert margins[0, 1].item() == pytest.approx(-1.0 - 0.5 * math.sqrt(2), abs=1e-9)
    unboxed = margin_lower_bounds(network, x, torch.tensor([0]), 0.5, "l2", None, method="crown")
    assert unboxed[0, 1].item() == pytest.approx(-1.0 - 0.5 * math.sqrt(3), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    dims=st.integers(1, 12),
    radius=st.floats(0.0, 2.0),
    padding=st.sampled_from([0, 48]),
)
def test_the_ball_inside_the_box_bound_is_the_cone_programs_optimum(
    seed, dims, radius, padding
) -> None:
    """Against Clarabel's solution of the same second-order cone program (a sparse ``c``, faces
    at zero distance included, and with ``padding`` zero coefficients the rows of a convolution,
    which take the path for sparse rows): equal within 1e-6, and no sampled point of the set
    lies below."""
    clarabel = pytest.importorskip("clarabel")
    from scipy import sparse

    from unmeasured.audits.robustness.certify.bounds import _ball_in_box_lower

    generator = torch.Generator().manual_seed(seed)

    def draw(size: int = dims) -> torch.Tensor:
        keep = torch.rand(1, size, generator=generator, dtype=torch.float64) > 0.3
        return torch.rand(1, size, generator=generator, dtype=torch.float64) * keep

    c = (torch.randn(1, dims, generator=generator, dtype=torch.float64)) * (draw() > 0)
    a, b = -draw(), draw()
    if padding:
        c = torch.cat([c, torch.zeros(1, padding, dtype=torch.float64)], dim=1)
        a, b = torch.cat([a, -draw(padding)], 1), torch.cat([b, draw(padding)], 1)
        dims = c.shape[1]
    r = torch.tensor([radius], dtype=torch.float64)
    value = float(_ball_in_box_lower(c, a, b, r)[0])
    eye = sparse.identity(dims, format="csc")
    settings_ = clarabel.DefaultSettings()
    settings_.verbose = False
    optimum = (
        clarabel.DefaultSolver(
            sparse.csc_matrix((dims, dims)),
            c[0].numpy(),
            sparse.vstack([eye, -eye, sparse.csc_matrix((1, dims)), -eye]).tocsc(),
            [*b[0].tolist(), *(-a[0]).tolist(), radius, *([0.0] * dims)],
            [clarabel.NonnegativeConeT(2 * dims), clarabel.SecondOrderConeT(dims + 1)],
            settings_,
        )
        .solve()
        .obj_val
    )
    assert value == pytest.approx(optimum, abs=1e-6)
    points = torch.rand(500, dims, generator=generator, dtype=torch.float64) * (b - a) + a
    norms = points.norm(dim=1, keepdim=True)
    points = torch.where(norms > radius, points * radius / norms.clamp_min(1e-300), points)
    assert float((points @ c[0]).min()) >= value - 1e-9
