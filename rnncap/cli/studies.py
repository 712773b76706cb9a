"""Commands over studies: tune one, list, show, export and delete them; the paper's experiments and report."""

from __future__ import annotations

from typing import Annotated

import typer

from rnncap.cli.app import (Budget, Cell, CheckedTyper, Depth, Device, Json, Population, Scheduler, Seed, StorePath,
                            TaskOptions, TimeLimit, Units, Workers, app, choose_population, format_hparams, print_json,
                            print_table)
from rnncap.cli.validate import check_run_fits, check_study_fits, output_folder
from rnncap.errors import RnncapError
from rnncap.experiments import EXPERIMENTS, experiments_help
from rnncap.formatting import duration


@app.command()
def tune(
    study: Annotated[str, typer.Option("--study", help="The study's name; run the same command again to resume it.")],
    cell: Cell,
    task: Annotated[str, typer.Option("--task", "-t", help="Task: see `rnncap tasks`.")] = "capacity",
    depth: Depth = 1,
    budget: Budget = None,
    units: Units = None,
    strategy: Annotated[str, typer.Option(help="gp (Gaussian-process Bayesian optimisation), random, or "
                                          "bsearch (the capacity task's search for b).")] = "gp",
    trials: Annotated[int, typer.Option("--trials", "-k", min=1, help="Finished trials to reach.")] = 20,
    steps: Annotated[int, typer.Option(min=1, help="Training steps of every trial.")] = 1000,
    option: TaskOptions = [],
    workers: Workers = 1,
    population: Population = None,
    scheduler: Scheduler = None,
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
    from rnncap.tasks import parse_task_options
    from rnncap.tune.study import run_study, study_spec

    options = parse_task_options(task, option)
    check_run_fits(task, options, cell, depth, budget=budget, units=units)      # before the task is built
    spec = study_spec(task, cell, depth, budget=budget, units=units, strategy=strategy,
                      task_options=options, fixed={"steps": steps}, seed=seed)
    population, announce = choose_population(population, [spec], json_output, workers=workers, scheduler=scheduler)
    with Store(store) as db:
        summary = run_study(db, study, spec, trials, workers=workers, scheduler=scheduler, device=device,
                            progress=wanted(json_output), time_limit=time_limit, population=population,
                            announce=announce)
    _print_study(summary, json_output)


study_app = CheckedTyper(help="List, show, export and delete the studies in a store.", no_args_is_help=True)
app.add_typer(study_app, name="study")


@study_app.command("list")
def study_list(store: StorePath = None, json_output: Json = False):
    """Every study in the store, with its trial counts."""
    from rnncap.store import Store

    with Store(store, mode="read") as db:
        studies = db.studies()
    if json_output:
        print_json({"store": str(db.path), "studies": studies})
        return
    print_table(f"studies in {db.path}", ["study", "what", "trials", "d/i/f/r"],
                [[s["name"], f"{s['spec']['task']}, {s['spec']['cell']} depth {s['spec']['depth']}, "
                  f"{s['spec']['n_h']} units, {s['spec']['strategy']}", s["trials"],
                  f"{s['done']}/{s['infeasible']}/{s['failed']}/{s['running']}"] for s in studies],
                caption="d/i/f/r: trials done, infeasible (diverged), failed (an error), running",
                keep_whole=("study",))


@study_app.command("show")
def study_show(name: Annotated[str, typer.Argument(help="The study's name.")], store: StorePath = None,
               json_output: Json = False):
    """A study's best trial, its fraction infeasible, and the best and median objective by trial number."""
    from rnncap.store import Store
    from rnncap.tune.study import summarize

    with Store(store, mode="read") as db:
        summary = summarize(db, name)
    _print_study(summary, json_output)


@study_app.command("export")
def study_export(name: Annotated[str, typer.Argument(help="The study's name.")],
                 fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
                 store: StorePath = None):
    """Every trial of a study, one row each, on stdout."""
    import csv
    import sys

    from rnncap.store import Store
    from rnncap.tune.study import trials_table

    if fmt not in ("csv", "json"):
        raise RnncapError(f"--format must be csv or json, got {fmt!r}")
    with Store(store, mode="read") as db:
        spec, rows = db.study(name), db.trials(name)
    if fmt == "json":
        print_json({"study": name, "spec": spec, "trials": rows})
        return
    header, table = trials_table(rows)
    writer = csv.writer(sys.stdout)
    writer.writerow(header)
    writer.writerows(table)


@study_app.command("delete")
def study_delete(names: Annotated[list[str], typer.Argument(help="The studies' names.")],
                 prefix: Annotated[bool, typer.Option(help="Treat each name as a prefix: delete every study "
                                                      "whose name starts with it.")] = False,
                 yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
                 store: StorePath = None):
    """Delete studies and all their trials (to run them again from scratch): every one named, or none."""
    from rnncap.store import Store

    if prefix and not all(names):
        raise RnncapError("--prefix with an empty name would delete every study: give the beginning of the names "
                          "to delete (`rnncap study list` shows them)")
    with Store(store, mode="write") as db:
        if prefix:
            known = [s["name"] for s in db.studies()]
            unmatched = [n for n in names if not any(k.startswith(n) for k in known)]
            if unmatched:
                raise RnncapError(f"no study in {db.path} starts with {', '.join(map(repr, unmatched))}; nothing "
                                  "was deleted")
            chosen = [k for k in known if any(k.startswith(n) for n in names)]
        else:
            chosen = list(dict.fromkeys(names))
            for name in chosen:
                db.study(name)                                         # every name known, before asking
        if not yes and not typer.confirm(f"delete {len(chosen)} studies ({', '.join(chosen[:3])}"
                                         f"{', ...' if len(chosen) > 3 else ''}) and their trials?"):
            raise typer.Exit(1)
        removed = db.delete_studies(chosen)
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
    if summary["failed"]:
        typer.echo(f"  {summary['failed']} failed with an error, not the network (`rnncap study export "
                   f"{summary['study']}` says why): run the same command again to retry them")
    if summary["trials"]:
        typer.echo(f"  infeasible fraction {summary['infeasible_fraction']:.3f} "
                   "(infeasible / (done + infeasible); failed trials count on neither side)")
    best = summary["best"]
    if best is not None:
        per_param = (f" = {best['objective'] / spec['params']:.3f} bits per parameter"
                     if spec["objective"] == "bits" else "")
        hparams = dict(best["hparams"])
        if "b_per_param" in hparams:                     # not bits per parameter: samples b per parameter
            hparams["samples/param"] = hparams.pop("b_per_param")
        typer.echo(f"  best: trial {best['number']}, {spec['objective']} {best['objective']:.5g}{per_param}")
        typer.echo(f"    {format_hparams(hparams)}")
        rows = [[c["trial"], "-" if c["best"] is None else f"{c['best']:.5g}",
                 "-" if c["median"] is None else f"{c['median']:.5g}"] for c in summary["curve"]]
        print_table(f"{spec['objective']} by trial ({'max' if spec['direction'] == 'max' else 'min'}imised)",
                    ["trial", "best so far", "median so far"], rows)


@app.command()
def reproduce(
    experiment: Annotated[str, typer.Argument(help=experiments_help())],
    preset: Annotated[str, typer.Option(help="smoke (seconds), quick (minutes on 2 cores), standard "
                                        "(hours on 2 cores) or full (the paper's sizes: days).")] = "quick",
    store: StorePath = None,
    workers: Workers = 1,
    population: Population = None,
    scheduler: Scheduler = None,
    time_limit: TimeLimit = None,
    device: Device = None,
    json_output: Json = False,
):
    """Run one of the paper's experiments: its grid of studies, resumable, into the store.

    With --workers W, W studies run at once, each in its own process. Run
    `rnncap report --out DIR` afterwards for the figures and tables.
    """
    import time

    from rnncap.experiments import experiment_plans
    from rnncap.experiments import reproduce as run_experiment
    from rnncap.population import default_population
    from rnncap.progress import wanted
    from rnncap.store import Store

    if experiment != "all" and experiment not in EXPERIMENTS:
        raise RnncapError(f"unknown experiment {experiment!r}: choose one of {', '.join(EXPERIMENTS)}, or all")
    names = list(EXPERIMENTS) if experiment == "all" else [experiment]
    for plan in (plan for name in names for plan in experiment_plans(name, preset)):   # a bad preset: refused here
        check_study_fits(plan.spec, population=population or default_population(plan.spec["params"],
                                                                                plan.spec["strategy"]),
                         workers=workers, scheduler=scheduler)
    results = []
    started = time.perf_counter()
    with Store(store) as db:
        for name in names:
            left = None if time_limit is None else time_limit - (time.perf_counter() - started)
            results.append(run_experiment(db, name, preset, workers=workers, scheduler=scheduler, device=device,
                                          progress=wanted(json_output), time_limit=left, population=population))
            if not json_output:
                r = results[-1]
                failing = sum(s["failed"] > 0 for s in r["studies"])
                typer.echo(f"{name} ({preset}): {len(r['studies']) - failing} of {r['planned']} studies finished in "
                           f"{duration(r['wall_time'])}; store {db.path}"
                           + (f"; {failing} with failed trials (an error, not the network): run the same command "
                              "again to retry them" if failing else ""))
        if not json_output and "capacity" in names:
            _print_headline(db, preset)
    if json_output:
        print_json({"experiments": results, "store": str(db.path)})


def _print_headline(db, preset: str) -> None:
    """Bits per parameter per cell, beside the paper's band: the result the capacity experiment is for."""
    from rnncap.report import capacity_headline

    rows = capacity_headline(db, (preset,))
    if rows:
        low, high = rows[0]["paper_band"]
        print_table(f"bits per parameter, best over budgets ({preset} preset; the paper: about "
                    f"{rows[0]['paper_typical']:g}, between {low:g} and {high:g})",
                    ["cell", "depth", "bits/param", "at parameters", "trials"],
                    [[r["label"], r["depth"], "-" if r["bits_per_parameter"] is None else
                      f"{r['bits_per_parameter']:.2f}", r["params"] or "-", r["trials"]] for r in rows])


@app.command()
def report(
    out: Annotated[str, typer.Option("--out", "-o", callback=output_folder, help="Folder for the PNG figures and "
                                     "report.md (created if missing; the files rnncap writes there are "
                                     "replaced).")] = "report",
    store: StorePath = None,
    json_output: Json = False,
):
    """Figures (PNG) and tables (report.md) from every study in the store, beside the paper's numbers."""
    from pathlib import Path

    from rnncap.report import write_report
    from rnncap.store import Store

    with Store(store, mode="read") as db:
        written = write_report(db, Path(out))
    if json_output:
        print_json(written)
    else:
        typer.echo(f"wrote {Path(out) / 'report.md'} and {len(written.get('figures', []))} figures")
