"""Shared test helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def require_system_path(path: str | Path, package: str) -> Path:
    """Skip (or, under CI=true, fail) when a Debian package's files are missing: on a user's
    machine a missing package is a reason to skip; in CI it means the set-up is broken."""
    path = Path(path)
    if not path.exists():
        message = f"{path} not found: install the Debian package {package}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must run this test)")
        pytest.skip(message)
    return path
