"""What else the model learned: memorized secrets (canary exposure), sensitive attributes its
features reveal (overlearning), data hidden by malicious training code (capacity abuse)."""

from unmeasured.audits.memorization import exposure, extraction  # noqa: F401 (registers them)
from unmeasured.audits.memorization.base import CanaryAudit, ProbeAudit
from unmeasured.audits.memorization.leakage import LeakageDetect, LeakageSimulate

__all__ = ["CanaryAudit", "LeakageDetect", "LeakageSimulate", "ProbeAudit"]
