"""Hyperparameter tuning: the search space, and Bayesian optimisation with a Gaussian process.

    space.py          every tuned hyperparameter and its range (the one place they live)
    study.py          running a study: suggest, train, store, resume; its summary
    gp.py             the Gaussian process: kernel, fit, posterior, expected improvement, feasibility
    strategies.py     what to try next: GP optimisation, random search, the capacity task's b search
    testfunctions.py  Branin and Hartmann-6, and the loop that benchmarks a strategy on them
"""

from rnncap.tune.strategies import GPOptimizer, RandomSearch, SampleSearch, Strategy, make_strategy
from rnncap.tune.space import Categorical, Real, SearchSpace, samples_for, search_space, split_task_hparams

__all__ = ["Categorical", "GPOptimizer", "RandomSearch", "Real", "SampleSearch", "SearchSpace", "Strategy",
           "make_strategy", "samples_for", "search_space", "split_task_hparams"]
