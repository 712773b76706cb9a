"""The Typer application, the options many commands share, and the output helpers.

Every command that produces results takes ``--json`` and then prints exactly
one JSON object on stdout. Exit status: 0 success; 1 a check ran and failed
(``gradcheck``); 2 a mistake the user can fix (an unknown cell, a budget too
small, ``--device gpu`` without CuPy), reported in one line on stderr; 3 a
training run diverged and is reported as infeasible (``train``).
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from rnncap import __version__
from rnncap.errors import RnncapError
from rnncap.formatting import strict_json

EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INFEASIBLE = 3


class _Group(typer.core.TyperGroup):
    """Turns an :class:`RnncapError` from any command into one line and exit 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RnncapError as err:
            typer.echo(f"rnncap: error: {err}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None


app = typer.Typer(
    cls=_Group,
    name="rnncap",
    help="Capacity and trainability of recurrent networks (Collins, Sohl-Dickstein & Sussillo, ICLR 2017).",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"rnncap {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False):
    """Capacity and trainability of recurrent networks, from scratch in NumPy/CuPy."""


# Options shared by many commands ---------------------------------------------------------

CELL_HELP = "Cell: rnn, irnn, ugrnn, gru, lstm or plusrnn (+rnn)."
Cell = Annotated[str, typer.Option("--cell", "-c", help=CELL_HELP)]
Depth = Annotated[int, typer.Option("--depth", "-d", help="Layers in the stack (1-8; the +RNN needs 2 or more).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else there.")]
Device = Annotated[Optional[str], typer.Option(
    "--device", help="cpu or gpu (CuPy). Default: $RNNCAP_DEVICE, else cpu.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of every random draw.")]
Budget = Annotated[Optional[int], typer.Option("--budget", "-p", help="Maximum number of parameters; "
                                                "the units per layer follow from it (equal-parameters rule).")]
Units = Annotated[Optional[int], typer.Option("--units", "-n", help="Units per layer (instead of --budget).")]
TimeLimit = Annotated[Optional[float], typer.Option("--time-limit", help="Stop after this many seconds "
                                                    "(finished work is kept and reported).")]
StorePath = Annotated[Optional[str], typer.Option("--store", help="The study database (SQLite). "
                                                  "Default: $RNNCAP_STORE, else ./rnncap-studies.sqlite.")]
Workers = Annotated[int, typer.Option("--workers", "-w", help="Trials run at once, each in its own process.")]
Scheduler = Annotated[Optional[str], typer.Option(help="A Dask scheduler (tcp://host:port) to run trials on "
                                                  "instead of local processes: one population per worker thread "
                                                  "at a time (--workers is not used).")]
Population = Annotated[Optional[int], typer.Option(
    "--population", "-K", help="Trials trained together as one population (same shape, in lockstep; "
    "see rnncap/population.py). Default: about 8000 parameters in all, at most 32, at most 4 for a GP.")]
TaskOptions = Annotated[list[str], typer.Option("--option", "-o", help="A task option KEY=VALUE, e.g. "
                                                "-o n_samples=3000 -o unroll=5 (see `rnncap tasks`).")]


def print_json(obj) -> None:
    """One line of strict JSON (NaN and infinities become null)."""
    typer.echo(strict_json(obj))


def print_table(title: str, columns: list[str], rows: list[list], caption: str | None = None,
                keep_whole: tuple[str, ...] = ()) -> None:
    """A table on stdout (rich, which Typer brings); columns in ``keep_whole`` are never cut or wrapped."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for k, column in enumerate(columns):
        if column in keep_whole:
            widest = max([len(column)] + [len(str(row[k])) for row in rows])
            table.add_column(column, no_wrap=True, min_width=widest)
        else:
            table.add_column(column)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console().print(table)


def parse_options(options: list[str]) -> dict:
    """``["n_samples=3000", "unroll=5"]`` -> ``{"n_samples": 3000, "unroll": 5}``."""
    parsed = {}
    for item in options:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RnncapError(f"--option takes KEY=VALUE, got {item!r}")
        try:
            parsed[key.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key.strip().replace("-", "_")] = raw
    return parsed


def choose_population(population: int | None, spec: dict, json_output: bool) -> int:
    """``--population`` as given, or the default for the study's network size (said on stderr)."""
    from rnncap.population import default_population

    if population is not None:
        if population < 1:
            raise RnncapError(f"--population must be >= 1, got {population}")
        return population
    chosen = default_population(spec["params"], spec["strategy"])
    if not json_output:
        typer.echo(f"population {chosen} (the default for {spec['params']} parameters; --population to change)",
                   err=True)
    return chosen


def format_hparams(hparams: dict, names=None) -> str:
    """``lr=0.01, b_fg=1, nonlinearity=tanh`` (floats to 3 significant digits)."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in hparams.items()
                     if names is None or k in names)
