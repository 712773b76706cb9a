"""Capacity-task ablation: bits per parameter of one population of networks, one member per setting.

Each setting is a JSON object; every key but ``seed`` and ``bpp`` is optional:

    seed      the member's seed (its dataset, initial weights and minibatches)
    bpp       samples per parameter, b = round(bpp * P)
    lr        Adam's learning rate, decaying tenfold over the run (default 1e-2)
    decay     the factor it has fallen by at the end (default 0.1)
    batch     minibatch size (default 1024)
    signed    inputs as -1/+1 (default true) or 0/1
    noise     the loss's label noise ε (default 0: cross-entropy)
    n_in      input bits (default 32; shared by the population)
    ws        initial weight scale (default 1)
    bfg       the keep gate's bias b_fg (default 1; gated cells)
    bfg_y     the +RNN's depth-gate bias b_fg_y (default 1)
    clip      the gradient-norm clipping threshold (default 10, so that the commands in
              REPRODUCTION.md rerun as they ran; the capacity defaults clip at 1)

Options shared by the whole population: ``--schedule`` (how the rate falls:
exponential, linear or cosine), ``--restarts`` R (cosine warm restarts: R
cosine cycles from a peak to ``lr * decay``, each peak ``--restart-shrink``
times the one before; not a schedule of rnncap, tried here only), ``--tail``
(the fraction of the steps, at the end, trained on each member's whole
dataset), ``--unroll`` T, ``--dtype``, and Adam's ``--beta2`` and ``--eps``.

Members train together (:func:`rnncap.population.train_population`), each as it
would alone; members with different ``noise`` or ``n_in`` must go in separate
calls. One JSON line per member: its setting, accuracy and bits per parameter
(the best of 30 evaluations), and the population's wall time. REPRODUCTION.md's
table "What limits the bits" was made with it, e.g.

    python benchmarks/capacity_ablation.py rnn 1000 20000 \\
        '[{"seed": 20, "bpp": 5, "noise": 0.04}, {"seed": 21, "bpp": 5, "noise": 0.04}]'
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnncap import population  # noqa: E402
from rnncap.cells import CellHParams  # noqa: E402
from rnncap.network import Network, count_params, units_for_budget  # noqa: E402
from rnncap.optim import LR_SCHEDULES, Adam  # noqa: E402
from rnncap.tasks import make_task  # noqa: E402
from rnncap.train import TrainConfig  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell")
    parser.add_argument("budget", type=int, help="parameter budget")
    parser.add_argument("steps", type=int, help="training steps")
    parser.add_argument("settings", help="a JSON list of settings, one per member (see above)")
    parser.add_argument("--depth", type=int, default=None, help="default 1 (the +RNN: 2)")
    parser.add_argument("--schedule", default="exponential", choices=LR_SCHEDULES)
    parser.add_argument("--tail", type=float, default=0.0, help="fraction of the steps trained full batch, at the end")
    parser.add_argument("--unroll", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--beta2", type=float, default=Adam.beta2)
    parser.add_argument("--eps", type=float, default=Adam.eps)
    parser.add_argument("--restarts", type=int, default=0, help="cosine cycles, warm restarts (replaces --schedule)")
    parser.add_argument("--restart-shrink", type=float, default=1.0, help="each cycle's peak over the one before")
    args = parser.parse_args(argv)
    # Adam's constants are not training settings of rnncap: swap in the optimiser the population builds
    population.make_optimizer = lambda name, momentum: Adam(beta2=args.beta2, eps=args.eps)
    if args.restarts > 0:                           # nor are restarts: swap in the rate the population reads
        population.learning_rate = lambda lr, decay, step, total, schedule: warm_restarts(
            lr, decay, step, total, args.restarts, args.restart_shrink)
    settings = json.loads(args.settings)
    depth = args.depth or (2 if args.cell == "plusrnn" else 1)
    n_in = settings[0].get("n_in", 32)
    n_h = units_for_budget(args.cell, depth, n_in, 2, args.budget)
    P = count_params(args.cell, depth, n_in, 2, n_h)
    nets, tasks, configs = [], [], []
    for s in settings:
        options = {"n_samples": int(round(s["bpp"] * P)), "n_in": n_in, "unroll": args.unroll, "seed": s["seed"],
                   "batch_size": s.get("batch", 1024), "signed": s.get("signed", True),
                   "label_noise": s.get("noise", 0.0)}
        tasks.append(make_task("capacity", options, dtype=args.dtype))
        hp = CellHParams(weight_scale=s.get("ws", 1.0), b_fg=s.get("bfg", 1.0), b_fg_y=s.get("bfg_y", 1.0))
        nets.append(Network(args.cell, depth, n_in, 2, n_h, hp, rng=s["seed"], dtype=args.dtype))
        configs.append(TrainConfig(lr=s.get("lr", 1e-2), lr_decay=s.get("decay", 0.1), lr_schedule=args.schedule,
                                   full_batch_tail=args.tail, steps=args.steps, eval_every=max(1, args.steps // 30),
                                   seed=s["seed"], clip=s.get("clip", 10.0)))
    started = time.perf_counter()
    results = population.train_population(nets, tasks, configs)
    wall = time.perf_counter() - started
    for s, r in zip(settings, results):
        print(json.dumps({**s, "cell": args.cell, "depth": depth, "params": P, "units": n_h, "steps": args.steps,
                          "schedule": args.schedule, "tail": args.tail, "unroll": args.unroll, "dtype": args.dtype,
                          "beta2": args.beta2, "eps": args.eps, "restarts": args.restarts,
                          "restart_shrink": args.restart_shrink,
                          "status": r.status, "accuracy": r.metrics.get("accuracy"),
                          "bits_per_parameter": (r.metrics.get("bits") or 0.0) / P, "wall": wall}), flush=True)
    return 0


def warm_restarts(lr, decay, step: int, total_steps: int, cycles: int, shrink: float):
    """Cosine from a peak down to ``lr * decay``, ``cycles`` times over the run; cycle c peaks at ``lr * shrink^c``."""
    f = cycles * step / max(1, total_steps)
    c = min(int(f), cycles - 1)
    return lr * shrink ** c * (decay + (1.0 - decay) * 0.5 * (1.0 + math.cos(math.pi * (f - c))))


if __name__ == "__main__":
    sys.exit(main())
