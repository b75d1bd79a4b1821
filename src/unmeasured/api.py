"""The Python API: audit a model in a notebook or script; the CLI is a thin layer over it.

The flow of every run: the audits are planned (ids, duplicates), the target, the data (by role)
and the recipe are loaded and checked, every audit's requirements and every gate rule are
checked against them **before any work**, then the target card is drawn up, the audits run one
after another (results saved after each) and the gates are evaluated.

Example:
    >>> import unmeasured  # doctest: +SKIP
    >>> run = unmeasured.audit(model, members=(x_train, y_train), nonmembers=(x_test, y_test),
    ...                        audits=["membership.loss"])  # doctest: +SKIP
    >>> run["membership.loss"].metrics["auc"].format()  # doctest: +SKIP
    '0.612 [0.589, 0.636]'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unmeasured.audits.base import Audit, AuditContext
from unmeasured.audits.registry import create, family_members
from unmeasured.config import DEFAULT_AUDITS, AuditEntry, LoadedConfig
from unmeasured.data import ROLES, Datasets, Records, build_datasets, check_labels, load_records
from unmeasured.errors import ConfigError, DataError, InputError
from unmeasured.gates import check_rules, evaluate
from unmeasured.progress import Progress
from unmeasured.provenance import collect, now, sha256_arrays, sha256_file
from unmeasured.results import AuditResult, RunResult, TargetCard
from unmeasured.stats.intervals import proportion
from unmeasured.store import RunStore, default_cache_dir
from unmeasured.targets import as_target, load_target, resolve_num_classes
from unmeasured.targets.base import Target
from unmeasured.targets.language import LanguageModel

AuditSpec = str | Audit | AuditEntry | tuple[str, dict[str, Any]]
RecordsLike = Records | tuple[np.ndarray, np.ndarray]

__all__ = ["PlannedAudit", "RunResult", "audit", "audit_config", "plan_audits", "run_audits"]


@dataclass
class PlannedAudit:
    """One audit of a run, before it runs.

    Attributes:
        id: its unique id in the run (``membership.lira[online]``).
        audit: the audit instance.
        explicit: named by the user (unmet requirements are then an error) rather than part
            of the default suite or a whole family (then it is skipped with the reason).
        field: where it came from, for messages (``audits[2]``).
        skip_reason: why it will be skipped (set by the preflight check).
    """

    id: str
    audit: Audit
    explicit: bool
    field: str
    skip_reason: str | None = field(default=None)


def audit(
    model: Any,
    *,
    members: RecordsLike | None = None,
    nonmembers: RecordsLike | None = None,
    population: RecordsLike | None = None,
    test: RecordsLike | None = None,
    train_sample: RecordsLike | None = None,
    audits: Sequence[AuditSpec] | str | None = None,
    seed: int = 0,
    recipe: Any = None,
    num_classes: int | None = None,
    input_bounds: tuple[float, float] | None = None,
    confidence: float = 0.95,
    fail_on: Iterable[str] = (),
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Audit a model on in-memory data.

    Args:
        model: a torch ``nn.Module``, a fitted scikit-learn classifier, a `Target`, or a callable
            returning logits (then give ``num_classes``).
        members: the records the model was trained on, as ``(x, y)`` or `Records`.
        nonmembers: records from the same distribution it never saw.
        population: the auditor's own data, disjoint from both (calibration, reference models).
        test: labelled evaluation data (robustness audits, the target card).
        train_sample: a sample of the training data (white-box audits).
        audits: registry names (see ``unmeasured list``), family names (``"membership"``),
            `Audit` instances or ``(name, params)`` pairs; default: the membership baselines.
        seed: makes the whole run deterministic.
        recipe: how to train models like this one (needed by reference-model attacks).
        num_classes: the number of classes, when the model cannot tell.
        input_bounds: the valid input range ``(low, high)``; default: the target's own, else the
            range of the data.
        confidence: coverage of every confidence interval.
        fail_on: gate rules such as ``"membership.*.tpr_at_fpr_0.01>0.05"``.
        out: a run directory to write results, arrays and ``report.html`` into.
        cache_dir: where trained reference models are cached (default ``~/.cache/unmeasured``).
        progress: a progress reporter (default: silent).

    Returns:
        The `RunResult`; it renders as HTML in a notebook.

    Raises:
        InputError: bad data, model, audit names or gate rules, or an audit the user named whose
            requirements are not met (one line naming what is wrong), before any work starts.
    """
    planned = plan_audits(audits)
    rules = list(fail_on)
    target = as_target(model, num_classes=num_classes)
    given = {
        role: _as_records(value, role)
        for role, value in (
            ("members", members),
            ("nonmembers", nonmembers),
            ("population", population),
            ("test", test),
            ("train_sample", train_sample),
        )
        if value is not None
    }
    data = _checked_data(
        target, given, DataError("data: no records given; pass at least one of " + ", ".join(ROLES))
    )
    ctx = AuditContext(
        target=target,
        data=data,
        seed=seed,
        recipe=recipe,
        cache_dir=_cache_dir(cache_dir),
        progress=progress or Progress(),
        confidence=confidence,
    )
    bounds_source = _resolve_bounds(ctx, input_bounds)
    preflight(planned, ctx)
    check_rules(rules, {p.id: p.audit.metric_names() for p in planned})
    provenance = collect(
        seed=seed,
        arrays={role: sha256_arrays(r.x, r.y) for role, r in data.items()},
        config={"target": target.description, "confidence": confidence},
    )
    return run_audits(
        ctx,
        planned,
        provenance=provenance,
        out=out,
        fail_on=rules,
        card=target_card(ctx, bounds_source),
    )


def audit_config(
    loaded: LoadedConfig,
    *,
    out: str | Path | None = None,
    seed: int | None = None,
    fail_on: Iterable[str] = (),
    trust_pickle: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Run the audit a config file describes (what ``unmeasured audit CONFIG`` does).

    Everything the config names is loaded and checked first, so bad input of any kind raises
    an `InputError` before any model is trained.
    """
    cfg = loaded.config
    seed = cfg.seed if seed is None else seed
    rules = [*cfg.fail_on, *fail_on]
    planned = plan_audits(cfg.audits)
    check_rules(rules, {p.id: p.audit.metric_names() for p in planned})  # syntax, early
    t = cfg.target
    target = load_target(
        kind=t.kind,
        base_dir=loaded.base_dir,
        factory=t.factory,
        factory_kwargs=t.factory_kwargs or None,
        weights=t.weights,
        path=t.path,
        output=t.output,
        num_classes=t.num_classes,
        trust_pickle=trust_pickle,
        device=t.device,
        batch_size=t.batch_size,
        trusted_types=t.trusted_types,
    )
    files: dict[str, Path] = {"config": loaded.path}
    for i, f in enumerate(getattr(target, "files", ()) or ()):
        files[f"target[{i}]"] = Path(f)
    given: dict[str, Records] = {}
    seen: dict[Path, str] = {}
    for role in ROLES:
        rel = getattr(cfg.data, role)
        if rel is None:
            continue
        path = loaded.resolve(rel)
        if path.resolve() in seen and {role, seen[path.resolve()]} & {"members", "nonmembers"}:
            raise DataError(
                f"data.{role}: {rel} is the same file as data.{seen[path.resolve()]}; "
                "each role needs its own records"
            )
        seen[path.resolve()] = role
        given[role] = _load_data_file(path, role, cfg.data)
        files[role] = path
    data = _checked_data(
        target,
        given,
        ConfigError("data: no data file given; set at least one of " + ", ".join(ROLES)),
    )
    recipe = None
    if cfg.recipe is not None:
        from unmeasured.training import load_recipe

        recipe = load_recipe(cfg.recipe, loaded.base_dir)
    ctx = AuditContext(
        target=target,
        data=data,
        seed=seed,
        recipe=recipe,
        cache_dir=_cache_dir(loaded.resolve(cfg.cache_dir) if cfg.cache_dir else None),
        progress=progress or Progress(),
        confidence=cfg.confidence,
    )
    bounds_source = _resolve_bounds(ctx, t.input_bounds)
    preflight(planned, ctx)
    provenance = collect(seed=seed, files=files, config=cfg.model_dump(mode="json"))
    store = RunStore(out) if out is not None else None
    if store is not None:
        store.write_config(loaded.text)
    return run_audits(
        ctx,
        planned,
        provenance=provenance,
        out=out,
        fail_on=rules,
        card=target_card(ctx, bounds_source),
    )


def plan_audits(specs: Sequence[AuditSpec] | str | None) -> list[PlannedAudit]:
    """The audits of a run with their ids, from names, family names, instances, config
    entries or ``(name, params)`` pairs (None: the default suite).

    Two variants of one audit get distinct ids (``membership.lira[online]`` and
    ``membership.lira[offline]``; when the variant parameters agree, the parameters that differ
    are added). An audit named twice with the same parameters is an error.

    Raises:
        ConfigError: an unknown audit or parameter, a repeated audit, or no audit at all.
    """
    planned: list[PlannedAudit] = []
    if specs is None:
        planned = [PlannedAudit("", create(n), False, "default suite") for n in DEFAULT_AUDITS]
    else:
        for i, spec in enumerate([specs] if isinstance(specs, str) else specs):
            planned += _expand(spec, f"audits[{i}]")
    if not planned:
        raise ConfigError("audits: no audit selected")
    unique: list[PlannedAudit] = []
    for p in planned:
        twin = next((q for q in unique if _same(q.audit, p.audit)), None)
        if twin is None:
            unique.append(p)
        elif p.explicit and twin.explicit:
            raise ConfigError(
                f"{p.field}: repeats {twin.field} ({p.audit.name} with the same parameters); "
                "remove one, or change a parameter"
            )
        else:
            twin.explicit = twin.explicit or p.explicit
    _assign_ids(unique)
    return unique


def _expand(spec: AuditSpec, where: str) -> list[PlannedAudit]:
    if isinstance(spec, Audit):
        return [PlannedAudit("", spec, True, where)]
    if isinstance(spec, AuditEntry):
        name, params = spec.name, spec.params
    elif isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        name, params = spec[0], dict(spec[1])
    else:
        raise ConfigError(f"{where}: expected an audit name, an Audit or (name, params)")
    family = family_members(name)
    if family is not None:
        if params:
            raise ConfigError(
                f"{where}: '{name}' selects a whole family; parameters go with one audit "
                f"({', '.join(family)})"
            )
        return [PlannedAudit("", create(n, field=where), False, where) for n in family]
    return [PlannedAudit("", create(name, params, field=where), True, where)]


def _same(a: Audit, b: Audit) -> bool:
    return type(a) is type(b) and a.get_params() == b.get_params()


def _assign_ids(planned: list[PlannedAudit]) -> None:
    groups: dict[str, list[PlannedAudit]] = {}
    for p in planned:
        groups.setdefault(p.audit.audit_id(), []).append(p)
    for base, group in groups.items():
        if len(group) == 1:
            group[0].id = base
            continue
        params = [p.audit.get_params() for p in group]
        differing = [k for k in params[0] if len({repr(q[k]) for q in params}) > 1]
        for p, values in zip(group, params, strict=True):
            extra = ",".join(f"{k}={values[k]}" for k in differing)
            p.id = f"{base[:-1]},{extra}]" if base.endswith("]") else f"{base}[{extra}]"


def preflight(planned: Sequence[PlannedAudit], ctx: AuditContext) -> None:
    """Check every audit's requirements against the run, before any work.

    An audit the user named whose requirements are not met is an error; one from the default
    suite or a family selection is marked to be skipped, with the reason.

    Raises:
        ConfigError: every unmet requirement of every named audit at once, or no audit can run.
    """
    errors = []
    for p in planned:
        unmet = p.audit.requirements().unmet(
            target=ctx.target, data=ctx.data, recipe=ctx.recipe, input_bounds=ctx.input_bounds
        )
        p.skip_reason = "; ".join(unmet) if unmet else None
        if unmet and p.explicit:
            errors.append(f"{p.field} ({p.id}) {p.skip_reason}")
    if errors:
        raise ConfigError("cannot run the requested audits: " + " | ".join(errors))
    if all(p.skip_reason for p in planned):
        reasons = " | ".join(f"{p.id} {p.skip_reason}" for p in planned)
        raise ConfigError(f"audits: none of the selected audits can run with this input: {reasons}")


def target_card(ctx: AuditContext, bounds_source: str | None) -> TargetCard:
    """What is audited: the target's size, input and accuracy on every labelled role."""
    target = ctx.target
    if isinstance(target, LanguageModel):
        return TargetCard(
            description=target.description,
            num_classes=target.vocabulary_size,
            parameters=target.parameter_count(),
            files={str(f): sha256_file(f) for f in target.files},
            kind="language model",
        )
    accuracy = {}
    for role, records in ctx.data.items():
        correct = int((ctx.log_probs(role).argmax(axis=1) == records.y).sum())
        n = len(records)
        accuracy[role] = proportion(correct, n, ctx.confidence)
    return TargetCard(
        description=target.description,
        num_classes=int(target.num_classes),
        parameters=_parameter_count(target),
        input_shape=ctx.data.input_shape,
        input_bounds=ctx.input_bounds,
        bounds_source=bounds_source,
        accuracy=accuracy,
        files={str(f): sha256_file(f) for f in getattr(target, "files", ()) or ()},
    )


def run_audits(
    ctx: AuditContext,
    planned: Sequence[PlannedAudit],
    *,
    provenance: Mapping[str, Any],
    out: str | Path | None = None,
    fail_on: Iterable[str] = (),
    card: TargetCard | None = None,
) -> RunResult:
    """Run planned audits one after another, saving after each so that no finished work is lost.

    An unexpected error inside one audit marks it ``failed`` with the reason and the run goes on
    (the run's outcome is then incomplete: exit code 1); an input error (bad data or model found
    only while running) stops the run after saving what finished.
    """
    rules = list(fail_on)
    check_rules(rules, {p.id: p.audit.metric_names() for p in planned})
    store = RunStore(out) if out is not None else None
    run = RunResult(
        audits=[], provenance=dict(provenance), warnings=list(ctx.data.warnings), target=card
    )
    for p in planned:
        if p.skip_reason:
            result = AuditResult(
                name=p.audit.name,
                id=p.id,
                status="skipped",
                reason=p.skip_reason,
                params=p.audit.get_params(),
            )
        else:
            ctx.progress.log(f"running {p.id}")
            try:
                result = p.audit(ctx)
            except (InputError, KeyboardInterrupt):
                if store is not None:
                    store.save(run)
                raise
            except Exception as e:
                result = AuditResult(
                    name=p.audit.name,
                    status="failed",
                    reason=f"{type(e).__name__}: {e}",
                    params=p.audit.get_params(),
                )
        result.id = p.id
        run.audits.append(result)
        if store is not None:
            store.save(run)
    run.provenance["finished"] = now()
    run.verdicts = evaluate(run, rules) if rules else []
    if store is not None:
        store.save(run)
        store.write_report(run)
    return run


def _checked_data(
    target: Target | LanguageModel, given: dict[str, Records], none: InputError
) -> Datasets:
    """The run's datasets, checked against the target. A classifier needs records (raise
    ``none`` otherwise) whose labels fit its classes; a language model may have none."""
    if isinstance(target, LanguageModel):
        return build_datasets(given)
    if not given:
        raise none
    data = build_datasets(given)
    check_labels(data, resolve_num_classes(target, data.items()[0][1].x))
    return data


def _cache_dir(path: Path | str | None) -> Path:
    directory = Path(path) if path is not None else default_cache_dir()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"cache_dir: {directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cache_dir: cannot create {directory} ({e.strerror or e})") from None
    return directory


def _resolve_bounds(ctx: AuditContext, given: tuple[float, float] | None) -> str | None:
    """Set ``ctx.input_bounds``: as given, else the target's own, else the data's range; return
    where they came from."""
    if given is not None:
        ctx.input_bounds = (float(given[0]), float(given[1]))
        return "config"
    if ctx.target.input_bounds is not None:
        ctx.input_bounds = ctx.target.input_bounds
        return "target"
    parts = [r.x for _, r in ctx.data.items()]
    if not parts:
        return None
    low = min(float(x.min()) for x in parts)
    high = max(float(x.max()) for x in parts)
    if not low < high:
        return None
    ctx.input_bounds = (low, high)
    return "data"


def _parameter_count(target: Target) -> int | None:
    module = getattr(target, "module", None)
    if module is None or not hasattr(module, "parameters"):
        return None
    return int(sum(p.numel() for p in module.parameters()))


def _as_records(obj: RecordsLike, name: str) -> Records:
    if isinstance(obj, Records):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2:
        x, y = obj
        return Records(x=_to_numpy(x), y=_to_numpy(y), source=name)
    raise DataError(f"{name}: expected (x, y) arrays or Records, got {type(obj).__name__}")


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _load_data_file(path: Path, role: str, d: Any) -> Records:
    try:
        if path.suffix == ".csv":
            return load_records(path, label=d.label, columns=tuple(d.columns))
        return load_records(path, x_key=d.x_key, y_key=d.y_key, columns=d.columns or None)
    except DataError as e:
        msg = str(e)
        raise DataError(msg if msg.startswith(f"data.{role}") else f"data.{role}: {msg}") from None


def _render_html(run: RunResult) -> str:
    from unmeasured.report import render_html

    return render_html(run)


# The results layer does not depend on the report; the API, which sits above both, teaches
# results to render themselves in notebooks.
RunResult._repr_html_ = _render_html  # type: ignore[attr-defined]
