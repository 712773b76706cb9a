"""A progress bar on stderr for long work (rich, which Typer brings), or nothing.

Commands turn it on when stderr is a terminal and ``--json`` is off, so that
piped output and JSON stay clean.
"""

from __future__ import annotations

import sys


def wanted(json_output: bool) -> bool:
    """Show progress: not under --json, and only on a terminal."""
    return not json_output and sys.stderr.isatty()


class ProgressBar:
    """``with ProgressBar(on, total, "training") as bar: bar.update(done, "loss 0.3")``."""

    def __init__(self, enabled: bool, total: int, description: str):
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(description, total=total, status="")

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def update(self, completed: int, status: str = "") -> None:
        if self.bar:
            self.bar.update(self.task, completed=completed, status=status)
