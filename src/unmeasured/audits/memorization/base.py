"""The memorization family's bases.

`CanaryAudit` (the Secret Sharer, Carlini et al. 2019): secrets of a format (a prefix, an
alphabet, a length) are planted in the training text, each repeated a given number of times
(and a few never, as controls), a model is retrained through the recipe, and the audit measures
how the model treats each canary against the format's other candidates (`exposure.py`,
`extraction.py`). Given a list of canaries instead, it measures the target itself. For a
classifier (`CanaryAudit.planted_records`), a canary is ``length`` records, each with a secret
label, appended to the members and the model retrained through its classifier recipe.
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
from unmeasured.errors import ConfigError, DataError
from unmeasured.results import AuditResult, Headline
from unmeasured.targets.base import to_log_probs
from unmeasured.targets.language import LanguageModel

#: how a classifier canary's inputs are made (`CanaryAudit.planted_records`)
CANARY_INPUTS = ("noise", "mislabeled")


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


@dataclass(frozen=True)
class RecordCanary:
    """One classifier canary: the positions of its inputs among the planted records, the secret
    label of each, how many times they were appended to the members (0: a control), and a short
    text naming it in reports."""

    positions: tuple[int, ...]
    labels: tuple[int, ...]
    repetitions: int
    text: str


@dataclass(frozen=True)
class PlantedRecords:
    """A classifier retrained with record canaries: its log-probabilities on every canary input
    ``(n_inputs, C)``, the canaries, and its accuracy on the test records (None: no test role)."""

    log_probs: np.ndarray
    canaries: list[RecordCanary]
    num_classes: int
    test_accuracy: float | None


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
        counts = self.planted_counts()
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

    def planted_counts(self) -> list[int]:
        """How many times each canary is planted, in order: each repetition count
        ``canaries_per_repetition`` times, then the controls (0)."""
        counts = [r for r in sorted(self.repetitions) for _ in range(self.canaries_per_repetition)]
        return counts + [0] * self.controls

    def planted_records(self, ctx: AuditContext, inputs: str) -> PlantedRecords:
        """A classifier retrained through the recipe on the members plus record canaries (shared
        by the run's audits asking for the same canaries).

        Each canary is ``length`` inputs with a secret label each: uniform noise inside the
        input bounds (``inputs="noise"``; the members' range when the bounds are unknown) with
        labels drawn uniformly from the ``C`` classes, or members (``"mislabeled"``) with labels
        drawn from their ``C - 1`` wrong classes, whose correctly labelled copies are then left
        out of training (controls too, so a control is a real record the model never saw).
        A canary planted ``r`` times has each of its inputs appended ``r`` times.

        Raises:
            ConfigError: the recipe does not train a classifier.
            DataError: too few members to draw the mislabeled canaries from.
        """
        from unmeasured.training.ensemble import train_ensemble
        from unmeasured.training.recipes import Recipe

        if not isinstance(ctx.recipe, Recipe):
            raise ConfigError(
                f"recipe.kind: {self.name} on a classifier retrains it with planted records "
                f"through a classifier recipe (mlp, cnn, logistic, sklearn or python); got "
                f"{type(ctx.recipe).__name__}"
            )
        members = ctx.data.require("members")
        num_classes = int(ctx.target.num_classes)  # type: ignore[union-attr]
        counts = self.planted_counts()
        n_inputs = len(counts) * self.length
        key = f"memorization/planted-records/{inputs}/{self.length}/{counts}"
        rng = ctx.rng(key)
        order = rng.permutation(len(counts))
        counts = [counts[i] for i in order]
        keep = np.ones(len(members), dtype=bool)
        if inputs == "noise":
            low, high = ctx.input_bounds or (float(members.x.min()), float(members.x.max()))
            x = rng.uniform(low, high, size=(n_inputs, *members.x.shape[1:]))
            x = x.astype(members.x.dtype)
            labels = rng.integers(0, num_classes, size=n_inputs)
        else:
            if n_inputs > len(members) // 2:
                raise DataError(
                    f"data.members: {self.name} makes {n_inputs} mislabeled canary records from "
                    f"the members and needs at least twice as many members; got {len(members)}"
                )
            chosen = rng.choice(len(members), size=n_inputs, replace=False)
            keep[chosen] = False
            x = members.x[chosen]
            labels = (members.y[chosen] + rng.integers(1, num_classes, size=n_inputs)) % num_classes
        canaries = []
        for k, count in enumerate(counts):
            positions = tuple(range(k * self.length, (k + 1) * self.length))
            secret = tuple(int(labels[p]) for p in positions)
            kind = "noise" if inputs == "noise" else "mislabeled"
            text = f"{kind} canary {k + 1}: labels {' '.join(str(c) for c in secret)}"
            canaries.append(RecordCanary(positions, secret, count, text))
        copies = np.concatenate(
            [np.repeat(np.asarray(c.positions), c.repetitions) for c in canaries]
        ).astype(np.int64)
        test = ctx.data.get("test")

        def train() -> PlantedRecords:
            pool_x = np.concatenate([members.x[keep], x[copies]])
            pool_y = np.concatenate([members.y[keep], labels[copies]]).astype(np.int64)
            query = x if test is None else np.concatenate([x, test.x])
            logits = train_ensemble(
                ctx.recipe,
                pool_x,
                pool_y,
                np.ones((1, len(pool_x)), dtype=bool),
                query,
                seeds=[int(rng.integers(2**31))],
                num_classes=num_classes,
                cache_dir=ctx.cache_dir,
                progress=ctx.progress,
            )[0]
            log_probs = to_log_probs(logits, "logits")
            accuracy = None
            if test is not None:
                accuracy = float(np.mean(log_probs[n_inputs:].argmax(axis=1) == test.y))
            return PlantedRecords(log_probs[:n_inputs], canaries, num_classes, accuracy)

        return ctx.shared(key, train)

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
