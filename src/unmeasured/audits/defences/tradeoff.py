"""`defences.tradeoff`: what each defence costs in accuracy and what it buys against a
membership attack, measured side by side.

The audit trains its own models through the recipe on the run's members (it audits how models
like the target are trained, not the target's weights), applies each defence setting, and for
each one measures the defended model's accuracy on held-out records and the power of a
registered membership attack against it (run through the registry, unchanged, on a context
whose target is the defended model):

* ``none``: one model of the recipe;
* ``ensemble(k)``: the mean of the probabilities of k models of the recipe, all trained on the
  members with different seeds (`targets.ensemble.EnsembleTarget`); the k models of
  ``ensemble(k)`` are the first k of the largest ensemble, so the curve over k is nested;
* ``dp(epsilon=e)`` or ``dp(noise=s)``: DP-SGD through Opacus (`training.dp.DPRecipe`) with the
  audit's δ and clipping norm; the accountant's ε is reported beside the empirical lower bound;
* ``round(d)``, ``top_k(k)``, ``label_only``: output defences on the ``none`` model
  (`targets.defended.DefendedTarget`); ``label_only`` removes the scores, so the score attack
  is refused and ``label_attack`` measures it instead.

Every model is trained with the same first seed where it can be (``none``, the first ensemble
member and every DP model), so the settings differ by their defence and not by their luck.
Models train through the ensemble trainer and its cache: a second run retrains nothing.

The empirical ε lower bound is `stats.privacy.epsilon_lower_bound` over the attack's scores
(Clopper–Pearson at the run's confidence, δ = the audit's ``delta`` for DP rows and 0 for the
others). It treats members and non-members as independent trials, which holds when the split
between them was random; ``dp_epsilon_excess`` (empirical minus accountant ε, worst DP row)
above 0 would mean the training does not keep the guarantee its accountant states.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from unmeasured.audits.base import Audit, AuditContext, Constraint, Requirements, interval, options
from unmeasured.audits.registry import available, create, register
from unmeasured.errors import ConfigError, TargetError
from unmeasured.results import AuditResult, Headline
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import proportion
from unmeasured.stats.membership import tpr_key
from unmeasured.stats.privacy import epsilon_lower_bound
from unmeasured.targets.base import Target
from unmeasured.targets.defended import DefendedTarget
from unmeasured.targets.ensemble import EnsembleTarget

#: the settings of a default run: the undefended model, an ensemble curve, two DP budgets and
#: the output defences
DEFAULT_SETTINGS = (
    "none",
    "ensemble(2)",
    "ensemble(4)",
    "ensemble(8)",
    "dp(epsilon=8)",
    "dp(epsilon=2)",
    "round(1)",
    "top_k(1)",
    "label_only",
)
#: the false-positive rate of the TPR reported per setting
FPR = 0.01
#: the metrics of each setting (a group ``setting=<spec>``)
SETTING_METRICS = ("accuracy", "auc", tpr_key(FPR), "epsilon_lower_bound", "accountant_epsilon")
SETTINGS_HELP = (
    "a list of defence settings: none, ensemble(k), dp(epsilon=e), dp(noise=s), round(d), "
    "top_k(k), label_only"
)
_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*(?:([a-z_]+)\s*=\s*)?([0-9.eE+-]+)\s*\))?\s*$")


@dataclass(frozen=True)
class Setting:
    """One parsed defence setting.

    Attributes:
        spec: the setting as written (its group is ``setting=<spec>``).
        kind: ``"none"``, ``"ensemble"``, ``"dp"``, ``"round"``, ``"top_k"`` or ``"label_only"``.
        value: the ensemble size, ε or noise multiplier, decimals or k (None for the others).
        by: for ``dp``, ``"epsilon"`` or ``"noise"``.
    """

    spec: str
    kind: str
    value: float | None = None
    by: str | None = None


def parse_setting(spec: str) -> Setting:
    """A `Setting` from its text (``"ensemble(4)"``, ``"dp(epsilon=2)"``, ``"label_only"``).

    Raises:
        ConfigError: text that names no setting or gives it a value out of range.

    Example:
        >>> parse_setting("dp(epsilon=2)")
        Setting(spec='dp(epsilon=2)', kind='dp', value=2.0, by='epsilon')
    """
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ConfigError(f"settings: cannot read {spec!r}; {SETTINGS_HELP}")
    kind, key, raw = match.groups()
    try:
        value = None if raw is None else float(raw)
    except ValueError:
        raise ConfigError(f"settings: {spec!r}: {raw!r} is not a number") from None
    bare = ("none", "label_only")
    counted = {"ensemble": 1, "round": 0, "top_k": 1}
    if kind in bare and value is None:
        return Setting(spec, kind)
    if kind in counted and key is None and value is not None:
        if value != int(value) or value < counted[kind]:
            raise ConfigError(
                f"settings: {spec!r}: {kind} takes an integer of at least {counted[kind]}"
            )
        return Setting(spec, kind, float(int(value)))
    if kind == "dp" and key in ("epsilon", "noise") and value is not None:
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"settings: {spec!r}: {key} must be a positive number")
        return Setting(spec, kind, value, key)
    raise ConfigError(f"settings: cannot read {spec!r}; {SETTINGS_HELP}")


def _readable(settings: Any) -> bool:
    if not isinstance(settings, (list, tuple)) or not settings:
        return False
    try:
        parsed = [parse_setting(s) for s in settings]
    except ConfigError:
        return False
    return len({p.spec.strip() for p in parsed}) == len(parsed)


def _membership_attack(name: Any) -> bool:
    if not isinstance(name, str) or not name.startswith("membership."):
        return False
    cls = available().get(name)
    return cls is not None and "auc" in cls().metric_names()


class _Recorded(Target):
    """A model trained by the audit, known by its outputs on the run's records: it answers
    those records (looked up by content) and refuses any other input."""

    output = "logits"

    def __init__(self, x: np.ndarray, logits: np.ndarray, description: str) -> None:
        self._rows = {row.tobytes(): i for i, row in enumerate(_flat(x))}
        self._logits = logits
        self.num_classes = logits.shape[1]
        self.description = description

    def predict(self, x: np.ndarray) -> np.ndarray:
        rows = _flat(x)
        try:
            index = [self._rows[row.tobytes()] for row in rows]
        except KeyError:
            raise TargetError(
                f"target: {self.description} answers only the run's records; the attack "
                "queried another input (choose an attack that queries the records themselves)"
            ) from None
        return self._logits[index].astype(np.float64)


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))


@register
class Tradeoff(Audit):
    """Accuracy and membership-attack power of the recipe's models under each defence.

    Args:
        settings: the defence settings (see the module docstring); the first one is the
            reference whose figures are the audit's top-level metrics.
        attack: the registered membership attack measuring each setting (it must report an
            AUC; it runs unchanged against each defended model).
        label_attack: the attack for settings that release labels only.
        attack_params: parameters of ``attack`` (e.g. ``{num_models = 4}`` for LiRA).
        delta: the δ of the DP settings and of their empirical bounds.
        max_grad_norm: the DP settings' per-example clipping norm.
        accountant: the DP accountant, ``"prv"`` or ``"rdp"``.

    Metrics: for the reference setting ``accuracy`` (on the test records, else the
    non-members), ``auc``, ``tpr_at_fpr_0.01`` and ``epsilon_lower_bound``; and
    ``dp_epsilon_excess``, the largest empirical bound minus accountant ε over the DP settings.
    The same per setting as groups ``setting=<spec>``, with ``accountant_epsilon`` for DP ones.
    """

    name = "defences.tradeoff"
    summary = "accuracy against membership-attack power per defence (ensembles, DP-SGD, outputs)"
    constraints: ClassVar[dict[str, Constraint]] = {
        "settings": Constraint(_readable, SETTINGS_HELP + " (at least one, no repeats)"),
        "attack": Constraint(_membership_attack, "a registered membership attack with an AUC"),
        "label_attack": Constraint(
            _membership_attack, "a registered membership attack with an AUC"
        ),
        "delta": interval(0, 1),
        "max_grad_norm": interval(0, math.inf),
        "accountant": options("prv", "rdp"),
    }

    def __init__(
        self,
        *,
        settings: tuple[str, ...] = DEFAULT_SETTINGS,
        attack: str = "membership.loss",
        label_attack: str = "membership.label_only",
        attack_params: dict[str, int | float | str | bool] | None = None,
        delta: float = 1e-5,
        max_grad_norm: float = 1.0,
        accountant: str = "rdp",
    ) -> None:
        self.settings = settings
        self.attack = attack
        self.label_attack = label_attack
        self.attack_params = attack_params
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.accountant = accountant
        self.validate()
        self._parsed = [parse_setting(s) for s in settings]
        self._attack = create(attack, attack_params, field="attack_params")
        self._label_attack = create(label_attack)

    def requirements(self) -> Requirements:
        roles = {"members", "nonmembers"}
        columns: set[str] = set()
        images = False
        for attack in (self._attack, self._label_attack):
            needs = attack.requirements()
            roles |= needs.roles
            columns |= needs.columns
            images = images or needs.image_inputs
        return Requirements(
            capabilities=frozenset(),
            roles=frozenset(roles),
            columns=frozenset(columns),
            recipe=True,
            image_inputs=images,
        )

    def metric_names(self) -> tuple[str, ...]:
        return ("accuracy", "auc", tpr_key(FPR), "epsilon_lower_bound", "dp_epsilon_excess")

    def headline(self, result: AuditResult) -> Headline | None:
        excess = result.metrics["dp_epsilon_excess"]
        if excess.value is not None and excess.value > 0:
            return Headline(
                "dp_epsilon_excess",
                f"The attack's ε lower bound exceeds the DP accountant's ε by {excess.value:.2f}: "
                "the DP training does not keep its stated guarantee.",
                concern=True,
                severity=excess.value,
            )
        rows = result.details["settings"]
        ref = rows[0]["setting"]
        auc = result.metrics["auc"]
        acc = result.metrics["accuracy"]
        if auc.value is None or auc.ci is None or acc.value is None:
            return Headline("auc", f"Not estimable for the reference setting {ref}.")
        text = (
            f"{ref}: attack AUC {auc.value:.3f} [{auc.ci[0]:.3f}, {auc.ci[1]:.3f}] at accuracy "
            f"{acc.value:.1%}"
        )
        scored = [
            (g["auc"].value, name.removeprefix("setting="), g["accuracy"].value)
            for name, g in result.groups.items()
            if g["auc"].value is not None and g["accuracy"].value is not None
        ]
        best_auc, best, best_acc = min(scored) if scored else (None, None, None)
        if best is not None and best != ref:
            text += f"; {best} brings it to {best_auc:.3f} at accuracy {best_acc:.1%}"
        if excess.value is not None:
            text += "; every DP setting stays within its accountant's ε"
        return Headline("auc", text + ".", concern=auc.ci[0] > 0.5, severity=auc.value - 0.5)

    def run(self, ctx: AuditContext) -> AuditResult:
        from unmeasured.training import TorchRecipe, train_ensemble
        from unmeasured.training.dp import DPRecipe

        dp_settings = [s for s in self._parsed if s.kind == "dp"]
        if dp_settings and not isinstance(ctx.recipe, TorchRecipe):
            raise ConfigError(
                f"recipe: the DP settings ({dp_settings[0].spec}) need a torch recipe "
                f"(mlp, logistic, cnn or a TorchRecipe); got {type(ctx.recipe).__name__}"
            )
        members = ctx.records("members")
        roles = [r for r in ("members", "nonmembers", "population", "test", "train_sample")]
        query = np.concatenate([ctx.data.get(r).x for r in roles if ctx.data.get(r) is not None])
        recipes = {
            s.spec: DPRecipe(
                base=ctx.recipe,
                noise_multiplier=s.value if s.by == "noise" else None,
                target_epsilon=s.value if s.by == "epsilon" else None,
                delta=self.delta,
                max_grad_norm=self.max_grad_norm,
                accountant=self.accountant,
            )
            for s in dp_settings
        }
        spent = {spec: r.privacy(len(members)) for spec, r in recipes.items()}  # checks δ, ε
        sizes = [int(s.value or 1) if s.kind == "ensemble" else 1 for s in self._parsed]
        plain = max(
            [k for k, s in zip(sizes, self._parsed, strict=True) if s.kind != "dp"], default=0
        )
        rng = ctx.rng(self.audit_id())
        seeds = [int(s) for s in rng.integers(2**31, size=max(plain, 1))]

        def train(recipe: Any, count: int) -> np.ndarray:
            return train_ensemble(
                recipe,
                members.x,
                members.y,
                np.ones((count, len(members)), bool),
                query,
                seeds=seeds[:count],
                num_classes=ctx.target.num_classes,
                cache_dir=ctx.cache_dir,
                progress=ctx.progress,
            )

        plain_logits = train(ctx.recipe, plain) if plain else np.zeros(0)
        described = f"{type(ctx.recipe).__name__} model"
        models = [_Recorded(query, lg, described) for lg in plain_logits]
        groups: dict[str, dict[str, Estimate]] = {}
        rows: list[dict[str, Any]] = []
        for setting, size in zip(self._parsed, sizes, strict=True):
            privacy = None
            if setting.kind == "dp":
                logits = train(recipes[setting.spec], 1)[0]
                target: Target = _Recorded(query, logits, f"DP-SGD {described}")
                privacy = spent[setting.spec]
            elif setting.kind == "ensemble":
                target = EnsembleTarget(models[:size])
            elif setting.kind == "none":
                target = models[0]
            else:
                target = DefendedTarget(
                    models[0],
                    top_k=int(setting.value) if setting.kind == "top_k" else None,
                    decimals=int(setting.value) if setting.kind == "round" else None,
                    labels_only=setting.kind == "label_only",
                )
            metrics, row = self._measure(ctx, setting, target, privacy)
            groups[f"setting={setting.spec}"] = metrics
            rows.append(row)
        ref = groups[f"setting={self._parsed[0].spec}"]
        top = {k: ref[k] for k in ("accuracy", "auc", tpr_key(FPR), "epsilon_lower_bound")}
        top["dp_epsilon_excess"] = _excess(groups, len(members), ctx.confidence)
        accuracy_on = "test" if ctx.data.test is not None else "nonmembers"
        return AuditResult(
            name=self.name,
            metrics=top,
            groups=groups,
            details={
                "settings": rows,
                "accuracy_on": accuracy_on,
                "n_members": len(members),
                "n_nonmembers": len(ctx.records("nonmembers")),
                "delta": self.delta,
            },
        )

    def _measure(
        self, ctx: AuditContext, setting: Setting, target: Target, privacy: Any
    ) -> tuple[dict[str, Estimate], dict[str, Any]]:
        """Accuracy and attack power of one defended target."""
        held_out = ctx.data.test if ctx.data.test is not None else ctx.records("nonmembers")
        correct = int((target.predict_labels(held_out.x) == held_out.y).sum())
        metrics = {"accuracy": proportion(correct, len(held_out), ctx.confidence)}
        sub = AuditContext(
            target=target,
            data=ctx.data,
            seed=ctx.seed,
            recipe=ctx.recipe,
            cache_dir=ctx.cache_dir,
            progress=ctx.progress,
            confidence=ctx.confidence,
            input_bounds=ctx.input_bounds,
        )
        attack = self._attack
        if self._unmet(attack, sub):
            attack = self._label_attack
        result = attack(sub)
        delta = self.delta if privacy is not None else 0.0
        n = len(ctx.records("members")) + len(ctx.records("nonmembers"))
        if result.status == "ok":
            metrics["auc"] = result.metrics["auc"]
            metrics[tpr_key(FPR)] = result.metrics[tpr_key(FPR)]
            metrics["epsilon_lower_bound"] = epsilon_lower_bound(
                result.arrays["scores"], result.arrays["is_member"], delta, ctx.confidence
            )
        else:
            why = f"{attack.name} {result.status}: {result.reason}"
            for key in ("auc", tpr_key(FPR), "epsilon_lower_bound"):
                metrics[key] = Estimate.not_estimable(why, n=n, confidence=ctx.confidence)
        row: dict[str, Any] = {
            "setting": setting.spec,
            "kind": setting.kind,
            "attack": attack.audit_id(),
            "target": target.description,
            "delta": delta,
        }
        if privacy is not None:
            metrics["accountant_epsilon"] = Estimate(
                privacy.epsilon, None, n=len(ctx.records("members")), confidence=ctx.confidence
            )
            row["privacy"] = privacy.to_dict()
        return metrics, row

    @staticmethod
    def _unmet(attack: Audit, ctx: AuditContext) -> list[str]:
        return attack.requirements().unmet(
            target=ctx.target, data=ctx.data, recipe=ctx.recipe, input_bounds=ctx.input_bounds
        )


def _excess(groups: dict[str, dict[str, Estimate]], n: int, confidence: float) -> Estimate:
    gaps = [
        g["epsilon_lower_bound"].value - g["accountant_epsilon"].value
        for g in groups.values()
        if "accountant_epsilon" in g and g["epsilon_lower_bound"].value is not None
    ]
    if not gaps:
        return Estimate.not_estimable("no DP setting was measured", n=n, confidence=confidence)
    return Estimate(float(max(gaps)), None, n=n, confidence=confidence)
