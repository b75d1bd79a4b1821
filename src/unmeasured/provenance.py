"""Provenance: what exactly was audited, with what, when and where, so the other side can check."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ("unmeasured", "torch", "numpy", "scipy", "scikit-learn", "onnxruntime", "skops", "ray")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_arrays(*arrays: np.ndarray) -> str:
    """A hash of array contents, shapes and dtypes (for data given in memory)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def host() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def collect(
    *,
    seed: int,
    files: Mapping[str, str | Path] | None = None,
    arrays: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
    started: str | None = None,
) -> dict[str, Any]:
    """Build the provenance record of a run.

    Args:
        seed: the run's seed.
        files: role → path of every input file (model code, weights, data, config); hashed.
        arrays: role → precomputed content hash of in-memory inputs.
        config: the effective configuration.
        started: ISO timestamp of the run's start.
    """
    hashes = {role: {"path": str(p), "sha256": sha256_file(p)} for role, p in (files or {}).items()}
    hashes.update({role: {"path": None, "sha256": h} for role, h in (arrays or {}).items()})
    return {
        "seed": seed,
        "started": started or now(),
        "finished": None,
        "inputs": hashes,
        "config": dict(config or {}),
        "versions": package_versions(),
        "host": host(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
    }
