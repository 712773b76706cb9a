"""The Typer application, the options many commands share, and the output helpers.

Every command that produces results takes ``--json`` and then prints exactly
one JSON object on stdout. Exit status: 0 success; 1 a check ran and failed
(``gradcheck``); 2 a mistake the user can fix (an unknown cell, a budget too
small, ``--device gpu`` without CuPy, an unknown option, ``--steps abc``),
reported in one line on stderr, ``rnncap COMMAND: error: ...``; 3 a training
run diverged and is reported as infeasible (``train``). Anything else that
goes wrong is a bug, and keeps its traceback.
"""

from __future__ import annotations

from typing import Annotated, NoReturn, Optional

import typer

from rnncap import __version__
from rnncap.cli.validate import MAX_WORKERS, check_parsed, check_study_fits, positive, store_file
from rnncap.errors import RnncapError
from rnncap.formatting import strict_json

EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INFEASIBLE = 3

# Click's exception for a parser error, from the copy of Click that Typer runs on (its own since Typer 0.2x)
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _command(parent: typer.Context | None, name: str | None = None) -> str:
    """``rnncap study show``: the command run in context ``parent`` (or its subcommand ``name``)."""
    names = [name] if name and parent is not None else []
    while parent is not None and parent.parent is not None:      # the root's own name is however it was started
        names.insert(0, parent.info_name)
        parent = parent.parent
    return " ".join(["rnncap", *names])


def refuse(command: str, message: str) -> NoReturn:
    """The one way a user's mistake leaves rnncap: ``rnncap COMMAND: error: message`` on stderr, exit 2."""
    typer.echo(f"{command}: error: {' '.join(message.split())}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


def _refuse_usage(command: str, err: ClickException) -> NoReturn:
    """A parser error (unknown option, ``--steps abc``, ...) in one line that says where the options are
    listed. A command group called with nothing prints its help, as Typer does."""
    if type(err).__name__ == "NoArgsIsHelpError":
        raise err
    refuse(command, f"{err.format_message()} (see {command} --help)")


def _parsing(make_context, info_name, args, parent, extra):
    """``make_context``, with a parser error refused in one line (:func:`_refuse_usage`)."""
    try:
        return make_context(info_name, args, parent=parent, **extra)
    except ClickException as err:
        _refuse_usage(_command(parent, info_name), err)


class _Group(typer.core.TyperGroup):
    """Parser errors and :class:`RnncapError` from any command, group or callback: one line, exit 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        return _parsing(super().make_context, info_name, args, parent, extra)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RnncapError as err:
            refuse(_command(ctx), str(err))
        except ClickException as err:                            # e.g. "No such command"
            _refuse_usage(_command(ctx), err)


class CheckedCommand(typer.core.TyperCommand):
    """A command whose parsed options pass :func:`rnncap.cli.validate.check_parsed` before it runs."""

    def make_context(self, info_name, args, parent=None, **extra):
        return _parsing(super().make_context, info_name, args, parent, extra)

    def invoke(self, ctx):
        try:
            check_parsed(ctx)
            return super().invoke(ctx)
        except RnncapError as err:
            refuse(_command(ctx), str(err))


class CheckedTyper(typer.Typer):
    """A Typer app whose commands are :class:`CheckedCommand` and whose errors are one line."""

    def __init__(self, **settings):
        super().__init__(cls=_Group, add_completion=False, pretty_exceptions_enable=False,
                         context_settings={"help_option_names": ["-h", "--help"]}, **settings)

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or CheckedCommand, **kwargs)


app = CheckedTyper(
    name="rnncap",
    help="Capacity and trainability of recurrent networks (Collins, Sohl-Dickstein & Sussillo, ICLR 2017).",
    no_args_is_help=True,
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
Seed = Annotated[int, typer.Option("--seed", min=0, help="Seed of every random draw.")]
Budget = Annotated[Optional[int], typer.Option("--budget", "-p", help="Maximum number of parameters; "
                                                "the units per layer follow from it (equal-parameters rule).")]
Units = Annotated[Optional[int], typer.Option("--units", "-n", help="Units per layer (instead of --budget).")]
TimeLimit = Annotated[Optional[float], typer.Option("--time-limit", callback=positive, help="Stop after this many "
                                                    "seconds (finished work is kept and reported).")]
StorePath = Annotated[Optional[str], typer.Option("--store", callback=store_file, help="The study database (SQLite). "
                                                  "Default: $RNNCAP_STORE, else ./rnncap-studies.sqlite.")]
Workers = Annotated[int, typer.Option("--workers", "-w", min=1, max=MAX_WORKERS,
                                      help="Populations of trials run at once, each in its own process "
                                           "(reproduce: studies run at once).")]
Scheduler = Annotated[Optional[str], typer.Option(help="A Dask scheduler (tcp://host:port) to run trials on "
                                                  "instead of local processes: one population per worker thread "
                                                  "at a time (--workers is not used).")]
Population = Annotated[Optional[int], typer.Option(
    "--population", "-K", min=1, help="Trials trained together as one population (same shape, in lockstep; "
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


def choose_population(population: int | None, specs: list[dict], json_output: bool, *, workers: int,
                      scheduler: str | None):
    """``(K, announce)``: ``--population`` as given, or the default for the last study's network size, once
    every study is known to fit in memory with it (:func:`rnncap.cli.validate.check_study_fits`).

    ``announce()`` says a default on stderr, the first time it is called: the
    driver calls it once the study is open (``run_study(announce=...)``), so
    that a store or study refused before any work is still one line.
    """
    from rnncap.population import default_population

    spec = specs[-1]
    chosen = population or default_population(spec["params"], spec["strategy"])
    for each in specs:
        check_study_fits(each, population=chosen, workers=workers, scheduler=scheduler)
    said = [population is not None or json_output]

    def announce() -> None:
        if not said[0]:
            said[0] = True
            typer.echo(f"population {chosen} (the default for {spec['params']} parameters; --population to change)",
                       err=True)
    return chosen, announce


def format_hparams(hparams: dict, names=None) -> str:
    """``lr=0.01, b_fg=1, nonlinearity=tanh`` (floats to 3 significant digits)."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in hparams.items()
                     if names is None or k in names)
