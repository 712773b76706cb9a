"""Commands that train: one run (``train``) and the paper's two capacity measurements."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from rnncap.cli.app import (EXIT_INFEASIBLE, Budget, Cell, Depth, Device, Json, Population, Scheduler, Seed,
                            StorePath, TaskOptions, TimeLimit, Units, Workers, app, choose_population, format_hparams,
                            print_json, print_table)
from rnncap.cli.validate import check_run_fits, output_file
from rnncap.errors import RnncapError
from rnncap.formatting import duration
from rnncap.tasks.capacity import CAPACITY_STEPS, LABEL_NOISE, input_bits, seeds_for_budget

Trials = Annotated[int, typer.Option("--trials", "-k", min=1, help="Training runs in all.")]
Study = Annotated[Optional[str], typer.Option("--study", help="The study's name in the store. Default: one made "
                                              "from the settings, so the same command resumes it.")]


@app.command()
def train(
    cell: Cell,
    task: Annotated[str, typer.Option("--task", "-t", help="Task: see `rnncap tasks`.")] = "capacity",
    depth: Depth = 1,
    budget: Budget = None,
    units: Units = None,
    option: TaskOptions = [],
    optimizer: Annotated[str, typer.Option(help="adam, rmsprop, sgd (with momentum) or lbfgs (full batch).")] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-2,
    lr_decay: Annotated[float, typer.Option(help="Factor the learning rate has fallen by at the last step.")] = 1.0,
    lr_schedule: Annotated[str, typer.Option(help="How the rate falls to lr x lr-decay: exponential, linear or "
                                             "cosine.")] = "exponential",
    full_batch_tail: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of the steps, at the end, "
                                                   "that train on the whole dataset (capacity, rcf).")] = 0.0,
    momentum: Annotated[float, typer.Option(help="Momentum (sgd).")] = 0.9,
    clip: Annotated[float, typer.Option(help="Clip the gradients' global norm to this (0: no clipping).")] = 10.0,
    l2: Annotated[float, typer.Option(help="L2 penalty on the weight matrices.")] = 0.0,
    steps: Annotated[int, typer.Option(min=1, help="Training steps (L-BFGS: iterations).")] = 1000,
    eval_every: Annotated[int, typer.Option(min=0, help="Evaluate every N steps (0: at the end only).")] = 0,
    nonlinearity: Annotated[Optional[str], typer.Option("--nonlinearity", "-s", help="tanh or relu.")] = None,
    b_fg: Annotated[float, typer.Option(help="Constant added to the keep gate (UGRNN, GRU, LSTM, +RNN).")] = 1.0,
    b_fg_y: Annotated[float, typer.Option(help="+RNN: constant added to the depth gate.")] = 1.0,
    weight_scale: Annotated[float, typer.Option(help="Initial weights ~ N(0, scale^2 / fan_in).")] = 1.0,
    bias_scale: Annotated[float, typer.Option(help="Initial biases ~ N(0, scale^2).")] = 0.0,
    seed: Seed = 0,
    checkpoint: Annotated[Optional[str], typer.Option(callback=output_file, help="Save a checkpoint to this file "
                                                      "as training goes (its folder must exist).")] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")] = 100,
    resume: Annotated[bool, typer.Option(help="Continue the run saved in --checkpoint.")] = False,
    time_limit: TimeLimit = None,
    device: Device = None,
    json_output: Json = False,
):
    """Train one network on one task and print the task's metrics.

    Exit status 3 if the run diverged (reported as infeasible, as the paper counts them).
    """
    from rnncap.cells import canonical_cell_name
    from rnncap.network import units_for
    from rnncap.progress import wanted
    from rnncap.tasks import parse_task_options, task_config
    from rnncap.trial import make_trial, run_trial

    if resume and checkpoint is None:
        raise RnncapError("--resume continues the run saved in --checkpoint: give --checkpoint FILE")
    cell = canonical_cell_name(cell)
    options = parse_task_options(task, option)
    shape = task_config(task, **options).footprint()                         # the task's sizes, nothing built
    n_h = units_for(cell, depth, shape.n_in, shape.n_out, budget=budget, units=units)
    check_run_fits(task, options, cell, depth, n_h=n_h)
    hparams = {"optimizer": optimizer, "lr": lr, "lr_decay": lr_decay, "lr_schedule": lr_schedule,
               "full_batch_tail": full_batch_tail, "momentum": momentum,
               "clip": clip or None, "l2": l2, "steps": steps, "eval_every": eval_every,
               "nonlinearity": nonlinearity, "b_fg": b_fg, "b_fg_y": b_fg_y, "weight_scale": weight_scale,
               "bias_scale": bias_scale, "checkpoint_every": checkpoint_every}
    trial = make_trial(task, options, cell, depth, n_h, hparams, seed=seed)
    outcome = run_trial(trial, device=device, progress=wanted(json_output), time_limit=time_limit,
                        checkpoint_path=checkpoint, resume=resume)
    if json_output:
        print_json({"trial": trial, **outcome})
    else:
        metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in outcome["metrics"].items())
        typer.echo(f"{task} | {cell} depth {depth}, {n_h} units, {outcome['params']} parameters | "
                   f"{outcome['status']} after {outcome['steps']} steps in {duration(outcome['wall_time'])}")
        typer.echo(f"  {metrics}" if metrics else f"  {outcome['reason']}")
    if outcome["status"] == "infeasible":
        raise typer.Exit(EXIT_INFEASIBLE)


@app.command()
def capacity(
    cell: Cell,
    depth: Depth = 1,
    budget: Annotated[int, typer.Option("--budget", "-p", help="Maximum number of parameters.")] = 1000,
    n_in: Annotated[Optional[int], typer.Option(
        "--n-in", min=1, show_default="the fewest that keep 8P inputs distinct: 13 at 1000 parameters",
        help="Input bits per sample.")] = None,
    unroll: Annotated[int, typer.Option("--unroll", "-T", min=1, help="Steps from input to label.")] = 5,
    trials: Annotated[Optional[int], typer.Option(
        "--trials", "-k", min=1, show_default="10 x seeds",
        help="Training runs in all, every seed's counted. Those left once the b search has converged train "
        "its best point again from other seeds (restarts).")] = None,
    seeds: Annotated[Optional[int], typer.Option(
        min=1, show_default="1000 // budget, at least 1: 4 at 250 parameters",
        help="Seeds per point of the b search, trained side by side; a point scores its best seed. Small "
        "networks vary more from seed to seed than they gain from long training (REPRODUCTION.md).")] = None,
    steps: Annotated[Optional[int], typer.Option(
        min=1, show_default=f"{CAPACITY_STEPS} // seeds",
        help="Training steps per run (L-BFGS: iterations); the rate falls in a straight line to a thousandth "
        "over them. 1000-parameter RNNs store 0.4 bits per parameter less in 20000 (REPRODUCTION.md), in a "
        "fifth of the time.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        min=0, show_default="the power of two nearest the budget, at most 1024: 128 at 100 parameters",
        help="Samples per step (0: all b; L-BFGS always uses all).")] = None,
    optimizer: Annotated[str, typer.Option(help="adam, rmsprop, sgd or lbfgs.")] = "adam",
    label_noise: Annotated[float, typer.Option(
        "--label-noise", min=0.0, max=0.99,
        help="ε of the loss: the likelihood of labels random with probability ε (0: the paper's "
             "cross-entropy).")] = LABEL_NOISE,
    study: Study = None,
    store: StorePath = None,
    workers: Workers = 1,
    population: Population = None,
    scheduler: Scheduler = None,
    time_limit: TimeLimit = None,
    seed: Seed = 0,
    device: Device = None,
    json_output: Json = False,
):
    """Per-parameter capacity: the most bits a network of --budget parameters memorises.

    Searches the number of samples b and a few hyperparameters (the bsearch
    strategy: hyperparameters at b = 4P, then b on a grid, then refined, then
    the best point restarted from other seeds), as a study in the store: run
    the same command again to resume it. Below 1000 parameters every point
    is trained from several seeds for a share of the steps (--seeds). Prints
    every trial's b, accuracy and bits, and the best bits per parameter.
    """
    from rnncap.measure import capacity_spec, measure_capacity
    from rnncap.progress import wanted
    from rnncap.store import Store

    n_in = input_bits(budget) if n_in is None else n_in
    seeds = seeds_for_budget(budget) if seeds is None else seeds
    steps = CAPACITY_STEPS // seeds if steps is None else steps
    trials = 10 * seeds if trials is None else trials
    check_run_fits("capacity", {"n_in": n_in, "unroll": unroll}, cell, depth, budget=budget)   # before any is built
    spec = capacity_spec(cell, depth, budget, n_in=n_in, unroll=unroll, steps=steps,
                         batch_size="auto" if batch_size is None else batch_size or None,
                         optimizer=optimizer, label_noise=label_noise, seed=seed, seeds=seeds)
    population, announce = choose_population(population, [spec], json_output, workers=workers,
                                             scheduler=scheduler)
    with Store(store) as db:
        result = measure_capacity(db, spec, trials=trials, study=study, workers=workers, scheduler=scheduler,
                                  time_limit=time_limit, device=device, progress=wanted(json_output),
                                  population=population, announce=announce)
    if json_output:
        print_json(result)
        return
    spec = result["spec"]
    rows = [[r["number"], r["b"], f"{r['b_per_param']:.2f}", r["status"],
             "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}",
             "-" if r["bits"] is None else f"{r['bits']:.0f}",
             "-" if r["bits_per_parameter"] is None else f"{r['bits_per_parameter']:.3f}",
             format_hparams(r["hparams"], ("lr", "b_fg", "weight_scale", "nonlinearity"))] for r in result["runs"]]
    print_table(f"capacity: {spec['cell']} depth {depth}, {n_in} input bits, {spec['n_h']} units, "
                f"{spec['params']} parameters "
                f"(study {result['study']})",
                ["trial", "b", "b/P", "status", "accuracy", "bits", "bits/P", "hyperparameters"], rows,
                caption="P parameters; b/P: samples per parameter; bits/P: bits per parameter")
    best = result["best"]
    if best is None:
        typer.echo("no trial finished within the time limit")
        return
    typer.echo(f"best: {best['objective']:.0f} bits stored with b = {best['metrics']['b']} samples at accuracy "
               f"{best['metrics']['accuracy']:.4f}; {spec['params']} parameters -> "
               f"{best['bits_per_parameter']:.3f} bits per parameter ({result['trials']} trials; this run "
               f"{duration(result['wall_time'])}; the paper: about 5, between 3 and 6)")


@app.command()
def memory(
    cell: Cell,
    depth: Depth = 1,
    n_in: Annotated[int, typer.Option("--n-in", min=1, help="Size of the input to remember.")] = 64,
    units: Annotated[str, typer.Option("--units", "-n", help="Comma-separated units per layer to try.")] = "",
    unroll: Annotated[int, typer.Option("--unroll", "-T", min=1, help="Steps from input to recall.")] = 5,
    trials: Annotated[int, typer.Option("--trials", "-k", min=1, help="Most training runs per unit count "
                                        "(it stops early once one is within 0.01 of the reference).")] = 8,
    steps: Annotated[int, typer.Option(min=1, help="Training steps per run.")] = 6000,
    store: StorePath = None,
    workers: Workers = 1,
    population: Population = None,
    scheduler: Scheduler = None,
    time_limit: TimeLimit = None,
    seed: Seed = 0,
    device: Device = None,
    json_output: Json = False,
):
    """Per-unit capacity: how well the state recalls an input seen once, against units per layer.

    Prints the normalised error next to the reference max(0, 1 - n_h/n_in).
    Default units: n_in/4, n_in/2, 3n_in/4, n_in, 3n_in/2. Each unit count is
    a study in the store: run the same command again to resume.
    """
    from rnncap.measure import measure_memory, memory_specs
    from rnncap.progress import wanted
    from rnncap.store import Store

    try:
        unit_list = [int(u) for u in units.split(",") if u.strip()] if units else \
            sorted({max(1, n_in * k // 4) for k in (1, 2, 3, 4, 6)})
    except ValueError:
        raise RnncapError(f"--units takes comma-separated whole numbers, got {units!r}") from None
    if not unit_list or any(u < 1 for u in unit_list):
        raise RnncapError(f"--units takes whole numbers >= 1, got {units!r}")
    check_run_fits("memory", {"n_in": n_in, "unroll": unroll}, cell, depth, units=max(unit_list))  # before any is built
    specs = memory_specs(cell, depth, n_in, unit_list, unroll=unroll, steps=steps, seed=seed)
    population, announce = choose_population(population, specs, json_output, workers=workers, scheduler=scheduler)
    with Store(store) as db:
        result = measure_memory(db, specs, trials=trials, workers=workers, scheduler=scheduler,
                                time_limit=time_limit, device=device, progress=wanted(json_output),
                                population=population, announce=announce)
    if json_output:
        print_json(result)
        return
    rows = [[r["n_h"], r["params"], "-" if r["error"] is None else f"{r['error']:.4f}", f"{r['reference']:.4f}",
             "-" if r["gap"] is None else f"{r['gap']:+.4f}", r["trials"]] for r in result["rows"]]
    print_table(f"memory: {result['cell']} depth {depth}, n_in {n_in}, recall after {unroll} steps",
                ["n_h", "params", "error", "reference", "error - reference", "trials"], rows,
                caption=duration(result["wall_time"]))
