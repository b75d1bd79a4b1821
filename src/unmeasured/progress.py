"""Progress reporting on stderr (rich), hidden when stderr is not a TTY or with ``--quiet``.

Library code takes a `Progress` and calls ``with progress.task("Training", total=K) as advance:``
then ``advance(1)`` per step; `NullProgress` (the default) does nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Progress:
    """Reports long loops. The base class is silent; `RichProgress` draws bars on stderr."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None

    def log(self, message: str) -> None:
        """A one-line status message (stderr)."""


NullProgress = Progress


class RichProgress(Progress):
    """Progress bars on stderr via rich; degrade to nothing when stderr is not a terminal."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        if not self.enabled:
            yield lambda n=1: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _RichProgress

        with _RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        ) as bar:
            tid = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(tid, n)

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)
        else:
            print(message, file=sys.stderr)
