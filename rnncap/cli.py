"""The ``rnncap`` command line: thin Typer commands over the library.

Every command that produces results takes ``--json`` and then prints exactly
one JSON object on stdout. A mistake the user can fix (an unknown cell, a
budget too small, ``--device gpu`` without CuPy) prints one line on stderr and
exits with status 2; exit status 1 means a check ran and failed.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import numpy
import typer

from rnncap import __version__
from rnncap.errors import RnncapError

EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2


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


def print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=None, sort_keys=False, default=_json_default))


def _json_default(value):
    if isinstance(value, numpy.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def print_table(title: str, columns: list[str], rows: list[list], caption: str | None = None) -> None:
    """A table on stdout (rich, which Typer brings)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console().print(table)


# Commands ---------------------------------------------------------------------------------

@app.command()
def cells(json_output: Json = False):
    """The six cells: equations, gate blocks, states, nonlinearities, parameters per layer."""
    from rnncap.cells import CELLS

    rows = []
    for cls in CELLS.values():
        cell = cls()
        rows.append({
            "name": cls.name, "title": cls.title, "equations": cls.equations,
            "gates": cell.gates, "blocks": list(cls.gate_names), "states": list(cls.state_names),
            "nonlinearities": list(cls.nonlinearities) or ["relu (y), tanh (h): fixed"],
            "params_per_layer": layer_param_formula(cell), "min_depth": cls.min_depth,
        })
    if json_output:
        print_json({"cells": rows, "network": NETWORK_FORMULA})
        return
    print_table("The six cells of Collins et al. (2017)",
                ["cell", "paper", "eqs", "blocks", "states", "s", "parameters per layer"],
                [[r["name"], r["title"], r["equations"], ",".join(r["blocks"]), ",".join(r["states"]),
                  "/".join(r["nonlinearities"]), r["params_per_layer"]] for r in rows],
                caption=NETWORK_FORMULA)


NETWORK_FORMULA = ("network = sum over layers + readout (N*n_out + n_out); n_in is the task's input size "
                   "for layer 0 and N above it; the +RNN adds an input projection (n_in*N + N) and then "
                   "uses n_in = N in every layer")


def layer_param_formula(cell) -> str:
    """E.g. ``3N(n_in + N + 1) + N`` for the GRU: gates, biases, learned initial states."""
    G, S = cell.gates, len(cell.state_names)
    gates = f"{G}N(n_in + N + 1)" if G > 1 else "N(n_in + N + 1)"
    return f"{gates} + {S}N" if S > 1 else f"{gates} + N"


@app.command()
def params(
    cell: Cell,
    depth: Depth = 1,
    n_in: Annotated[int, typer.Option("--n-in", help="Input size.")] = 32,
    n_out: Annotated[int, typer.Option("--n-out", help="Output size.")] = 2,
    budget: Annotated[Optional[int], typer.Option("--budget", "-p", help="Maximum number of parameters.")] = None,
    units: Annotated[Optional[int], typer.Option("--units", "-n", help="Units per layer (instead of --budget).")] = None,
    json_output: Json = False,
):
    """Units per layer for a parameter budget (the paper's equal-parameters rule), and the exact total."""
    from rnncap.cells import make_cell
    from rnncap.network import count_params, param_shapes, units_for_budget

    if (budget is None) == (units is None):
        raise RnncapError("give exactly one of --budget and --units")
    the_cell = make_cell(cell)
    n_h = units if units is not None else units_for_budget(the_cell, depth, n_in, n_out, budget)
    shapes = param_shapes(the_cell, depth, n_in, n_out, n_h)
    result = {
        "cell": the_cell.name, "depth": depth, "n_in": n_in, "n_out": n_out, "budget": budget,
        "n_h": n_h, "params": count_params(the_cell, depth, n_in, n_out, n_h),
        "params_with_one_more_unit": count_params(the_cell, depth, n_in, n_out, n_h + 1),
        "arrays": {name: list(shape) for name, shape in shapes.items()},
    }
    if json_output:
        print_json(result)
        return
    over = f" (budget {budget})" if budget is not None else ""
    typer.echo(f"{the_cell.title}, depth {depth}, n_in {n_in}, n_out {n_out}{over}: "
               f"{n_h} units per layer, {result['params']} parameters "
               f"({result['params_with_one_more_unit']} with one more unit)")


@app.command()
def gradcheck(
    cell: Cell,
    depth: Depth = 1,
    nonlinearity: Annotated[Optional[str], typer.Option(
        "--nonlinearity", "-s", help="tanh or relu (rnn, ugrnn, gru, lstm); default: the cell's own.")] = None,
    seed: Seed = 0,
    mode: Annotated[str, typer.Option(help="entries (every entry) or directions (random directions).")] = "entries",
    units: Annotated[int, typer.Option("--units", "-n", help="Units per layer.")] = 3,
    steps: Annotated[int, typer.Option("--steps", "-T", help="Sequence length.")] = 4,
    tolerance: Annotated[float, typer.Option(help="Largest relative error that passes.")] = 1e-6,
    device: Device = None,
    json_output: Json = False,
):
    """Check every hand-written gradient against central differences in float64.

    Three losses (softmax, several softmax heads, squared error with a passed-in
    initial state), random nonzero parameters, a random loss mask. Prints the
    largest relative error of each array; exits 1 if any exceeds the tolerance.
    """
    from rnncap.backend import get_xp, resolve_device
    from rnncap.autodiff.gradcheck import check_network_gradients

    xp = get_xp(device)
    report = check_network_gradients(cell, depth, nonlinearity=nonlinearity, seed=seed, mode=mode,
                                      n_h=units, T=steps, xp=xp)
    passed = report["max_error"] <= tolerance
    result = {**report, "device": resolve_device(device), "tolerance": tolerance, "passed": passed}
    if json_output:
        print_json(result)
    else:
        rows = [[name, f"{err:.2e}", "ok" if err <= tolerance else "FAIL"] for name, err in report["errors"].items()]
        print_table(f"gradcheck {report['cell']} depth {depth} ({report['nonlinearity']}, {mode}, "
                    f"{result['device']})", ["array", "max rel. error", ""], rows,
                    caption=f"max {report['max_error']:.2e} (tolerance {tolerance:g}); "
                            f"{report['redraws']} redraw(s) to avoid a ReLU kink")
    if not passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
