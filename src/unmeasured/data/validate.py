"""Validation of records and of `Datasets`: shapes, dtypes, label range, NaN/inf, records shared
between roles."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from unmeasured.data.records import ROLES, Datasets, Records
from unmeasured.errors import ConfigError, DataError, one_of


def validate_records(
    records: Records,
    *,
    name: str,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Records:
    """Check one record set and return it with ``x`` float32 and ``y`` int64.

    Labels may be stored as floats if every value is integral.

    Raises:
        DataError: naming ``name`` (e.g. ``"data.members (members.npz)"``) and what is wrong.
    """
    x, y = np.asarray(records.x), np.asarray(records.y)
    if y.ndim != 1:
        raise DataError(f"{name}: labels must be 1-D, got shape {y.shape}")
    if x.ndim < 2:
        raise DataError(
            f"{name}: x has shape {x.shape}, but each record must be an array: x needs shape "
            "(records, features...); for one feature per record use x.reshape(-1, 1)"
        )
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} inputs but {len(y)} labels")
    if len(y) == 0:
        raise DataError(f"{name}: no records")
    for col, values in records.columns.items():
        if len(values) != len(y):
            raise DataError(f"{name}: column '{col}' has {len(values)} values for {len(y)} records")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{name}: x has non-numeric dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"{name}: {len(rows)} records contain NaN or infinite values (first at index {rows[0]})"
        )
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"{name}: labels must be integers (class indices)")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: labels must be integers (class indices), got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise DataError(f"{name}: label {int(y.min())} is negative; labels must be 0..C-1")
    if num_classes is not None and y.max() >= num_classes:
        raise DataError(
            f"{name}: label {int(y.max())} is out of range for a model with {num_classes} "
            f"classes (labels must be 0..{num_classes - 1})"
        )
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(
            f"{name}: records have shape {tuple(x.shape[1:])}, expected {tuple(input_shape)}"
        )
    return Records(x=x, y=y, columns=dict(records.columns), source=records.source)


def _row_hashes(records: Records) -> np.ndarray:
    x = np.ascontiguousarray(records.x).reshape(len(records), -1)
    return np.array(
        [
            hashlib.blake2b(
                row.tobytes() + int(label).to_bytes(8, "little", signed=True), digest_size=16
            ).digest()
            for row, label in zip(x, records.y, strict=True)
        ],
        dtype="S16",
    )


def shared_duplicates(a: Records, b: Records) -> np.ndarray:
    """Index pairs ``(i, j)`` where record ``i`` of ``a`` equals record ``j`` of ``b`` exactly
    (same input bytes and label); shape ``(m, 2)``."""
    ha, hb = _row_hashes(a), _row_hashes(b)
    common = np.intersect1d(ha, hb)
    if len(common) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = []
    order_b = np.argsort(hb)
    sorted_b = hb[order_b]
    for i in np.flatnonzero(np.isin(ha, common)):
        lo, hi = np.searchsorted(sorted_b, ha[i], "left"), np.searchsorted(sorted_b, ha[i], "right")
        pairs.extend((i, j) for j in order_b[lo:hi])
    return np.array(pairs, dtype=np.int64)


def _indices(pairs: np.ndarray, side: int) -> str:
    idx = np.unique(pairs[:, side])
    return ", ".join(str(i) for i in idx[:5]) + (", ..." if len(idx) > 5 else "")


#: pairs of roles that must not share a record (the ground truth would contradict itself)
_DISJOINT = (("members", "nonmembers"), ("train_sample", "nonmembers"))
#: pairs that should not share records; sharing is a warning, with what it distorts
_SHOULD_BE_DISJOINT = (
    ("population", "members", "the population should be disjoint from audited records"),
    ("population", "nonmembers", "the population should be disjoint from audited records"),
    ("test", "members", "accuracy on test is inflated by records the model trained on"),
)


def build_datasets(
    roles: Mapping[str, Records | None],
    *,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    warnings: Sequence[str] = (),
) -> Datasets:
    """Validate the record set of every role and build `Datasets`.

    Each role is checked on its own (shapes, labels, NaN/inf, columns) and against the others:
    every role must have the same record shape; members and non-members (and a training sample
    and non-members) must not share a record; a population or test set sharing records with the
    audited ones is a warning.

    Args:
        roles: records by role name (see `ROLES`); None or absent roles are left out.
        num_classes: the target's number of classes, if known (labels must be below it).
        input_shape: the target's input shape, if known.
        warnings: warnings found earlier (e.g. while loading files) to carry along.

    Raises:
        DataError: naming ``data.<role>`` (and its file) and what is wrong.
        ConfigError: an unknown role.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ConfigError(f"data.{sorted(unknown)[0]}: unknown data role; choose {one_of(ROLES)}")
    checked: dict[str, Records] = {}
    for role in ROLES:
        recs = roles.get(role)
        if recs is None:
            continue
        label = f"data.{role}" + (
            f" ({recs.source})" if recs.source not in ("<array>", role) else ""
        )
        checked[role] = validate_records(
            recs, name=label, num_classes=num_classes, input_shape=input_shape
        )
    first = next(iter(checked), None)
    for role, recs in checked.items():
        if first is not None and recs.input_shape != checked[first].input_shape:
            raise DataError(
                f"data.{role}: records have shape {recs.input_shape}, "
                f"but {first} have {checked[first].input_shape}"
            )
    for a, b in _DISJOINT:
        if a in checked and b in checked:
            pairs = shared_duplicates(checked[a], checked[b])
            if len(pairs):
                n_a, n_b = len(np.unique(pairs[:, 0])), len(np.unique(pairs[:, 1]))
                raise DataError(
                    f"data.{b}: {n_b} of {len(checked[b])} records are exact copies of "
                    f"{n_a} of the {len(checked[a])} {a} records (indices in {b}: "
                    f"{_indices(pairs, 1)}); a record cannot be both, remove the copies"
                )
    found = list(warnings)
    for a, b, consequence in _SHOULD_BE_DISJOINT:
        if a in checked and b in checked:
            pairs = shared_duplicates(checked[a], checked[b])
            if len(pairs):
                found.append(
                    f"data.{a}: {len(np.unique(pairs[:, 0]))} records are exact copies of {b} "
                    f"records (indices {_indices(pairs, 0)}); {consequence}"
                )
    return Datasets(**checked, warnings=tuple(found))


def check_labels(data: Datasets, num_classes: int) -> None:
    """Check that every role's labels are classes of a model with ``num_classes`` outputs.

    Raises:
        DataError: naming the role and the label out of range.
    """
    for role, records in data.items():
        if len(records) and int(records.y.max()) >= num_classes:
            raise DataError(
                f"data.{role}: label {int(records.y.max())} is out of range for a model with "
                f"{num_classes} classes (labels must be 0..{num_classes - 1})"
            )


def random_split(
    records: Records,
    *,
    n_members: int,
    n_nonmembers: int,
    n_population: int = 0,
    seed: int = 0,
) -> Datasets:
    """A seeded random split of one record set into disjoint members, non-members, population.

    Exact duplicates (same input and label) are dropped first, so the roles share no record.
    """
    _, first = np.unique(_row_hashes(records), return_index=True)
    unique = records.subset(np.sort(first))
    total = n_members + n_nonmembers + n_population
    if total > len(unique):
        raise DataError(
            f"{records.source}: asked for {total} records, have {len(unique)} distinct ones"
        )
    perm = np.random.default_rng(seed).permutation(len(unique))
    m = unique.subset(perm[:n_members])
    n = unique.subset(perm[n_members : n_members + n_nonmembers])
    p = unique.subset(perm[n_members + n_nonmembers : total]) if n_population else None
    return build_datasets({"members": m, "nonmembers": n, "population": p})
