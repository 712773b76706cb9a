"""The paper's figures and tables as named experiments: grids of studies in one store.

An experiment is a list of *study plans*: a study's spec (task, cell, depth,
size, strategy, fixed settings; see :func:`rnncap.tune.study.study_spec`),
its name, and how many trials to run. Its specs carry ``tags`` (experiment,
preset, and what the figure plots: unroll, variant, ...) that
:mod:`rnncap.report` reads. Every experiment has four presets:

- ``smoke``: a few seconds, for the test suite (it proves the plumbing only);
- ``quick``: at most about 30 minutes on a 2-core laptop: smaller sizes, fewer
  trials, the narrow quick search space (:func:`rnncap.tune.space.quick_search_space`)
  and fixed training settings that we know train;
- ``standard``: about two hours on 2 cores: the quick space and training
  settings, with the paper's sizes where they are affordable (the memory
  task's n_in = 64, Table 1's random search with 40 draws per cell and depth,
  capacity budgets over 1.5 decades, text8 trained 3000 steps) and more
  trials per point;
- ``full``: the paper's sizes and trial counts as closely as we can state
  them (its appendix is not available to us): the full search space, a GP
  tuner, hundreds of trials per point. Days of CPU time; use ``--workers``
  or a Dask cluster.

Running an experiment is running its studies (:func:`reproduce`), so it is
resumable: studies already finished are skipped, a half-finished one
continues.

:data:`EXPERIMENTS` is the one list of experiments: their order, the paper's
figure each reproduces, what the paper found, the studies each runs and the
report section that draws it. The CLI, the report and the tests all read it,
so adding an experiment is adding one entry there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rnncap.cells import CELLS
from rnncap.errors import RnncapError
from rnncap.progress import ProgressBar
from rnncap.tasks.capacity import LABEL_NOISE, input_bits, minibatch_size, seeds_for_budget
from rnncap.tune.space import KNOWN_TO_TRAIN

PRESETS = ("smoke", "quick", "standard", "full")
ALL_CELLS = tuple(CELLS)                        # rnn, irnn, ugrnn, gru, lstm, plusrnn
CHOICE_CELLS = tuple(c for c in CELLS if len(CELLS[c].nonlinearities) > 1)   # tanh or ReLU


@dataclass(frozen=True)
class StudyPlan:
    name: str
    spec: dict
    trials: int

    @property
    def work(self) -> int:
        """A rough size of the study's training, to start the largest first: trials x steps x the
        pre-activation columns of every layer (units x gate blocks x depth), what a step's cost grows with."""
        spec = self.spec
        columns = spec["n_h"] * len(CELLS[spec["cell"]].gate_names) * spec["depth"]
        return self.trials * spec["fixed"].get("steps", 1) * columns


# what every trial of a quick or smoke study shares: settings that train ---------------------------

MEMORISE_TRAINING = KNOWN_TO_TRAIN["memorise"]         # memory, rcf: read out once, clip loosely
CAPACITY_TRAINING = KNOWN_TO_TRAIN["capacity"]         # capacity: the same, the rate falling to near zero, clipped at 1
SEQUENCE_TRAINING = KNOWN_TO_TRAIN["sequence"]         # text8: a loss at every step, clip tightly


def _depth_for(cell: str, depth: int) -> int:
    """The +RNN is never run at depth 1 (as in the paper): it takes depth 2 there."""
    return max(depth, CELLS[cell].min_depth)


def _plan(experiment: str, preset: str, task: str, cell: str, depth: int, trials: int, *, budget=None, units=None,
          task_options=None, fixed=None, strategy="gp", space="quick", tags=None, seed=0,
          strategy_options=None) -> StudyPlan:
    from rnncap.tune.space import start_point       # here, not above: the registry stays cheap to import (--help)
    from rnncap.tune.study import study_space, study_spec

    depth = _depth_for(cell, depth)
    tags = {"experiment": experiment, "preset": preset, **(tags or {})}
    spec = study_spec(task, cell, depth, budget=budget, units=units, strategy=strategy, task_options=task_options,
                      fixed=fixed, seed=seed)
    spec["space"], spec["tags"] = space, tags
    if space == "quick":                             # start from the settings known to train
        spec["strategy_options"] = {"start": start_point(study_space(spec), cell, spec["params"])}
    if strategy_options:
        spec.setdefault("strategy_options", {}).update(strategy_options)
    size = f"p{budget}" if budget is not None else f"n{units}"
    extra = "".join(f":{k}={v}" for k, v in sorted(tags.items()) if k not in ("experiment", "preset"))
    return StudyPlan(f"{experiment}:{preset}:{cell}:d{depth}:{size}{extra}", spec, trials)


def _grid(preset: str, smoke, quick, standard, full):
    return {"smoke": smoke, "quick": quick, "standard": standard, "full": full}[preset]


def _settings(preset: str, steps: int, training: dict, **more) -> tuple[str, dict]:
    """The search space a preset uses, and what its trials hold fixed.

    Smoke, quick and standard presets search the narrow quick space with
    ``training`` fixed (settings known to train); full presets search everything.
    """
    space = "full" if preset == "full" else "quick"
    return space, {"steps": steps, **more, **(training if space == "quick" else {})}


def _capacity_settings(preset: str, budget: int, unroll: int = 5, steps: int | None = None) -> tuple[str, dict, dict]:
    """Space, fixed settings and task options shared by the capacity-task experiments at one budget (the
    training of ``rnncap capacity``, :func:`rnncap.measure.capacity_spec`, with its input width and minibatch
    sized to the budget). ``steps`` defaults to 20000 (quick preset: 10000; smoke: 40); rnncap capacity: 100000."""
    steps = steps or _grid(preset, 40, 10000, 20000, 20000)
    space, fixed = _settings(preset, steps, CAPACITY_TRAINING, eval_every=max(1, steps // 20))
    return space, fixed, {"n_in": input_bits(budget), "unroll": unroll, "batch_size": minibatch_size(budget),
                          "label_noise": LABEL_NOISE}


# the experiments -------------------------------------------------------------------------------

def capacity_plans(preset: str, experiment: str = "capacity") -> list[StudyPlan]:
    """Figure 1a-h: capacity task, unroll 5, six cells, depths 1, 2, 4, a range of budgets."""
    depths = _grid(preset, (1,), (1,), (1,), (1, 2, 4))
    budgets = _grid(preset, (150,), (250, 500, 1000), (100, 300, 1000, 3000), (300, 1000, 3000, 10000, 30000, 100000))
    # quick: the training of rnncap capacity, at b = 4P, 5P and 3P from its start (the b search's first three;
    # 41 of 42 searches of 6 trials found their best there, REPRODUCTION.md), in 40000 of its 100000 steps,
    # and below 1000 parameters each point from more seeds for fewer steps (seeds_for_budget)
    trials = _grid(preset, 2, 3, 6, 300)
    steps = _grid(preset, 40, 40000, 20000, 20000)
    seeds = {budget: seeds_for_budget(budget) if preset == "quick" else 1 for budget in budgets}
    settings = {budget: _capacity_settings(preset, budget, steps=steps // seeds[budget])   # space, fixed, options
                for budget in budgets}
    strategy = _grid(preset, "bsearch", "bsearch", "bsearch", "gp")    # few trials: search b from known settings
    return [_plan(experiment, preset, "capacity", cell, depth, trials * seeds[budget], budget=budget,
                  space=settings[budget][0], fixed=settings[budget][1], task_options=settings[budget][2],
                  strategy=strategy, strategy_options={"seeds": seeds[budget]} if seeds[budget] > 1 else None)
            for depth in depths for cell in ALL_CELLS for budget in budgets]


def relu_plans(preset: str) -> list[StudyPlan]:
    """Figure 2a: the cells with a choice of nonlinearity, tuned ('all') or held to ReLU ('relu')."""
    budget = _grid(preset, 150, 1000, 1000, 10000)
    trials = _grid(preset, 2, 6, 6, 300)
    space, fixed, options = _capacity_settings(preset, budget)
    variants = {"all": fixed, "relu": {**fixed, "nonlinearity": "relu"}}
    return [_plan("relu", preset, "capacity", cell, 1, trials, budget=budget, space=space, fixed=variant_fixed,
                  task_options=options, tags={"variant": variant})
            for cell in CHOICE_CELLS for variant, variant_fixed in variants.items()]


def unroll_plans(preset: str) -> list[StudyPlan]:
    """Figure 2b: bits per parameter against the number of unrolled steps."""
    cells = _grid(preset, ("rnn",), ("rnn", "gru", "lstm"), ("rnn", "gru", "lstm"), ALL_CELLS)
    unrolls = _grid(preset, (1, 2), (1, 2, 5, 10), (1, 2, 3, 5, 8), (1, 2, 3, 5, 8, 12, 16))
    budget = _grid(preset, 150, 500, 500, 1000)
    trials = _grid(preset, 2, 4, 4, 200)
    settings = {unroll: _capacity_settings(preset, budget, unroll) for unroll in unrolls}   # (space, fixed, options)
    return [_plan("unroll", preset, "capacity", cell, 1, trials, budget=budget, space=settings[unroll][0],
                  fixed=settings[unroll][1], task_options=settings[unroll][2], tags={"unroll": unroll})
            for cell in cells for unroll in unrolls]


def memory_plans(preset: str) -> list[StudyPlan]:
    """Figure 2c: recall error against units per layer, all cells (n_in = 64 in the paper)."""
    n_in = _grid(preset, 4, 32, 64, 64)
    units = _grid(preset, (2, 4), (8, 16, 24, 32, 48), (16, 32, 48, 64, 80), (8, 16, 32, 48, 64, 80, 96, 128))
    depths = _grid(preset, (1,), (1,), (1,), (1, 2, 4))
    trials = _grid(preset, 1, 2, 2, 50)
    space, fixed = _settings(preset, _grid(preset, 40, 2000, 4000, 10000), MEMORISE_TRAINING)
    return [_plan("memory", preset, "memory", cell, depth, trials, units=n_h, space=space, fixed=fixed,
                  task_options={"n_in": n_in, "unroll": 5})
            for depth in depths for cell in ALL_CELLS for n_h in units]


def text8_plans(preset: str) -> list[StudyPlan]:
    """Figure 3: held-out bits per character against parameters (and units), depths 1, 2, 4."""
    depths = _grid(preset, (1,), (1,), (1,), (1, 2, 4))
    budgets = _grid(preset, (1500,), (5000, 20000), (5000, 20000), (10000, 30000, 100000, 300000, 1000000))
    trials = _grid(preset, 1, 2, 2, 100)
    options = _grid(preset, {"max_chars": 20000, "window": 10, "batch_size": 8, "eval_chars": 2000},
                    {"window": 50, "batch_size": 32, "eval_chars": 50000},
                    {"window": 50, "batch_size": 32, "eval_chars": 100000}, {})
    space, fixed = _settings(preset, _grid(preset, 10, 400, 3000, 20000), SEQUENCE_TRAINING)
    return [_plan("text8", preset, "text8", cell, depth, trials, budget=budget, space=space, fixed=fixed,
                  task_options=options)
            for depth in depths for cell in ALL_CELLS for budget in budgets]


def rcf_plans(preset: str) -> list[StudyPlan]:
    """Figure 3: random continuous functions, squared error against parameters."""
    depths = _grid(preset, (1,), (1,), (1,), (1, 2, 4))
    budgets = _grid(preset, (150,), (300, 1000), (300, 1000, 3000), (300, 1000, 3000, 10000, 30000))
    trials = _grid(preset, 1, 3, 3, 200)
    options = _grid(preset, {"n_samples": 64, "n_in": 4}, {"n_samples": 2048, "batch_size": 256},
                    {"n_samples": 2048, "batch_size": 256},
                    {"batch_size": 256})
    space, fixed = _settings(preset, _grid(preset, 30, 3000, 6000, 20000), MEMORISE_TRAINING)
    return [_plan("rcf", preset, "rcf", cell, depth, trials, budget=budget, space=space, fixed=fixed,
                  task_options=options)
            for depth in depths for cell in ALL_CELLS for budget in budgets]


def _hard_task_plans(experiment: str, preset: str, task: str) -> list[StudyPlan]:
    """Figure 4: GP tuning on a hard task; the report plots min and median loss by trial."""
    depths = _grid(preset, (1, 2), (1, 4), (1, 4), (1, 2, 4, 8))
    budget = _grid(preset, 800, 5000, 5000, 100000)
    trials = _grid(preset, 2, 5, 10, 500)
    steps = _grid(preset, 10, 300, 1000, 20000)
    options = {"parens": _grid(preset, {"length": 10, "eval_samples": 32}, {"length": 50, "eval_samples": 256},
                               {"length": 50, "eval_samples": 256}, {}),
               "arith": _grid(preset, {"digits": 2, "eval_samples": 32}, {"digits": 2, "eval_samples": 256},
                              {"digits": 2, "eval_samples": 256}, {})}[task]
    return [_plan(experiment, preset, task, cell, depth, trials, budget=budget, space="full", fixed={"steps": steps},
                  task_options=options)
            for depth in depths for cell in ALL_CELLS]


def parens_plans(preset: str) -> list[StudyPlan]:
    return _hard_task_plans("parens", preset, "parens")


def arith_plans(preset: str) -> list[StudyPlan]:
    return _hard_task_plans("arith", preset, "arith")


def random_hp_plans(preset: str) -> list[StudyPlan]:
    """Figure 5 and Table 1: random hyperparameters on parens, depths 1 and 8 (200k parameters in the paper)."""
    budget = _grid(preset, 800, 3000, 3000, 200000)
    trials = _grid(preset, 3, 8, 40, 1000)
    steps = _grid(preset, 10, 150, 500, 20000)
    options = _grid(preset, {"length": 10, "eval_samples": 32}, {"length": 30, "eval_samples": 128},
                    {"length": 30, "eval_samples": 128}, {})
    return [_plan("random-hp", preset, "parens", cell, depth, trials, budget=budget, space="full",
                  strategy="random", fixed={"steps": steps}, task_options=options)
            for depth in (1, 8) for cell in ALL_CELLS if not (cell == "plusrnn" and depth == 1)]


@dataclass(frozen=True)
class Experiment:
    """One of the paper's figures or tables: the studies that reproduce it and the report section that draws it."""

    name: str                                        # `rnncap reproduce NAME`
    figure: str                                      # the paper's figure or table it reproduces
    summary: str                                     # what it measures, in one line
    finding: str                                     # what the paper found: the report's opening sentence
    plans: Callable[[str], list[StudyPlan]]          # preset -> the studies to run
    section: str                                     # "module:function" that draws it (rnncap.report imports it)
    studies_of: str | None = None                    # the experiment whose studies it reads, if not its own

    @property
    def source(self) -> str:
        """The experiment whose studies this one reads: its own, or ``studies_of``."""
        return self.studies_of or self.name


EXPERIMENTS = {e.name: e for e in (
    Experiment(
        "capacity", "1a-h", "bits and bits per parameter against parameters",
        "The paper finds the bits stored by the best trial linear in the parameter count, at 3-6 (about 5) bits "
        "per parameter for every cell.",
        capacity_plans, "rnncap.report.capacity:capacity_section"),
    Experiment(
        "capacity-table", "1i", "parameter multiplier between cells for equal capacity",
        "How many times more parameters cell x needs than cell y to store as many bits (> 1: x stores less per "
        "parameter).",
        capacity_plans, "rnncap.report.capacity:capacity_table_section", studies_of="capacity"),
    Experiment(
        "relu", "2a", "bits per parameter, ReLU only against tuned nonlinearity",
        "The paper finds that holding RNN-like cells to ReLU costs capacity: about 3.5 bits per parameter, against "
        "about 5 when tanh is allowed.",
        relu_plans, "rnncap.report.capacity:relu_section"),
    Experiment(
        "unroll", "2b", "bits per parameter against unrolled steps",
        "The paper finds bits per parameter growing with the number of unrolled steps for a few steps, then "
        "saturating.",
        unroll_plans, "rnncap.report.capacity:unroll_section"),
    Experiment(
        "memory", "2c", "recall error against units, with the reference curve",
        "The paper finds that every cell recalls its input iff n_h >= n_in, and below that follows "
        "max(0, 1 - n_h/n_in): about one real number per unit.",
        memory_plans, "rnncap.report.memory:memory_section"),
    Experiment(
        "text8", "3a-d", "bits per character against parameters and units",
        "Held-out bits per character against parameters; the paper finds the cells close at equal parameters "
        "(and far apart against units, Figure 3d).",
        text8_plans, "rnncap.report.tasks:text8_section"),
    Experiment(
        "rcf", "3", "squared error against parameters",
        "Squared error on random continuous functions against parameters; the paper finds the cells close.",
        rcf_plans, "rnncap.report.tasks:rcf_section"),
    Experiment(
        "parens", "4", "min and median loss against tuning iteration",
        "Minimum (solid) and median (dashed) evaluation loss over the tuning iterations: how easily each cell "
        "trains on parallel parentheses counting.",
        parens_plans, "rnncap.report.tuning:parens_section"),
    Experiment(
        "arith", "4", "min and median loss against tuning iteration",
        "Minimum (solid) and median (dashed) evaluation loss over the tuning iterations on addition, the hardest "
        "task.",
        arith_plans, "rnncap.report.tuning:arith_section"),
    Experiment(
        "random-hp", "5, table 1", "random hyperparameters: losses and fraction infeasible",
        "Final losses of random hyperparameter sets (feasible trials) and the fraction of sets whose training "
        "diverged, beside the paper's Table 1.",
        random_hp_plans, "rnncap.report.tuning:random_hp_section"),
)}


def experiment_names() -> list[str]:
    """Every experiment's name, in the paper's order."""
    return list(EXPERIMENTS)


def experiments_help() -> str:
    """The experiments with the paper's figure each reproduces, for the CLI's help."""
    return ", ".join(f"{e.name} (Fig. {e.figure})" for e in EXPERIMENTS.values()) + "; 'all' for every one."


def experiment_plans(name: str, preset: str) -> list[StudyPlan]:
    """The studies of an experiment's preset, each once (the +RNN's depth 1 becomes 2, which may repeat)."""
    if name not in EXPERIMENTS:
        raise RnncapError(f"unknown experiment {name!r}: choose one of {', '.join(EXPERIMENTS)}")
    if preset not in PRESETS:
        raise RnncapError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    return list({plan.name: plan for plan in EXPERIMENTS[name].plans(preset)}.values())


def reproduce(store, name: str, preset: str = "quick", *, workers: int = 1, scheduler: str | None = None,
              device: str | None = None, progress: bool = False, time_limit: float | None = None,
              population: int | None = None) -> dict:
    """Run every study of an experiment (resuming where the store says it stopped).

    With ``workers`` > 1 (and no ``scheduler``) that many studies run at once,
    each in a process of its own that trains its trials there: the studies of
    a preset are many and their searches short and sequential (the b search
    waits for each phase), so studies side by side keep every core busy where
    trials side by side would not. The largest start first
    (:attr:`StudyPlan.work`), so that no core is left waiting on one long
    study at the end. On a Dask cluster the studies run one after another,
    each spreading its trials over the cluster.

    ``population``: trials trained together; None picks each study's default from its network's size.
    """
    started = time.perf_counter()
    deadline = None if time_limit is None else time.time() + time_limit
    plans = experiment_plans(name, preset)
    done = []
    with ProgressBar(progress, len(plans), f"{name} ({preset})") as bar:
        if workers > 1 and scheduler is None:
            from concurrent.futures import as_completed

            from rnncap.tune.study import make_executor

            pool = make_executor(workers)
            try:
                largest_first = sorted(range(len(plans)), key=lambda k: -plans[k].work)
                futures = {pool.submit(run_plan, str(store.path), plans[k], 1, None, device, deadline, population): k
                           for k in largest_first}
                finished = {}
                for future in as_completed(futures):
                    finished[futures[future]] = future.result()
                    bar.update(len(finished), plans[futures[future]].name)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            done = [finished[k] for k in sorted(finished) if finished[k] is not None]
        else:
            for k, plan in enumerate(plans):
                summary = run_plan(store, plan, workers, scheduler, device, deadline, population, bar.note)
                if summary is None:
                    break
                done.append(summary)
                bar.update(k + 1, plan.name)
    return {"experiment": name, "preset": preset, "studies": done, "planned": len(plans),
            "wall_time": time.perf_counter() - started}


def run_plan(store, plan: StudyPlan, workers: int, scheduler: str | None, device: str | None,
             deadline: float | None, population: int | None, notes=None) -> dict | None:
    """Run one study of an experiment; its summary, or None when ``deadline`` (``time.time()``) has passed.

    ``store`` is a :class:`rnncap.store.Store`, or the path of one (in a worker process of :func:`reproduce`).
    """
    from rnncap.population import default_population
    from rnncap.store import Store
    from rnncap.tune.study import run_study

    left = None if deadline is None else deadline - time.time()
    if left is not None and left <= 0:
        return None
    if isinstance(store, str):
        with Store(store) as opened:
            return run_plan(opened, plan, workers, scheduler, device, deadline, population, notes)
    summary = run_study(store, plan.name, plan.spec, plan.trials, workers=workers, scheduler=scheduler,
                        device=device, time_limit=left, notes=notes,
                        population=population or default_population(plan.spec["params"], plan.spec["strategy"]))
    return {"study": plan.name, "trials": summary["trials"], "failed": summary["failed"], "best": summary["best"]}
