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

import numpy as np

from unmeasured.audits.base import Audit, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.memorization.canaries import CanaryFormat
from unmeasured.errors import ConfigError
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
