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
from unmeasured.results import AuditResult, Headline


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

    Probes are fitted on a layer's features to predict the records' ``sensitive`` column, an
    attribute the model was never asked to learn, and judged on held-out folds against three
    baselines: the majority rate, the same probe on the raw inputs, and the same probe on the
    same layer of the same architecture with random weights (what the architecture alone
    reveals, before any training).

    Hooks:
        probe_layers: the named layers to probe.
        probe: a fresh scikit-learn classifier of one kind for features of a given width.

    Subclasses take a ``role`` parameter: the data role whose records are probed (it must carry
    the ``sensitive`` column). Metrics: ``baseline_accuracy`` (majority rate),
    ``input_probe_accuracy`` and ``input_probe_auc`` (raw inputs), ``probe_accuracy`` and
    ``probe_auc`` (the most revealing trained layer), ``random_probe_accuracy`` and
    ``random_probe_auc`` (that layer with random weights) and ``probe_gain`` (the largest
    accuracy gain of a trained layer over its random-weights twin); per layer in the result's
    groups (``layer=<name>``), the raw inputs under ``input``.
    """

    role: str = "test"

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset({"layers", "weights"}),
            roles=frozenset({self.role}),
            columns=frozenset({"sensitive"}),
        )

    def metric_names(self) -> tuple[str, ...]:
        return (
            "baseline_accuracy",
            "input_probe_accuracy",
            "input_probe_auc",
            "probe_accuracy",
            "probe_auc",
            "random_probe_accuracy",
            "random_probe_auc",
            "probe_gain",
        )

    def headline(self, result: AuditResult) -> Headline | None:
        gain, best = result.metrics.get("probe_gain"), result.metrics.get("probe_accuracy")
        majority = result.metrics.get("baseline_accuracy")
        raw = result.metrics.get("input_probe_accuracy")
        layer, kind = result.details.get("best_layer"), result.details.get("best_probe")
        if best is None or best.value is None or best.ci is None or majority is None:
            return None
        raw_text = f"{raw.value:.1%}" if raw is not None and raw.value is not None else "n/a"
        context = f"raw inputs {raw_text}, majority rate {majority.format(3)}"
        if gain is None or gain.value is None or gain.ci is None:
            return Headline(
                "probe_accuracy",
                f"A {kind} probe on layer {layer!r} predicts the sensitive attribute with "
                f"accuracy {best.value:.1%} [{best.ci[0]:.1%}, {best.ci[1]:.1%}] ({context}); "
                f"no random-weights baseline ({gain.reason if gain else 'not measured'}).",
                concern=None,
            )
        layer, kind = result.details.get("gain_layer"), result.details.get("gain_probe")
        random_acc = result.groups.get(f"layer={layer}", {}).get(f"random_{kind}_accuracy")
        trained_acc = result.groups.get(f"layer={layer}", {}).get(f"{kind}_accuracy")
        pair = (
            f" ({trained_acc.value:.1%} against {random_acc.value:.1%} with random weights)"
            if trained_acc is not None
            and random_acc is not None
            and trained_acc.value is not None
            and random_acc.value is not None
            else ""
        )
        return Headline(
            "probe_gain",
            f"Training made layer {layer!r} reveal the sensitive attribute to a {kind} probe: "
            f"accuracy gain {gain.value:+.1%} [{gain.ci[0]:+.1%}, {gain.ci[1]:+.1%}] over the "
            f"same layer with random weights{pair}; {context}.",
            concern=gain.ci[0] > 0,
            severity=gain.value,
        )

    @abstractmethod
    def probe_layers(self, ctx: AuditContext) -> list[str]:
        """The layer names to probe."""

    @abstractmethod
    def probe(self, kind: str, n_features: int, n_train: int, seed: int) -> Any:
        """A fresh, unfitted scikit-learn classifier of ``kind`` for ``n_features`` features
        and at least ``n_train`` training records (it must give ``predict_proba``)."""
