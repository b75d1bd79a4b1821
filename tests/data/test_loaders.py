"""Loaders: round trips and one-line errors that name the file."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from unmeasured.data import load_csv, load_idx, load_npz, load_records
from unmeasured.errors import DataError


def test_npz_round_trip_with_columns(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((5, 3))
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(5), user=np.arange(5) + 10, other=np.zeros(2))
    r = load_npz(tmp_path / "a.npz")
    assert r.x.dtype == np.float32 and r.x.flags.c_contiguous
    np.testing.assert_allclose(r.x, x, rtol=1e-6)
    assert list(r.columns) == ["user"]  # 1-D, one value per record
    assert str(tmp_path / "a.npz") in r.source


def test_npz_object_array_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.array([{"a": 1}] * 3, dtype=object), y=np.arange(3))
    with pytest.raises(DataError, match="object array"):
        load_npz(tmp_path / "a.npz")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.savez(p, x=np.zeros((2, 2)), labels=np.zeros(2)), "no array 'y'"),
        (lambda p: p.write_bytes(b"not a zip"), "not a valid .npz"),
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
    ids=["missing key", "corrupt", "missing file", "directory"],
)
def test_npz_errors(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "a.npz"
    make(path)
    with pytest.raises(DataError, match=message) as e:
        load_npz(path)
    assert "a.npz" in str(e.value) and "\n" not in str(e.value)


def test_csv(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("f1,f2,label,user\n1,2,0,alice\n3,4.5,1,bob\n")
    r = load_csv(tmp_path / "d.csv", label="label", columns=["user"])
    np.testing.assert_array_equal(r.x, [[1, 2], [3, 4.5]])
    np.testing.assert_array_equal(r.y, [0, 1])
    assert r.columns["user"].tolist() == ["alice", "bob"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("f1,label\nabc,0\n", "column 'f1', row 2: 'abc' is not a number"),
        ("f1,target\n1,0\n", "no label column 'label'"),
        ("f1,label\n1,0,5\n", "row 2 has 3 fields"),
        ("", "empty file"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_csv(tmp_path / "d.csv")


def _idx(path: Path, array: np.ndarray, code: int, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    data = header + array.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    images = np.random.default_rng(0).integers(0, 256, (6, 4, 5), dtype=np.uint8)
    labels = np.arange(6, dtype=np.uint8) % 3
    _idx(tmp_path / "i", images, 0x08, compress)
    _idx(tmp_path / "l", labels, 0x08, compress)
    r = load_idx(tmp_path / "i", tmp_path / "l")
    assert r.x.shape == (6, 1, 4, 5) and r.x.max() <= 1.0
    np.testing.assert_allclose(r.x[:, 0] * 255, images)
    np.testing.assert_array_equal(r.y, labels)


def test_idx_errors(tmp_path: Path) -> None:
    images = np.zeros((3, 2, 2), np.uint8)
    _idx(tmp_path / "i", images, 0x08, False)
    _idx(tmp_path / "l", np.zeros(4, np.uint8), 0x08, False)
    with pytest.raises(DataError, match="3 images but"):
        load_idx(tmp_path / "i", tmp_path / "l")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\0" * 8)
    with pytest.raises(DataError, match="bad magic"):
        load_idx(tmp_path / "bad", tmp_path / "l")
    raw = (tmp_path / "i").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-3])
    with pytest.raises(DataError, match="truncated"):
        load_idx(tmp_path / "short", tmp_path / "l")


def test_unknown_suffix_lists_supported(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="'.csv' or '.npz'"):
        load_records(tmp_path / "d.parquet")
