"""A content-addressed on-disk cache of trained models' outputs.

Each entry is one model's logits on the query records, keyed by everything that determines
them: the recipe's cache key, the training data, the model's training mask, its seed and the
query records. Entries are written atomically (a temporary file in the same directory, then
``os.replace``) as soon as a model finishes, so a run killed mid-way, even by ``kill -9``,
leaves only whole entries and resumes without retraining them. Writers to one shard directory
take a file lock, so that concurrent runs sharing a cache never interleave their writes. A
writer killed between creating its temporary file and renaming it leaves that file behind; as
temporary files only exist while their writer holds the shard's lock, the next writer to the
shard removes any it finds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from filelock import FileLock

from unmeasured.provenance import sha256_arrays

#: seconds a writer waits for another process's lock on a shard before giving up
LOCK_TIMEOUT = 120


def model_key(
    recipe_key: str, data_digest: str, mask: np.ndarray, seed: int, query_digest: str
) -> str:
    """The cache key of one model's outputs: sha256 over the recipe's key, the training data's
    digest, the model's mask, its seed and the query records' digest."""
    h = hashlib.sha256()
    for part in (
        recipe_key,
        data_digest,
        sha256_arrays(np.packbits(np.asarray(mask, dtype=bool)), np.array([len(mask)])),
        str(int(seed)),
        query_digest,
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class OutputCache:
    """A directory of ``outputs/<key[:2]>/<key>.npy`` files (float32 logits, no pickles).

    Example:
        >>> import tempfile
        >>> cache = OutputCache(tempfile.mkdtemp())
        >>> cache.put("ab" * 32, np.zeros((2, 3)))
        >>> cache.get("ab" * 32).shape, cache.get("cd" * 32)
        ((2, 3), None)
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / "outputs" / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The stored logits, or None when absent or unreadable (then train again)."""
        try:
            return np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def put(self, key: str, logits: np.ndarray) -> None:
        """Store one model's logits atomically (float32)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.parent / ".lock", timeout=LOCK_TIMEOUT):
            for orphan in path.parent.glob(".*.tmp"):  # a killed writer's; we hold the lock
                orphan.unlink(missing_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp")
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
        return self._path(key).is_file()

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("outputs/*/*.npy"))
