"""What else the model learned: memorized secrets (canary exposure and extraction), sensitive
attributes its features reveal (overlearning), class representatives recovered from it
(inversion), data hidden by malicious training code (intentional leakage)."""

from unmeasured.audits.memorization import (  # noqa: F401 (registers them)
    exposure,
    extraction,
    inversion,
    probes,
)
from unmeasured.audits.memorization.base import CanaryAudit, ProbeAudit
from unmeasured.audits.memorization.leakage import LeakageDetect, LeakageSimulate

__all__ = ["CanaryAudit", "LeakageDetect", "LeakageSimulate", "ProbeAudit"]
