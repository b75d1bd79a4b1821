"""The Python API: audit a model in a notebook or script; the CLI is a thin layer over it.

Example:
    >>> import unmeasured  # doctest: +SKIP
    >>> run = unmeasured.audit(model, members=(x_train, y_train), nonmembers=(x_test, y_test),
    ...                        audits=["membership.loss"])  # doctest: +SKIP
    >>> run["membership.loss"].metrics["auc"].format()  # doctest: +SKIP
    '0.612 [0.589, 0.636]'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unmeasured.audits.base import Audit, AuditContext
from unmeasured.audits.registry import create
from unmeasured.config import DEFAULT_AUDITS, AuditEntry, LoadedConfig
from unmeasured.data import Records, build_split, load_records
from unmeasured.errors import DataError, InputError
from unmeasured.gates import evaluate, parse_rule
from unmeasured.progress import Progress
from unmeasured.provenance import collect, now, sha256_arrays
from unmeasured.results import AuditResult, RunResult
from unmeasured.store import RunStore, default_cache_dir
from unmeasured.targets import as_target, load_target, resolve_num_classes

AuditSpec = str | Audit | AuditEntry | tuple[str, dict[str, Any]]
RecordsLike = Records | tuple[np.ndarray, np.ndarray]


def audit(
    model: Any,
    *,
    members: RecordsLike,
    nonmembers: RecordsLike,
    population: RecordsLike | None = None,
    audits: Sequence[AuditSpec] | None = None,
    seed: int = 0,
    recipe: Any = None,
    num_classes: int | None = None,
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
        audits: registry names (see ``unmeasured list``), `Audit` instances or
            ``(name, params)`` pairs; default: the membership baselines.
        seed: makes the whole run deterministic.
        recipe: how to train models like this one (needed by reference-model attacks).
        confidence: coverage of every confidence interval.
        fail_on: gate rules such as ``"membership.*.tpr_at_fpr_0.01>0.05"``.
        out: a run directory to write results, arrays and ``report.html`` into.
        cache_dir: where reference models are cached (default ``~/.cache/unmeasured``).
        progress: a progress reporter (default: silent).

    Returns:
        The `RunResult`; it renders as HTML in a notebook.

    Raises:
        InputError: bad data, model or audit names (one line naming what is wrong).
    """
    target = as_target(model, num_classes=num_classes)
    member_records = _as_records(members, "members")
    resolve_num_classes(target, member_records.x)
    split = build_split(
        member_records,
        _as_records(nonmembers, "nonmembers"),
        None if population is None else _as_records(population, "population"),
        num_classes=target.num_classes,
    )
    ctx = AuditContext(
        target=target,
        split=split,
        seed=seed,
        recipe=recipe,
        cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(),
        progress=progress or Progress(),
        confidence=confidence,
    )
    hashes = {
        "members": sha256_arrays(split.members.x, split.members.y),
        "nonmembers": sha256_arrays(split.nonmembers.x, split.nonmembers.y),
    }
    if split.population is not None:
        hashes["population"] = sha256_arrays(split.population.x, split.population.y)
    provenance = collect(
        seed=seed,
        arrays=hashes,
        config={"target": target.description, "confidence": confidence},
    )
    return run_audits(ctx, resolve_audits(audits), provenance=provenance, out=out, fail_on=fail_on)


def audit_config(
    loaded: LoadedConfig,
    *,
    out: str | Path | None = None,
    seed: int | None = None,
    fail_on: Iterable[str] = (),
    trust_pickle: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Run the audit a config file describes (what ``unmeasured audit CONFIG`` does)."""
    cfg = loaded.config
    seed = cfg.seed if seed is None else seed
    rules = [*cfg.fail_on, *fail_on]
    for rule in rules:  # fail fast on a malformed rule, before any work
        parse_rule(rule)
    audits = resolve_audits(cfg.audits)
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
    d = cfg.data
    files: dict[str, Path] = {"config": loaded.path}
    for i, f in enumerate(getattr(target, "files", ()) or ()):
        files[f"target[{i}]"] = Path(f)
    sets = {}
    for role in ("members", "nonmembers", "population"):
        rel = getattr(d, role)
        if rel is None:
            sets[role] = None
            continue
        path = loaded.resolve(rel)
        sets[role] = _load_data_file(path, role, d)
        files[role] = path
    resolve_num_classes(target, sets["members"].x)
    split = build_split(
        sets["members"], sets["nonmembers"], sets["population"], num_classes=target.num_classes
    )
    recipe = None
    if cfg.recipe is not None:
        from unmeasured.training import load_recipe

        recipe = load_recipe(cfg.recipe, loaded.base_dir)
    ctx = AuditContext(
        target=target,
        split=split,
        seed=seed,
        recipe=recipe,
        cache_dir=loaded.resolve(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(),
        progress=progress or Progress(),
        confidence=cfg.confidence,
    )
    provenance = collect(seed=seed, files=files, config=cfg.model_dump(mode="json"))
    store = RunStore(out) if out is not None else None
    if store is not None:
        store.write_config(loaded.text)
    return run_audits(ctx, audits, provenance=provenance, out=out, fail_on=rules)


def run_audits(
    ctx: AuditContext,
    audits: Sequence[Audit],
    *,
    provenance: dict[str, Any],
    out: str | Path | None = None,
    fail_on: Iterable[str] = (),
) -> RunResult:
    """Run audits one after another, saving after each so that no finished work is lost.

    An unexpected error inside one audit marks it ``failed`` with the reason and the run goes on;
    an input error (bad data or model) stops the run after saving what finished.
    """
    rules = list(fail_on)
    for rule in rules:
        parse_rule(rule)
    store = RunStore(out) if out is not None else None
    run = RunResult(audits=[], provenance=provenance, warnings=list(ctx.split.warnings))
    for audit_obj in audits:
        ctx.progress.log(f"running {audit_obj.name}")
        try:
            result = audit_obj(ctx)
        except (InputError, KeyboardInterrupt):
            if store is not None:
                store.save(run)
            raise
        except Exception as e:
            result = AuditResult(
                name=audit_obj.name,
                status="failed",
                reason=f"{type(e).__name__}: {e}",
                params=audit_obj.get_params(),
            )
        run.audits.append(result)
        if store is not None:
            store.save(run)
    run.provenance["finished"] = now()
    run.verdicts = evaluate(run, rules) if rules else []
    if store is not None:
        store.save(run)
        store.write_report(run)
    return run


def resolve_audits(specs: Sequence[AuditSpec] | None) -> list[Audit]:
    """Audit instances from names, instances, config entries or ``(name, params)`` pairs."""
    if specs is None:
        specs = list(DEFAULT_AUDITS)
    if isinstance(specs, str):
        specs = [specs]
    audits = []
    for i, spec in enumerate(specs):
        field = f"audits[{i}]"
        if isinstance(spec, Audit):
            audits.append(spec)
        elif isinstance(spec, str):
            audits.append(create(spec, field=field))
        elif isinstance(spec, AuditEntry):
            audits.append(create(spec.name, spec.params, field=field))
        elif isinstance(spec, tuple) and len(spec) == 2:
            audits.append(create(spec[0], dict(spec[1]), field=field))
        else:
            raise InputError(f"{field}: expected an audit name, an Audit or (name, params)")
    if not audits:
        raise InputError("audits: no audit selected")
    return audits


def _as_records(obj: RecordsLike, name: str) -> Records:
    if isinstance(obj, Records):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2:
        x, y = obj
        x = _to_numpy(x)
        y = _to_numpy(y)
        return Records(x=x, y=y, source=name)
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
