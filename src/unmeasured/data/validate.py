"""Validation of records and splits: shapes, dtypes, label range, NaN/inf, shared duplicates."""

from __future__ import annotations

import hashlib

import numpy as np

from unmeasured.data.records import Records, Split
from unmeasured.errors import DataError


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
        raise DataError(f"{name}: x must have shape (n, features...), got shape {x.shape}")
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


def _describe(pairs: np.ndarray, side: int, what: str, other: str) -> str:
    idx = np.unique(pairs[:, side])
    shown = ", ".join(str(i) for i in idx[:5]) + (", ..." if len(idx) > 5 else "")
    return (
        f"{len(idx)} {what} records are exact duplicates of {other} records (indices {shown}); "
        "their ground truth is ambiguous"
    )


def build_split(
    members: Records,
    nonmembers: Records,
    population: Records | None = None,
    *,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Split:
    """Validate the three record sets and build a `Split`.

    Shared exact duplicates do not stop the audit; they become ``Split.warnings``.
    """
    sets = {"members": members, "nonmembers": nonmembers, "population": population}
    checked: dict[str, Records | None] = {}
    for role, recs in sets.items():
        if recs is None:
            checked[role] = None
            continue
        label = f"data.{role}" + (
            f" ({recs.source})" if recs.source not in ("<array>", role) else ""
        )
        checked[role] = validate_records(
            recs, name=label, num_classes=num_classes, input_shape=input_shape
        )
    m, n, p = checked["members"], checked["nonmembers"], checked["population"]
    if m is None or n is None:
        raise DataError("data: members and nonmembers are both required")
    for role, recs in (("nonmembers", n), ("population", p)):
        if recs is not None and recs.input_shape != m.input_shape:
            raise DataError(
                f"data.{role}: records have shape {recs.input_shape}, "
                f"but members have {m.input_shape}"
            )
    warnings = []
    pairs = shared_duplicates(m, n)
    if len(pairs):
        warnings.append(_describe(pairs, 1, "non-member", "member"))
    if p is not None:
        for role, recs in (("member", m), ("non-member", n)):
            pairs = shared_duplicates(p, recs)
            if len(pairs):
                warnings.append(
                    _describe(pairs, 0, "population", role).replace(
                        "their ground truth is ambiguous",
                        "the population should be disjoint from audited records",
                    )
                )
    return Split(members=m, nonmembers=n, population=p, warnings=tuple(warnings))


def random_split(
    records: Records,
    *,
    n_members: int,
    n_nonmembers: int,
    n_population: int = 0,
    seed: int = 0,
) -> Split:
    """A seeded random split of one record set into disjoint members, non-members, population."""
    total = n_members + n_nonmembers + n_population
    if total > len(records):
        raise DataError(f"{records.source}: asked for {total} records, have {len(records)}")
    perm = np.random.default_rng(seed).permutation(len(records))
    m = records.subset(perm[:n_members])
    n = records.subset(perm[n_members : n_members + n_nonmembers])
    p = records.subset(perm[n_members + n_nonmembers : total]) if n_population else None
    return build_split(m, n, p)
