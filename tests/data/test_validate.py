"""Validation of records and of datasets by role."""

from __future__ import annotations

import numpy as np
import pytest

from unmeasured.data import (
    Datasets,
    Records,
    build_datasets,
    random_split,
    shared_duplicates,
    validate_records,
)
from unmeasured.errors import ConfigError, DataError


def _records(n: int = 10, d: int = 3, seed: int = 0) -> Records:
    rng = np.random.default_rng(seed)
    return Records(rng.random((n, d)).astype(np.float32), rng.integers(0, 3, n), source="t")


@pytest.mark.parametrize(
    ("records", "kwargs", "message"),
    [
        (Records(np.full((4, 2), np.nan), np.zeros(4)), {}, "1|4 records contain NaN"),
        (
            Records(np.array([[np.inf, 0], [0, 0]]), np.zeros(2)),
            {},
            "1 records contain NaN or infinite",
        ),
        (
            Records(np.zeros((3, 2)), np.array([0, 1, 5])),
            {"num_classes": 3},
            "label 5 is out of range",
        ),
        (Records(np.zeros((3, 2)), np.array([0, -1, 1])), {}, "negative"),
        (Records(np.zeros((3, 2)), np.array([0.5, 1, 1])), {}, "integers"),
        (Records(np.zeros((3, 2)), np.zeros(4)), {}, "3 inputs but 4 labels"),
        (Records(np.zeros((0, 2)), np.zeros(0)), {}, "no records"),
        (Records(np.zeros((3, 2)), np.zeros(3)), {"input_shape": (5,)}, "expected \\(5,\\)"),
        (Records(np.zeros(3), np.zeros(3)), {}, "shape"),
    ],
)
def test_validate_records_errors(records: Records, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message) as e:
        validate_records(records, name="data.members", **kwargs)
    assert str(e.value).startswith("data.members")


def test_integral_float_labels_become_int64() -> None:
    r = validate_records(Records(np.zeros((3, 2)), np.array([0.0, 2.0, 1.0])), name="m")
    assert r.y.dtype == np.int64 and r.y.tolist() == [0, 2, 1]
    assert r.x.dtype == np.float32


def test_shared_duplicates() -> None:
    a, b = _records(10, seed=0), _records(8, seed=1)
    b.x[3], b.y[3] = a.x[5], a.y[5]
    b.x[6], b.y[6] = a.x[1], a.y[1]
    assert sorted(map(tuple, shared_duplicates(a, b).tolist())) == [(1, 6), (5, 3)]
    # same input, different label: not a duplicate
    c = Records(a.x[:1].copy(), (a.y[:1] + 1) % 3)
    assert len(shared_duplicates(a, c)) == 0


def test_members_and_nonmembers_sharing_records_is_an_error_with_counts() -> None:
    a, b = _records(10, seed=0), _records(8, seed=1)
    b.x[3], b.y[3] = a.x[5], a.y[5]
    b.x[6], b.y[6] = a.x[1], a.y[1]
    with pytest.raises(DataError, match=r"data.nonmembers: 2 of 8 records are exact copies of 2 "):
        build_datasets({"members": a, "nonmembers": b})


def test_population_or_test_overlap_is_a_warning() -> None:
    a, b = _records(10, seed=0), _records(8, seed=1)
    population, test = _records(5, seed=2), _records(6, seed=3)
    population.x[0], population.y[0] = a.x[0], a.y[0]
    test.x[2], test.y[2] = a.x[4], a.y[4]
    data = build_datasets({"members": a, "nonmembers": b, "population": population, "test": test})
    assert len(data.warnings) == 2
    assert "data.population: 1 records are exact copies of members" in data.warnings[0]
    assert "accuracy on test is inflated" in data.warnings[1]


def test_any_role_alone() -> None:
    data = build_datasets({"test": _records(6)})
    assert data.roles() == ("test",) and data.input_shape == (3,)
    with pytest.raises(ConfigError, match=r"data.members: needed here"):
        data.require("members")
    with pytest.raises(ConfigError, match="unknown data role"):
        build_datasets({"validation": _records(6)})
    assert Datasets().input_shape is None


def test_shape_mismatch_names_the_role() -> None:
    with pytest.raises(DataError, match="data.nonmembers"):
        build_datasets({"members": _records(d=3), "nonmembers": _records(d=4)})


def test_random_split_is_disjoint_and_seeded() -> None:
    records = Records(np.arange(100, dtype=np.float32)[:, None], np.zeros(100, int))
    s1 = random_split(records, n_members=30, n_nonmembers=30, n_population=20, seed=1)
    s2 = random_split(records, n_members=30, n_nonmembers=30, n_population=20, seed=1)
    s3 = random_split(records, n_members=30, n_nonmembers=30, n_population=20, seed=2)
    ids = [set(s.x[:, 0].tolist()) for s in (s1.members, s1.nonmembers, s1.population)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    np.testing.assert_array_equal(s1.members.x, s2.members.x)
    assert not np.array_equal(s1.members.x, s3.members.x)
    with pytest.raises(DataError, match="asked for 120"):
        random_split(records, n_members=60, n_nonmembers=60, seed=0)


def test_random_split_drops_exact_duplicates_first() -> None:
    records = Records(np.repeat(np.arange(50, dtype=np.float32), 2)[:, None], np.zeros(100, int))
    data = random_split(records, n_members=25, n_nonmembers=25, seed=0)
    assert len(np.unique(np.concatenate([data.members.x, data.nonmembers.x]))) == 50
