"""Hyperparameter tuning: the search space, and Bayesian optimisation with a Gaussian process.

    space.py          every tuned hyperparameter and its range (the one place they live)
    study.py          running a study: suggest, train, store, resume; its summary
    gp.py             GP-based constrained expected improvement, random search, make_strategy
    testfunctions.py  Branin and Hartmann-6, and the loop that benchmarks a strategy on them
"""

from rnncap.tune.gp import GPOptimizer, RandomSearch, Strategy, make_strategy
from rnncap.tune.space import Categorical, Real, SearchSpace, samples_for, search_space, split_task_hparams

__all__ = ["Categorical", "GPOptimizer", "RandomSearch", "Real", "SearchSpace", "Strategy", "make_strategy",
           "samples_for", "search_space", "split_task_hparams"]
