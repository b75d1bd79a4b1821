"""The memorization family's bases.

`CanaryAudit` (the Secret Sharer, Carlini et al. 2019): canaries are planted in copies of the
training data, models are trained through the recipe with and without them, and each canary's
exposure is measured against candidates that were never planted. `ProbeAudit` (overlearning,
Song & Shmatikov 2020): a probe trained on a layer's features predicts an attribute the model
was never asked to learn, compared with baselines that need no model.

The bases own the requirements and the result's shape; a method fills in the hooks below. No
method is registered yet: the audits of this family land with it.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from unmeasured.audits.base import Audit, AuditContext, Requirements
from unmeasured.data.records import Records


class CanaryAudit(Audit):
    """Base of canary-exposure audits.

    Hooks:
        make_canaries: the planted records and, for each, the candidates it competes with.
        canary_scores: a per-candidate score (lower = more likely) from a trained model's
            outputs; exposure = log2(#candidates) − log2(rank of the canary).

    Metrics (declared): ``exposure_mean``, ``exposure_max``, ``extracted`` (the share of
    canaries ranked first among their candidates).
    """

    def requirements(self) -> Requirements:
        return Requirements(roles=frozenset({"members"}), recipe=True)

    def metric_names(self) -> tuple[str, ...]:
        return ("exposure_mean", "exposure_max", "extracted")

    @abstractmethod
    def make_canaries(
        self, ctx: AuditContext, rng: np.random.Generator
    ) -> tuple[Records, list[Records]]:
        """The canaries to plant and, per canary, its never-planted candidates."""

    @abstractmethod
    def canary_scores(self, ctx: AuditContext, model: Any, candidates: Records) -> np.ndarray:
        """One score per candidate (lower = the model finds it more likely)."""


class ProbeAudit(Audit):
    """Base of per-layer probing audits.

    Hooks:
        layers: the named layers to probe.
        probe: fit on one layer's features of part of the records, predict the attribute on the
            rest; returns the held-out predictions.

    The records' ``sensitive`` column is the attribute. Metrics: ``probe_accuracy`` (the best
    layer) against ``baseline_accuracy`` (majority class) and ``input_probe_accuracy`` (the same
    probe on raw inputs); per layer in the result's groups (``layer=<name>``).
    """

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset({"layers"}),
            roles=frozenset({"test"}),
            columns=frozenset({"sensitive"}),
        )

    def metric_names(self) -> tuple[str, ...]:
        return ("baseline_accuracy", "input_probe_accuracy", "probe_accuracy")

    @abstractmethod
    def layers(self, ctx: AuditContext) -> list[str]:
        """The layer names to probe."""

    @abstractmethod
    def probe(
        self, train_features: np.ndarray, train_attribute: np.ndarray, test_features: np.ndarray
    ) -> np.ndarray:
        """Predictions of the attribute on ``test_features``."""
