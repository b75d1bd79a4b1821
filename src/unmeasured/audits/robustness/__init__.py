"""Robustness: how far a strong attacker, noise or a corruption moves the model, and what can be
certified about it.

Importing this package registers its audits (`evasion`, `corruption_audit`, `certifiers`); the method layer lives in `attacks`,
`corruptions`, `bn_adaptation`, `certify/` and `norms`.
"""

from unmeasured.audits.robustness import certifiers, corruption_audit, evasion
from unmeasured.audits.robustness.base import Certificate, Certifier, EvasionAttack

__all__ = [
    "Certificate",
    "Certifier",
    "EvasionAttack",
    "certifiers",
    "corruption_audit",
    "evasion",
]
