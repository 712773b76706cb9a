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
    nonlinearity  tanh or relu (default: the cell's own)
    identity  the IRNN only: W_h starts as this times I (default 1, the IRNN's start)
    bias      the IRNN only: b starts at this constant (default 0, the IRNN's start)

Options shared by the whole population: ``--schedule`` (how the rate falls:
exponential, linear or cosine), ``--restarts`` R (cosine warm restarts: R
cosine cycles from a peak to ``lr * decay``, each peak ``--restart-shrink``
times the one before; not a schedule of rnncap, tried here only), ``--tail``
(the fraction of the steps, at the end, trained on each member's whole
dataset), ``--unroll`` T, ``--dtype``, and Adam's ``--beta2`` and ``--eps``.
Two more are not training settings of rnncap either: ``--noise-end`` E moves
each member's label noise in a straight line from its ``noise`` to E over the
run, and ``--lbfgs`` N finishes each member with N iterations of full-batch
L-BFGS (:func:`rnncap.train.train_lbfgs`, float64), reporting its bits per
parameter before (``bits_per_parameter_before_lbfgs``) and after.

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
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnncap import population  # noqa: E402
from rnncap.autodiff.losses import SoftmaxCrossEntropy  # noqa: E402
from rnncap.cells import CellHParams  # noqa: E402
from rnncap.network import Network, count_params, units_for_budget  # noqa: E402
from rnncap.optim import LR_SCHEDULES, Adam  # noqa: E402
from rnncap.tasks import make_task  # noqa: E402
from rnncap.train import TrainConfig, better_of, train_lbfgs  # noqa: E402


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
    parser.add_argument("--noise-end", type=float, default=None, help="the label noise at the last step (linear)")
    parser.add_argument("--lbfgs", type=int, default=0, help="L-BFGS iterations after training, full batch")
    args = parser.parse_args(argv)
    if args.noise_end is not None and not 0.0 <= args.noise_end < 1.0:
        parser.error(f"--noise-end must be in [0, 1), got {args.noise_end}")
    if args.lbfgs < 0:
        parser.error(f"--lbfgs must be >= 0, got {args.lbfgs}")
    # Adam's constants are not training settings of rnncap: swap in the optimiser the population builds
    population.make_optimizer = lambda name, momentum: Adam(beta2=args.beta2, eps=args.eps)
    if args.restarts > 0:                           # nor are restarts: swap in the rate the population reads
        population.learning_rate = lambda lr, decay, step, total, schedule: warm_restarts(
            lr, decay, step, total, args.restarts, args.restart_shrink)
    if args.noise_end is not None:                  # nor is a label noise that moves: set it before each step's loss
        population.population_batches = noise_moving_to(args.noise_end, args.steps)
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
        hp = CellHParams(weight_scale=s.get("ws", 1.0), b_fg=s.get("bfg", 1.0), b_fg_y=s.get("bfg_y", 1.0),
                         nonlinearity=s.get("nonlinearity"))
        nets.append(Network(args.cell, depth, n_in, 2, n_h, hp, rng=s["seed"], dtype=args.dtype))
        restart_irnn(nets[-1], s)
        configs.append(TrainConfig(lr=s.get("lr", 1e-2), lr_decay=s.get("decay", 0.1), lr_schedule=args.schedule,
                                   full_batch_tail=args.tail, steps=args.steps, eval_every=max(1, args.steps // 30),
                                   seed=s["seed"], clip=s.get("clip", 10.0)))
    started = time.perf_counter()
    results = population.train_population(nets, tasks, configs)
    wall = time.perf_counter() - started
    before = [None] * len(results)
    if args.lbfgs:
        for k, (net, task, r) in enumerate(zip(nets, tasks, results)):
            if r.status == "done":
                before[k] = (r.metrics.get("bits") or 0.0) / P
                finish = train_lbfgs(net, task, TrainConfig(steps=args.lbfgs))
                results[k] = dataclasses.replace(r, metrics=better_of(task, r.metrics, finish.metrics))
        wall = time.perf_counter() - started
    for s, r, b in zip(settings, results, before):
        print(json.dumps({**s, "cell": args.cell, "depth": depth, "params": P, "units": n_h, "steps": args.steps,
                          "schedule": args.schedule, "tail": args.tail, "unroll": args.unroll, "dtype": args.dtype,
                          "beta2": args.beta2, "eps": args.eps, "restarts": args.restarts,
                          "restart_shrink": args.restart_shrink, "noise_end": args.noise_end,
                          "lbfgs": args.lbfgs, "bits_per_parameter_before_lbfgs": b, "status": r.status, "accuracy": r.metrics.get("accuracy"),
                          "bits_per_parameter": (r.metrics.get("bits") or 0.0) / P, "wall": wall}), flush=True)
    return 0


def restart_irnn(net: Network, setting: dict) -> None:
    """The IRNN's start, changed as ``setting`` asks: W_h = ``identity`` I and b = ``bias`` in every layer."""
    if "identity" not in setting and "bias" not in setting:
        return
    if net.cell.name != "irnn":
        raise SystemExit("identity and bias change the IRNN's start: use them with the irnn cell")
    for name, value in net.params.items():
        if name.endswith(".W_h"):
            value[...] = setting.get("identity", 1.0) * numpy.eye(value.shape[-1], dtype=value.dtype)
        elif name.endswith(".b") and not name.startswith("readout"):
            value[...] = setting.get("bias", 0.0)


def noise_moving_to(end: float, steps: int):
    """``population_batches``, with the first member's loss (the population's) given the label noise of the step.

    The noise moves in a straight line from the task's own ``label_noise`` at
    step 0 to ``end`` at the last step.
    """
    batches = population.population_batches

    def moving(tasks, rngs, whole_from=None):
        start, next_batch = tasks[0].config.label_noise, batches(tasks, rngs, whole_from)

        def batch(step: int):
            tasks[0].loss = SoftmaxCrossEntropy(noise=start + (end - start) * step / steps)
            return next_batch(step)
        return batch
    return moving


def warm_restarts(lr, decay, step: int, total_steps: int, cycles: int, shrink: float):
    """Cosine from a peak down to ``lr * decay``, ``cycles`` times over the run; cycle c peaks at ``lr * shrink^c``."""
    f = cycles * step / max(1, total_steps)
    c = min(int(f), cycles - 1)
    return lr * shrink ** c * (decay + (1.0 - decay) * 0.5 * (1.0 + math.cos(math.pi * (f - c))))


if __name__ == "__main__":
    sys.exit(main())
