"""A content-addressed on-disk cache of reference models' outputs.

Each entry is one model's logits on the query records, keyed by everything that determines
them: the recipe's cache key, the training data, the model's training mask, its seed and the
query records. Entries are written atomically (temporary file, then ``os.replace``) as soon as a
model finishes, so a run killed mid-way resumes without retraining what finished, and two
processes writing the same entry cannot leave a torn file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from unmeasured.provenance import sha256_arrays


def model_key(
    recipe_key: str, data_digest: str, mask: np.ndarray, seed: int, query_digest: str
) -> str:
    h = hashlib.sha256()
    for part in (
        recipe_key,
        data_digest,
        sha256_arrays(np.packbits(mask)),
        str(seed),
        query_digest,
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class OutputCache:
    """Directory of ``<key[:2]>/<key>.npy`` files."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / "outputs" / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            return np.load(path, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError, EOFError):
            return None  # absent or unreadable: train again and overwrite

    def put(self, key: str, logits: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.asarray(logits, dtype=np.float32))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __contains__(self, key: str) -> bool:
        return self._path(key).exists()
