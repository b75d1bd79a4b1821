"""`membership.one_run`: an empirical ε lower bound for the *training procedure* from a single
training run (Steinke, Nasr & Jagielski, NeurIPS 2023).

Canaries drawn from the population are each added to the members with probability 1/2, one
model is trained through the recipe, and the auditor guesses "in" for the canaries the model
fits best and "out" for those it fits worst. Under ε-DP the count of right guesses is dominated
by a binomial with success probability e^ε/(1+e^ε) (`stats.one_run_epsilon_lower_bound`). It
audits the recipe (how models like the target are trained), not the target's weights, and costs
one training run instead of hundreds.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from unmeasured.audits.base import Audit, AuditContext, Constraint, Requirements, interval
from unmeasured.audits.membership.scores import true_class_log_prob
from unmeasured.audits.registry import register
from unmeasured.errors import DataError
from unmeasured.results import AuditResult, Headline
from unmeasured.stats import auc as auc_estimate
from unmeasured.stats.intervals import proportion
from unmeasured.stats.privacy import one_run_epsilon_lower_bound
from unmeasured.targets.base import to_log_probs


@register
class OneRunAudit(Audit):
    """One-run privacy audit of the recipe.

    Args:
        canaries: how many population records serve as canaries (each included with
            probability 1/2).
        guess_fraction: the share of canaries the auditor guesses on: half of it "in" (best
            fitted), half "out" (worst fitted); abstaining on the rest makes the bound tighter.

    Metrics: ``epsilon_lower_bound`` (one-sided, at the run's confidence), ``guess_accuracy``
    (right guesses among those made) and ``canary_auc`` (how well the canaries' scores separate
    included from left out).
    """

    name = "membership.one_run"
    summary = "ε lower bound of the training recipe from one run (Steinke et al. 2023)"
    constraints: ClassVar[dict[str, Constraint]] = {
        "canaries": interval(2, 10**7, closed="both", kind=int),
        "guess_fraction": interval(0, 1, closed="right"),
    }

    def __init__(self, *, canaries: int = 1000, guess_fraction: float = 0.2) -> None:
        self.canaries = canaries
        self.guess_fraction = guess_fraction
        self.validate()

    def requirements(self) -> Requirements:
        return Requirements(
            capabilities=frozenset(), roles=frozenset({"members", "population"}), recipe=True
        )

    def metric_names(self) -> tuple[str, ...]:
        return ("epsilon_lower_bound", "guess_accuracy", "canary_auc")

    def headline(self, result: AuditResult) -> Headline | None:
        eps, acc = result.metrics["epsilon_lower_bound"], result.metrics["guess_accuracy"]
        if eps.value is None or acc.value is None:
            return None
        return Headline(
            "epsilon_lower_bound",
            f"One training run with {result.details['canaries']} canaries: ε ≥ {eps.value:.2f} at "
            f"{eps.confidence:.0%} confidence ({acc.value:.0%} of {acc.n} guesses right).",
            concern=eps.value > 0,
            severity=eps.value,
        )

    def run(self, ctx: AuditContext) -> AuditResult:
        from unmeasured.training import train_ensemble

        members, population = ctx.records("members"), ctx.records("population")
        m = min(self.canaries, len(population))
        guesses = 2 * round(m * self.guess_fraction / 2)
        if guesses < 2:
            raise DataError(
                f"data.population: {m} canaries with guess_fraction {self.guess_fraction} make "
                "no guess; give more population records or a larger guess_fraction"
            )
        rng = ctx.rng(self.audit_id())
        chosen = rng.choice(len(population), size=m, replace=False)
        included = rng.random(m) < 0.5
        canaries = population.subset(chosen)
        x = np.concatenate([members.x, canaries.x])
        y = np.concatenate([members.y, canaries.y])
        mask = np.concatenate([np.ones(len(members), bool), included])[None]
        logits = train_ensemble(
            ctx.recipe,
            x,
            y,
            mask,
            canaries.x,
            seeds=[int(rng.integers(2**31))],
            num_classes=ctx.target.num_classes,
            cache_dir=ctx.cache_dir,
            progress=ctx.progress,
        )[0]
        scores = true_class_log_prob(to_log_probs(logits, "logits"), canaries.y)
        order = np.argsort(-scores, kind="stable")
        k = guesses // 2
        correct = int(included[order[:k]].sum() + (~included[order[-k:]]).sum())
        metrics = {
            "epsilon_lower_bound": one_run_epsilon_lower_bound(correct, guesses, ctx.confidence),
            "guess_accuracy": proportion(correct, guesses, ctx.confidence),
            "canary_auc": auc_estimate(scores, included.astype(np.int8), ctx.confidence),
        }
        return AuditResult(
            name=self.name,
            metrics=metrics,
            arrays={
                "scores": scores.astype(np.float32),
                "is_member": included.astype(np.int8),
                "population_index": chosen.astype(np.int64),
            },
            details={"canaries": m, "included": int(included.sum()), "guesses": guesses},
        )
