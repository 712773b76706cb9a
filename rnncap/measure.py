"""The paper's two capacity measurements, each with a small built-in search.

:func:`measure_capacity` (per-parameter capacity): the most bits a network of a
given parameter budget stores on the memorisation task. The number of samples
``b`` is itself a hyperparameter to maximise over (too few and ``I <= b`` is
small; too many and accuracy falls toward chance), so the search runs in three
phases, with a fixed number of trials in all:

1. hyperparameters: at ``b = 3P`` (``P`` parameters), the defaults first, then
   random draws from :func:`rnncap.tune.space.quick_search_space` (learning
   rate, ``b_fg``, initial weight scale, nonlinearity where the cell allows a
   choice); keep the best;
2. a coarse grid of ``b`` in multiples of ``P`` (:data:`B_MULTIPLES`);
3. refinement: the geometric mean of the best ``b`` and its better neighbour,
   again and again.

:func:`measure_memory` (per-unit capacity): for each number of units, the
lowest reconstruction error of the memory task over a few trials, next to
the reference ``max(0, 1 - n_h / n_in)``.

The paper tunes every point with a Gaussian-process optimiser over hundreds
of trials; ``rnncap tune`` does that. These searches are the quick version.
"""

from __future__ import annotations

import math
import time

import numpy

from rnncap.cells import canonical_cell_name
from rnncap.network import count_params, units_for_budget
from rnncap.progress import ProgressBar
from rnncap.tasks.memory import reference_error
from rnncap.trial import make_trial, run_trial
from rnncap.tune.space import quick_search_space

B_MULTIPLES = (1.0, 2.0, 3.0, 4.0, 6.0)
HP_PHASE_B = 3.0
CAPACITY_DEFAULTS = {"optimizer": "adam", "lr": 1e-2, "lr_decay": 0.1, "b_fg": 1.0, "weight_scale": 1.0}
MEMORY_DEFAULTS = {"optimizer": "adam", "lr": 1e-2, "lr_decay": 0.1, "b_fg": 1.0, "weight_scale": 1.0}


def draw_small_hparams(rng: numpy.random.Generator, cell: str, defaults: dict) -> dict:
    """``defaults`` with one random draw from the quick search space on top."""
    return {**defaults, **quick_search_space(cell).sample(rng)}


def _remaining(started: float, time_limit: float | None) -> float | None:
    return None if time_limit is None else time_limit - (time.perf_counter() - started)


def measure_capacity(cell: str, depth: int, budget: int, *, n_in: int = 32, unroll: int = 5, trials: int = 10,
                     steps: int = 20000, batch_size: int | None = 256, optimizer: str = "adam",
                     time_limit: float | None = None, seed: int = 0, device: str | None = None,
                     progress: bool = False) -> dict:
    """Bits per parameter at a parameter budget; see the module docstring.

    Training defaults (ours; measured on the RNN and GRU at a 1000-parameter
    budget): Adam on minibatches of 256 samples, learning rate 1e-2 decaying
    tenfold over 20000 steps. Minibatches reached more bits than full-batch
    Adam or L-BFGS in the same time. ``optimizer="lbfgs"`` trains full batch.
    """
    started = time.perf_counter()
    cell = canonical_cell_name(cell)
    n_h = units_for_budget(cell, depth, n_in, 2, budget)
    P = count_params(cell, depth, n_in, 2, n_h)
    rng = numpy.random.default_rng(seed)
    defaults = {**CAPACITY_DEFAULTS, "optimizer": optimizer, "steps": steps, "eval_every": max(1, steps // 30)}
    runs: list[dict] = []

    def attempt(multiple: float, hparams: dict) -> dict | None:
        left = _remaining(started, time_limit)
        if len(runs) >= trials or (left is not None and left <= 0):
            return None
        b = max(2, int(round(multiple * P)))
        options = {"n_samples": b, "n_in": n_in, "unroll": unroll, "seed": seed,
                   "batch_size": None if optimizer == "lbfgs" else batch_size}
        trial = make_trial("capacity", options, cell, depth, n_h, hparams, seed=seed)
        outcome = run_trial(trial, device=device, time_limit=left)
        metrics = outcome["metrics"]
        runs.append({"b": b, "multiple": b / P, "status": outcome["status"], "hparams": hparams,
                     "accuracy": metrics.get("accuracy"), "bits": metrics.get("bits", 0.0),
                     "wall_time": outcome["wall_time"]})
        best = max(runs, key=lambda r: r["bits"])
        bar.update(len(runs), f"best {best['bits'] / P:.2f} bits/param at b={best['b']}")
        return runs[-1]

    with ProgressBar(progress, trials, f"capacity {cell} d{depth}") as bar:
        # 1. hyperparameters at b = 3P
        hp_trials = max(1, trials // 3)
        attempt(HP_PHASE_B, defaults)
        for _ in range(hp_trials - 1):
            attempt(HP_PHASE_B, draw_small_hparams(rng, cell, defaults))
        best_hp = max(runs, key=lambda r: r["bits"])["hparams"] if runs else defaults
        # 2. the coarse grid of b
        for multiple in B_MULTIPLES:
            if multiple != HP_PHASE_B:
                attempt(multiple, best_hp)
        # 3. refinement between the best b and its better neighbour
        while len(runs) < trials and (_remaining(started, time_limit) or 1) > 0:
            tried = sorted({r["multiple"] for r in runs if r["hparams"] == best_hp})
            best_m = max((r for r in runs if r["hparams"] == best_hp), key=lambda r: r["bits"])["multiple"]
            i = tried.index(best_m)
            neighbours = [tried[j] for j in (i - 1, i + 1) if 0 <= j < len(tried)]
            bits_at = {r["multiple"]: r["bits"] for r in runs if r["hparams"] == best_hp}
            other = max(neighbours, key=lambda m: bits_at[m]) if neighbours else best_m * 1.5
            middle = math.sqrt(best_m * other)
            if abs(round(middle * P) - round(best_m * P)) < 1 or attempt(middle, best_hp) is None:
                break

    best = max(runs, key=lambda r: r["bits"]) if runs else None
    return {
        "cell": cell, "depth": depth, "budget": budget, "n_h": n_h, "params": P, "n_in": n_in, "unroll": unroll,
        "optimizer": optimizer, "steps": steps, "batch_size": None if optimizer == "lbfgs" else batch_size,
        "trials": len(runs),
        "best": None if best is None else {**best, "bits_per_parameter": best["bits"] / P},
        "runs": runs, "wall_time": time.perf_counter() - started,
    }


def measure_memory(cell: str, depth: int, n_in: int, units: list[int], *, unroll: int = 5, trials: int = 8,
                   steps: int = 6000, tolerance: float = 0.01, time_limit: float | None = None, seed: int = 0,
                   device: str | None = None, progress: bool = False) -> dict:
    """Reconstruction error against units per layer; see the module docstring.

    For each ``n_h``, up to ``trials`` trainings (the defaults, then random
    draws); a trial that comes within ``tolerance`` of the reference ends the
    search for that ``n_h``, so the easy points cost one trial and the hard
    ones (the IRNN near ``n_h = n_in``) get the rest.
    """
    started = time.perf_counter()
    cell = canonical_cell_name(cell)
    defaults = {**MEMORY_DEFAULTS, "steps": steps}
    rows = []
    with ProgressBar(progress, len(units), f"memory {cell} d{depth}") as bar:
        for n_h in units:
            rng = numpy.random.default_rng([seed, n_h])      # each n_h's draws whatever else is listed
            reference = reference_error(n_h, n_in)
            best, runs = None, 0
            for k in range(trials):
                left = _remaining(started, time_limit)
                if left is not None and left <= 0:
                    break
                hparams = defaults if k == 0 else draw_small_hparams(rng, cell, defaults)
                trial = make_trial("memory", {"n_in": n_in, "unroll": unroll, "seed": seed}, cell, depth, n_h,
                                   hparams, seed=seed + k)
                outcome = run_trial(trial, device=device, time_limit=left)
                runs += 1
                if outcome["status"] == "done" and (best is None or outcome["objective"] < best["error"]):
                    best = {"error": outcome["objective"], "hparams": hparams, "trial": k + 1}
                if best is not None and best["error"] <= reference + tolerance:
                    break
            rows.append({"n_h": n_h, "params": count_params(cell, depth, n_in, n_in, n_h), "reference": reference,
                         "error": None if best is None else best["error"],
                         "gap": None if best is None else best["error"] - reference,
                         "hparams": None if best is None else best["hparams"],
                         "best_trial": None if best is None else best["trial"], "trials": runs})
            bar.update(len(rows), f"n_h={n_h}: {rows[-1]['error']}")
    return {"cell": cell, "depth": depth, "n_in": n_in, "unroll": unroll, "steps": steps, "rows": rows,
            "wall_time": time.perf_counter() - started}
