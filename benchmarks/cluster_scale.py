"""What the full presets cost, and how a Dask cluster scales them: the numbers behind REPRODUCTION.md's
"Scale on paper".

``cost``: CPU seconds per trial of every study of every experiment's full
preset (``--preset`` for another). For each distinct shape (task, task
options, depth, units) of the GRU studies, one trial (the study's fixed
settings, default hyperparameters, ``b = 3P`` on the capacity tasks) is
trained alone, in this process, with one BLAS thread; a run of 2 steps and a
longer one give the CPU time of one step (their difference, so that building
the task and the final evaluation cancel), and one evaluation is timed on its
own. A trial of the study then costs ``steps * step + evaluations *
evaluation`` (the capacity tasks evaluate every ``eval_every`` steps and at
the end; the others at the end). Every cell is charged the GRU's time at the
same depth and budget, and populations (which make small trials cheaper, see
``throughput.py``) are not counted: an estimate, from measured parts.

``scaling``: trials per hour of one study on a ``distributed.LocalCluster``
of 1 and of 2 worker processes (one thread each), in turn, ``--repeats``
times: capacity, GRU, 1000 parameters, the full preset's settings (20000
steps, evaluated every 1000), random search so that every run trains the
same trials, populations of 4 (a GP study's size). Beside the wall time, the
CPU seconds the workers spent per trial: equal for 1 and 2 workers means that
a second worker adds no work, so that on free cores it doubles the rate.

    OPENBLAS_NUM_THREADS=1 python benchmarks/cluster_scale.py cost --out benchmarks/results/full-preset-cost.json
    python benchmarks/cluster_scale.py scaling --repeats 3 --out benchmarks/results/cluster-scaling.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnncap.experiments import EXPERIMENTS, experiment_plans  # noqa: E402
from rnncap.store import Store  # noqa: E402
from rnncap.trial import build, run_trials  # noqa: E402
from rnncap.tune.study import run_study, study_space, trial_for  # noqa: E402


def timing_trial(spec: dict, steps: int) -> dict:
    """A trial of the study's shape with its fixed settings and default hyperparameters, trained ``steps`` steps."""
    searched = {p.name for p in study_space(spec).params}
    hparams = {"b_per_param": 3.0} if "b_per_param" in searched else {}
    return trial_for({**spec, "fixed": {**spec["fixed"], "steps": steps, "eval_every": 0}}, hparams)


def cpu_seconds(trial: dict) -> float:
    started = time.process_time()
    run_trials([trial])
    return time.process_time() - started


def step_and_evaluation(spec: dict) -> tuple[float, float]:
    """CPU seconds of one training step and of one evaluation, for a trial of the study's shape."""
    base = cpu_seconds(timing_trial(spec, 2))
    step = max(1e-6, (cpu_seconds(timing_trial(spec, 12)) - base) / 10)
    if step * 10 < 1.0:                                   # too short to trust: measure about 2 s of steps
        more = min(2000, int(2.0 / step))
        step = max(1e-6, (cpu_seconds(timing_trial(spec, 2 + more)) - base) / more)
    task, net, _ = build(timing_trial(spec, 2))
    started = time.process_time()
    task.evaluate(net)
    return step, time.process_time() - started


def shape_of(spec: dict) -> str:
    """What a trial's time depends on (not the cell: every cell is charged the GRU's time)."""
    return json.dumps([spec["task"], spec["task_options"], spec["depth"], spec["budget"] or spec["n_h"],
                       spec["fixed"].get("eval_every", 0)], sort_keys=True)


def cost(out: Path | None, measured_file: Path | None = None, cores=(2, 16, 64, 256, 1024),
         preset: str = "full") -> dict:
    """``measured_file``: the ``measured`` of an earlier run, to compute again without measuring again."""
    from rnncap.population import default_population

    measured: dict[str, tuple[float, float]] = json.loads(measured_file.read_text()) if measured_file else {}
    experiments = {}
    wall = dict.fromkeys(cores, 0.0)                        # seconds on that many single-threaded workers
    for name, experiment in EXPERIMENTS.items():
        if experiment.studies_of:                           # reads another experiment's studies
            continue
        plans = experiment_plans(name, preset)
        per_trial = []
        for plan in plans:
            shape = shape_of(plan.spec)
            if shape not in measured:
                gru = [p.spec for p in plans if p.spec["cell"] == "gru" and shape_of(p.spec) == shape]
                measured[shape] = step_and_evaluation(gru[0] if gru else plan.spec)
                print(f"{name}: {shape} step {measured[shape][0] * 1e3:.2f} ms, evaluation "
                      f"{measured[shape][1]:.2f} s", file=sys.stderr, flush=True)
            step, evaluation = measured[shape]
            steps, every = plan.spec["fixed"]["steps"], plan.spec["fixed"].get("eval_every", 0)
            evaluations = 1 + (steps // every if every and plan.spec["task"] in ("capacity", "rcf") else 0)
            seconds = steps * step + evaluations * evaluation
            per_trial.extend([seconds] * plan.trials)
            # studies run one after another; one of P populations of K trials keeps min(P, C) of C workers busy
            K = default_population(plan.spec["params"], plan.spec["strategy"])
            for C in cores:
                wall[C] += math.ceil(math.ceil(plan.trials / K) / C) * K * seconds
        experiments[name] = {
            "studies": len(plans), "trials": len(per_trial),
            "cpu_hours_per_trial": {"min": min(per_trial) / 3600, "median": statistics.median(per_trial) / 3600,
                                    "max": max(per_trial) / 3600},
            "cpu_hours": sum(per_trial) / 3600,
        }
    result = {"what": f"CPU hours of the {preset} presets, from measured step and evaluation times (GRU shapes)",
              "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "experiments": experiments,
              "cpu_hours": sum(e["cpu_hours"] for e in experiments.values()),
              "wall_hours_on_workers": {C: seconds / 3600 for C, seconds in wall.items()},
              "measured": measured}
    if out:
        out.write_text(json.dumps(result, indent=1))
    return result


def scaling(repeats: int, trials: int, out: Path | None) -> dict:
    import distributed

    plan = next(p for p in experiment_plans("capacity", "full")
                if p.spec["cell"] == "gru" and p.spec["depth"] == 1 and p.spec["budget"] == 1000)
    spec = {**plan.spec, "strategy": "random"}
    runs = {1: [], 2: []}
    for repeat in range(repeats):
        for n_workers in (1, 2):
            with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                          host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
                    distributed.Client(cluster.scheduler_address) as client, \
                    tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "scale.sqlite") as store:
                load = os.getloadavg()[0]
                cpu_before = client.run(time.process_time)
                started = time.perf_counter()
                summary = run_study(store, "scale", spec, trials, scheduler=cluster.scheduler_address, population=4)
                wall = time.perf_counter() - started
                cpu = sum(client.run(time.process_time).values()) - sum(cpu_before.values())   # the workers'
                load_after = os.getloadavg()[0]
            runs[n_workers].append({"wall_s": wall, "trials_per_hour": trials * 3600 / wall,
                                    "worker_cpu_s_per_trial": cpu / trials, "load_before": load,
                                    "load_after": load_after, "done": summary["done"],
                                    "infeasible": summary["infeasible"]})
            print(f"repeat {repeat}: {n_workers} worker(s): {wall:.1f} s, {trials * 3600 / wall:.0f} trials/hour, "
                  f"{cpu / trials:.1f} worker CPU s per trial (load {load:.2f} -> {load_after:.2f})",
                  file=sys.stderr, flush=True)
    median = {n: statistics.median(r["trials_per_hour"] for r in rs) for n, rs in runs.items()}
    cpu = {n: statistics.median(r["worker_cpu_s_per_trial"] for r in rs) for n, rs in runs.items()}
    result = {"study": plan.name, "strategy": "random", "population": 4, "trials": trials, "runs": runs,
              "median_trials_per_hour": median, "speedup": median[2] / median[1],
              "median_worker_cpu_s_per_trial": cpu, "cores": os.cpu_count()}
    if out:
        out.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("cost", "scaling"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--measured", type=Path, help="cost: step and evaluation times of an earlier run (its "
                        "'measured'), to compute again without measuring")
    parser.add_argument("--preset", default="full", help="cost: the preset to cost (default full)")
    args = parser.parse_args()
    if args.what == "cost":
        result = cost(args.out, args.measured, preset=args.preset)
    else:
        result = scaling(args.repeats, args.trials, args.out)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
