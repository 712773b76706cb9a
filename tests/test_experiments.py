"""The paper's experiments: every grid well formed, and every smoke preset run end to end into a report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnncap.cli import app
from rnncap.errors import RnncapError
from rnncap.experiments import EXPERIMENTS, PRESETS, experiment_names, experiment_plans, experiments_help
from rnncap.network import count_params

runner = CliRunner()


@pytest.mark.parametrize("preset", ["smoke", "quick", "standard"])
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_grids_are_well_formed(name, preset):
    plans = experiment_plans(name, preset)
    assert plans and len({p.name for p in plans}) == len(plans)            # one study per plan, names unique
    for plan in plans:
        spec = plan.spec
        assert spec["tags"]["experiment"] in (name, "capacity") and spec["tags"]["preset"] == preset
        assert spec["tags"]["experiment"] == EXPERIMENTS[name].source          # capacity-table runs capacity's
        assert not (spec["cell"] == "plusrnn" and spec["depth"] < 2)        # +RNN never at depth 1
        assert plan.trials >= 1 and spec["n_h"] >= 1
        if spec["budget"] is not None:
            assert spec["params"] <= spec["budget"]
    # the sizes along an experiment's x axis give distinct networks
    by_line: dict = {}
    for plan in plans:
        s = plan.spec
        key = (s["cell"], s["depth"], json.dumps(s["tags"], sort_keys=True), json.dumps(s["fixed"], sort_keys=True))
        by_line.setdefault(key, []).append(s["n_h"])
    for sizes in by_line.values():
        assert len(set(sizes)) == len(sizes), sizes


def test_full_presets_build():
    for name in EXPERIMENTS:
        plans = experiment_plans(name, "full")
        assert all(count_params(p.spec["cell"], p.spec["depth"], *_dims(p.spec), p.spec["n_h"]) == p.spec["params"]
                   for p in plans)


def _dims(spec):
    from rnncap.tasks import make_task

    task = make_task(spec["task"], spec["task_options"])
    return task.n_in, task.n_out


def test_unknown_experiment_or_preset_is_an_error():
    with pytest.raises(RnncapError, match="unknown experiment"):
        experiment_plans("figure-9", "quick")
    with pytest.raises(RnncapError, match="unknown preset"):
        experiment_plans("capacity", "huge")
    assert PRESETS == ("smoke", "quick", "standard", "full")


def test_the_registry_lists_every_experiment_once_for_the_cli():
    assert experiment_names() == list(EXPERIMENTS)
    assert experiment_names()[:2] == ["capacity", "capacity-table"]           # the paper's order
    text = experiments_help()
    for experiment in EXPERIMENTS.values():
        assert f"{experiment.name} (Fig. {experiment.figure})" in text
    assert "'all'" in text


def test_the_registry_imports_without_the_tuner_or_matplotlib():
    """The CLI's --help reads the registry: it should not wait for scipy or matplotlib to load."""
    code = ("import sys, rnncap.experiments as e\ne.experiments_help()\n"
            "heavy = [m for m in ('scipy', 'matplotlib') if m in sys.modules]\nassert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_studies_side_by_side_give_what_they_give_one_after_another(tmp_path):
    """``reproduce --workers 2`` runs two studies at once, each in its own process: the same studies, trials
    and objectives as one after another, in the plan's order."""
    from rnncap.store import Store

    results = {}
    for workers in (1, 2):
        store = str(tmp_path / f"w{workers}.sqlite")
        run = runner.invoke(app, ["reproduce", "capacity", "--preset", "smoke", "--store", store, "--workers",
                                  str(workers), "--json"])
        assert run.exit_code == 0, run.output
        studies = json.loads(run.stdout)["experiments"][0]["studies"]
        with Store(store) as db:
            results[workers] = ([s["study"] for s in studies],
                                {s["study"]: [(r["key"], r["status"], r["objective"]) for r in db.trials(s["study"])]
                                 for s in studies})
    assert results[2][0] == results[1][0] == [plan.name for plan in experiment_plans("capacity", "smoke")]
    for name, trials in results[1][1].items():
        other = results[2][1][name]
        assert [t[:2] for t in trials] == [t[:2] for t in other]
        assert [t[2] for t in trials] == pytest.approx([t[2] for t in other], rel=1e-3, abs=1e-6)


def test_side_by_side_the_largest_studies_start_first(monkeypatch):
    """With workers, ``reproduce`` hands out the studies largest first (trials x steps x units x blocks x
    depth), so that one long study does not run alone at the end (the test above: results keep the plan's
    order)."""
    from concurrent.futures import Future
    from types import SimpleNamespace

    import rnncap.tune.study
    from rnncap.experiments import reproduce

    class Recorder:                                                          # an executor that runs nothing
        def __init__(self):
            self.started = []

        def submit(self, fn, store, plan, *args):
            self.started.append(plan.name)
            future = Future()
            future.set_result(None)
            return future

        def shutdown(self, **kwargs):
            pass

    pools = []

    def make_recorder(workers):
        pools.append(Recorder())
        return pools[-1]

    monkeypatch.setattr(rnncap.tune.study, "make_executor", make_recorder)
    reproduce(SimpleNamespace(path="unused.sqlite"), "capacity", "quick", workers=2)
    plans = experiment_plans("capacity", "quick")
    work = {p.name: p.work for p in plans}
    started = pools[0].started
    assert sorted(started) == sorted(work) and started != [p.name for p in plans]
    assert [work[name] for name in started] == sorted(work.values(), reverse=True)
    assert started[0] == "capacity:quick:plusrnn:d2:p1000"                  # two layers of four blocks
    assert work["capacity:quick:gru:d1:p1000"] > work["capacity:quick:gru:d1:p250"]


def test_every_smoke_preset_runs_and_reports(tmp_path):
    """`rnncap reproduce all --preset smoke` then `rnncap report`: every figure written and non-empty."""
    store, out = str(tmp_path / "smoke.sqlite"), tmp_path / "report"
    result = runner.invoke(app, ["reproduce", "all", "--preset", "smoke", "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    runs = {r["experiment"]: r for r in json.loads(result.stdout)["experiments"]}
    assert set(runs) == set(EXPERIMENTS) and all(len(r["studies"]) == r["planned"] for r in runs.values())
    again = runner.invoke(app, ["reproduce", "capacity", "--preset", "smoke", "--store", store, "--json"])
    assert json.loads(again.stdout)["experiments"][0]["wall_time"] < 5       # resumed: nothing left to run

    result = runner.invoke(app, ["report", "--store", store, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    figures = [Path(f) for f in written["figures"]]
    assert {f.name for f in figures} >= {"capacity.png", "capacity-table.png", "relu.png", "unroll.png", "memory.png",
                                         "text8-params.png", "text8-units.png", "rcf.png", "parens.png", "arith.png",
                                         "random-hp.png"}
    assert all(f.exists() and f.stat().st_size > 1000 for f in figures)
    assert not written["not_run"]
    text = (out / "report.md").read_text()
    for name in EXPERIMENTS:
        assert name in text
