"""A study gives the same trials whatever the machine's BLAS thread count.

The GP's fits and suggestions run under ``one_blas_thread()``
(:mod:`rnncap.tune.gp`): a multi-threaded BLAS may sum in another order, and a
GP fed its own suggestions would amplify the last-bit differences into other
trials. Here the same small study runs in two processes, one started with one
BLAS thread and one with two, and every trial must match: its hyperparameters,
status and objective, in order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rnncap.store import Store
from rnncap.tune.study import study_strategy

TRIALS = 20            # the search space of an RNN on the capacity task has d = 13: n_initial = 14 uniform draws
STUDY = ["--study", "s", "--task", "capacity", "--cell", "rnn", "--units", "3", "--strategy", "gp",
         "--trials", str(TRIALS), "--steps", "30", "-o", "n_samples=40", "-o", "n_in=4", "--json"]
BLAS_THREADS_PROBE = ("import json, numpy, scipy.linalg, threadpoolctl; "
                      "print(json.dumps(max(p['num_threads'] for p in threadpoolctl.threadpool_info() "
                      "if p['user_api'] == 'blas')))")


def _env(threads: int) -> dict:
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    return {**os.environ, **{name: str(threads) for name in names}}


def test_gp_study_is_the_same_with_one_and_two_blas_threads(tmp_path):
    probes = [subprocess.run([sys.executable, "-c", BLAS_THREADS_PROBE], env=_env(t), capture_output=True,
                             text=True, check=True) for t in (1, 2)]
    threads = [json.loads(p.stdout) for p in probes]
    if threads[1] < 2:
        pytest.skip(f"BLAS runs {threads[1]} thread(s) here even when asked for 2: nothing to compare")
    assert threads[0] == 1

    runs = {}
    for t in (1, 2):                                      # both at once: the test takes one study's time
        store = tmp_path / f"threads{t}.db"
        runs[t] = (store, subprocess.Popen([sys.executable, "-m", "rnncap", "tune", *STUDY, "--store", str(store)],
                                           env=_env(t), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    trials = {}
    for t, (store_path, process) in runs.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert json.loads(out)["done"] + json.loads(out)["infeasible"] + json.loads(out)["failed"] == TRIALS
        with Store(store_path) as store:
            spec = store.study("s")
            trials[t] = [(r["number"], r["hparams"], r["status"], r["objective"]) for r in store.trials("s")]

    # several trials must come from fitted GPs, not only the uniform start: the GP fits once
    # n_initial points are in and at least two of them are feasible
    n_initial = study_strategy(spec, TRIALS).n_initial
    assert TRIALS - n_initial >= 5
    assert sum(status == "done" for _, _, status, _ in trials[1][:n_initial]) >= 2
    assert len(trials[1]) == TRIALS
    assert trials[1] == trials[2]
