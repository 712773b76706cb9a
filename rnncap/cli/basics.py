"""Commands that describe: the cells, parameter counts, the gradient check, the tasks."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from rnncap.cli.app import (EXIT_CHECK_FAILED, Budget, Cell, Depth, Device, Json, Seed, Units, app, print_json,
                            print_table)
from rnncap.cli.validate import check_gradcheck_fits


@app.command()
def cells(json_output: Json = False):
    """The six cells: equations, gate blocks, states, nonlinearities, parameters per layer."""
    from rnncap.cells import CELLS
    from rnncap.network import NETWORK_PARAM_FORMULA

    rows = []
    for cls in CELLS.values():
        cell = cls()
        rows.append({
            "name": cls.name, "title": cls.title, "equations": cls.equations,
            "gates": cell.gates, "blocks": list(cls.gate_names), "states": list(cls.state_names),
            "nonlinearities": list(cls.nonlinearities) or ["relu (y), tanh (h): fixed"],
            "params_per_layer": cell.param_formula(), "min_depth": cls.min_depth,
        })
    if json_output:
        print_json({"cells": rows, "network": NETWORK_PARAM_FORMULA})
        return
    print_table("The six cells of Collins et al. (2017)",
                ["cell", "paper", "eqs", "blocks", "states", "nonlinearity", "parameters per layer"],
                [[r["name"], r["title"], r["equations"], ",".join(r["blocks"]), ",".join(r["states"]),
                  " or ".join(r["nonlinearities"]), r["params_per_layer"]] for r in rows],
                caption=NETWORK_PARAM_FORMULA)


@app.command()
def params(
    cell: Cell,
    depth: Depth = 1,
    n_in: Annotated[int, typer.Option("--n-in", help="Input size.")] = 32,
    n_out: Annotated[int, typer.Option("--n-out", help="Output size.")] = 2,
    budget: Budget = None,
    units: Units = None,
    json_output: Json = False,
):
    """Units per layer for a parameter budget (the paper's equal-parameters rule), and the exact total."""
    from rnncap.cells import make_cell
    from rnncap.network import count_params, param_shapes, units_for

    the_cell = make_cell(cell)
    n_h = units_for(the_cell, depth, n_in, n_out, budget=budget, units=units)
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
    mode: Annotated[str, typer.Option(help="entries (every entry, for small networks) or directions (random "
                                      "directions).")] = "entries",
    units: Annotated[int, typer.Option("--units", "-n", min=1, help="Units per layer.")] = 3,
    steps: Annotated[int, typer.Option("--steps", "-T", min=1, help="Sequence length.")] = 4,
    tolerance: Annotated[float, typer.Option(min=0, help="Largest relative error that passes.")] = 1e-6,
    population: Annotated[int, typer.Option("--population", "-K", min=1, help="Check K networks at once as a "
                                            "population: each member as alone, and the stacked gradients "
                                            "against each member's.")] = 1,
    device: Device = None,
    json_output: Json = False,
):
    """Check every hand-written gradient against central differences in float64.

    Three losses (softmax, several softmax heads, squared error with a passed-in
    initial state), random nonzero parameters, a random loss mask. Prints the
    largest relative error of each array; exits 1 if any exceeds the tolerance.
    """
    from rnncap.backend import get_xp, resolve_device
    from rnncap.checks import check_network_gradients

    check_gradcheck_fits(cell, depth, units, steps, mode, population)
    xp = get_xp(device)
    report = check_network_gradients(cell, depth, nonlinearity=nonlinearity, seed=seed, mode=mode,
                                      n_h=units, T=steps, xp=xp, population=population)
    passed = report["max_error"] <= tolerance
    result = {**report, "device": resolve_device(device), "tolerance": tolerance, "passed": passed}
    if json_output:
        print_json(result)
    else:
        rows = [[name, f"{err:.2e}", "ok" if err <= tolerance else "FAIL"] for name, err in report["errors"].items()]
        print_table(f"gradcheck {report['cell']} depth {depth} ({report['nonlinearity']}, {mode}, "
                    f"{result['device']}" + (f", population of {population}" if population > 1 else "") + ")", ["array", "max rel. error", ""], rows,
                    caption=f"max {report['max_error']:.2e} (tolerance {tolerance:g}); "
                            f"{report['redraws']} redraw(s) to avoid a ReLU kink")
    if not passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def tasks(json_output: Json = False):
    """Every task, its dimensions, defaults, loss and metric; options are set with -o KEY=VALUE."""
    from dataclasses import fields

    from rnncap.tasks import TASKS, make_task

    rows = []
    for name, (_, config_cls) in TASKS.items():
        task = make_task(name)
        rows.append({"task": name, "n_in": task.n_in, "n_out": task.n_out, "objective": task.objective,
                     "direction": task.direction, "describe": task.describe(),
                     "options": {f.name: getattr(task.config, f.name) for f in fields(config_cls)}})
    if json_output:
        print_json({"tasks": rows})
        return
    print_table("tasks (set options with -o KEY=VALUE)", ["task", "n_in", "n_out", "objective", "options"],
                [[r["task"], r["n_in"], r["n_out"], f"{r['objective']} ({r['direction']})",
                  ", ".join(f"{k}={v}" for k, v in r["options"].items())] for r in rows])
