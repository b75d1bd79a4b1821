"""Records, datasets by role, loaders and built-in datasets."""

from unmeasured.data.builtin import BUILTIN_DATASETS, FASHION_MNIST_PATH, load_builtin
from unmeasured.data.loaders import load_csv, load_idx, load_npz, load_records, read_idx
from unmeasured.data.records import COLUMN_ROLES, ROLES, TRAIN_ROLES, Datasets, Records
from unmeasured.data.validate import (
    build_datasets,
    check_labels,
    random_split,
    shared_duplicates,
    validate_records,
)

__all__ = [
    "BUILTIN_DATASETS",
    "COLUMN_ROLES",
    "FASHION_MNIST_PATH",
    "ROLES",
    "TRAIN_ROLES",
    "Datasets",
    "Records",
    "build_datasets",
    "check_labels",
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
