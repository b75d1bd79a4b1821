"""Loaders for record files: ``.npz``, CSV and IDX (the MNIST format, gzipped or not).

Every loader returns `Records` with ``x`` float32 (C-contiguous) and ``y`` as given (validated
and converted to int64 by `validate_records`), and raises `DataError` naming the file.
"""

from __future__ import annotations

import csv
import gzip
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unmeasured.data.records import Records
from unmeasured.errors import DataError, one_of

SUFFIXES = (".npz", ".csv")


def _exists(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")


def load_npz(
    path: str | Path,
    *,
    x_key: str = "x",
    y_key: str = "y",
    columns: Sequence[str] | None = None,
) -> Records:
    """Records from a NumPy ``.npz`` file (arrays ``x``, ``y`` and optional 1-D columns).

    Object arrays are refused: loading them would unpickle.
    """
    path = Path(path)
    _exists(path)
    if not zipfile.is_zipfile(path):  # np.load would otherwise try it as a pickle
        raise DataError(f"{path}: not a valid .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            for key in (x_key, y_key):
                if key not in names:
                    raise DataError(
                        f"{path}: no array '{key}' (has {', '.join(names) or 'none'}); "
                        f"name the arrays with data.x_key and data.y_key"
                    )
            x, y = z[x_key], z[y_key]
            n = len(y) if y.ndim else 0
            wanted = (
                [c for c in names if c not in (x_key, y_key) and z[c].ndim == 1 and len(z[c]) == n]
                if columns is None
                else list(columns)
            )
            cols = {}
            for c in wanted:
                if c not in names:
                    raise DataError(f"{path}: no column '{c}' (has {', '.join(names)})")
                cols[c] = z[c]
    except DataError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise DataError(
                f"{path}: holds an object array, which would need unpickling; "
                "save plain numeric arrays"
            ) from None
        raise DataError(f"{path}: not a valid .npz file ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{path}: not a valid .npz file ({type(e).__name__})") from None
    return Records(x=_as_float(x, path), y=y, columns=cols, source=str(path))


def load_csv(path: str | Path, *, label: str = "label", columns: Sequence[str] = ()) -> Records:
    """Records from a CSV file with a header: numeric feature columns, the ``label`` column,
    and named extra ``columns`` (kept as per-record columns, excluded from ``x``)."""
    path = Path(path)
    _exists(path)
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        rows = list(reader)
    header = [h.strip() for h in header]
    if label not in header:
        raise DataError(
            f"{path}: no label column '{label}' (columns: {', '.join(header)}); "
            "set data.label to the name of the label column"
        )
    for c in columns:
        if c not in header:
            raise DataError(f"{path}: no column '{c}' (columns: {', '.join(header)})")
    features = [i for i, h in enumerate(header) if h != label and h not in columns]
    x = np.empty((len(rows), len(features)), dtype=np.float32)
    y = np.empty(len(rows), dtype=np.float64)
    extra: dict[str, list[str]] = {c: [] for c in columns}
    li = header.index(label)
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise DataError(f"{path}: row {r + 2} has {len(row)} fields, header has {len(header)}")
        for j, i in enumerate(features):
            try:
                x[r, j] = float(row[i])
            except ValueError:
                raise DataError(
                    f"{path}: column '{header[i]}', row {r + 2}: '{row[i]}' is not a number"
                ) from None
        try:
            y[r] = float(row[li])
        except ValueError:
            raise DataError(
                f"{path}: label column '{label}', row {r + 2}: '{row[li]}' is not a number"
            ) from None
        for c in columns:
            extra[c].append(row[header.index(c)])
    cols = {c: _maybe_numeric(v) for c, v in extra.items()}
    return Records(x=x, y=y, columns=cols, source=str(path))


def _maybe_numeric(values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return np.array(values)


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (gzipped or not, detected by its magic bytes) as an array."""
    path = Path(path)
    _exists(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{path}: not an IDX file (type code 0x{code:02x}, {ndim} dimensions)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: truncated or oversized IDX data: {len(raw) - header} bytes for dimensions "
            f"{dims} (expected {expected})"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def load_idx(images_path: str | Path, labels_path: str | Path) -> Records:
    """Records from an IDX image file and an IDX label file (MNIST layout).

    Images become float32 in [0, 1] with shape ``(n, 1, rows, cols)``.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected 3 dimensions (n, rows, cols), got {images.ndim}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected 1 dimension, got {labels.ndim}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    x = (images.astype(np.float32) / scale)[:, None]
    return Records(x=np.ascontiguousarray(x), y=labels.astype(np.int64), source=str(images_path))


def load_records(path: str | Path, **options: object) -> Records:
    """Load records by file suffix: ``.npz`` (`load_npz`) or ``.csv`` (`load_csv`).

    Raises:
        DataError: missing file or unsupported suffix (the message lists the supported ones).
    """
    path = Path(path)
    if path.suffix == ".npz":
        keep = {k: options[k] for k in ("x_key", "y_key", "columns") if k in options}
        return load_npz(path, **keep)  # type: ignore[arg-type]
    if path.suffix == ".csv":
        keep = {k: options[k] for k in ("label", "columns") if k in options}
        return load_csv(path, **keep)  # type: ignore[arg-type]
    _exists(path)
    raise DataError(f"{path}: unsupported file type '{path.suffix}'; use {one_of(SUFFIXES)}")


def _as_float(x: np.ndarray, path: Path) -> np.ndarray:
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{path}: x has non-numeric dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)
