"""The checks every command shares, run before any work starts and before the store is written.

- :func:`check_parsed` runs on every command once its options are parsed
  (see ``CheckedCommand`` in app.py): no number may be NaN or infinite, and
  ``--device`` must name a device this machine can use (with ``--scheduler``
  only the name is checked: the GPU is the workers' business).
- The path callbacks (:func:`output_file`, :func:`output_folder`,
  :func:`store_file`) refuse a path that cannot be written before anything is
  computed: a missing folder, a folder under a regular file, no permission.
- :func:`check_run_fits`, :func:`check_study_fits` and
  :func:`check_gradcheck_fits` estimate the memory a run needs
  (:mod:`rnncap.resources`) and refuse one that cannot fit, with the estimate
  and the memory available.

Whole-number ranges (``--seed >= 0``, ``--workers 1..1024``) are declared on
the options themselves (``min=``/``max=``); a value out of range is a parser
error, which app.py also prints as one line.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from pathlib import Path

import typer

from rnncap.errors import RnncapError

MAX_WORKERS = 1024                # processes on one machine, or populations in flight on a cluster
MAX_GRADCHECK_ENTRIES = 5000      # entries mode perturbs each one: about a minute at this size
SCHEDULER_ADDRESS = re.compile(r"([a-z]+://)?[^\s:/]+:\d+")   # tcp://host:port, or host:port


def check_parsed(ctx: typer.Context) -> None:
    """What holds for every command's parsed options: finite numbers, a usable device, a scheduler address."""
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise RnncapError(f"{param.opts[0]} must be a finite number, got {value}")
    scheduler = ctx.params.get("scheduler")
    if scheduler is not None:
        if not SCHEDULER_ADDRESS.fullmatch(scheduler):
            raise RnncapError(f"--scheduler takes a Dask scheduler's address, tcp://host:port; got {scheduler!r}")
        if importlib.util.find_spec("distributed") is None:
            raise RnncapError("--scheduler needs Dask: pip install 'rnncap[dask]'")
    if "device" in ctx.params:
        from rnncap.backend import get_xp, resolve_device

        if ctx.params.get("scheduler") is None:
            get_xp(ctx.params["device"])                # raises if CuPy or a GPU is missing here
        else:
            resolve_device(ctx.params["device"])


def positive(value: float | None) -> float | None:
    """An option callback: a number > 0 (or not given)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value:g}")
    return value


# Paths -----------------------------------------------------------------------------------------


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (which may not exist yet), or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if existing != folder:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in the folder {folder} (permission denied)"
    return None


def output_file(value: str | None) -> str | None:
    """An option callback for a file rnncap writes (a checkpoint): its folder must exist and be writable."""
    if value is None:
        return value
    path = Path(value)
    folder = path.parent
    if path.is_dir():
        raise typer.BadParameter(f"{value} is a folder; give a file name")
    problem = _folder_problem(folder)
    if problem is None and not folder.is_dir():
        problem = f"the folder {folder} does not exist; create it first"
    if problem is None and path.exists() and not os.access(path, os.R_OK | os.W_OK):
        problem = f"cannot read and write {value} (permission denied)"
    if problem is not None:
        raise typer.BadParameter(problem)
    return value


def output_folder(value: str) -> str:
    """An option callback for a folder rnncap writes into (``report --out``); it is created if missing.

    An existing folder is reused: the files rnncap writes there (report.md,
    the figures) are replaced, nothing else in it is touched.
    """
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{value} is a file; give a folder (it is created if missing)")
    problem = _folder_problem(path)
    if problem is not None:
        raise typer.BadParameter(problem)
    return value


def store_file(value: str | None) -> str | None:
    """An option callback for ``--store`` (or ``$RNNCAP_STORE``): a file, in a folder that exists."""
    path = value if value is not None else os.environ.get("RNNCAP_STORE")
    if path:
        where = "" if value is not None else " ($RNNCAP_STORE)"
        if Path(path).is_dir():
            raise typer.BadParameter(f"{path}{where} is a folder; give the store's file name")
        folder = Path(path).parent
        if not folder.is_dir():
            problem = _folder_problem(folder) or f"the folder {folder} does not exist; create it first"
            raise typer.BadParameter(f"{path}{where}: {problem}")
    return value


# Memory ----------------------------------------------------------------------------------------

FIX = "use a smaller --budget or --units, fewer samples or steps (-o), or a smaller --population or --workers"


def check_run_fits(task: str, task_options: dict, cell: str, depth: int, *, n_h: int | None = None,
                   budget: int | None = None, units: int | None = None, population: int = 1,
                   workers: int = 1, scheduler: str | None = None) -> None:
    """Refuse a run (``workers`` populations of ``population`` networks at once) that cannot fit in memory.

    ``n_h`` or else ``budget``/``units`` gives the size. With a Dask
    ``scheduler`` the work runs elsewhere, and this machine's memory says
    nothing about it: nothing is checked.
    """
    from rnncap.network import units_for
    from rnncap.resources import check_fits, run_bytes
    from rnncap.tasks import task_config

    if scheduler is not None:
        return
    footprint = task_config(task, **task_options).footprint()
    if n_h is None:
        n_h = units_for(cell, depth, footprint.n_in, footprint.n_out, budget=budget, units=units)
    needed = workers * run_bytes(footprint, cell, depth, n_h, population)
    what = f"{workers} x " if workers > 1 else ""
    check_fits(needed, f"{what}{population} x {cell} depth {depth} with {n_h} units on the {task} task", FIX)


def check_study_fits(spec: dict, *, population: int, workers: int, scheduler: str | None) -> None:
    """:func:`check_run_fits` for the largest trial a study may run (the capacity task's largest b), once the
    hyperparameters it holds fixed (``--optimizer``, ``--steps``) are known to make a valid trial."""
    from rnncap.cells import make_cell
    from rnncap.trial import split_hparams
    from rnncap.tune.space import samples_for, split_task_hparams
    from rnncap.tune.study import study_space

    cell_hp, _ = split_hparams(split_task_hparams(spec["fixed"])[0], spec["seed"])   # raises on a bad value
    make_cell(spec["cell"], cell_hp)
    options = dict(spec["task_options"])
    per_param = spec["fixed"].get("b_per_param")
    if per_param is None:
        per_param = max((p.high for p in study_space(spec).params if p.name == "b_per_param"), default=None)
    if per_param is not None:
        options["n_samples"] = samples_for(per_param, spec["params"])
    check_run_fits(spec["task"], options, spec["cell"], spec["depth"], n_h=spec["n_h"], population=population,
                   workers=workers, scheduler=scheduler)


def check_gradcheck_fits(cell: str, depth: int, n_h: int, T: int, mode: str, population: int) -> None:
    """Refuse a gradient check too large to finish (entries mode) or to fit in memory.

    The check's networks are tiny but for ``n_h``: 3 inputs, 4 outputs, 3
    sequences of ``T`` steps, in float64 and in extended precision (16 bytes).
    """
    from rnncap.network import count_params
    from rnncap.resources import check_fits, network_bytes

    if mode not in ("entries", "directions"):
        raise RnncapError(f"--mode must be entries or directions, got {mode!r}")
    entries = count_params(cell, depth, 3, 4, n_h)
    if mode == "entries" and entries > MAX_GRADCHECK_ENTRIES:
        raise RnncapError(f"--mode entries would perturb each of {entries} parameters one at a time (the limit is "
                          f"{MAX_GRADCHECK_ENTRIES}); use --mode directions, or fewer --units")
    needed = population * network_bytes(cell, depth, 3, 4, n_h, steps=T, batch=3, number_bytes=8 + 16)
    check_fits(needed, f"gradcheck of a {cell} depth {depth} with {n_h} units", "use fewer --units or --steps")
