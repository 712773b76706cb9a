"""The search strategies a study can run: what to try next, given what has been tried.

=========== ======================================================================
strategy    what it suggests
=========== ======================================================================
``gp``      Gaussian-process Bayesian optimisation: constrained expected
            improvement, a constant liar for parallel workers (the model and its
            equations: :mod:`rnncap.tune.gp`). What the paper used (Spearmint).
``random``  uniform draws from the search space (the paper's Figure 5 and
            Table 1); optionally a ``start`` point first.
``bsearch`` the capacity task's quick search for the number of samples ``b``
            (:class:`SampleSearch`): hyperparameters first, then ``b``.
=========== ======================================================================

Every strategy minimises (a study passes ``-bits`` for the capacity task),
takes its observations through :meth:`Strategy.observe`, and answers
:meth:`Strategy.suggest_hparams` with *up to* ``n`` points: fewer, or none,
when it has nothing to propose yet (it waits for ``pending`` trials) or at all
(its search is over, or the best value has reached ``target``). The study
driver (:func:`rnncap.tune.study.run_study`) waits in the first case and ends
the study in the second.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy
from scipy.optimize import minimize

from rnncap.errors import RnncapError
from rnncap.tune.gp import (FeasibilityModel, GaussianProcess, expected_improvement,
                            expected_improvement_with_gradient, fit_hyperparameters, one_blas_thread,
                            scaled_sq_distances)
from rnncap.tune.space import SearchSpace


class Model(NamedTuple):
    """What one call of :meth:`GPOptimizer.suggest` fits once and reuses for every point of a batch."""

    X: numpy.ndarray                    # feasible observed points (n_f, d)
    y: numpy.ndarray                    # their standardised values (n_f,)
    theta: numpy.ndarray                # the objective GP's hyperparameters (d+2,)
    best: float                         # the incumbent: min(y)
    lie: float                          # the constant liar's value for pending points
    feasibility: FeasibilityModel | None   # None while every run has been feasible


class Strategy:
    """What every strategy shares: the observations, and hparams <-> unit cube when it has a space.

    ``space`` is a :class:`SearchSpace` (points may then be hparams dicts) or
    just the dimension of the cube. ``observe`` records a result; ``suggest``
    returns points of the cube; ``suggest_hparams`` maps them through the space.
    """

    name = "strategy"
    adaptive = True                      # whether suggestions depend on the observations

    def __init__(self, space: SearchSpace | int, rng: numpy.random.Generator | int | None = None, *,
                 start: dict | None = None, target: float | None = None):
        self.space = space if isinstance(space, SearchSpace) else None
        self.dim = space.dim if isinstance(space, SearchSpace) else int(space)
        if self.dim < 1:
            raise RnncapError(f"the search space needs at least one dimension, got {self.dim}")
        if start is not None:
            if self.space is None:
                raise RnncapError("a start point needs a strategy built with a SearchSpace")
            self.space.validate(start)
        self.start = None if start is None else dict(start)           # tried first (settings known to train)
        self.target = target                                          # stop once the best value is <= this
        self.rng = numpy.random.default_rng(rng)
        self.points: list = []                                        # observed points as given
        self.X: list[numpy.ndarray] = []                              # observed points, each (d,)
        self.values: list[float | None] = []                          # None where infeasible
        self.feasible: list[bool] = []

    def to_unit(self, point) -> numpy.ndarray:
        if isinstance(point, dict):
            if self.space is None:
                raise RnncapError("hparams dicts need a strategy built with a SearchSpace")
            return self.space.to_unit(point)
        u = numpy.asarray(point, dtype=float).reshape(-1)             # (d,)
        if u.shape != (self.dim,):
            raise RnncapError(f"expected a point with {self.dim} coordinates, got {u.shape}")
        return u

    def project(self, U: numpy.ndarray) -> numpy.ndarray:
        """Rows of ``U`` (m, d) moved to runnable points (see :meth:`SearchSpace.project`); clipped to the cube."""
        U = numpy.clip(numpy.atleast_2d(U), 0.0, 1.0)                 # (m, d)
        return self.space.project(U) if self.space is not None else U

    def observe(self, point, value: float | None, feasible: bool = True) -> None:
        """Record one result; a non-finite value counts as infeasible."""
        feasible = bool(feasible) and value is not None and math.isfinite(value)
        self.points.append(dict(point) if isinstance(point, dict) else point)
        self.X.append(self.to_unit(point))
        self.values.append(float(value) if feasible else None)
        self.feasible.append(feasible)

    def suggest(self, n: int = 1, pending=()) -> list[numpy.ndarray]:
        raise NotImplementedError

    def best_value(self) -> float:
        """The lowest feasible value observed (inf before the first)."""
        return min((v for v in self.values if v is not None), default=math.inf)

    def suggest_hparams(self, n: int = 1, pending=()) -> list[dict]:
        """Up to ``n`` hparams dicts: the start point first (if given), then the strategy's own.

        None at all once ``target`` is reached.
        """
        if self.space is None:
            raise RnncapError("suggest_hparams needs a strategy built with a SearchSpace")
        if self.target is not None and self.best_value() <= self.target:
            return []
        chosen = []
        if self.start is not None and n > 0 and self.start not in self.points and self.start not in pending:
            chosen.append(dict(self.start))
        return chosen + [self.space.from_unit(u) for u in self.suggest(n - len(chosen), list(pending) + chosen)]


class RandomSearch(Strategy):
    """Uniform draws from the cube: with a space, exactly :meth:`SearchSpace.sample`'s distribution."""

    name = "random"
    adaptive = False

    def suggest(self, n: int = 1, pending=()) -> list[numpy.ndarray]:
        return list(self.project(self.rng.random((n, self.dim))))    # (n, d)


class GPOptimizer(Strategy):
    """Constrained expected improvement with a constant liar; see the module docstring."""

    name = "gp"

    def __init__(self, space: SearchSpace | int, rng: numpy.random.Generator | int | None = None, *,
                 n_initial: int | None = None, n_candidates: int = 2000, n_perturbed: int = 500,
                 n_local: int = 3, restarts: int = 2, lie: str = "mean", **common):
        super().__init__(space, rng, **common)
        if lie not in ("min", "mean", "max"):
            raise RnncapError(f"lie must be min, mean or max, got {lie!r}")
        self.n_initial = max(3, self.dim + 1) if n_initial is None else n_initial
        self.n_candidates, self.n_perturbed, self.n_local = n_candidates, n_perturbed, n_local
        self.restarts, self.lie = restarts, lie
        self._objective_theta: numpy.ndarray | None = None            # warm starts for the next fit
        self._feasibility_theta: numpy.ndarray | None = None

    def suggest(self, n: int = 1, pending=()) -> list[numpy.ndarray]:
        with one_blas_thread():                                       # small matrices: threads only wait
            return self._suggest(n, pending)

    def _suggest(self, n: int, pending) -> list[numpy.ndarray]:
        busy = [self.project(self.to_unit(p))[0] for p in pending]    # each (d,)
        chosen: list[numpy.ndarray] = []
        model = None
        for _ in range(n):
            n_feasible = sum(self.feasible)
            if len(self.X) + len(busy) + len(chosen) < self.n_initial:
                u = self.project(self.rng.random(self.dim))[0]
            elif n_feasible < 2:
                u = self._explore(busy + chosen)
            else:
                if model is None:
                    model = self._fit()                               # hyperparameters once per call
                u = self._maximise_acquisition(model, busy + chosen)
            chosen.append(u)
        return chosen

    # the model -------------------------------------------------------------------------

    def _fit(self) -> Model:
        """Standardise, fit the objective GP and (if anything failed) the feasibility model."""
        X = numpy.array(self.X)                                       # (n, d)
        feasible = numpy.array(self.feasible)                         # (n,)
        values = numpy.array([v for v in self.values if v is not None])   # (n_f,)
        y_mean, y_std = values.mean(), values.std()
        y_std = y_std if y_std > 0 else 1.0                           # all values equal: nothing to scale
        y = (values - y_mean) / y_std                                 # (n_f,)
        self._objective_theta = fit_hyperparameters(X[feasible], y, self.rng, start=self._objective_theta,
                                                    restarts=self.restarts)
        feasibility = None
        if not feasible.all():
            feasibility = FeasibilityModel(X, feasible, self.rng, start=self._feasibility_theta,
                                           restarts=max(1, self.restarts - 1))
            self._feasibility_theta = feasibility.theta
        lie = {"min": y.min(), "mean": 0.0, "max": y.max()}[self.lie]
        return Model(X[feasible], y, self._objective_theta, float(y.min()), float(lie), feasibility)

    def _acquisition(self, gp: GaussianProcess, model: Model, U: numpy.ndarray) -> numpy.ndarray:
        """Constrained EI at the rows of ``U`` (m, d): ``EI(u) P(feasible | u)``."""
        mean, var = gp.predict(U)
        acquisition = expected_improvement(mean, var, model.best)     # (m,)
        if model.feasibility is not None:
            acquisition = acquisition * model.feasibility.probability(U)
        return acquisition

    def _acquisition_with_gradient(self, gp: GaussianProcess, model: Model, u: numpy.ndarray):
        ei, dei = expected_improvement_with_gradient(*gp.predict_with_gradient(u), model.best)
        if model.feasibility is None:
            return ei, dei
        p, dp = model.feasibility.probability_with_gradient(u)
        return ei * p, dei * p + ei * dp

    def _candidates(self, model: Model) -> numpy.ndarray:
        """Uniform points, and Gaussian perturbations (three widths) of the five best observations."""
        uniform = self.rng.random((self.n_candidates, self.dim))      # (n_candidates, d)
        best = model.X[numpy.argsort(model.y)[:5]]                    # (<=5, d)
        centres = best[self.rng.integers(len(best), size=self.n_perturbed)]   # (n_perturbed, d)
        widths = self.rng.choice([0.01, 0.05, 0.2], size=(self.n_perturbed, 1))   # (n_perturbed, 1)
        perturbed = centres + widths * self.rng.standard_normal((self.n_perturbed, self.dim))  # (n_perturbed, d)
        return self.project(numpy.vstack([uniform, perturbed]))       # (n_candidates + n_perturbed, d)

    def _maximise_acquisition(self, model: Model, busy: list[numpy.ndarray]) -> numpy.ndarray:
        X, y = model.X, model.y
        if busy:                                                      # the constant liar
            X = numpy.vstack([X, busy])                               # (n_f + n_busy, d)
            y = numpy.concatenate([y, numpy.full(len(busy), model.lie)])   # (n_f + n_busy,)
        gp = GaussianProcess(X, y, model.theta)
        candidates = self._candidates(model)                          # (m, d)
        scores = self._acquisition(gp, model, candidates)             # (m,)
        best_index = int(numpy.argmax(scores))
        best_u, best_score = candidates[best_index], float(scores[best_index])
        bounds = [(0.0, 1.0)] * self.dim
        for start in numpy.argsort(scores)[::-1][:self.n_local]:
            scale = float(scores[start])
            if scale <= 0.0:
                break

            def negative(u, scale=scale):                             # scaled so L-BFGS-B's tolerances fit
                value, grad = self._acquisition_with_gradient(gp, model, u)
                return -value / scale, -grad / scale

            result = minimize(negative, candidates[start], jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 50})
            refined = self.project(result.x)                          # (1, d)
            score = float(self._acquisition(gp, model, refined)[0])
            if score > best_score:
                best_u, best_score = refined[0], score
        if best_score <= 0.0:                                         # EI underflowed everywhere
            return self._explore(busy)
        return best_u

    def _explore(self, busy: list[numpy.ndarray]) -> numpy.ndarray:
        """The random candidate farthest from every observed and pending point (maximin)."""
        candidates = self.project(self.rng.random((self.n_candidates, self.dim)))   # (m, d)
        taken = numpy.array(self.X + list(busy)).reshape(-1, self.dim)  # (n + n_busy, d)
        if len(taken) == 0:
            return candidates[0]
        nearest = scaled_sq_distances(candidates, taken, numpy.ones(self.dim)).min(1)   # (m,)
        return candidates[int(numpy.argmax(nearest))]


class SampleSearch(Strategy):
    """The capacity task's quick search: hyperparameters at ``b = 4P``, then ``b`` itself.

    ``b`` (as ``b_per_param``) must be searched: too few samples and the
    stored bits ``I <= b`` are small; too many and accuracy falls toward
    chance. With ``trials`` trials in all, in three phases:

    1. hyperparameters at ``b_per_param = 4``: the ``start`` point (settings
       known to train), then random draws from the space, ``max(1, trials // 3)``
       trials in all; the best one's hyperparameters are kept;
    2. ``b_per_param`` on the grid :data:`MULTIPLES` with those hyperparameters;
    3. refinement: the geometric mean of the best ``b_per_param`` and its
       better neighbour, again and again, until it would repeat a sample
       count (``n_params`` turns ``b_per_param`` into ``b``);
    4. restarts, with any trials left: the best point of phase 3 again,
       trained from another seed (``restart`` k = 1, 2, ...; see
       :func:`rnncap.tune.study.trial_for`). A small network's bits vary
       more from seed to seed than between neighbouring points of the grid,
       and the paper's numbers are maxima over many trials (REPRODUCTION.md).

    With ``seeds`` R > 1, every point of phases 1-3 is trained from R seeds
    side by side (restarts 1 .. R-1 of it) and a point's value is the best of
    its seeds: what a search of small networks, cheap to train and dependent
    on their seed, should spend its trials on. Phase 1 then has
    ``max(1, trials // (3 R))`` points, and phase 4's restarts are numbered
    from R.

    Phase 2 waits for phase 1 to finish, and each refinement for the trials
    before it, so with parallel workers a phase runs its trials side by side.
    A search with a single phase-1 point (fewer than ``6 R`` trials) knows
    the grid's settings from the start, so its first trials run side by side.
    """

    name = "bsearch"
    START = 4.0
    MULTIPLES = (5.0, 3.0, 6.0, 8.0, 2.0)   # most promising first (a short search tries only these): 41 of 42
                                            # searches of 6 trials at 100-3000 parameters found their best at
                                            # 3-5 P (REPRODUCTION.md)

    def __init__(self, space: SearchSpace | int, rng: numpy.random.Generator | int | None = None, *,
                 trials: int, n_params: int, seeds: int = 1, **common):
        super().__init__(space, rng, **common)
        if self.space is None or "b_per_param" not in self.space.names:
            raise RnncapError("the bsearch strategy searches b_per_param: it runs on the capacity task only")
        if seeds < 1:
            raise RnncapError(f"the bsearch strategy's seeds per point must be >= 1, got {seeds}")
        self.seeds = seeds
        self.hp_trials = max(1, trials // (3 * seeds))
        self.n_params = n_params

    def suggest(self, n: int = 1, pending=()) -> list[numpy.ndarray]:
        return [self.space.to_unit(h) for h in self.suggest_hparams(n, pending)]

    def suggest_hparams(self, n: int = 1, pending=()) -> list[dict]:
        if self.target is not None and self.best_value() <= self.target:
            return []
        chosen: list[dict] = []
        while len(chosen) < n:
            hparams = self._next(list(pending) + chosen)
            if hparams is None:
                break
            chosen.append(hparams)
        return chosen

    def _next(self, pending: list[dict]) -> dict | None:
        everything = self.points + pending
        for h in everything:                                                  # 0. each point from every seed
            if "restart" not in h:
                for k in range(1, self.seeds):
                    if {**h, "restart": k} not in everything:
                        return {**h, "restart": k}
        waiting = [h for h in pending if self._searched(h)]                   # restarts come after all of this
        tried = [h for h in self.points + waiting if "restart" not in h]
        at_start = [h for h in tried if h["b_per_param"] == self.START]
        if len(at_start) < self.hp_trials:                                    # 1. hyperparameters
            start = {**(self.start or self.space.sample(self.rng)), "b_per_param": self.START}
            if start in at_start:
                start = {**self.space.sample(self.rng), "b_per_param": self.START}
            return start
        if self.hp_trials == 1:                                               # one phase-1 point: the grid takes
            best = _setting(at_start[0])                                      # its settings, so need not wait
        elif any(h["b_per_param"] == self.START for h in waiting):
            return None                                                       # wait for phase 1
        else:
            best = _setting(self._best(lambda h: h["b_per_param"] == self.START and self._searched(h)))
        for multiple in self.MULTIPLES:                                       # 2. the grid of b
            if {**best, "b_per_param": multiple} not in tried:
                return {**best, "b_per_param": multiple}
        if any(_setting(h) == best for h in waiting):
            return None                                                       # wait for the grid
        value_at: dict[float, float | None] = {}                              # each b's best seed
        for h, v in zip(self.points, self.values):
            if _setting(h) == best and self._searched(h):
                m = h["b_per_param"]
                value_at[m] = v if m not in value_at else min(value_at[m], v, key=_or_inf)
        ranked = sorted(value_at)
        best_m = min(ranked, key=lambda m: _or_inf(value_at[m]))              # 3. refine
        i = ranked.index(best_m)
        neighbours = [ranked[j] for j in (i - 1, i + 1) if 0 <= j < len(ranked)]
        other = min(neighbours, key=lambda m: _or_inf(value_at[m]))
        middle = math.sqrt(best_m * other)
        b_of = lambda m: round(m * self.n_params)                             # noqa: E731  (what samples_for rounds)
        if b_of(middle) in (b_of(best_m), b_of(other)):                      # 4. the grid is done: restarts
            restarts = [h["restart"] for h in everything if "restart" in h]   # numbered past every seed's
            return {**best, "b_per_param": best_m, "restart": max(restarts, default=0) + 1}
        return {**best, "b_per_param": middle}

    def _searched(self, hparams: dict) -> bool:
        """Whether a point belongs to phases 1-3 (a point or one of its seeds), not to phase 4's restarts."""
        return hparams.get("restart", 0) < self.seeds

    def _best(self, where) -> dict:
        """The observed point with the lowest value among those ``where`` accepts (infeasible last)."""
        candidates = [(h, v) for h, v in zip(self.points, self.values) if where(h)]
        return min(candidates, key=lambda hv: _or_inf(hv[1]))[0]


def _setting(hparams: dict) -> dict:
    """A point's hyperparameters without its ``b_per_param`` and its seed (``restart``)."""
    return {k: v for k, v in hparams.items() if k not in ("b_per_param", "restart")}


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


STRATEGIES = {"gp": GPOptimizer, "random": RandomSearch, "bsearch": SampleSearch}


def make_strategy(name: str, space: SearchSpace | int, rng: numpy.random.Generator | int | None = None,
                  **options) -> Strategy:
    """A strategy by name (see :data:`STRATEGIES`); ``options`` go to its constructor."""
    if name not in STRATEGIES:
        raise RnncapError(f"unknown search strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name](space, rng, **options)
