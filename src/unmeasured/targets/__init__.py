"""Targets: the model under audit behind one small interface."""

from unmeasured.targets.base import Target, to_log_probs
from unmeasured.targets.callable import CallableTarget
from unmeasured.targets.loading import KINDS, as_target, load_target, resolve_num_classes

__all__ = [
    "KINDS",
    "CallableTarget",
    "Target",
    "as_target",
    "load_target",
    "resolve_num_classes",
    "to_log_probs",
]
