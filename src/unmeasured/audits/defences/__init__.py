"""Defences measured: what each defence (ensembles, DP-SGD, output rounding, top-k, labels-only
release) costs in accuracy and buys against membership inference."""

from unmeasured.audits.defences.tradeoff import Setting, Tradeoff, parse_setting

__all__ = ["Setting", "Tradeoff", "parse_setting"]
