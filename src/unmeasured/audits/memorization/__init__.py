"""What else the model learned: memorized secrets (canary exposure), sensitive attributes its
features reveal (overlearning), data hidden by malicious training code (capacity abuse)."""

from unmeasured.audits.memorization import inversion, probes
from unmeasured.audits.memorization.base import CanaryAudit, ProbeAudit

__all__ = ["CanaryAudit", "ProbeAudit", "inversion", "probes"]
