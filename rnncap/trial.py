"""A trial: one network trained once on one task, described by a plain JSON-able dict.

    {"task": "capacity", "task_options": {"n_samples": 3000, "unroll": 5},
     "cell": "gru", "depth": 1, "n_h": 10, "seed": 0,
     "hparams": {"lr": 0.01, "b_fg": 1.0, "nonlinearity": "tanh", ...}}

``hparams`` mixes the cell's hyperparameters (:class:`CellHParams`: the
nonlinearity, ``b_fg``, the initial scales) and the training ones
(:class:`TrainConfig`: the optimiser, learning rate, decay, clipping, L2,
steps). :func:`trial_key` hashes the dict's content, so a store can tell
whether a trial was already run. :func:`run_trials` is what every search runs,
in this process or in a worker: several trials at once, as populations where
they can be (:mod:`rnncap.population`); :func:`run_trial` runs one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import fields

import numpy

from rnncap.backend import get_xp
from rnncap.cells import CellHParams, canonical_cell_name
from rnncap.errors import RnncapError
from rnncap.network import Network
from rnncap.population import SHARED_SETTINGS, train_population
from rnncap.tasks import make_task
from rnncap.train import TrainConfig, train

CELL_HPARAMS = tuple(f.name for f in fields(CellHParams))
TRAIN_HPARAMS = tuple(f.name for f in fields(TrainConfig) if f.name != "seed")


def split_hparams(hparams: dict, seed: int = 0) -> tuple[CellHParams, TrainConfig]:
    """Split a flat dict of hyperparameters into the cell's and the training's."""
    unknown = sorted(set(hparams) - set(CELL_HPARAMS) - set(TRAIN_HPARAMS))
    if unknown:
        raise RnncapError(f"unknown hyperparameter(s) {', '.join(unknown)}; known: "
                          f"{', '.join(CELL_HPARAMS + TRAIN_HPARAMS)}")
    cell_hp = CellHParams(**{k: v for k, v in hparams.items() if k in CELL_HPARAMS})
    train_config = TrainConfig(seed=seed, **{k: v for k, v in hparams.items() if k in TRAIN_HPARAMS})
    return cell_hp, train_config


def make_trial(task: str, task_options: dict, cell: str, depth: int, n_h: int, hparams: dict,
               seed: int = 0) -> dict:
    return {"task": task, "task_options": dict(task_options), "cell": canonical_cell_name(cell), "depth": depth,
            "n_h": n_h, "seed": seed, "hparams": dict(hparams)}


def trial_key(trial: dict) -> str:
    """A content hash: the same trial always has the same key."""
    canonical = json.dumps(trial, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def build(trial: dict, device: str | None = None):
    """The task and the freshly initialised network of a trial, and its training config."""
    xp = get_xp(device)
    task = make_task(trial["task"], trial["task_options"], xp=xp)
    cell_hp, train_config = split_hparams(trial["hparams"], trial["seed"])
    net = Network(trial["cell"], trial["depth"], task.n_in, task.n_out, trial["n_h"], cell_hp,
                  rng=trial["seed"], xp=xp)
    return task, net, train_config


def run_trial(trial: dict, *, device: str | None = None, progress: bool = False, time_limit: float | None = None,
              checkpoint_path=None, resume: bool = False) -> dict:
    """Train the trial's network; return its outcome as a JSON-able dict.

    ``status`` is ``done`` or ``infeasible`` (the run diverged); ``objective``
    is the task's objective metric (None when infeasible).
    """
    started = time.perf_counter()
    task, net, train_config = build(trial, device)
    result = train(net, task, train_config, checkpoint_path=checkpoint_path, resume=resume, progress=progress,
                   time_limit=time_limit)
    return _outcome(task, net, result, time.perf_counter() - started)


def population_key(task, net, config) -> tuple:
    """What trials must share to train as one population: the network's shape, the training settings of
    :data:`rnncap.population.SHARED_SETTINGS`, the task and the shapes of its batches (a dataset of ``b``
    samples, trained on whole, is as wide as ``b``)."""
    batch = task.batch(0, numpy.random.default_rng(0))                 # a throwaway draw: only its shapes count
    return (net.cell.name, net.cell.nonlinearity, net.depth, net.n_in, net.n_out, net.n_h,
            *(getattr(config, name) for name in SHARED_SETTINGS), task.name, task.loss,
            tuple(tuple(a.shape) for a in batch[:3]))


def run_trials(trials: list[dict], *, device: str | None = None, progress=None,
               time_limit: float | None = None, checkpoints: tuple[str, float] | None = None) -> list[dict]:
    """Train several trials, those that can as populations (:mod:`rnncap.population`); outcomes in order.

    Trials that share a :func:`population_key` train together, in lockstep;
    a trial alone (or trained with L-BFGS) trains as :func:`run_trial` does.
    Each outcome is the one its trial gets alone, up to float32 rounding.

    ``checkpoints`` = (prefix, seconds): each group that trains together keeps
    its checkpoint in ``<prefix>-<g>.npz`` (g counts the groups in the order of
    their first trial), written every ``seconds``, and resumes from it if it
    is there (:mod:`rnncap.tune.inflight`); L-BFGS trains without one.
    """
    built = [build(trial, device) for trial in trials]
    groups: dict[tuple, list[int]] = {}
    for i, (task, net, config) in enumerate(built):
        key = ("alone", i) if config.optimizer == "lbfgs" else population_key(task, net, config)
        groups.setdefault(key, []).append(i)
    outcomes: list[dict | None] = [None] * len(trials)
    for g, members in enumerate(groups.values()):
        tasks, nets, configs = ([built[i][j] for i in members] for j in range(3))
        saving = {}
        if checkpoints is not None and configs[0].optimizer != "lbfgs":
            saving = {"checkpoint_path": f"{checkpoints[0]}-{g}.npz", "resume": True,
                      "checkpoint_seconds": checkpoints[1]}
        if len(members) == 1:
            results = [train(nets[0], tasks[0], configs[0], progress=progress, time_limit=time_limit, **saving)]
        else:
            results = train_population(nets, tasks, configs, progress=progress, time_limit=time_limit, **saving)
        for i, task, net, result in zip(members, tasks, nets, results):
            outcomes[i] = {**_outcome(task, net, result, result.wall_time), "population": len(members)}
    return outcomes


def failed_outcomes(count: int, reason: str) -> list[dict]:
    """The outcomes of ``count`` trials that could not finish (an error, or the workers running them died)."""
    return [{"status": "failed", "objective": None, "metrics": {}, "reason": reason, "wall_time": None}
            for _ in range(count)]


def _outcome(task, net, result, wall_time: float) -> dict:
    return {
        "status": result.status,
        "objective": result.metrics.get(task.objective) if result.status == "done" else None,
        "objective_name": task.objective,
        "direction": task.direction,
        "metrics": result.metrics,
        "params": net.n_params,
        "steps": result.steps,
        "loss": result.loss,
        "reason": result.reason,
        "history": result.history,
        "wall_time": wall_time,
    }
