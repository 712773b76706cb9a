"""The ``rnncap`` command line: thin Typer commands over the library.

    app.py       the application, shared options, output helpers, exit statuses
    basics.py    cells, params, gradcheck, tasks
    runs.py      train, capacity, memory
    studies.py   tune, study list/show/export/delete, reproduce, report
"""

from rnncap.cli import basics, runs, studies  # noqa: F401  (each registers its commands on the app)
from rnncap.cli.app import EXIT_CHECK_FAILED, EXIT_INFEASIBLE, EXIT_USER_ERROR, app


def main() -> None:
    app()


__all__ = ["EXIT_CHECK_FAILED", "EXIT_INFEASIBLE", "EXIT_USER_ERROR", "app", "main"]
