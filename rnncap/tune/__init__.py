"""Hyperparameter tuning: the search space, the strategies, the Gaussian process, the study driver.

    space.py          every tuned hyperparameter and its range (the one place they live);
                      the settings known to train
    strategies.py     what to try next: GP optimisation, random search, the capacity task's b search
    gp.py             the Gaussian process: kernel, fit, posterior, expected improvement, feasibility
    study.py          running a study: suggest, train, store, resume; its summary
    testfunctions.py  Branin and Hartmann-6, and the loop that benchmarks a strategy on them

Import from the modules themselves (``from rnncap.tune.strategies import
make_strategy``): this package imports nothing, so reading the search space
does not load SciPy.
"""
