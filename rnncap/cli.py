"""The ``rnncap`` command line: thin Typer commands over the library.

Every command that produces results takes ``--json`` and then prints exactly
one JSON object on stdout. Exit status: 0 success; 1 a check ran and failed
(``gradcheck``); 2 a mistake the user can fix (an unknown cell, a budget too
small, ``--device gpu`` without CuPy), reported in one line on stderr; 3 a
training run diverged and is reported as infeasible (``train``).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Optional

import numpy
import typer

from rnncap import __version__
from rnncap.errors import RnncapError

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


def print_json(obj) -> None:
    """One line of strict JSON (NaN and infinities become null)."""
    typer.echo(json.dumps(_plain(obj), allow_nan=False))


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, numpy.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
    budget: Budget = None,
    units: Units = None,
    json_output: Json = False,
):
    """Units per layer for a parameter budget (the paper's equal-parameters rule), and the exact total."""
    from rnncap.cells import make_cell
    from rnncap.network import count_params, param_shapes

    the_cell = make_cell(cell)
    n_h = _units(the_cell, depth, n_in, n_out, budget, units)
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


def _parse_options(options: list[str]) -> dict:
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


def _units(cell: str, depth: int, n_in: int, n_out: int, budget: int | None, units: int | None) -> int:
    from rnncap.network import units_for_budget

    if (budget is None) == (units is None):
        raise RnncapError("give exactly one of --budget and --units")
    if units is not None:
        if units < 1:
            raise RnncapError(f"--units must be >= 1, got {units}")
        return units
    return units_for_budget(cell, depth, n_in, n_out, budget)


def _elapsed(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@app.command()
def train(
    cell: Cell,
    task: Annotated[str, typer.Option("--task", "-t", help="Task: see `rnncap tasks`.")] = "capacity",
    depth: Depth = 1,
    budget: Budget = None,
    units: Units = None,
    option: Annotated[list[str], typer.Option("--option", "-o", help="A task option KEY=VALUE, e.g. "
                                              "-o n_samples=3000 -o unroll=5 (see `rnncap tasks`).")] = [],
    optimizer: Annotated[str, typer.Option(help="adam, rmsprop, sgd (with momentum) or lbfgs (full batch).")] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-2,
    lr_decay: Annotated[float, typer.Option(help="Factor the learning rate has fallen by at the last step.")] = 1.0,
    momentum: Annotated[float, typer.Option(help="Momentum (sgd).")] = 0.9,
    clip: Annotated[float, typer.Option(help="Clip the gradients' global norm to this (0: no clipping).")] = 10.0,
    l2: Annotated[float, typer.Option(help="L2 penalty on the weight matrices.")] = 0.0,
    steps: Annotated[int, typer.Option(help="Training steps (L-BFGS: iterations).")] = 1000,
    eval_every: Annotated[int, typer.Option(help="Evaluate every N steps (0: at the end only).")] = 0,
    nonlinearity: Annotated[Optional[str], typer.Option("--nonlinearity", "-s", help="tanh or relu.")] = None,
    b_fg: Annotated[float, typer.Option(help="Constant added to the keep gate (UGRNN, GRU, LSTM, +RNN).")] = 1.0,
    b_fg_y: Annotated[float, typer.Option(help="+RNN: constant added to the depth gate.")] = 1.0,
    weight_scale: Annotated[float, typer.Option(help="Initial weights ~ N(0, scale^2 / fan_in).")] = 1.0,
    bias_scale: Annotated[float, typer.Option(help="Initial biases ~ N(0, scale^2).")] = 0.0,
    seed: Seed = 0,
    checkpoint: Annotated[Optional[str], typer.Option(help="Save a checkpoint to this file as training goes.")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 100,
    resume: Annotated[bool, typer.Option(help="Continue the run saved in --checkpoint.")] = False,
    time_limit: TimeLimit = None,
    device: Device = None,
    json_output: Json = False,
):
    """Train one network on one task and print the task's metrics.

    Exit status 3 if the run diverged (reported as infeasible, as the paper counts them).
    """
    from rnncap.cells import canonical_cell_name
    from rnncap.progress import wanted
    from rnncap.tasks import make_task
    from rnncap.trial import make_trial, run_trial

    cell = canonical_cell_name(cell)
    options = _parse_options(option)
    shape = make_task(task, options)                                         # validates the options
    n_h = _units(cell, depth, shape.n_in, shape.n_out, budget, units)
    hparams = {"optimizer": optimizer, "lr": lr, "lr_decay": lr_decay, "momentum": momentum,
               "clip": clip or None, "l2": l2, "steps": steps, "eval_every": eval_every,
               "nonlinearity": nonlinearity, "b_fg": b_fg, "b_fg_y": b_fg_y, "weight_scale": weight_scale,
               "bias_scale": bias_scale}
    trial = make_trial(task, options, cell, depth, n_h, hparams, seed=seed)
    outcome = run_trial(trial, device=device, progress=wanted(json_output), time_limit=time_limit,
                        checkpoint_path=checkpoint, resume=resume)
    result = {"trial": trial, **{k: v for k, v in outcome.items() if k != "history"},
              "history": outcome["history"]}
    if json_output:
        print_json(result)
    else:
        metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in outcome["metrics"].items())
        typer.echo(f"{task} | {cell} depth {depth}, {n_h} units, {outcome['params']} parameters | "
                   f"{outcome['status']} after {outcome['steps']} steps in {_elapsed(outcome['wall_time'])}")
        typer.echo(f"  {metrics}" if metrics else f"  {outcome['reason']}")
    if outcome["status"] == "infeasible":
        raise typer.Exit(EXIT_INFEASIBLE)


@app.command()
def capacity(
    cell: Cell,
    depth: Depth = 1,
    budget: Annotated[int, typer.Option("--budget", "-p", help="Maximum number of parameters.")] = 1000,
    n_in: Annotated[int, typer.Option("--n-in", help="Input bits per sample.")] = 32,
    unroll: Annotated[int, typer.Option("--unroll", "-T", help="Steps from input to label.")] = 5,
    trials: Annotated[int, typer.Option("--trials", "-k", help="Training runs in all.")] = 10,
    steps: Annotated[int, typer.Option(help="Training steps per run (L-BFGS: iterations).")] = 20000,
    batch_size: Annotated[int, typer.Option(help="Samples per step (0: all b; L-BFGS always uses all).")] = 256,
    optimizer: Annotated[str, typer.Option(help="adam, rmsprop, sgd or lbfgs.")] = "adam",
    time_limit: TimeLimit = None,
    seed: Seed = 0,
    device: Device = None,
    json_output: Json = False,
):
    """Per-parameter capacity: the most bits a network of --budget parameters memorises.

    Searches the number of samples b and a few hyperparameters (see rnncap/measure.py),
    and prints bits stored, b, accuracy, parameters and bits per parameter.
    """
    from rnncap.measure import measure_capacity
    from rnncap.progress import wanted

    if unroll < 1:
        raise RnncapError(f"--unroll must be >= 1, got {unroll}")
    if trials < 1 or steps < 1:
        raise RnncapError("--trials and --steps must be >= 1")
    result = measure_capacity(cell, depth, budget, n_in=n_in, unroll=unroll, trials=trials, steps=steps,
                              batch_size=batch_size or None, optimizer=optimizer, time_limit=time_limit, seed=seed, device=device,
                              progress=wanted(json_output))
    if json_output:
        print_json(result)
        return
    rows = [[r["b"], f"{r['multiple']:.2f}", r["status"], "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}",
             f"{r['bits']:.0f}", f"{r['bits'] / result['params']:.3f}",
             ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["hparams"].items()
                       if k in ("lr", "b_fg", "weight_scale", "nonlinearity"))] for r in result["runs"]]
    print_table(f"capacity: {result['cell']} depth {depth}, {result['n_h']} units, {result['params']} parameters",
                ["b", "b/P", "status", "accuracy", "bits", "bits/param", "hyperparameters"], rows)
    best = result["best"]
    if best is None:
        typer.echo("no trial finished within the time limit")
        return
    typer.echo(f"best: {best['bits']:.0f} bits stored with b = {best['b']} samples at accuracy "
               f"{best['accuracy']:.4f}; {result['params']} parameters -> {best['bits_per_parameter']:.3f} "
               f"bits per parameter ({result['trials']} trials, {_elapsed(result['wall_time'])})")


@app.command()
def memory(
    cell: Cell,
    depth: Depth = 1,
    n_in: Annotated[int, typer.Option("--n-in", help="Size of the input to remember.")] = 64,
    units: Annotated[str, typer.Option("--units", "-n", help="Comma-separated units per layer to try.")] = "",
    unroll: Annotated[int, typer.Option("--unroll", "-T", help="Steps from input to recall.")] = 5,
    trials: Annotated[int, typer.Option("--trials", "-k", help="Most training runs per unit count "
                                        "(it stops early once one is within 0.01 of the reference).")] = 8,
    steps: Annotated[int, typer.Option(help="Training steps per run.")] = 6000,
    time_limit: TimeLimit = None,
    seed: Seed = 0,
    device: Device = None,
    json_output: Json = False,
):
    """Per-unit capacity: how well the state recalls an input seen once, against units per layer.

    Prints the normalised error next to the reference max(0, 1 - n_h/n_in).
    Default units: n_in/4, n_in/2, 3n_in/4, n_in, 3n_in/2.
    """
    from rnncap.measure import measure_memory
    from rnncap.progress import wanted

    if n_in < 1 or unroll < 1 or trials < 1 or steps < 1:
        raise RnncapError("--n-in, --unroll, --trials and --steps must be >= 1")
    try:
        unit_list = [int(u) for u in units.split(",") if u.strip()] if units else \
            sorted({max(1, n_in * k // 4) for k in (1, 2, 3, 4, 6)})
    except ValueError:
        raise RnncapError(f"--units takes comma-separated whole numbers, got {units!r}") from None
    if any(u < 1 for u in unit_list):
        raise RnncapError(f"--units must all be >= 1, got {units!r}")
    result = measure_memory(cell, depth, n_in, unit_list, unroll=unroll, trials=trials, steps=steps,
                            time_limit=time_limit, seed=seed, device=device, progress=wanted(json_output))
    if json_output:
        print_json(result)
        return
    rows = [[r["n_h"], r["params"], "-" if r["error"] is None else f"{r['error']:.4f}", f"{r['reference']:.4f}",
             "-" if r["gap"] is None else f"{r['gap']:+.4f}"] for r in result["rows"]]
    print_table(f"memory: {result['cell']} depth {depth}, n_in {n_in}, recall after {unroll} steps",
                ["n_h", "params", "error", "reference", "error - reference"], rows,
                caption=f"{_elapsed(result['wall_time'])}")


StorePath = Annotated[Optional[str], typer.Option("--store", help="The study database (SQLite). "
                                              "Default: $RNNCAP_STORE, else ./rnncap-studies.sqlite.")]


@app.command()
def tune(
    study: Annotated[str, typer.Option("--study", help="The study's name; run the same command again to resume it.")],
    cell: Cell,
    task: Annotated[str, typer.Option("--task", "-t", help="Task: see `rnncap tasks`.")] = "capacity",
    depth: Depth = 1,
    budget: Budget = None,
    units: Units = None,
    strategy: Annotated[str, typer.Option(help="gp (Gaussian-process Bayesian optimisation) or random.")] = "gp",
    trials: Annotated[int, typer.Option("--trials", "-k", help="Finished trials to reach.")] = 20,
    steps: Annotated[int, typer.Option(help="Training steps of every trial.")] = 1000,
    option: Annotated[list[str], typer.Option("--option", "-o", help="A task option KEY=VALUE (see `rnncap tasks`).")] = [],
    workers: Annotated[int, typer.Option("--workers", "-w", help="Trials run at once, each in its own process.")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="A Dask scheduler (tcp://host:port) to run trials on "
                                                     "instead of local processes.")] = None,
    store: StorePath = None,
    seed: Seed = 0,
    time_limit: TimeLimit = None,
    device: Device = None,
    json_output: Json = False,
):
    """Tune hyperparameters for one task, cell, depth and size; every trial is stored as it finishes.

    Resumable: a study killed at any moment continues where it stopped when the
    same command is run again, losing no finished trial and repeating none.
    """
    from rnncap.progress import wanted
    from rnncap.store import Store
    from rnncap.tune.study import run_study, study_spec

    spec = study_spec(task, cell, depth, budget=budget, units=units, strategy=strategy,
                      task_options=_parse_options(option), fixed={"steps": steps}, seed=seed)
    with Store(store) as db:
        summary = run_study(db, study, spec, trials, workers=workers, scheduler=scheduler, device=device,
                            progress=wanted(json_output), time_limit=time_limit)
    _print_study(summary, json_output)


study_app = typer.Typer(help="List, show and export the studies in a store.", no_args_is_help=True)
app.add_typer(study_app, name="study")


@study_app.command("list")
def study_list(store: StorePath = None, json_output: Json = False):
    """Every study in the store, with its trial counts."""
    from rnncap.store import Store

    with Store(store) as db:
        studies = db.studies()
    if json_output:
        print_json({"store": str(db.path), "studies": studies})
        return
    print_table(f"studies in {db.path}", ["study", "task", "cell", "depth", "n_h", "strategy", "trials", "done",
                                           "infeasible", "failed", "running"],
                [[s["name"], s["spec"]["task"], s["spec"]["cell"], s["spec"]["depth"], s["spec"]["n_h"],
                  s["spec"]["strategy"], s["trials"], s["done"], s["infeasible"], s["failed"], s["running"]]
                 for s in studies])


@study_app.command("show")
def study_show(name: Annotated[str, typer.Argument(help="The study's name.")], store: StorePath = None,
               json_output: Json = False):
    """A study's best trial, its fraction infeasible, and the best and median objective by trial number."""
    from rnncap.store import Store
    from rnncap.tune.study import summarize

    with Store(store) as db:
        summary = summarize(db, name)
    _print_study(summary, json_output)


@study_app.command("export")
def study_export(name: Annotated[str, typer.Argument(help="The study's name.")],
                 fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
                 store: StorePath = None):
    """Every trial of a study, one row each, on stdout."""
    import csv

    from rnncap.store import Store

    if fmt not in ("csv", "json"):
        raise RnncapError(f"--format must be csv or json, got {fmt!r}")
    with Store(store) as db:
        spec, rows = db.study(name), db.trials(name)
    if fmt == "json":
        print_json({"study": name, "spec": spec, "trials": rows})
        return
    hparam_names = sorted({k for r in rows for k in r["hparams"]})
    metric_names = sorted({k for r in rows for k in r["metrics"]})
    writer = csv.writer(sys.stdout)
    writer.writerow(["number", "status", "objective", "wall_time", *hparam_names,
                     *[f"metric.{m}" for m in metric_names], "reason"])
    for r in rows:
        writer.writerow([r["number"], r["status"], r["objective"], r["wall_time"],
                         *[r["hparams"].get(h, "") for h in hparam_names],
                         *[r["metrics"].get(m, "") for m in metric_names], r["reason"] or ""])


@study_app.command("delete")
def study_delete(names: Annotated[list[str], typer.Argument(help="The studies' names.")],
                 prefix: Annotated[bool, typer.Option(help="Treat each name as a prefix: delete every study "
                                                      "whose name starts with it.")] = False,
                 yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
                 store: StorePath = None):
    """Delete studies and all their trials (to run them again from scratch)."""
    from rnncap.store import Store

    with Store(store) as db:
        known = [s["name"] for s in db.studies()]
        chosen = [k for k in known if any(k.startswith(n) for n in names)] if prefix else names
        if not chosen:
            raise RnncapError(f"no study in {db.path} starts with {', '.join(names)}")
        if not yes and not typer.confirm(f"delete {len(chosen)} studies ({', '.join(chosen[:3])}"
                                         f"{', ...' if len(chosen) > 3 else ''}) and their trials?"):
            raise typer.Exit(1)
        removed = sum(db.delete_study(name) for name in chosen)
    typer.echo(f"deleted {len(chosen)} studies and {removed} trials from {db.path}")


def _print_study(summary: dict, json_output: bool) -> None:
    if json_output:
        print_json(summary)
        return
    spec = summary["spec"]
    typer.echo(f"study {summary['study']}: {spec['task']} | {spec['cell']} depth {spec['depth']}, {spec['n_h']} units, "
               f"{spec['params']} parameters | {spec['strategy']} | {summary['trials']} trials finished "
               f"({summary['done']} done, {summary['infeasible']} infeasible, {summary['failed']} failed"
               + (f", {summary['running']} left running" if summary["running"] else "") + ")")
    if summary["trials"]:
        typer.echo(f"  infeasible fraction {summary['infeasible_fraction']:.3f}")
    best = summary["best"]
    if best is not None:
        hp = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["hparams"].items())
        typer.echo(f"  best: trial {best['number']}, {spec['objective']} {best['objective']:.5g}  ({hp})")
        rows = [[c["trial"], "-" if c["best"] is None else f"{c['best']:.5g}",
                 "-" if c["median"] is None else f"{c['median']:.5g}"] for c in summary["curve"]]
        print_table(f"{spec['objective']} by trial ({'max' if spec['direction'] == 'max' else 'min'}imised)",
                    ["trial", "best so far", "median so far"], rows)


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


@app.command()
def reproduce(
    experiment: Annotated[str, typer.Argument(help="capacity, capacity-table, relu, unroll, memory, text8, rcf, "
                                               "parens, arith or random-hp; 'all' for every one.")],
    preset: Annotated[str, typer.Option(help="smoke (seconds), quick (<= ~30 min on 2 cores) or full "
                                        "(the paper's sizes: days).")] = "quick",
    store: StorePath = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Trials run at once, each in its own process.")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="A Dask scheduler (tcp://host:port).")] = None,
    time_limit: TimeLimit = None,
    device: Device = None,
    json_output: Json = False,
):
    """Run one of the paper's experiments: its grid of studies, resumable, into the store.

    Run `rnncap report --out DIR` afterwards for the figures and tables.
    """
    import time

    from rnncap.experiments import EXPERIMENTS, reproduce as run_experiment
    from rnncap.progress import wanted
    from rnncap.store import Store

    names = list(EXPERIMENTS) if experiment == "all" else [experiment]
    results = []
    started = time.perf_counter()
    with Store(store) as db:
        for name in names:
            left = None if time_limit is None else time_limit - (time.perf_counter() - started)
            results.append(run_experiment(db, name, preset, workers=workers, scheduler=scheduler, device=device,
                                          progress=wanted(json_output), time_limit=left))
            if not json_output:
                r = results[-1]
                typer.echo(f"{name} ({preset}): {len(r['studies'])} of {r['planned']} studies finished in "
                           f"{_elapsed(r['wall_time'])}; store {db.path}")
    if json_output:
        print_json({"experiments": results, "store": str(db.path)})


@app.command()
def report(
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for the PNG figures and report.md.")] = "report",
    store: StorePath = None,
    json_output: Json = False,
):
    """Figures (PNG) and tables (report.md) from every study in the store, beside the paper's numbers."""
    from pathlib import Path

    from rnncap.report import write_report
    from rnncap.store import Store

    with Store(store) as db:
        written = write_report(db, Path(out))
    if json_output:
        print_json(written)
    else:
        typer.echo(f"wrote {Path(out) / 'report.md'} and {len(written.get('figures', []))} figures")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
