"""Robustness: how far a strong attacker, noise or a corruption moves the model, and what can be
certified about it."""
