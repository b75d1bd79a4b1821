from pathlib import Path

import numpy as np
import pytest

from unmeasured.data import FASHION_MNIST_PATH, load_builtin
from unmeasured.errors import DataError, MissingDependencyError

from ..conftest import require_system_path


def test_digits() -> None:
    r = load_builtin("digits")
    assert r.x.shape == (1797, 64) and r.x.min() >= 0 and r.x.max() <= 1
    assert load_builtin("digits", image=True).x.shape == (1797, 1, 8, 8)


def test_breast_cancer() -> None:
    r = load_builtin("breast_cancer")
    assert r.x.shape == (569, 30) and set(np.unique(r.y)) == {0, 1}
    np.testing.assert_allclose(r.x.mean(axis=0), 0, atol=1e-5)


def test_unknown_name_lists_the_names() -> None:
    with pytest.raises(DataError, match="'breast_cancer', 'digits' or 'fashion_mnist'"):
        load_builtin("cifar10")


def test_fashion_mnist_from_the_debian_package() -> None:
    require_system_path(FASHION_MNIST_PATH, "dataset-fashion-mnist")
    full = load_builtin("fashion_mnist")
    assert full.x.shape == (70000, 1, 28, 28) and full.x.dtype == np.float32
    assert set(np.unique(full.y)) == set(range(10))
    test = load_builtin("fashion_mnist", part="test", flatten=True)
    assert test.x.shape == (10000, 784)


def test_fashion_mnist_missing_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match="apt-get install dataset-fashion-mnist"):
        load_builtin("fashion_mnist", path=tmp_path)
