"""`membership.whitebox`: calibrated white-box membership inference on internal features
(Leino & Fredrikson, "Stolen Memories", USENIX Security 2020).

A model that memorizes uses some internal features idiosyncratically: in ways that fit its
training records and not the distribution. Following the paper, each record is described at every
named layer by a linear explanation of its class score, the layer's activations times the
gradient of the true class's score with respect to them (``signal="explanations"``; or the
activations alone, ``signal="activations"``), and one linear model per class (scikit-learn's
logistic regression on standardized features, reduced by PCA when a layer is wide) learns to tell
members from non-members. The attack is calibrated for confident positive inferences: its
threshold is the most permissive one whose precision is at least ``target_precision`` with
confidence ``calibration_confidence`` (a one-sided Clopper–Pearson bound) on calibration records, scored out of fold
so that the threshold never rests on records a model was fit to.

Calibration data:

* ``"split"``: a random ``calibration_fraction`` of the audited members and non-members fits the
  attack and sets its threshold; every figure is measured on the rest (held out).
* ``"known"``: a known sample of the training data (``train_sample``, members) and the
  population (non-members) fit and calibrate; every audited record that is not an exact copy of a
  calibration record is held out.
* ``"auto"``: ``"known"`` when both roles are given, ``"split"`` otherwise.

Precision depends on the share of members among the records judged; the threshold is chosen
for the held-out records' share (with ``"split"`` it is the calibration records' share too).
The result reports, on held-out records, precision and recall (``operating_precision``,
``operating_tpr``) and the false-alarm rate at that threshold, the ROC metrics every membership
attack reports, and per layer the held-out metrics of the same attack on that layer alone
(groups ``layer=<name>``): the layers that carry the signal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from unmeasured.audits.base import (
    BOOLEAN,
    AuditContext,
    Constraint,
    Requirements,
    interval,
    options,
)
from unmeasured.audits.membership.attack import MEMBERSHIP_ROLES, MembershipAttack
from unmeasured.audits.registry import register
from unmeasured.errors import DataError, TargetError
from unmeasured.results import AuditResult, Headline
from unmeasured.stats import membership_metrics, rates_at_threshold
from unmeasured.stats.estimate import Estimate
from unmeasured.stats.intervals import clopper_pearson_lower

#: layer types whose outputs are the default features
DEFAULT_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: a class gets its own linear model when its calibration records hold this many members and
#: this many non-members; otherwise the model fit on every class scores it
MIN_CLASS_RECORDS = 5
#: the operating threshold must flag at least this many calibration records
MIN_FLAGGED = 5
#: folds of the out-of-fold calibration scores
CALIBRATION_FOLDS = 5
#: inverse L2 regularization strength of the linear models (scikit-learn's ``C``)
REGULARIZATION = 1.0
#: the fewest held-out members and non-members the audit measures on
MIN_HELD_OUT = 10


def default_layers(module: nn.Module) -> list[str]:
    """The names of every linear and convolution layer of ``module``, in order."""
    return [name for name, m in module.named_modules() if isinstance(m, DEFAULT_LAYER_TYPES)]


def layer_explanations(
    target: Any, x: np.ndarray, y: np.ndarray, layers: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per layer, the activations times the gradient of the true class's score (the target's
    output for class ``y``) with respect to them, flattened to ``(n, features)``.

    Args:
        target: a torch target (it has ``module``, ``logits`` and ``batch_size``).
        x: inputs, ``(n, *input_shape)``.
        y: true classes, ``(n,)``.
        layers: named layers of ``target.module``, each run once per forward pass.

    Returns:
        float64 arrays by layer name.
    """
    named = dict(target.module.named_modules())
    captured: dict[str, torch.Tensor] = {}

    def recorder(layer: str) -> Callable[[nn.Module, Any, Any], None]:
        def record(_module: nn.Module, _inputs: Any, out: Any) -> None:
            captured[layer] = out

        return record

    parts: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    hooks = [named[layer].register_forward_hook(recorder(layer)) for layer in layers]
    try:
        with torch.enable_grad():
            for start in range(0, len(x), target.batch_size):
                xb = torch.as_tensor(np.asarray(x[start : start + target.batch_size]))
                xb = xb.float().requires_grad_()  # a graph even when the weights are frozen
                out = target.logits(xb)
                yb = torch.as_tensor(np.asarray(y[start : start + len(xb)]), device=out.device)
                chosen = out.gather(1, yb.long()[:, None]).sum()
                acts = [captured[layer] for layer in layers]
                grads = torch.autograd.grad(chosen, acts, allow_unused=True)
                for layer, act, grad in zip(layers, acts, grads, strict=True):
                    product = act * grad if grad is not None else torch.zeros_like(act)
                    parts[layer].append(product.detach().flatten(1).double().cpu().numpy())
    finally:
        for hook in hooks:
            hook.remove()
    return {layer: np.concatenate(p) for layer, p in parts.items()}


def precision_threshold(
    scores: np.ndarray,
    is_member: np.ndarray,
    target_precision: float,
    base_rate: float,
    confidence: float = 0.95,
    min_flagged: int = MIN_FLAGGED,
) -> tuple[float | None, float]:
    """The most permissive threshold (flag ``score >= t``) whose precision is at least
    ``target_precision`` with confidence ``confidence`` on these records, were members
    ``base_rate`` of the records judged.

    Precision at ``t`` is ``π·TPR / (π·TPR + (1 − π)·FPR)`` with ``π = base_rate``, so
    calibration records with another share of members still give a threshold for the records
    judged; its one-sided Clopper–Pearson lower bound counts the records flagged at ``t``.
    Thresholds flagging fewer than ``min_flagged`` records are not considered.

    Returns:
        ``(threshold, best_precision)``: the threshold, or ``None`` when none qualifies, and the
        highest point precision any considered threshold reaches.

    Example:
        >>> scores, is_member = np.arange(40.0), np.r_[np.zeros(20), np.ones(20)]
        >>> precision_threshold(scores, is_member, 0.8, 0.5)[0]
        20.0
    """
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], is_member[order]
    tpr = np.cumsum(m == 1) / max(int((m == 1).sum()), 1)
    fpr = np.cumsum(m == 0) / max(int((m == 0).sum()), 1)
    hits = base_rate * tpr
    precision = np.divide(
        hits, hits + (1 - base_rate) * fpr, out=np.zeros_like(hits), where=hits > 0
    )
    flagged = np.arange(1, len(s) + 1)
    # a threshold sits at the end of a run of tied scores
    end_of_tie = np.r_[s[1:] != s[:-1], True]
    considered = end_of_tie & (flagged >= min_flagged)
    best = float(precision[considered].max()) if considered.any() else 0.0
    for i in np.flatnonzero(considered & (precision >= target_precision))[::-1]:
        low = clopper_pearson_lower(round(precision[i] * flagged[i]), int(flagged[i]), confidence)
        if low >= target_precision:
            return float(s[i]), best
    return None, best


def _linear_model() -> Any:
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=REGULARIZATION, solver="newton-cholesky", max_iter=1000),
    )


def class_model_scores(
    train: np.ndarray,
    train_member: np.ndarray,
    train_y: np.ndarray,
    test: np.ndarray,
    test_y: np.ndarray,
) -> np.ndarray:
    """Fit one linear model per class on ``train`` (members vs non-members) and score ``test``
    with the model of each record's class: the log-odds of membership. A class with too few
    training members or non-members (`MIN_CLASS_RECORDS`) is scored by a model fit on every
    class."""
    scores = np.zeros(len(test))
    pooled = None
    for c in np.unique(test_y):
        mine, theirs = train_y == c, test_y == c
        n_in = int(train_member[mine].sum())
        if min(n_in, int(mine.sum()) - n_in) >= MIN_CLASS_RECORDS:
            model = _linear_model().fit(train[mine], train_member[mine])
        else:
            if pooled is None:
                pooled = _linear_model().fit(train, train_member)
            model = pooled
        scores[theirs] = model.decision_function(test[theirs])
    return scores


def _reduce(features: np.ndarray, fit_on: np.ndarray, max_features: int) -> np.ndarray:
    """Standardize, and project on the leading principal components of the calibration records
    when the layer is wider than ``max_features``."""
    steps: list[Any] = [StandardScaler()]
    if features.shape[1] > max_features:
        k = min(max_features, len(fit_on))
        steps.append(PCA(n_components=k, svd_solver="full"))
    pipeline = make_pipeline(*steps).fit(features[fit_on])
    return np.asarray(pipeline.transform(features))


def _row_keys(x: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    return np.array([row.tobytes() for row in flat], dtype=object)


@register
class WhiteBoxAttack(MembershipAttack):
    """Calibrated white-box membership inference on named layers' features.

    Args:
        layers: named layers of the target (``module.named_modules()``); empty: every linear and
            convolution layer.
        signal: ``"explanations"`` (activations times the gradient of the true class's score,
            the paper's linear explanation) or ``"activations"``.
        target_precision: the precision the operating threshold is calibrated for.
        calibration: ``"auto"``, ``"split"`` or ``"known"`` (see the module's description).
        calibration_fraction: with ``"split"``, the share of the audited members and of the
            non-members that calibrates.
        calibration_confidence: the threshold's calibration precision must reach
            ``target_precision`` with this confidence (a one-sided Clopper–Pearson bound on the
            calibration records it flags); higher is safer and names fewer members.
        max_features: a wider layer is reduced to this many principal components.
        per_class: also report the credibility breakdowns per class and per difficulty.

    Metrics: those of every membership attack, measured on held-out records;
    ``operating_precision`` and ``operating_tpr`` (recall) at the calibrated threshold.
    """

    name = "membership.whitebox"
    summary = "calibrated white-box attack on internal features (Leino & Fredrikson 2020)"
    constraints: ClassVar[dict[str, Constraint]] = {
        "layers": Constraint(lambda v: all(isinstance(n, str) for n in v), "a list of layer names"),
        "signal": options("explanations", "activations"),
        "target_precision": interval(0, 1),
        "calibration": options("auto", "split", "known"),
        "calibration_fraction": interval(0, 1),
        "calibration_confidence": interval(0.5, 1),
        "max_features": interval(1, 1_000_000, closed="left", kind=int),
        "per_class": BOOLEAN,
    }

    def __init__(
        self,
        *,
        layers: tuple[str, ...] = (),
        signal: str = "explanations",
        target_precision: float = 0.9,
        calibration: str = "auto",
        calibration_fraction: float = 0.5,
        calibration_confidence: float = 0.75,
        max_features: int = 64,
        per_class: bool = True,
    ) -> None:
        self.layers = layers
        self.signal = signal
        self.target_precision = target_precision
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.calibration_confidence = calibration_confidence
        self.max_features = max_features
        self.per_class = per_class
        self.validate()

    def requirements(self) -> Requirements:
        known = {"train_sample", "population"} if self.calibration == "known" else set()
        gradients = {"gradients"} if self.signal == "explanations" else set()
        return Requirements(
            capabilities=frozenset({"weights", "layers", *gradients}),
            roles=MEMBERSHIP_ROLES | known,
        )

    def headline(self, result: AuditResult) -> Headline | None:
        """Precision and recall at the calibrated threshold against the base rate, or the
        headline of every membership attack when no threshold reaches the target precision."""
        precision = result.metrics.get("operating_precision")
        recall = result.metrics.get("operating_tpr")
        base_rate = result.details.get("base_rate")
        if (
            precision is None
            or recall is None
            or precision.value is None
            or precision.ci is None
            or recall.value is None
            or recall.ci is None
            or not isinstance(base_rate, float)
        ):
            return super().headline(result)
        above = precision.ci[0] > base_rate
        sentence = (
            f"Calibrated for {self.target_precision:.0%} precision, the attack names "
            f"{recall.value:.1%} of held-out members [{recall.ci[0]:.1%}, {recall.ci[1]:.1%}] "
            f"with precision {precision.value:.1%} [{precision.ci[0]:.1%}, "
            f"{precision.ci[1]:.1%}] (members are {base_rate:.0%} of the records)"
        )
        sentence += "." if above else "; no better than guessing."
        return Headline(
            "operating_precision", sentence, concern=above, severity=recall.value if above else 0.0
        )

    def attack_scores(self, ctx: AuditContext, which: str) -> np.ndarray:
        raise NotImplementedError("membership.whitebox scores held-out records in run()")

    def _layers(self, ctx: AuditContext) -> list[str]:
        module = getattr(ctx.target, "module", None)
        if module is None:
            raise TargetError(f"{self.name}: {ctx.target.description} exposes no torch module")
        layers = list(self.layers) or default_layers(module)
        if not layers:
            raise TargetError(
                f"layers: {ctx.target.description} has no linear or convolution layer; name "
                "the layers to use in the audit's 'layers'"
            )
        return layers

    def _signals(
        self, ctx: AuditContext, x: np.ndarray, y: np.ndarray, layers: list[str]
    ) -> dict[str, np.ndarray]:
        ctx.target.features(x[:1], layers)  # unknown or shared layers: the target's own error
        if self.signal == "activations":
            return ctx.target.features(x, layers)  # type: ignore[attr-defined,no-any-return]
        return layer_explanations(ctx.target, x, y, layers)

    def _plan(
        self, ctx: AuditContext
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
        """The records (audited, then any calibration-only ones), their membership, and the
        positions of the calibration and held-out records among them."""
        audited, is_member = ctx.data.audit_records()
        mode = self.calibration
        if mode == "auto":
            known = ctx.data.train_sample is not None and ctx.data.population is not None
            mode = "known" if known else "split"
        if mode == "split":
            rng = ctx.rng(f"{self.audit_id()}/calibration")
            calibrate = np.zeros(len(audited), dtype=bool)
            for side in (0, 1):
                idx = np.flatnonzero(is_member == side)
                k = round(self.calibration_fraction * len(idx))
                calibrate[rng.permutation(idx)[:k]] = True
            x, y, member = audited.x, audited.y, is_member
            calibration, held_out = np.flatnonzero(calibrate), np.flatnonzero(~calibrate)
            source = (
                f"a random {self.calibration_fraction:.0%} of the audited members and non-members"
            )
        else:
            sample, population = ctx.data.require("train_sample"), ctx.data.require("population")
            x = np.concatenate([audited.x, sample.x, population.x])
            y = np.concatenate([audited.y, sample.y, population.y])
            member = np.r_[is_member, np.ones(len(sample)), np.zeros(len(population))].astype(
                np.int8
            )
            n = len(audited)
            calibration = np.arange(n, len(x))
            copies = np.isin(_row_keys(audited.x), _row_keys(x[n:]))
            held_out = np.flatnonzero(~copies)
            source = "the training sample (members) and the population (non-members)"
        for side, role in ((1, "members"), (0, "non-members")):
            if min((member[calibration] == side).sum(), (member[held_out] == side).sum()) < (
                MIN_HELD_OUT
            ):
                raise DataError(
                    f"data: {self.name} needs at least {MIN_HELD_OUT} {role} to calibrate on and "
                    f"{MIN_HELD_OUT} held out ({source} calibrate)"
                )
        return x, y, member, calibration, held_out, source

    def run(self, ctx: AuditContext) -> AuditResult:
        layers = self._layers(ctx)
        x, y, member, calibration, held_out, source = self._plan(ctx)
        signals = self._signals(ctx, x, y, layers)
        reduced = {
            layer: _reduce(f, calibration, self.max_features) for layer, f in signals.items()
        }
        cal_y, out_y = y[calibration], y[held_out]
        cal_member, out_member = member[calibration], member[held_out]

        # cross-fitting, per layer: the models of each fold score the calibration records they
        # were not fit to (out-of-fold) and every held-out record (averaged over the folds), so
        # the threshold set on the former means the same on the latter
        folds = StratifiedKFold(CALIBRATION_FOLDS, shuffle=True, random_state=ctx.seed % 2**31)
        splits = list(folds.split(calibration, cal_member))
        layer_scores, layer_oof = [], []
        for layer in layers:
            cal_features, out_features = reduced[layer][calibration], reduced[layer][held_out]
            oof, held = np.zeros(len(calibration)), np.zeros(len(held_out))
            for fit, score in splits:
                both = class_model_scores(
                    cal_features[fit],
                    cal_member[fit],
                    cal_y[fit],
                    np.concatenate([cal_features[score], out_features]),
                    np.concatenate([cal_y[score], out_y]),
                )
                oof[score] = both[: len(score)]
                held += both[len(score) :] / len(splits)
            layer_oof.append(oof)
            layer_scores.append(held)
        # the layers are combined by a logistic regression on their out-of-fold scores
        stack = _linear_model().fit(np.stack(layer_oof, axis=1), cal_member)
        scores = stack.decision_function(np.stack(layer_scores, axis=1))
        oof = stack.decision_function(np.stack(layer_oof, axis=1))
        base_rate = float(out_member.mean())
        threshold, best = precision_threshold(
            oof, cal_member, self.target_precision, base_rate, self.calibration_confidence
        )
        metrics = membership_metrics(scores, out_member, confidence=ctx.confidence)
        details: dict[str, object] = {
            "n_members": int(out_member.sum()),
            "n_nonmembers": int((1 - out_member).sum()),
            "n_calibration": len(calibration),
            "calibrated_on": source,
            "base_rate": base_rate,
            "layers": layers,
            "signal": self.signal,
        }
        if threshold is not None:
            rates = rates_at_threshold(scores, out_member, threshold, confidence=ctx.confidence)
            metrics["operating_tpr"] = rates["tpr"]
            metrics["false_alarm_rate"] = rates["fpr"]
            metrics["operating_precision"] = rates["precision"]
            details["operating_point"] = {
                "target_precision": self.target_precision,
                "threshold": threshold,
                "calibrated_on": source,
                "n_calibration": len(calibration),
            }
        else:
            reason = (
                f"no threshold reaches precision {self.target_precision:g} on the calibration "
                f"records with {self.calibration_confidence:.0%} confidence (the best point "
                f"precision is "
                f"{best:.3f})"
            )
            for key in ("operating_tpr", "false_alarm_rate", "operating_precision"):
                metrics[key] = Estimate.not_estimable(reason, len(held_out), ctx.confidence)
            details["operating_point"] = None
            details["operating_point_reason"] = reason
        # held-out records are always audited ones (their positions index the audited records)
        result = self.scored_result(ctx, scores, out_member, held_out, metrics, details, threshold)
        per_layer = {
            f"layer={layer}": membership_metrics(s, out_member, confidence=ctx.confidence)
            for layer, s in zip(layers, layer_scores, strict=True)
        }
        aucs = {layer: per_layer[f"layer={layer}"]["auc"].value or 0.0 for layer in layers}
        result.details["strongest_layer"] = max(aucs, key=lambda k: aucs[k])
        result.groups = per_layer | result.groups
        return result
