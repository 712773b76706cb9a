"""Standard test functions for the tuner, on the unit cube, and a benchmark loop.

Two classic benchmarks of Bayesian optimisation (Jones, Schonlau & Welch 1998;
Snoek et al. 2012), both to minimise:

- **Branin** (2-D), on ``x1 in [-5, 10]``, ``x2 in [0, 15]`` mapped from the cube:

      f = (x2 - 5.1/(4 pi^2) x1^2 + 5/pi x1 - 6)^2 + 10 (1 - 1/(8 pi)) cos x1 + 10

  three global minima, ``f* = 0.397887``.
- **Hartmann-6** (6-D), already on ``[0, 1]^6``:

      f = -sum_j alpha_j exp(-sum_i A_ji (x_i - P_ji)^2)

  ``f* = -3.32237``, with a local minimum at -3.2032 (within 4 %).

**The target.** A run has reached the optimum when its best value so far
satisfies ``f_best - f* <= gap * |f*|``: ``gap = 0.01`` for Branin
(``f_best <= 0.40187``) and ``0.05`` for Hartmann-6 (``f_best <= -3.1563``).
The relative gap is taken against ``|f*|``, not the function's range, so it is
strict: by Monte Carlo (2e7 uniform points), a uniform draw meets the Branin
target with probability 7.5e-5 and the Hartmann-6 one with 5.7e-6, so random
search needs about ``ln 2 / p`` = 9,300 and 120,000 evaluations (medians).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy

from rnncap.tune.strategies import STRATEGIES, Strategy


@dataclass(frozen=True)
class TestFunction:
    """A function to minimise on ``[0, 1]^dim``; ``evaluate`` takes rows (m, dim) and returns (m,)."""

    __test__ = False                     # not a pytest class, despite the name

    name: str
    dim: int
    minimum: float
    evaluate: Callable[[numpy.ndarray], numpy.ndarray]

    def __call__(self, U) -> numpy.ndarray:
        return self.evaluate(numpy.atleast_2d(numpy.asarray(U, dtype=float)))

    def target(self, gap: float) -> float:
        """The value a run must reach: ``f* + gap |f*|``."""
        return self.minimum + gap * abs(self.minimum)


def _branin(U: numpy.ndarray) -> numpy.ndarray:
    x1, x2 = 15.0 * U[:, 0] - 5.0, 15.0 * U[:, 1]                     # (m,) each
    b, c, t = 5.1 / (4.0 * math.pi**2), 5.0 / math.pi, 1.0 / (8.0 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * numpy.cos(x1) + 10.0   # (m,)


HARTMANN6_ALPHA = numpy.array([1.0, 1.2, 3.0, 3.2])                   # (4,)
HARTMANN6_A = numpy.array([[10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
                           [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
                           [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
                           [17.0, 8.0, 0.05, 10.0, 0.1, 14.0]])       # (4, 6)
HARTMANN6_P = 1e-4 * numpy.array([[1312, 1696, 5569, 124, 8283, 5886],
                                  [2329, 4135, 8307, 3736, 1004, 9991],
                                  [2348, 1451, 3522, 2883, 3047, 6650],
                                  [4047, 8828, 8732, 5743, 1091, 381]])   # (4, 6)


def _hartmann6(U: numpy.ndarray) -> numpy.ndarray:
    inner = (HARTMANN6_A * (U[:, None, :] - HARTMANN6_P) ** 2).sum(-1)   # (m, 4)
    return -numpy.exp(-inner) @ HARTMANN6_ALPHA                        # (m,)


BRANIN = TestFunction("branin", 2, 0.397887, _branin)
HARTMANN6 = TestFunction("hartmann6", 6, -3.32237, _hartmann6)
TEST_FUNCTIONS = {f.name: f for f in (BRANIN, HARTMANN6)}


def evaluations_to_target(strategy: Strategy, fn: TestFunction, max_evals: int, target_gap: float,
                          chunk: int = 1000) -> int | None:
    """The number of evaluations until ``f_best - f* <= gap |f*|``; None if ``max_evals`` were not enough.

    A strategy that ignores its observations (``adaptive = False``: random
    search) is asked for ``chunk`` points at a time, which draws the same
    distribution and saves the Python loop; an adaptive one, one at a time.
    """
    target = fn.target(target_gap)
    evaluations = 0
    while evaluations < max_evals:
        batch = 1 if strategy.adaptive else min(chunk, max_evals - evaluations)
        points = numpy.array(strategy.suggest(batch))                 # (batch, dim)
        values = fn(points)                                           # (batch,)
        for u, value in zip(points, values):
            strategy.observe(u, float(value))
            evaluations += 1
            if value <= target:
                return evaluations
    return None


def benchmark(strategy: str | Callable[[int, numpy.random.Generator], Strategy], fn: TestFunction,
              seeds, max_evals: int, target_gap: float) -> list[int | None]:
    """Evaluations to the target for each seed (None: not reached in ``max_evals``).

    ``strategy`` is a name (``gp``, ``random``) or a factory ``(dim, rng) -> Strategy``.
    """
    factory = (lambda dim, rng: STRATEGIES[strategy](dim, rng)) if isinstance(strategy, str) else strategy
    return [evaluations_to_target(factory(fn.dim, numpy.random.default_rng(seed)), fn, max_evals, target_gap)
            for seed in seeds]


def censored_median(counts: list[int | None]) -> float:
    """The median, counting a run that never reached the target as infinitely long (so it may be inf)."""
    return float(numpy.median([math.inf if c is None else c for c in counts]))
