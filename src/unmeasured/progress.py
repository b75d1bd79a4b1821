"""Progress reporting on stderr (rich), hidden when stderr is not a TTY or with ``--quiet``.

Library code takes a `Progress` and calls ``with progress.task("Training", total=K) as advance:``
then ``advance(1)`` per step; `NullProgress` (the default) does nothing. Amounts may be
fractions (the trainer counts model-epochs and advances by a fraction of one per step); the bar
then shows one decimal, so that it moves before the first whole unit is done.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _ignore(n: float = 1) -> None:
    """The ``advance`` of a silent task."""


class Progress:
    """Reports long loops. The base class is silent; `RichProgress` draws bars on stderr."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[float], None]]:
        yield _ignore

    def log(self, message: str) -> None:
        """A one-line status message (stderr)."""

    def warn(self, message: str) -> None:
        """A one-line warning on stderr, shown even when progress and log lines are not."""
        print(message, file=sys.stderr)


NullProgress = Progress


def _done(completed: float, total: float | None) -> str:
    """``"3/10"``, or ``"2.4/10"`` once a fraction has been advanced."""
    shown = f"{completed:.0f}" if float(completed).is_integer() else f"{completed:.1f}"
    return f"{shown}/{total:.0f}" if total is not None else shown


class RichProgress(Progress):
    """Progress bars on stderr via rich; degrade to nothing when stderr is not a terminal."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[float], None]]:
        if not self.enabled:
            yield _ignore
            return
        from rich.progress import (
            BarColumn,
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
            TextColumn("{task.fields[done]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        ) as bar:
            tid = bar.add_task(description, total=total, done=_done(0, total))
            completed = [0.0]

            def advance(n: float = 1) -> None:
                completed[0] += n
                bar.update(tid, advance=n, done=_done(completed[0], total))

            yield advance

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)
        else:
            print(message, file=sys.stderr)

    def warn(self, message: str) -> None:
        self.log(message)
