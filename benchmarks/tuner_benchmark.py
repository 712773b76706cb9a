"""GP Bayesian optimisation against random search on Branin and Hartmann-6.

    python benchmarks/tuner_benchmark.py            # 10 seeds each; writes benchmarks/results/tuner.json

For each function and strategy, the number of evaluations each seed needs
until its best value is within the target of the optimum (``f_best - f* <=
gap |f*|``: 1 % for Branin, 5 % for Hartmann-6; see
:mod:`rnncap.tune.testfunctions`), and the median over seeds. A seed that has
not reached the target at the cap counts as infinitely long, so a median
that is itself censored prints as ``>cap``. The issue's bar: the GP's median
is at most a third of random search's.

The GP's suggestions run on one BLAS thread whatever the environment says
(``GPOptimizer.suggest`` limits BLAS with ``threadpoolctl``; see
:mod:`rnncap.tune.gp`): its matrices are at most a few hundred wide, so
threads only add wake-up latency, and its suggestions do not depend on the
machine's thread count (``tests/test_reproducible.py``). Random search does
no matrix work worth a thread. So no ``OPENBLAS_NUM_THREADS`` is needed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

from rnncap.tune.testfunctions import BRANIN, HARTMANN6, benchmark, censored_median

PROBLEMS = [(BRANIN, 0.01), (HARTMANN6, 0.05)]
CAPS = {"gp": 300, "random": 500_000}             # random search's medians are about 9,300 and 120,000


def describe(median: float, cap: int) -> str:
    return f">{cap}" if math.isinf(median) else f"{median:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per function and strategy")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tuner.json")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    results = {"seeds": seeds, "caps": CAPS, "python": platform.python_version(),
               "blas_threads": 1, "functions": {}}   # the GP's, by one_blas_thread
    for fn, gap in PROBLEMS:
        row = {"dim": fn.dim, "minimum": fn.minimum, "gap": gap, "target": fn.target(gap)}
        for strategy, cap in CAPS.items():
            started = time.perf_counter()
            counts = benchmark(strategy, fn, seeds, max_evals=cap, target_gap=gap)
            median = censored_median(counts)
            row[strategy] = {"evaluations": counts, "median": None if math.isinf(median) else median,
                             "censored_median": math.isinf(median), "cap": cap,
                             "wall_time": time.perf_counter() - started}
            print(f"{fn.name:10s} {strategy:6s} median {describe(median, cap):>8s}  per seed {counts}  "
                  f"({row[strategy]['wall_time']:.0f} s)", flush=True)
        gp_median = censored_median(row["gp"]["evaluations"])
        random_median = censored_median(row["random"]["evaluations"])
        # a censored random median is a lower bound, so the comparison against it is conservative
        random_bound = random_median if not math.isinf(random_median) else CAPS["random"]
        row["gp_over_random"] = gp_median / random_bound
        row["meets_bar"] = gp_median <= random_bound / 3
        print(f"{fn.name:10s} GP / random = {row['gp_over_random']:.4f}  (bar: <= 1/3: "
              f"{'met' if row['meets_bar'] else 'NOT met'})", flush=True)
        results["functions"][fn.name] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
