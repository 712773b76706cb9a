"""Running a study: ask the strategy for hyperparameters, train, record, repeat.

A study's ``spec`` fixes what all its trials share: the task and its options,
the cell, depth and units (from the parameter budget), the strategy, the
seed, and the hyperparameters that are not searched (``fixed``, e.g. the
number of training steps). Everything else comes from the search space
(:mod:`rnncap.tune.space`). For the capacity task the space has
``b_per_param``, which becomes the task's sample count ``b = b_per_param * P``.

The driver is the only writer of the store. With ``workers = K > 1`` it keeps
K populations of trials running in separate processes (or, given a scheduler
address, one per worker thread of a Dask cluster: :mod:`rnncap.tune.cluster`),
handing the strategy the hyperparameters still running as ``pending`` so that
parallel suggestions differ. Every finished trial is
committed before the next is started; on resumption, trials left ``running``
by a dead driver, and trials that ``failed``, are run again first, and the
strategy is fed every finished trial, so a resumed study continues the same
search. A study has one driver at a time: its lease in the store.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict

import numpy

from rnncap.cells import canonical_cell_name
from rnncap.errors import RnncapError
from rnncap.network import count_params, units_for
from rnncap.progress import ProgressBar
from rnncap.store import Store
from rnncap.tasks import make_task
from rnncap.trial import failed_outcomes, make_trial, run_trials, trial_key
from rnncap.tune.cluster import DaskExecutor, finished_line, study_files
from rnncap.tune.inflight import InFlight
from rnncap.tune.space import quick_search_space, samples_for, search_space, split_task_hparams
from rnncap.tune.strategies import STRATEGIES, make_strategy


def study_spec(task: str, cell: str, depth: int, *, budget: int | None = None, units: int | None = None,
               strategy: str = "gp", task_options: dict | None = None, fixed: dict | None = None,
               seed: int = 0, space: str = "full") -> dict:
    """The settings every trial of a study shares (validated; units from the budget).

    ``space`` is ``full`` (:func:`search_space`) or ``quick`` (:func:`quick_search_space`).
    """
    cell = canonical_cell_name(cell)
    shape = make_task(task, dict(task_options or {}))                       # validates the options
    # every option, defaults included: a study (and its name) records what its trials ran, so a later
    # rnncap with other defaults makes a new study instead of mixing its trials into this one
    task_options = json.loads(json.dumps(asdict(shape.config)))
    n_h = units_for(cell, depth, shape.n_in, shape.n_out, budget=budget, units=units)
    if strategy not in STRATEGIES:
        raise RnncapError(f"unknown search strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if strategy == "bsearch" and task != "capacity":
        raise RnncapError("the bsearch strategy searches the capacity task's b: use gp or random for the "
                          f"{task} task")
    if space not in ("full", "quick"):
        raise RnncapError(f"the search space is full or quick, got {space!r}")
    spec = {"task": task, "task_options": task_options, "cell": cell, "depth": depth, "budget": budget,
            "n_h": n_h, "params": count_params(cell, depth, shape.n_in, shape.n_out, n_h),
            "strategy": strategy, "objective": shape.objective, "direction": shape.direction,
            "fixed": dict(fixed or {}), "seed": seed}
    if space != "full":
        spec["space"] = space
    return spec


def trial_for(spec: dict, hparams: dict) -> dict:
    """The trial that a study runs for a point of its search space.

    Every trial trains from the study's seed, except a restart (``hparams``
    with ``restart`` k >= 1, from the bsearch strategy): the same point from
    seed :func:`restart_seed`, so another initialisation and order of
    minibatches on the same data.
    """
    hparams = dict(hparams)
    seed = restart_seed(spec["seed"], hparams.pop("restart", 0))
    trial_hparams, task_hparams = split_task_hparams({**spec["fixed"], **hparams})
    task_options = dict(spec["task_options"])
    if "b_per_param" in task_hparams:
        task_options["n_samples"] = samples_for(task_hparams["b_per_param"], spec["params"])
    return make_trial(spec["task"], task_options, spec["cell"], spec["depth"], spec["n_h"], trial_hparams,
                      seed=seed)


def restart_seed(seed: int, restart: int) -> int:
    """The seed of restart ``restart`` of a study seeded ``seed`` (restart 0: ``seed`` itself)."""
    if restart == 0:
        return seed
    return int(numpy.random.SeedSequence([seed, restart]).generate_state(1)[0])


def study_space(spec: dict):
    """The study's search space (full, or the quick one), less what the study holds fixed."""
    make = quick_search_space if spec.get("space") == "quick" else search_space
    return make(spec["cell"], spec["task"], exclude=tuple(spec["fixed"]))


def _run_safely(trials: list[dict], device: str | None, checkpoints: tuple[str, float] | None = None) -> list[dict]:
    """``run_trials``, with an error turned into ``failed`` outcomes (the sweep goes on)."""
    try:
        return run_trials(trials, device=device, checkpoints=checkpoints)
    except Exception as err:  # a bug or a machine fault: record it, do not stop the study
        reason = f"{type(err).__name__}: {err} | {traceback.format_exc(limit=-1).strip().splitlines()[-1]}"
        return failed_outcomes(len(trials), reason)


class _InlineExecutor:
    """Runs each submitted call at once, in this process (``workers = 1``)."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:
            future.set_exception(err)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass

    def slots(self) -> int:
        return 1


class _ProcessPool(ProcessPoolExecutor):
    """``workers`` processes, started fresh (spawn), each running one population at a time (or, for
    ``rnncap reproduce``, one study), and each ending when the process that started them ends."""

    def __init__(self, workers: int):
        import multiprocessing

        super().__init__(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                         initializer=_end_with_parent)
        self.workers = workers

    def slots(self) -> int:
        return self.workers


def _end_with_parent() -> None:
    """A pool worker's first act: watch the process that started it, and end this one when it ends.

    A driver killed by a signal (``kill``, a scheduler's time limit) takes no clean-up with it, and its
    pool's workers would go on training, holding cores and writing the store, until their population or
    study was over. Ending them as ``kill -9`` would is safe: what they leave ``running`` in the store is
    run again, from its checkpoint, when the study resumes.
    """
    import multiprocessing
    import threading
    from multiprocessing.connection import wait as wait_for

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        wait_for([parent.sentinel])         # ready once the parent's end of the pipe closes: it has exited
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def make_executor(workers: int, scheduler: str | None = None, files: list[str] = ()):
    """Where trials run: here, in a pool of ``workers`` processes, or on a Dask cluster.

    Every executor's ``slots()`` says how many populations to keep running at
    once. On a cluster that is its number of worker threads, and ``workers``
    is not used; ``files`` are those the trials read, which every worker must
    have (:mod:`rnncap.tune.cluster`).
    """
    if scheduler is not None:
        return DaskExecutor(scheduler, files)
    if workers < 1:
        raise RnncapError(f"--workers must be >= 1, got {workers}")
    if workers == 1:
        return _InlineExecutor()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")          # one BLAS thread per worker: K workers share K cores
    return _ProcessPool(workers)


def _signed(value: float, direction: str) -> float:
    """Strategies minimise: negate an objective that is maximised."""
    return value if direction == "min" else -value


def run_study(store: Store, name: str, spec: dict, trials: int, *, workers: int = 1, scheduler: str | None = None,
              device: str | None = None, progress=None, time_limit: float | None = None,
              population: int = 1, announce=None, notes=None) -> dict:
    """Run study ``name`` until it has ``trials`` finished trials; return :func:`summarize`'s dict.

    ``announce()``, if given, is called once the study is open and this
    driver holds it, before any trial runs (the CLI says there which
    population size it chose, so that a refusal stays one line).

    Work goes out in *populations* of up to ``population`` trials, which a
    worker trains together (:func:`rnncap.trial.run_trials`); the strategy
    proposes them one after another, each seeing the earlier ones as pending.

    One driver at a time: the study's lease in the store (:meth:`Store.lease`)
    is held for the whole run, and a second driver is refused. Trials left
    ``running`` by a dead driver and trials that ``failed`` (an error, not the
    network: a bad device, a missing file) are run again first, once per run,
    under their numbers and hyperparameters; a trial that fails again stays
    ``failed`` until the next run.

    On a cluster, each finished trial's line (which worker ran it) goes to
    ``notes`` (a function of one string; default: the study's progress).
    """
    if trials < 1:
        raise RnncapError(f"--trials must be >= 1, got {trials}")
    if population < 1:
        raise RnncapError(f"--population must be >= 1, got {population}")
    started = time.perf_counter()
    executor = make_executor(workers, scheduler, study_files(spec))   # before anything is written
    try:
        with store.lease(name):
            _drive(store, name, spec, trials, executor, workers=workers, device=device, progress=progress,
                   time_limit=time_limit, population=population, started=started, announce=announce,
                   notes=notes)
    finally:
        executor.shutdown(wait=True)
    summary = summarize(store, name)
    summary["wall_time"] = time.perf_counter() - started
    return summary


def _drive(store: Store, name: str, spec: dict, trials: int, executor, *, workers: int, device: str | None,
           progress, time_limit: float | None, population: int, started: float, announce=None,
           notes=None) -> None:
    """:func:`run_study`'s loop, under the study's lease: keep up to ``workers`` populations running."""
    spec = store.create_or_open_study(name, spec)
    if announce is not None:
        announce()
    strategy = study_strategy(spec, trials)
    rows = store.trials(name)
    for row in rows:
        if row["status"] in ("done", "infeasible"):
            value = None if row["objective"] is None else _signed(row["objective"], spec["direction"])
            strategy.observe(row["hparams"], value, feasible=row["status"] == "done")
    redo = [row for row in rows if row["status"] in ("running", "failed")]   # a dead driver's, or failed: again
    finished = len(rows) - len(redo)
    inflight = None if isinstance(executor, DaskExecutor) else InFlight(store.path, name)
    if inflight is not None:                     # a dead driver's populations that can resume go out first, whole
        by_key = {row["key"]: row for row in redo}
        resumed = [[by_key[key] for key in keys]
                   for keys in inflight.resumable({r["key"] for r in redo if r["status"] == "running"})]
        again = {row["key"] for group in resumed for row in group}
        redo = resumed + [row for row in redo if row["key"] not in again]
    taken = {row["key"] for row in rows}
    in_flight: dict[Future, list[tuple[int, dict, dict]]] = {}     # a population: (number, hparams, trial) each
    running = lambda: sum(len(group) for group in in_flight.values())  # noqa: E731
    with ProgressBar(progress, trials, f"{name}") as bar:
        bar.update(finished, _best_text(store, name, spec))
        try:
            while True:
                out_of_time = time_limit is not None and time.perf_counter() - started > time_limit
                while not out_of_time and len(in_flight) < executor.slots() and finished + running() < trials:
                    group = _next_population(store, name, spec, strategy, redo, taken, in_flight,
                                             _share(population, trials - finished - running(), executor.slots()))
                    if not group:                        # the strategy waits for a result, or has finished
                        break
                    sent = [trial for _, _, trial in group]
                    if inflight is None:
                        future = executor.submit(_run_safely, sent, device)
                    else:
                        future = executor.submit(_run_safely, sent, device, inflight.begin(_keys(sent)))
                    in_flight[future] = group
                if not in_flight:
                    break
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    members = in_flight.pop(future)
                    for (number, hparams, _), outcome in zip(members, future.result()):
                        store.finish_trial(name, number, outcome["status"], outcome["objective"],
                                           outcome["metrics"], outcome.get("reason"), outcome["wall_time"])
                        value = (None if outcome["objective"] is None
                                 else _signed(outcome["objective"], spec["direction"]))
                        strategy.observe(hparams, value, feasible=outcome["status"] == "done")
                        finished += 1
                        if "worker" in outcome:                  # on a cluster: say where each trial ran
                            (notes or bar.note)(finished_line(number, outcome, spec))
                    if inflight is not None:
                        inflight.end(_keys([trial for _, _, trial in members]))
                    bar.update(finished, _best_text(store, name, spec))
            if inflight is not None:
                inflight.close()
        finally:
            for future in in_flight:                 # on an error or Ctrl-C: start nothing more
                future.cancel()


def _share(population: int, left: int, slots: int) -> int:
    """How many of the ``left`` trials to send out together: at most ``population``, and no more than a
    ``slots``-th of them, so that the last trials of a study (or a phase of the b search) keep every
    worker busy instead of one."""
    return max(1, min(population, left, math.ceil(left / slots)))


def _keys(trials: list[dict]) -> list[str]:
    return [trial_key(trial) for trial in trials]


def _next_population(store: Store, name: str, spec: dict, strategy, redo: list, taken: set, in_flight: dict,
                     size: int) -> list[tuple[int, dict, dict]]:
    """Up to ``size`` trials to train together: those to run again first (see :func:`run_study`), then new ones.

    An entry of ``redo`` that is a list is a population that resumes from its checkpoint: it goes out whole
    and alone."""
    if redo and isinstance(redo[0], list):
        rows = redo.pop(0)
        for row in rows:
            store.restart_trial(name, row["number"])
        return [(row["number"], row["hparams"], row["trial"]) for row in rows]
    group = []
    while len(group) < size:
        if redo and not isinstance(redo[0], list):
            row = redo.pop(0)
            store.restart_trial(name, row["number"])
            group.append((row["number"], row["hparams"], row["trial"]))
            continue
        pending = [h for members in in_flight.values() for _, h, _ in members] + [h for _, h, _ in group]
        suggested = _new_trial(store, name, spec, strategy, pending, taken)
        if suggested is None:
            break
        group.append(suggested)
    return group


def study_strategy(spec: dict, trials: int):
    """The study's strategy, seeded by the study's seed, with the options its spec gives."""
    options = dict(spec.get("strategy_options", {}))
    if spec["strategy"] == "bsearch":                    # its phases are fractions of the trials
        options.update(trials=trials, n_params=spec["params"])
    return make_strategy(spec["strategy"], study_space(spec), numpy.random.default_rng([spec["seed"], 7]),
                         **options)


def _new_trial(store: Store, name: str, spec: dict, strategy, pending: list,
               taken: set) -> tuple[int, dict, dict] | None:
    """Ask the strategy for a point no trial of the study has used (``taken``: their keys); record it as running.

    None when the strategy has nothing to suggest (it waits for ``pending``, or its search is over).
    A resumed strategy starts again from the study's seed, so the points a
    random stream drew before come first and are passed over: up to one per
    taken trial, then 20 more, before the strategy is deemed stuck.
    """
    for _ in range(len(taken) + 20):
        suggested = strategy.suggest_hparams(1, pending=pending)
        if not suggested:
            return None
        hparams = suggested[0]
        trial = trial_for(spec, hparams)
        key = trial_key(trial)
        if key not in taken:
            number = store.next_number(name)
            store.start_trial(name, number, key, trial, hparams)
            taken.add(key)
            return number, hparams, trial
    raise RnncapError(f"the {spec['strategy']} strategy keeps suggesting trials study {name!r} has run")


def _best_text(store: Store, name: str, spec: dict) -> str:
    done = [r["objective"] for r in store.trials(name, "done")]
    if not done:
        return ""
    best = max(done) if spec["direction"] == "max" else min(done)
    return f"best {spec['objective']} {best:.4g}"


def infeasible_fraction(infeasible: int, done: int) -> float:
    """The fraction of trials that diverged, as the paper's Table 1 counts it: ``infeasible / (done + infeasible)``.

    A ``failed`` trial (an exception: a bug or a machine fault, not the
    network's trainability) counts on neither side, and neither does one still
    running. NaN when no trial has finished as done or infeasible.
    """
    total = infeasible + done
    return infeasible / total if total else math.nan


def summarize(store: Store, name: str) -> dict:
    """A study at a glance: its best trial, the fraction infeasible, and Figure 4's two curves.

    ``curve`` gives, after each trial number i, the best and the median
    objective over the feasible trials among the first i (None before the
    first feasible one).
    """
    spec = store.study(name)
    rows = store.trials(name)
    finished = [r for r in rows if r["status"] != "running"]
    feasible = [r for r in finished if r["status"] == "done"]
    pick = max if spec["direction"] == "max" else min
    best = pick(feasible, key=lambda r: r["objective"]) if feasible else None
    curve, values = [], []
    for r in finished:
        if r["status"] == "done":
            values.append(r["objective"])
        curve.append({"trial": r["number"], "best": pick(values) if values else None,
                      "median": statistics.median(values) if values else None})
    return {
        "study": name, "spec": spec, "trials": len(finished), "running": len(rows) - len(finished),
        "done": len(feasible), "infeasible": sum(r["status"] == "infeasible" for r in finished),
        "failed": sum(r["status"] == "failed" for r in finished),
        "infeasible_fraction": infeasible_fraction(sum(r["status"] == "infeasible" for r in finished),
                                                   len(feasible)),
        "best": None if best is None else {k: best[k] for k in ("number", "objective", "hparams", "metrics")},
        "curve": curve,
    }


def trials_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """A study's trials as one flat table (for CSV): a column per hyperparameter and per metric."""
    hparam_names = sorted({k for r in rows for k in r["hparams"]})
    metric_names = sorted({k for r in rows for k in r["metrics"]})
    header = ["number", "status", "objective", "wall_time", *hparam_names, *[f"metric.{m}" for m in metric_names],
              "reason"]
    table = [[r["number"], r["status"], r["objective"], r["wall_time"], *[r["hparams"].get(h, "") for h in hparam_names],
              *[r["metrics"].get(m, "") for m in metric_names], r["reason"] or ""] for r in rows]
    return header, table
