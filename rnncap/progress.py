"""Progress on stderr for long work: a bar on a terminal, a line now and then elsewhere.

Commands pick the mode with :func:`wanted`: a rich progress bar when stderr
is a terminal; plain lines (one every :data:`LINE_EVERY` seconds at most,
and one at the end) when it is a pipe or a log file, so that a job that runs
for an hour is not silent for an hour; nothing under ``--json``, so that
machine-read output stays clean.
"""

from __future__ import annotations

import sys
import time

from rnncap.formatting import duration

LINE_EVERY = 30.0                       # seconds between two progress lines without a terminal


def wanted(json_output: bool) -> str | None:
    """``"bar"`` on a terminal, ``"lines"`` elsewhere, None under ``--json``."""
    if json_output:
        return None
    return "bar" if sys.stderr.isatty() else "lines"


class ProgressBar:
    """``with ProgressBar(mode, total, "training") as bar: bar.update(done, "loss 0.3")``.

    ``mode``: ``"bar"`` (or True), ``"lines"``, or None/False for nothing.
    """

    def __init__(self, mode: str | bool | None, total: int, description: str):
        self.mode = "bar" if mode is True else (mode or None)
        self.total, self.description = total, description
        self.bar = None
        self.started = self.last_line = time.perf_counter()
        if self.mode == "bar":
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
        elif self.mode == "lines":
            now = time.perf_counter()
            if completed >= self.total or now - self.last_line >= LINE_EVERY:
                self.last_line = now
                print(f"{self.description}: {completed}/{self.total} {status} "
                      f"[{duration(now - self.started)}]".replace("  ", " "), file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """One line of its own: above the bar on a terminal, on stderr in a log, nowhere under ``--json``."""
        if self.bar:
            self.bar.console.print(text, highlight=False, markup=False)
        elif self.mode == "lines":
            print(text, file=sys.stderr, flush=True)
