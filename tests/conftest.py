"""Shared test helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """One torch thread and one BLAS thread in each test process, from before any fixture
    trains a model. The suite runs in two workers on two cores (``make test``); a second thread
    per worker only oversubscribes the cores, and OpenMP's and BLAS's threads then slow small
    models and fits down tenfold or more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


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
