"""A trial: one network trained once on one task, described by a plain JSON-able dict.

    {"task": "capacity", "task_options": {"n_samples": 3000, "unroll": 5},
     "cell": "gru", "depth": 1, "n_h": 10, "seed": 0,
     "hparams": {"lr": 0.01, "b_fg": 1.0, "nonlinearity": "tanh", ...}}

``hparams`` mixes the cell's hyperparameters (:class:`CellHParams`: the
nonlinearity, ``b_fg``, the initial scales) and the training ones
(:class:`TrainConfig`: the optimiser, learning rate, decay, clipping, L2,
steps). :func:`trial_key` hashes the dict's content, so a store can tell
whether a trial was already run. :func:`run_trial` is what every search runs,
in this process or in a worker.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import fields

from rnncap.backend import get_xp
from rnncap.cells import CellHParams, canonical_cell_name
from rnncap.errors import RnncapError
from rnncap.network import Network
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
        "wall_time": time.perf_counter() - started,
    }
