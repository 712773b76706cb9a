"""Throughput: capacity-task trials per hour against the population size K.

For each parameter budget and each K, a population of K capacity-task trials
is trained for ``--steps`` steps (RNN by default, trained as ``rnncap
capacity`` trains: 16 input bits, ``b = 4P`` samples, minibatches sized to the
budget (:func:`rnncap.tasks.capacity.minibatch_size`: 256 at 250 parameters,
1024 from 1000 up), Adam; every member with its own seed, dataset and
learning rate); the median over ``--repeats`` interleaved repeats (K values
in turn, so that machine noise hits every K alike) gives the time of one
population step. One
member's evaluation (the forward pass over its ``b`` samples that scores the
bits) is timed the same way. A trial of ``--trial-steps`` steps,
evaluated 31 times as ``rnncap capacity`` does, then costs

    trial_steps * step_time / K  +  31 * evaluation_time

and trials per hour follow. ``speedup`` is trials per hour over K = 1's.

    python benchmarks/throughput.py                                  # CPU, K = 1, 8, 32, 128
    python benchmarks/throughput.py --device gpu --populations 1,8,32,128,1024,4096
    python benchmarks/throughput.py --out benchmarks/results/throughput-cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnncap.backend import get_xp, synchronize  # noqa: E402
from rnncap.cells import CellHParams  # noqa: E402
from rnncap.network import Network, count_params, units_for_budget  # noqa: E402
from rnncap.population import member, stack, train_population  # noqa: E402
from rnncap.tasks import make_task  # noqa: E402
from rnncap.tasks.capacity import minibatch_size  # noqa: E402
from rnncap.train import TrainConfig, train  # noqa: E402

EVALUATIONS_PER_TRIAL = 31          # every steps // 30 steps, and at the end


N_IN, SAMPLES_PER_PARAM = 16, 4      # as rnncap.measure.capacity_spec (its minibatch too), one input width for all


def build(cell: str, n_h: int, n_params: int, K: int, steps: int, xp, batch: int):
    """K capacity trials of one shape: their networks, tasks and configs."""
    nets, tasks, configs = [], [], []
    for k in range(K):
        task = make_task("capacity", {"n_samples": SAMPLES_PER_PARAM * n_params, "n_in": N_IN, "unroll": 5,
                                      "seed": k, "batch_size": batch}, xp=xp)
        nets.append(Network(cell, 1, N_IN, 2, n_h, CellHParams(), rng=k, xp=xp))
        tasks.append(task)
        configs.append(TrainConfig(lr=1e-2 * (0.5 + k % 4 / 4), lr_decay=0.1, steps=steps, eval_every=0, seed=k))
    return nets, tasks, configs


def time_population(cell: str, n_h: int, n_params: int, K: int, steps: int, xp, batch: int) -> float:
    """Seconds for one step of a population of K (the final evaluation subtracted)."""
    nets, tasks, configs = build(cell, n_h, n_params, K, steps, xp, batch)
    synchronize(xp)
    start = time.perf_counter()
    if K == 1:
        train(nets[0], tasks[0], configs[0])
    else:
        train_population(nets, tasks, configs)
    synchronize(xp)
    total = time.perf_counter() - start
    return (total - K * time_evaluation(nets[0], tasks[0], xp)) / steps


def time_evaluation(net, task, xp, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        synchronize(xp)
        start = time.perf_counter()
        task.evaluate(net)
        synchronize(xp)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cell", default="rnn")
    parser.add_argument("--budgets", default="250,1000,5000")
    parser.add_argument("--populations", default="1,8,32,128")
    parser.add_argument("--steps", type=int, default=200, help="steps timed per run")
    parser.add_argument("--trial-steps", type=int, default=20000, help="steps of the trials per hour are quoted for")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    xp = get_xp(args.device)
    budgets = [int(b) for b in args.budgets.split(",")]
    populations = [int(k) for k in args.populations.split(",")]
    about = {"device": args.device, "cell": args.cell, "machine": platform.processor() or platform.machine(),
             "python": platform.python_version(), "numpy": numpy.__version__, "n_in": N_IN,
             "samples_per_param": SAMPLES_PER_PARAM, "steps_timed": args.steps,
             "trial_steps": args.trial_steps, "repeats": args.repeats}
    if args.device == "gpu":
        about["gpu"] = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    rows = []
    for budget in budgets:
        n_h = units_for_budget(args.cell, 1, N_IN, 2, budget)
        n_params = count_params(args.cell, 1, N_IN, 2, n_h)
        batch = minibatch_size(budget)
        samples = {K: [] for K in populations}
        for repeat in range(args.repeats):
            order = populations[repeat % len(populations):] + populations[:repeat % len(populations)]
            for K in order:                                   # interleaved: each K meets the same noise
                samples[K].append(time_population(args.cell, n_h, n_params, K, args.steps, xp, batch))
        nets, tasks, _ = build(args.cell, n_h, n_params, 1, 1, xp, batch)
        evaluation = time_evaluation(nets[0], tasks[0], xp, repeats=5)
        base = None
        for K in populations:
            step = statistics.median(samples[K])
            per_trial = args.trial_steps * step / K + EVALUATIONS_PER_TRIAL * evaluation
            per_hour = 3600.0 / per_trial
            base = base or per_hour
            rows.append({"budget": budget, "params": n_params, "n_h": n_h, "batch": batch, "K": K,
                         "step_ms": 1e3 * step, "member_steps_per_s": K / step, "evaluation_ms": 1e3 * evaluation,
                         "trial_s": per_trial, "trials_per_hour": per_hour, "speedup": per_hour / base})
            r = rows[-1]
            print(f"budget {budget:6d} ({n_params} params, {n_h} units)  K {K:5d}: step {r['step_ms']:8.3f} ms, "
                  f"{r['member_steps_per_s']:9.0f} member-steps/s, {per_hour:8.1f} trials/h, x{r['speedup']:.2f}",
                  flush=True)
        if args.out:                                          # after every budget: a cut-short run keeps its rows
            Path(args.out).write_text(json.dumps({**about, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
