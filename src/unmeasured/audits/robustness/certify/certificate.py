"""The per-record answer of the complete and incomplete-but-exact-witness certifiers (FGP, the
MILP): a verdict, the witness that refutes robustness when there is one, and the cost."""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: ``robust``: proven, no input in the set changes the label; ``not_robust``: a witness was
#: found and checked on the network; ``unknown``: the method can neither prove nor refute;
#: ``timeout``: a region, node or time limit was reached first
VERDICTS = ("robust", "not_robust", "unknown", "timeout")
#: a witness may lie this far outside the ball or the box: float64 rounding of ``x ± eps``
WITNESS_TOLERANCE = 1e-12


@dataclass(frozen=True)
class PointCertificate:
    """The answer for one record.

    Attributes:
        verdict: one of `VERDICTS`.
        label: the label that was certified (the network's prediction unless given).
        witness: for ``not_robust``, an input inside the epsilon ball and the input box that
            the network does not label ``label``; None otherwise.
        regions: linear regions (FGP) or solver calls (MILP) spent.
        nodes: branch-and-bound nodes spent after the regions (FGP hands a long search to
            `branch`), 0 otherwise.
        seconds: wall time spent on this record.
        radius: in radius mode, a certified lower bound on the distance to the nearest input
            with another label; None otherwise.
    """

    verdict: str
    label: int
    witness: torch.Tensor | None
    regions: int
    seconds: float
    radius: float | None = None
    nodes: int = 0

    @property
    def decided(self) -> bool:
        """True for ``robust`` and ``not_robust``."""
        return self.verdict in ("robust", "not_robust")
