"""Robustness: how far a strong attacker, noise or a corruption moves the model, and what can be
certified about it.

Importing this package registers its audits (`evasion`, `corruption_audit`); the method layer lives in `attacks`,
`corruptions`, `bn_adaptation` and `norms`.
"""

from unmeasured.audits.robustness import corruption_audit, evasion
from unmeasured.audits.robustness.base import Certificate, Certifier, EvasionAttack

__all__ = ["Certificate", "Certifier", "EvasionAttack", "corruption_audit", "evasion"]
