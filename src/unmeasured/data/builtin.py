"""Built-in datasets that need no download: scikit-learn's digits and breast cancer, and
Fashion-MNIST from the Debian package ``dataset-fashion-mnist``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unmeasured.data.loaders import load_idx
from unmeasured.data.records import Records
from unmeasured.errors import DataError, MissingDependencyError, one_of

FASHION_MNIST_PATH = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

BUILTIN_DATASETS = {
    "digits": "scikit-learn's 1,797 8x8 handwritten digits, 10 classes, values in [0, 1]",
    "breast_cancer": "scikit-learn's 569 breast-cancer records, 30 standardised features, 2 classes",
    "fashion_mnist": "70,000 28x28 clothing images, 10 classes (Debian: dataset-fashion-mnist)",
}


def load_builtin(
    name: str,
    *,
    path: str | Path | None = None,
    image: bool = False,
    part: str = "all",
    flatten: bool = False,
) -> Records:
    """A built-in dataset.

    Args:
        name: ``"digits"``, ``"breast_cancer"`` or ``"fashion_mnist"``.
        path: Fashion-MNIST directory (default ``/usr/share/datasets/fashion-mnist``).
        image: digits as ``(n, 1, 8, 8)`` images instead of 64 features.
        part: Fashion-MNIST ``"train"``, ``"test"`` or ``"all"`` (train then test).
        flatten: Fashion-MNIST as 784 features instead of ``(n, 1, 28, 28)``.

    Raises:
        DataError: unknown name or part.
        MissingDependencyError: Fashion-MNIST files not installed.
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.data / 16.0).astype(np.float32)
        if image:
            x = x.reshape(-1, 1, 8, 8)
        return Records(x=np.ascontiguousarray(x), y=d.target.astype(np.int64), source="digits")
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        d = load_breast_cancer()
        x = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
        return Records(x=x.astype(np.float32), y=d.target.astype(np.int64), source="breast_cancer")
    if name == "fashion_mnist":
        return _fashion_mnist(Path(path) if path else FASHION_MNIST_PATH, part, flatten)
    raise DataError(f"unknown built-in dataset '{name}'; choose {one_of(BUILTIN_DATASETS)}")


def _fashion_mnist(root: Path, part: str, flatten: bool) -> Records:
    if part not in ("train", "test", "all"):
        raise DataError(
            f"part: unknown Fashion-MNIST part '{part}'; choose 'all', 'test' or 'train'"
        )
    parts = ["train", "test"] if part == "all" else [part]
    loaded = []
    for p in parts:
        images, labels = (root / f for f in _FASHION_FILES[p])
        if not images.exists() or not labels.exists():
            raise MissingDependencyError(
                f"Fashion-MNIST not found at {root}: install the Debian package "
                "dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) or set data.path"
            )
        loaded.append(load_idx(images, labels))
    x = np.concatenate([r.x for r in loaded])
    y = np.concatenate([r.y for r in loaded])
    if flatten:
        x = x.reshape(len(x), -1)
    return Records(x=np.ascontiguousarray(x), y=y, source=f"fashion_mnist:{part}")
