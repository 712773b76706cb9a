"""The paper's two capacity measurements, as studies of the one study driver.

:func:`measure_capacity` (per-parameter capacity): the most bits a network of a
given parameter budget stores on the memorisation task, searching the number
of samples ``b`` and a few hyperparameters with the ``bsearch`` strategy
(:class:`rnncap.tune.strategies.SampleSearch`).

:func:`measure_memory` (per-unit capacity): for each number of units, the
lowest reconstruction error of the memory task over a few trials, next to the
reference ``max(0, 1 - n_h / n_in)``: one study per unit count, the settings
known to train first and then random draws from the quick search space,
stopping once a trial is within ``tolerance`` of the reference.

Both are ordinary studies in a store (:mod:`rnncap.tune.study`): a killed
measurement resumes where it stopped when run again with the same settings,
``workers`` run trials side by side, and ``rnncap study show`` lists every
trial. Their names follow from their settings (:func:`default_study_name`).
The paper tunes every point with a Gaussian-process optimiser over hundreds of
trials; ``rnncap tune`` does that. These searches are the quick version.
"""

from __future__ import annotations

import hashlib
import json
import time

from rnncap.tasks.memory import reference_error
from rnncap.tasks.capacity import CAPACITY_STEPS, LABEL_NOISE, input_bits, minibatch_size
from rnncap.tune.space import KNOWN_TO_TRAIN, start_point
from rnncap.tune.study import run_study, study_space, study_spec


def default_study_name(kind: str, spec: dict) -> str:
    """``capacity-rnn-d1-p1000-3f9a1c``: what was measured, and a hash of every other setting."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:6]
    size = f"p{spec['budget']}" if spec["budget"] is not None else f"n{spec['n_h']}"
    return f"{kind}-{spec['cell']}-d{spec['depth']}-{size}-{digest}"


def _quick_spec(task: str, cell: str, depth: int, strategy: str, *, budget=None, units=None, task_options: dict,
                fixed: dict, seed: int, training: str = "memorise") -> dict:
    """A study of the quick search space, starting from the settings known to train (``KNOWN_TO_TRAIN[training]``)."""
    spec = study_spec(task, cell, depth, budget=budget, units=units, strategy=strategy, task_options=task_options,
                      fixed={**KNOWN_TO_TRAIN[training], **fixed}, seed=seed, space="quick")
    spec["strategy_options"] = {"start": start_point(study_space(spec), cell, spec["params"])}
    return spec


def capacity_spec(cell: str, depth: int, budget: int, *, n_in: int | None = None, unroll: int = 5,
                  steps: int = CAPACITY_STEPS, batch_size: int | None | str = "auto", optimizer: str = "adam",
                  label_noise: float = LABEL_NOISE, seed: int = 0, seeds: int = 1) -> dict:
    """The study that :func:`measure_capacity` runs.

    Training (ours; measured on 1000-parameter networks, REPRODUCTION.md):
    Adam on minibatches (``batch_size``; ``"auto"``:
    :func:`rnncap.tasks.capacity.minibatch_size`, 1024 from 1000 parameters
    up, which stored more bits than 256 or 2048 in the same steps, and than
    full-batch Adam or L-BFGS; ``None``: all ``b``), the learning rate falling
    in a straight line to a thousandth of its start over ``steps`` and the
    gradient's norm clipped at 1 (``KNOWN_TO_TRAIN["capacity"]``), the
    task's signed inputs and label-noise loss (ε = ``label_noise``),
    ``n_in`` input bits (default
    :func:`rnncap.tasks.capacity.input_bits`: sized to the budget, 13 at 1000
    parameters). The search starts from
    :data:`rnncap.tune.space.CAPACITY_START` (lr 2e-2, ``b_fg = 0``), at the
    cell's own rate where :data:`rnncap.tune.space.CAPACITY_LR` has one, and
    above 1000 parameters at a rate falling as ``P^(-1/3)``
    (:func:`rnncap.tune.space.capacity_lr`).
    ``optimizer="lbfgs"`` trains full batch. ``seeds`` > 1 trains every point of
    the b search from that many seeds side by side, and scores its best
    (:class:`rnncap.tune.strategies.SampleSearch`).
    """
    batch_size = None if optimizer == "lbfgs" else minibatch_size(budget) if batch_size == "auto" else batch_size
    n_in = input_bits(budget) if n_in is None else n_in
    spec = _quick_spec("capacity", cell, depth, "bsearch", budget=budget,
                       task_options={"n_in": n_in, "unroll": unroll, "seed": seed, "batch_size": batch_size,
                                     "label_noise": label_noise},
                       fixed={"optimizer": optimizer, "steps": steps, "eval_every": max(1, steps // 30)}, seed=seed,
                       training="capacity")
    if seeds > 1:
        spec["strategy_options"]["seeds"] = seeds
    return spec


def measure_capacity(store, spec: dict, *, trials: int = 10, study: str | None = None, workers: int = 1,
                     scheduler: str | None = None, time_limit: float | None = None, device: str | None = None,
                     progress=None, population: int = 1, announce=None) -> dict:
    """Bits per parameter at a parameter budget: run the study of ``spec`` (:func:`capacity_spec`).

    Returns the study's summary (:func:`rnncap.tune.study.summarize`) with
    ``runs``, one row per finished trial (``b``, ``b_per_param``, status,
    accuracy, bits, bits per parameter), and ``best`` extended with its bits
    per parameter.
    """
    name = study or default_study_name("capacity", spec)
    summary = run_study(store, name, spec, trials, workers=workers, scheduler=scheduler, device=device,
                        progress=progress, time_limit=time_limit, population=population, announce=announce)
    P = summary["spec"]["params"]
    summary["runs"] = [{"number": r["number"], "b": r["trial"]["task_options"]["n_samples"],
                        "b_per_param": r["hparams"]["b_per_param"], "status": r["status"],
                        "accuracy": r["metrics"].get("accuracy"), "bits": r["objective"],
                        "bits_per_parameter": None if r["objective"] is None else r["objective"] / P,
                        "hparams": r["hparams"], "wall_time": r["wall_time"]}
                       for r in store.trials(name) if r["status"] != "running"]
    if summary["best"] is not None:
        summary["best"]["bits_per_parameter"] = summary["best"]["objective"] / P
    return summary


def memory_spec(cell: str, depth: int, n_in: int, n_h: int, *, unroll: int = 5, steps: int = 6000,
                tolerance: float = 0.01, seed: int = 0) -> dict:
    """The study :func:`measure_memory` runs for ``n_h`` units: it stops within ``tolerance`` of the reference."""
    spec = _quick_spec("memory", cell, depth, "random", units=n_h,
                       task_options={"n_in": n_in, "unroll": unroll, "seed": seed}, fixed={"steps": steps}, seed=seed)
    spec["strategy_options"]["target"] = reference_error(n_h, n_in) + tolerance
    return spec


def memory_specs(cell: str, depth: int, n_in: int, units: list[int], **settings) -> list[dict]:
    """The studies of :func:`measure_memory`, one per unit count; ``settings`` go to :func:`memory_spec`."""
    return [memory_spec(cell, depth, n_in, n_h, **settings) for n_h in units]


def measure_memory(store, specs: list[dict], *, trials: int = 8, workers: int = 1, scheduler: str | None = None,
                   time_limit: float | None = None, device: str | None = None, progress=None,
                   population: int = 1, announce=None) -> dict:
    """Reconstruction error against units per layer: run the studies ``specs`` (:func:`memory_specs`).

    For each ``n_h``, up to ``trials`` trainings; a trial within
    ``tolerance`` of the reference ends that unit count's search, so the easy
    points cost one trial and the hard ones (the IRNN near ``n_h = n_in``)
    get the rest.
    """
    started = time.perf_counter()
    rows = []
    for spec in specs:
        left = None if time_limit is None else time_limit - (time.perf_counter() - started)
        if left is not None and left <= 0:
            break
        n_h, n_in = spec["n_h"], spec["task_options"]["n_in"]
        name = default_study_name("memory", spec)
        summary = run_study(store, name, spec, trials, workers=workers, scheduler=scheduler, device=device,
                            progress=progress, time_limit=left, population=population, announce=announce)
        best = summary["best"]
        error = None if best is None else best["objective"]
        reference = reference_error(n_h, n_in)
        rows.append({"study": name, "n_h": n_h, "params": spec["params"], "reference": reference, "error": error,
                     "gap": None if error is None else error - reference,
                     "hparams": None if best is None else best["hparams"],
                     "best_trial": None if best is None else best["number"], "trials": summary["trials"]})
    return {"cell": specs[0]["cell"], "depth": specs[0]["depth"], "n_in": specs[0]["task_options"]["n_in"],
            "rows": rows, "wall_time": time.perf_counter() - started}
