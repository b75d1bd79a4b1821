"""The memorization family's bases.

`CanaryAudit` (the Secret Sharer, Carlini et al. 2019): secrets of a format (a prefix, an
alphabet, a length) are planted in the training text, each repeated a given number of times
(and a few never, as controls), a model is retrained through the recipe, and the audit measures
how the model treats each canary against the format's other candidates (`exposure.py`,
`extraction.py`). Given a list of canaries instead, it measures the target itself.
`ProbeAudit` (overlearning, Song & Shmatikov 2020): a probe trained on a layer's features
predicts an attribute the model was never asked to learn, compared with baselines that need no
model.

The bases own the parameters, requirements and the planted model; a method fills in the rest.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from unmeasured.audits.base import Audit, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.memorization.canaries import CanaryFormat
from unmeasured.errors import ConfigError
from unmeasured.results import AuditResult, Headline
from unmeasured.targets.language import LanguageModel


def positive_ints(*, allow_empty: bool = False) -> Constraint:
    """A list of distinct positive integers."""

    def check(v: Any) -> bool:
        return (
            isinstance(v, list)
            and (allow_empty or len(v) > 0)
            and len(set(v)) == len(v)
            and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in v)
        )

    what = "a list of distinct positive ints" + ("" if allow_empty else ", not empty")
    return Constraint(check, what)


def strings(*, allow_empty: bool = True) -> Constraint:
    """A list of strings."""
    return Constraint(
        lambda v: (
            isinstance(v, list)
            and (allow_empty or len(v) > 0)
            and all(isinstance(t, str) and t for t in v)
        ),
        "a list of non-empty strings",
    )


@dataclass(frozen=True)
class Canary:
    """One canary: its secret, full text, index among the candidates and how many times it was
    planted (None: given by the user, its repetitions unknown)."""

    secret: str
    text: str
    index: int
    repetitions: int | None


class CanaryAudit(Audit):
    """Base of canary audits on language models.

    Parameters shared by every canary audit: the format (``prefix``, ``alphabet``, ``length``),
    ``repetitions`` (each planted ``canaries_per_repetition`` times over), ``controls`` (canaries
    of the format never planted) and ``canaries`` (full texts to look for in the target itself,
    with no retraining). Planted canaries and their model are drawn from the run's seed and
    the format alone, so every canary audit of a run shares one retrained model.
    """

    summary: ClassVar[str] = ""
    constraints: ClassVar[dict[str, Constraint]] = {
        "prefix": Constraint(lambda v: isinstance(v, str) and len(v) > 0, "a non-empty string"),
        "alphabet": Constraint(
            lambda v: isinstance(v, str) and len(v) >= 2 and len(set(v)) == len(v),
            "a string of at least 2 distinct symbols",
        ),
        "length": interval(1, 64, closed="both", kind=int),
        "repetitions": positive_ints(),
        "canaries_per_repetition": interval(1, 1000, closed="both", kind=int),
        "controls": interval(0, 1000, closed="both", kind=int),
        "canaries": strings(),
    }

    prefix: str
    alphabet: str
    length: int
    repetitions: list[int]
    canaries_per_repetition: int
    controls: int
    canaries: list[str]

    @property
    def format(self) -> CanaryFormat:
        return CanaryFormat(self.prefix, self.alphabet, self.length)

    def validate(self) -> None:
        """The parameters' own checks, then: given canaries fit the format, and the format has
        room for every planted canary and control."""
        super().validate()
        for i, text in enumerate(self.canaries):
            self.format.check(text, f"canaries[{i}]")
        planted = len(self.repetitions) * self.canaries_per_repetition + self.controls
        if not self.canaries and planted > self.format.size:
            raise ConfigError(
                f"length: {self.name} plants {planted} canaries, but the format has only "
                f"{self.format.size} candidates; lengthen it"
            )

    @property
    def retrains(self) -> bool:
        """Whether the audit plants canaries and retrains (no canary list given)."""
        return not self.canaries

    def requirements(self) -> Requirements:
        return Requirements(capabilities=frozenset({"sequences"}), recipe=self.retrains)

    def planted(self, ctx: AuditContext) -> tuple[LanguageModel, list[Canary]]:
        """The model to measure and its canaries: the target and the given canaries, or a model
        retrained through the recipe with the planted ones (shared by the run's canary audits).

        Raises:
            ConfigError: the recipe does not train a language model.
        """
        fmt = self.format
        if not self.retrains:
            secrets = [fmt.check(t, "canaries") for t in self.canaries]
            return ctx.target, [  # type: ignore[return-value]
                Canary(s, fmt.text(s), fmt.index(s), None) for s in secrets
            ]
        from unmeasured.training.language import CharLMRecipe

        if not isinstance(ctx.recipe, CharLMRecipe):
            raise ConfigError(
                f"recipe.kind: {self.name} retrains a language model with planted canaries; "
                f"use kind = 'char_lm' (got {type(ctx.recipe).__name__})"
            )
        counts = [r for r in sorted(self.repetitions) for _ in range(self.canaries_per_repetition)]
        counts += [0] * self.controls
        key = f"memorization/planted/{fmt}/{counts}"
        rng = ctx.rng(key)
        order = rng.permutation(len(counts))  # which secret gets which count is random too
        indices = fmt.sample(rng, len(counts))[order]
        canaries = [
            Canary(fmt.secret(int(i)), fmt.text(fmt.secret(int(i))), int(i), c)
            for i, c in zip(indices, counts, strict=True)
        ]

        def train() -> LanguageModel:
            return ctx.recipe.train(
                [(c.text, c.repetitions or 0) for c in canaries],
                seed=ctx.seed,
                cache_dir=ctx.cache_dir,
            )

        return ctx.shared(key, train), canaries

    def repetition_metrics(self) -> list[int]:
        """The repetition counts metrics are reported at: 0 (controls) when any, then each."""
        return ([0] if self.controls else []) + sorted(self.repetitions)

    @abstractmethod
    def metric_names(self) -> tuple[str, ...]:
        """Declared per method."""


def log2_size(fmt: CanaryFormat) -> float:
    """``log2 |R|``."""
    return math.log2(fmt.size)


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
