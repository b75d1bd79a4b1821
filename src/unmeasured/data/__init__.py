"""Records, splits, loaders and built-in datasets."""

from unmeasured.data.builtin import BUILTIN_DATASETS, FASHION_MNIST_PATH, load_builtin
from unmeasured.data.loaders import load_csv, load_idx, load_npz, load_records, read_idx
from unmeasured.data.records import Records, Split
from unmeasured.data.validate import build_split, random_split, shared_duplicates, validate_records

__all__ = [
    "BUILTIN_DATASETS",
    "FASHION_MNIST_PATH",
    "Records",
    "Split",
    "build_split",
    "load_builtin",
    "load_csv",
    "load_idx",
    "load_npz",
    "load_records",
    "random_split",
    "read_idx",
    "shared_duplicates",
    "validate_records",
]
