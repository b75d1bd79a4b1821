"""`Estimate`: a number with its confidence interval and sample size, or a stated reason why the
data cannot support one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Estimate:
    """A metric value with a confidence interval.

    Attributes:
        value: point estimate, or ``None`` when not estimable.
        ci: ``(low, high)`` confidence interval, or ``None`` when none can be given.
        n: number of samples the estimate rests on (for rates: the denominator's count).
        confidence: the interval's nominal coverage, e.g. 0.95.
        reason: why the value is not estimable (set exactly when ``value is None``).

    Example:
        >>> Estimate(0.8, (0.7, 0.9), n=200).estimable
        True
        >>> Estimate.not_estimable("needs >= 5000 non-members, have 300", n=300).to_dict()["value"] is None
        True
    """

    value: float | None
    ci: tuple[float, float] | None
    n: int
    confidence: float = 0.95
    reason: str | None = None

    @property
    def estimable(self) -> bool:
        return self.value is not None

    @classmethod
    def not_estimable(cls, reason: str, n: int, confidence: float = 0.95) -> Estimate:
        return cls(value=None, ci=None, n=n, confidence=confidence, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "value": _clean(self.value),
            "ci": None if self.ci is None else [_clean(self.ci[0]), _clean(self.ci[1])],
            "n": int(self.n),
            "confidence": self.confidence,
        }
        if self.reason is not None:
            d["reason"] = self.reason
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Estimate:
        ci = d.get("ci")
        return cls(
            value=d.get("value"),
            ci=None if ci is None else (ci[0], ci[1]),
            n=int(d.get("n", 0)),
            confidence=float(d.get("confidence", 0.95)),
            reason=d.get("reason"),
        )

    def format(self, digits: int = 3) -> str:
        """Human text: ``0.812 [0.790, 0.834]`` or ``not estimable (reason)``."""
        if self.value is None:
            return f"not estimable ({self.reason})" if self.reason else "not estimable"
        if self.ci is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.ci[0]:.{digits}f}, {self.ci[1]:.{digits}f}]"


def _clean(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return None
    return v
