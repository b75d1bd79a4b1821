"""Robustness: how far a strong attacker, noise or a corruption moves the model, and what can be
certified about it."""

from unmeasured.audits.robustness.base import Certificate, Certifier, EvasionAttack

__all__ = ["Certificate", "Certifier", "EvasionAttack"]
