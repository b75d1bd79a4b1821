"""The exact checker on planted boundaries: robust just inside the distance, refuted with a valid
witness just outside, in both norms; and a clear error when the L2 solver is missing."""

from __future__ import annotations

import math

import pytest
import torch

from unmeasured.audits.robustness.certify import exact
from unmeasured.audits.robustness.certify.exact import exact_certify, scip_available
from unmeasured.errors import ConfigError, MissingDependencyError

from .conftest import BOX, linear_network, pgd_attack, random_network

# class 0 wins while x0 + x1 < 1.2
DIAGONAL = linear_network([[-1.0, -1.0], [0.0, 0.0]], [1.2, 0.0])
POINT = torch.tensor([0.4, 0.4], dtype=torch.float64)
NORMS = [
    pytest.param("linf", 0.2, id="linf"),
    pytest.param(
        "l2",
        0.4 / math.sqrt(2),
        id="l2",
        marks=pytest.mark.skipif(not scip_available(), reason="pyscipopt is not installed"),
    ),
]


@pytest.mark.parametrize("screen", [True, False])
@pytest.mark.parametrize(("norm", "distance"), NORMS)
def test_planted_boundary_separates_robust_from_refuted(
    norm: str, distance: float, screen: bool
) -> None:
    kept = exact_certify(DIAGONAL, POINT, distance * 0.99, norm, BOX, screen=screen)
    assert kept.verdict == "robust"
    assert kept.regions == (0 if screen else 1)  # CROWN is exact on a linear network
    refuted = exact_certify(DIAGONAL, POINT, distance * 1.01, norm, BOX, screen=screen)
    assert refuted.verdict == "not_robust"
    assert DIAGONAL(refuted.witness[None]).argmax().item() == 1
    step = refuted.witness - POINT
    assert step.norm(p=math.inf if norm == "linf" else 2).item() <= distance * 1.01 + 1e-12


@pytest.mark.parametrize(("norm", "distance"), NORMS)
def test_the_box_is_part_of_the_input_set(norm: str, distance: float) -> None:
    # class 1 wins only beyond x0 = 1.05, outside the box
    network = linear_network([[0.0, 0.0], [1.0, 0.0]], [0.0, -1.05])
    x = torch.tensor([0.9, 0.5], dtype=torch.float64)
    assert exact_certify(network, x, 0.2, norm, BOX).verdict == "robust"
    assert exact_certify(network, x, 0.2, norm, None).verdict == "not_robust"


@pytest.mark.parametrize("seed", range(3))
def test_pgd_never_refutes_a_robust_verdict_on_a_deep_net(seed: int) -> None:
    network = random_network(seed, inputs=4, widths=(12, 12, 12))
    generator = torch.Generator().manual_seed(seed)
    verdicts = set()
    for x in torch.rand(6, 4, generator=generator, dtype=torch.float64):
        certificate = exact_certify(network, x, 0.1, "linf", BOX)
        verdicts.add(certificate.verdict)
        if certificate.verdict == "robust":
            assert pgd_attack(network, x, certificate.label, 0.1, "linf") is None
    assert verdicts <= {"robust", "not_robust"}


def test_a_tiny_time_limit_gives_timeout_not_a_verdict() -> None:
    network = random_network(0, inputs=20, widths=(40, 40, 40))
    x = torch.full((20,), 0.5, dtype=torch.float64)
    assert exact_certify(network, x, 0.5, "linf", BOX, timeout=1e-4).verdict in (
        "timeout",
        "not_robust",
    )


def test_l2_without_pyscipopt_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact, "scip_available", lambda: False)
    with pytest.raises(MissingDependencyError, match=r"unmeasured\[certify\]"):
        exact_certify(DIAGONAL, POINT, 0.1, "l2", BOX)


def test_bad_radius_is_refused() -> None:
    with pytest.raises(ConfigError, match="eps"):
        exact_certify(DIAGONAL, POINT, 0.0, "linf", BOX)
