"""A run on disk: ``config.toml`` (as given), ``results.json``, ``arrays.npz``, ``report.html``.

Results are written after every audit, atomically, so an interrupted or failing run keeps all
finished work; ``unmeasured report RUN_DIR`` re-renders the report from them.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from unmeasured.errors import InputError
from unmeasured.results import RunResult


def default_run_dir(stem: str = "audit", root: str | Path = "runs") -> Path:
    """``runs/<stem>-<YYYYmmdd-HHMMSS>``, made unique if that exists."""
    base = Path(root) / f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{i}")
        i += 1
    return path


def default_cache_dir() -> Path:
    """Where reusable work (reference models' outputs) is kept across runs."""
    env = os.environ.get("UNMEASURED_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "unmeasured"


class RunStore:
    """The directory of one run."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"--out {self.directory}: exists and is not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"--out {self.directory}: cannot create ({e.strerror})") from None

    def write_config(self, text: str) -> None:
        (self.directory / "config.toml").write_text(text)

    def save(self, run: RunResult) -> Path:
        return run.save(self.directory)

    def write_report(self, run: RunResult) -> Path:
        from unmeasured.report import write_report

        return write_report(run, self.directory)
