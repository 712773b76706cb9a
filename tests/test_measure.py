"""The two capacity measurements as studies: the b search, early stopping, resuming after kill -9."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy
import pytest
from typer.testing import CliRunner

from rnncap.cli import app
from rnncap.measure import capacity_spec, default_study_name, measure_capacity, measure_memory, memory_specs
from rnncap.store import Store
from rnncap.tune.space import quick_search_space, start_point
from rnncap.tune.strategies import RandomSearch, SampleSearch

runner = CliRunner()


# the b search on a made-up objective -------------------------------------------------------------

def fake_bits(hparams: dict) -> float:
    """Signed (minimised) objective, best at lr = 1e-2 and b_per_param = 5.5."""
    return (math.log(hparams["lr"] / 1e-2)) ** 2 + (math.log(hparams["b_per_param"] / 5.5)) ** 2 - 10.0


def drive(strategy, workers: int = 1, limit: int = 50) -> list[dict]:
    """Run ``strategy`` as the study driver would, finishing the oldest pending point first."""
    done, pending = [], []
    while len(done) + len(pending) < limit:
        suggested = strategy.suggest_hparams(workers - len(pending), pending=pending) if len(pending) < workers else []
        pending += suggested
        if not pending:
            break                                   # the search is over
        hparams = pending.pop(0)
        strategy.observe(hparams, fake_bits(hparams))
        done.append(hparams)
    return done


@pytest.mark.parametrize("workers", [1, 3])
def test_sample_search_phases(workers):
    space = quick_search_space("rnn", "capacity")
    strategy = SampleSearch(space, 0, trials=12, n_params=1000, start=start_point(space))
    tried = drive(strategy, workers)
    phase1, rest = tried[:4], tried[4:]                  # 12 // 3 hyperparameter trials at b = 4P
    assert all(h["b_per_param"] == SampleSearch.START for h in phase1)
    assert phase1[0] == {**start_point(space), "b_per_param": SampleSearch.START}
    best = min(phase1, key=fake_bits)
    best_hp = {k: v for k, v in best.items() if k != "b_per_param"}
    assert all({k: v for k, v in h.items() if k not in ("b_per_param", "restart")} == best_hp for h in rest)
    grid = [h["b_per_param"] for h in rest[:5]]
    assert grid == [m for m in SampleSearch.MULTIPLES if m != SampleSearch.START]
    searched = [h for h in rest if "restart" not in h]
    refined = [h["b_per_param"] for h in searched[5:]]
    assert refined and all(5.0 < b < 6.0 for b in refined)      # between the best grid point and its neighbour
    assert len({json.dumps(h, sort_keys=True) for h in tried}) == len(tried)      # no point twice
    # once a refinement would repeat a sample count, the trials left restart the best point from other seeds
    restarts = rest[len(searched):]
    assert len(tried) > 50 - workers and restarts and all("restart" in h for h in restarts)   # drive's limit
    best_point = min(searched, key=fake_bits)
    assert all({k: v for k, v in h.items() if k != "restart"} == best_point for h in restarts)
    assert [h["restart"] for h in restarts] == list(range(1, len(restarts) + 1))


@pytest.mark.parametrize("cell", ["rnn", "irnn", "ugrnn", "gru", "lstm", "plusrnn"])
def test_capacity_searches_start_where_capacity_trains(cell):
    from rnncap.experiments import capacity_plans
    from rnncap.tune.space import CAPACITY_LR, CAPACITY_START, KEEP_GATE_CELLS, QUICK_START

    starts = [capacity_spec(cell, 2, 1000)["strategy_options"]["start"]]
    starts += [p.spec["strategy_options"]["start"] for p in capacity_plans("quick") if p.spec["cell"] == cell]
    for start in starts:
        assert start["lr"] == CAPACITY_LR.get(cell, CAPACITY_START["lr"]) and start["b_per_param"] == SampleSearch.START
        assert start.get("b_fg") == (CAPACITY_START["b_fg"] if cell in KEEP_GATE_CELLS else None)
    large = {budget: capacity_spec(cell, 2, budget) for budget in (3000, 10000, 10 ** 6)}
    for budget, spec in large.items():                          # larger networks start slower, inside the range
        lr, P = spec["strategy_options"]["start"]["lr"], spec["params"]
        rate = CAPACITY_LR.get(cell, CAPACITY_START["lr"]) * (1000 / P) ** (1 / 3)
        assert lr == pytest.approx(max(rate, quick_search_space(cell, "capacity").params[0].low))
    assert starts[0]["lr"] > large[3000]["strategy_options"]["start"]["lr"] > large[10000]["strategy_options"]["start"]["lr"]
    memory = start_point(quick_search_space(cell, "memory"))     # other tasks keep the general start
    assert memory["lr"] == QUICK_START["lr"] and memory.get("b_fg") == (1.0 if cell in KEEP_GATE_CELLS else None)
    if cell in KEEP_GATE_CELLS:                                 # and the capacity task draws gates that keep less
        rng = numpy.random.default_rng(0)
        drawn = [quick_search_space(cell, "capacity").sample(rng)["b_fg"] for _ in range(200)]
        assert -1.0 <= min(drawn) < -0.9 and 0.9 < max(drawn) <= 1.0
        drawn = [quick_search_space(cell, "memory").sample(rng)["b_fg"] for _ in range(200)]
        assert 0.0 <= min(drawn) < 0.1 and 2.9 < max(drawn) <= 3.0


@pytest.mark.parametrize("budget", [100, 250, 300, 500, 1000, 3000, 10000, 100000])
def test_capacity_inputs_are_sized_to_the_budget(budget):
    """The fewest input bits that keep the largest b the search tries distinct: in rnncap capacity and the presets."""
    from rnncap.experiments import capacity_plans
    from rnncap.tasks.capacity import MOST_SAMPLES_PER_PARAM, input_bits

    n_in = input_bits(budget)
    assert MOST_SAMPLES_PER_PARAM == max(SampleSearch.MULTIPLES)
    assert 2 ** (n_in - 1) < MOST_SAMPLES_PER_PARAM * budget <= 2 ** n_in
    assert capacity_spec("gru", 1, budget)["task_options"]["n_in"] == n_in
    assert capacity_spec("gru", 1, budget, n_in=20)["task_options"]["n_in"] == 20
    plans = [p for preset in ("smoke", "quick", "standard", "full") for p in capacity_plans(preset)]
    assert all(p.spec["task_options"]["n_in"] == input_bits(p.spec["budget"]) for p in plans)
    assert input_bits(1000) == 13


@pytest.mark.parametrize("budget", [20, 100, 250, 300, 500, 700, 1000, 3000, 10000])
def test_capacity_minibatch_is_sized_to_the_budget(budget):
    """About a quarter of the b = 4P samples up to 1000 parameters, 1024 from there up: in rnncap capacity
    and the presets; an explicit size, or None (all b), is kept; L-BFGS always trains on all b."""
    from rnncap.experiments import capacity_plans
    from rnncap.tasks.capacity import MOST_MINIBATCH, minibatch_size

    batch = minibatch_size(budget)
    assert batch & (batch - 1) == 0 and batch <= MOST_MINIBATCH                    # a power of two, capped
    if batch < MOST_MINIBATCH:
        assert batch / 2 ** 0.5 <= budget <= batch * 2 ** 0.5                      # the nearest on a log scale
    if budget >= 1000:
        assert batch == 1024
    assert capacity_spec("rnn", 1, budget)["task_options"]["batch_size"] == batch
    assert capacity_spec("rnn", 1, budget, batch_size=64)["task_options"]["batch_size"] == 64
    assert capacity_spec("rnn", 1, budget, batch_size=None)["task_options"]["batch_size"] is None
    assert capacity_spec("rnn", 1, budget, optimizer="lbfgs")["task_options"]["batch_size"] is None
    plans = [p for preset in ("smoke", "quick", "standard", "full") for p in capacity_plans(preset)]
    assert all(p.spec["task_options"]["batch_size"] == minibatch_size(p.spec["budget"]) for p in plans)
    assert [minibatch_size(b) for b in (100, 250, 500)] == [128, 256, 512]


def test_capacity_trains_its_rate_down_to_near_zero():
    """rnncap capacity and every capacity experiment of the quick-space presets train with the rate falling in a
    straight line to a thousandth of its start; the memory and rcf experiments keep the tenfold exponential decay,
    and the full preset tunes the decay."""
    from rnncap.experiments import capacity_plans, memory_plans, rcf_plans, relu_plans, unroll_plans
    from rnncap.tasks.capacity import CAPACITY_STEPS
    from rnncap.trial import split_hparams
    from rnncap.tune.study import trial_for

    spec = capacity_spec("gru", 1, 1000)
    _, config = split_hparams(trial_for(spec, spec["strategy_options"]["start"])["hparams"])
    assert (config.lr_schedule, config.lr_decay, config.steps) == ("linear", 1e-3, CAPACITY_STEPS)
    for preset in ("smoke", "quick", "standard"):
        for plan in capacity_plans(preset) + relu_plans(preset) + unroll_plans(preset):
            assert plan.spec["fixed"]["lr_schedule"] == "linear" and plan.spec["fixed"]["lr_decay"] == 1e-3
        for plan in memory_plans(preset) + rcf_plans(preset):
            assert "lr_schedule" not in plan.spec["fixed"] and plan.spec["fixed"]["lr_decay"] == 0.1
    assert all("lr_decay" not in p.spec["fixed"] and "lr_schedule" not in p.spec["fixed"]
               for p in capacity_plans("full"))


def test_sample_search_waits_for_phase_one():
    space = quick_search_space("gru", "capacity")
    strategy = SampleSearch(space, 0, trials=6, n_params=500)
    first = strategy.suggest_hparams(5)
    assert len(first) == 2                               # 6 // 3 at b = 4P, then it waits for their results
    assert strategy.suggest_hparams(1, pending=first) == []


def test_a_short_sample_search_does_not_wait_for_its_one_hyperparameter_trial():
    """With fewer than 6 trials, phase 1 is the start alone: the grid takes its settings whatever it stores,
    so all of a 3-trial search (the quick preset's) is proposed at once, and the refinement still waits."""
    space = quick_search_space("gru", "capacity")
    start = start_point(space, "gru")
    strategy = SampleSearch(space, 0, trials=3, n_params=500, start=start)
    first = strategy.suggest_hparams(3)
    assert [h["b_per_param"] for h in first] == [SampleSearch.START, *SampleSearch.MULTIPLES[:2]]
    assert all({**h, "b_per_param": SampleSearch.START} == start for h in first)
    grid = strategy.suggest_hparams(10, pending=first)
    assert [h["b_per_param"] for h in grid] == list(SampleSearch.MULTIPLES[2:])    # the rest of the grid
    assert strategy.suggest_hparams(1, pending=first + grid) == []                 # refinement waits for them
    assert drive(SampleSearch(space, 0, trials=3, n_params=500, start=start), 3)[:3] == first


@pytest.mark.parametrize("workers", [1, 5, 12])
def test_a_sample_search_with_seeds_trains_every_point_from_each_and_scores_its_best(workers):
    """With seeds R, each point of phases 1-3 comes with restarts 1 .. R-1 (one population when the workers
    allow), the refinement follows each b's best seed, and phase 4's restarts are numbered from R on."""
    space = quick_search_space("rnn", "capacity")
    start = {**start_point(space, "rnn"), "lr": 1e-2}
    seeds = 4
    lucky = {(3.0, 2)}                                   # b = 3P's third seed stores the most of any point

    def objective(h):
        return -100.0 if (h["b_per_param"], h.get("restart", 0)) in lucky else fake_bits(h)

    strategy = SampleSearch(space, 0, trials=12, n_params=1000, start=start, seeds=seeds)
    first = strategy.suggest_hparams(12)
    assert [(h["b_per_param"], h.get("restart", 0)) for h in first] == \
        [(m, k) for m in (SampleSearch.START, *SampleSearch.MULTIPLES[:2]) for k in range(seeds)]
    setting = {k: v for k, v in start.items() if k != "b_per_param"}
    assert all({k: v for k, v in h.items() if k not in ("b_per_param", "restart")} == setting for h in first)

    strategy = SampleSearch(space, 0, trials=12, n_params=100, start=start, seeds=seeds)
    done, pending = [], []
    while len(done) + len(pending) < 100:
        if len(pending) < workers:
            pending += strategy.suggest_hparams(workers - len(pending), pending=pending)
        if not pending:
            break
        h = pending.pop(0)
        strategy.observe(h, objective(h))
        done.append(h)
    searched = [h for h in done if h.get("restart", 0) < seeds]
    by_point = {}
    for h in searched:                                   # every searched point from all its seeds
        by_point.setdefault(h["b_per_param"], []).append(h.get("restart", 0))
    assert all(sorted(ks) == list(range(seeds)) for ks in by_point.values())
    # 3P wins by its lucky seed (seed 0 alone would pick 5P): the refinement goes between 3P and its better
    # neighbour, below 3P and 4P
    refined = sorted(m for m in by_point if m not in (SampleSearch.START, *SampleSearch.MULTIPLES))
    assert refined and all(2.0 < m < 3.0 or 3.0 < m < 4.0 for m in refined)
    restarts = [h for h in done if h.get("restart", 0) >= seeds]
    assert restarts and all(h["b_per_param"] == 3.0 for h in restarts)
    assert [h["restart"] for h in restarts] == list(range(seeds, seeds + len(restarts)))
    assert len({json.dumps(h, sort_keys=True) for h in done}) == len(done)        # no point twice
    with pytest.raises(Exception, match="seeds"):
        SampleSearch(space, 0, trials=12, n_params=1000, seeds=0)


def test_the_quick_capacity_preset_spends_a_points_steps_on_more_seeds_below_1000_parameters():
    from rnncap.experiments import capacity_plans
    from rnncap.tasks.capacity import seeds_for_budget

    assert [seeds_for_budget(b) for b in (100, 250, 300, 500, 999, 1000, 3000)] == [10, 4, 3, 2, 1, 1, 1]
    quick = capacity_plans("quick")
    for plan in quick:
        seeds = seeds_for_budget(plan.spec["budget"])
        assert plan.trials == 3 * seeds and plan.spec["fixed"]["steps"] == 40000 // seeds
        assert plan.spec["strategy_options"].get("seeds", 1) == seeds
    assert {p.spec["budget"] for p in quick if p.trials > 3} == {250, 500}
    for preset in ("smoke", "standard", "full"):                 # the rule is the quick preset's
        assert all("seeds" not in p.spec.get("strategy_options", {}) for p in capacity_plans(preset))
    # and specs without it are as they were, so their studies in existing stores resume
    assert all("strategy_options" not in p.spec for p in capacity_plans("full"))


def test_a_restart_is_the_same_trial_from_another_seed():
    from rnncap.trial import trial_key
    from rnncap.tune.study import restart_seed, trial_for

    spec = capacity_spec("rnn", 1, 200, n_in=8, steps=50, seed=3)
    point = {**spec["strategy_options"]["start"], "b_per_param": 5.0}
    trials = [trial_for(spec, {**point, "restart": k}) if k else trial_for(spec, point) for k in range(4)]
    assert trials[0]["seed"] == 3 == restart_seed(3, 0)
    assert len({t["seed"] for t in trials}) == 4 and len({trial_key(t) for t in trials}) == 4
    assert all({**t, "seed": 3} == trials[0] for t in trials)        # same data, settings and b: only the seed
    assert trial_for(spec, {**point, "restart": 2}) == trials[2]      # deterministic
    assert "restart" not in trials[1]["hparams"]


def test_sample_search_needs_the_capacity_task():
    with pytest.raises(Exception, match="capacity task"):
        SampleSearch(quick_search_space("rnn", "memory"), 0, trials=5, n_params=100)


def test_a_start_point_comes_first_and_a_target_ends_the_search():
    space = quick_search_space("lstm", "memory")
    start = start_point(space)
    strategy = RandomSearch(space, 0, start=start, target=0.5)
    assert strategy.suggest_hparams(1) == [start]
    strategy.observe(start, 0.9)
    assert strategy.suggest_hparams(2) and strategy.suggest_hparams(2)[0] != start
    strategy.observe(strategy.suggest_hparams(1)[0], 0.4)
    assert strategy.suggest_hparams(3) == []             # 0.4 <= target


# the measurements, end to end ---------------------------------------------------------------------

def test_trials_beyond_the_search_are_restarts(tmp_path):
    """A 3-unit network's b search ends after a few trials; the trials left train its best point from other
    seeds, and the best of all of them is reported."""
    with Store(tmp_path / "s.sqlite") as store:
        result = measure_capacity(store, capacity_spec("rnn", 1, 60, n_in=6, unroll=2, steps=60), trials=20)
        runs = result["runs"]
        restarts = [r for r in runs if r["hparams"].get("restart")]
        assert result["trials"] == 20 == len(runs) and restarts
        searched = [r for r in runs if not r["hparams"].get("restart")]
        best = max(searched, key=lambda r: r["bits"])
        assert all(r["b"] == best["b"] for r in restarts)
        assert sorted(r["hparams"]["restart"] for r in restarts) == list(range(1, len(restarts) + 1))
        assert len({r["bits"] for r in restarts + [best]}) > 1           # other seeds train differently
        assert result["best"]["objective"] == max(r["bits"] for r in runs)


def test_measure_capacity_searches_b_and_reports_the_best(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        result = measure_capacity(store, capacity_spec("rnn", 1, 200, n_in=8, unroll=3, steps=150), trials=5)
        assert result["trials"] == 5 and len({r["b"] for r in result["runs"]}) >= 3
        best = result["best"]
        assert best["objective"] == max(r["bits"] for r in result["runs"]) > 0
        assert math.isclose(best["bits_per_parameter"], best["objective"] / result["spec"]["params"])
        again = measure_capacity(store, capacity_spec("rnn", 1, 200, n_in=8, unroll=3, steps=150), trials=5)
        assert again["runs"] == result["runs"]           # the same settings: the same study, nothing rerun


def test_memory_task_reaches_the_reference_curve(tmp_path):
    """n_in = 8: every n_h within 0.05 of max(0, 1 - n_h / 8)."""
    with Store(tmp_path / "s.sqlite") as store:
        result = measure_memory(store, memory_specs("gru", 1, 8, [2, 4, 8, 12], steps=1500), trials=3)
    for row in result["rows"]:
        assert abs(row["error"] - row["reference"]) < 0.05, row


def test_study_names_follow_the_settings():
    a = capacity_spec("rnn", 1, 300, steps=500)
    assert default_study_name("capacity", a) == default_study_name("capacity", capacity_spec("rnn", 1, 300, steps=500))
    assert default_study_name("capacity", a) != default_study_name("capacity", capacity_spec("rnn", 1, 300, steps=600))
    assert default_study_name("capacity", a).startswith("capacity-rnn-d1-p300-")


def test_cli_capacity_and_memory_json(tmp_path):
    store = str(tmp_path / "cli.sqlite")
    result = runner.invoke(app, ["capacity", "--cell", "rnn", "--budget", "150", "--n-in", "6", "--trials", "2",
                                 "--steps", "30", "--store", store, "--json"])
    out = json.loads(result.stdout)
    assert out["best"]["bits_per_parameter"] >= 0 and out["trials"] == 2
    assert out["spec"]["task_options"]["batch_size"] == 128                  # sized to the budget by default
    whole = runner.invoke(app, ["capacity", "--cell", "rnn", "--budget", "150", "--n-in", "6", "--trials", "1",
                                "--steps", "5", "--batch-size", "0", "--store", store, "--json"])
    assert json.loads(whole.stdout)["spec"]["task_options"]["batch_size"] is None     # 0: all b
    out = json.loads(runner.invoke(app, ["memory", "--cell", "lstm", "--n-in", "4", "--units", "2,4", "--trials",
                                         "1", "--steps", "50", "--store", store, "--json"]).stdout)
    assert [r["n_h"] for r in out["rows"]] == [2, 4] and out["rows"][0]["reference"] == 0.5
    listed = json.loads(runner.invoke(app, ["study", "list", "--store", store, "--json"]).stdout)
    assert len(listed["studies"]) == 4                   # two capacity studies, one memory study per unit count


def test_cli_capacity_trains_each_point_from_its_seeds(tmp_path):
    """--seeds 2: the study's first 6 trials are b = 4P, 5P and 3P, each from the study's seed and one restart
    seed, trained as one population; the printed best is the best of them."""
    store = str(tmp_path / "seeds.sqlite")
    out = json.loads(runner.invoke(app, ["capacity", "--cell", "rnn", "--budget", "150", "--n-in", "6", "--trials",
                                         "6", "--seeds", "2", "--steps", "30", "--store", store, "--json"]).stdout)
    runs = out["runs"]
    assert sorted((r["b_per_param"], r["hparams"].get("restart", 0)) for r in runs) == \
        [(3.0, 0), (3.0, 1), (4.0, 0), (4.0, 1), (5.0, 0), (5.0, 1)]
    assert out["spec"]["strategy_options"]["seeds"] == 2
    assert out["best"]["objective"] == max(r["bits"] for r in runs)
    bad = runner.invoke(app, ["capacity", "--cell", "rnn", "--seeds", "0", "--store", store])
    assert bad.exit_code == 2 and "--seeds" in bad.output
    # by default, below 1000 parameters: 1000 // budget seeds and 10 trials a seed (here 2 and 20)
    out = json.loads(runner.invoke(app, ["capacity", "--cell", "rnn", "--budget", "400", "--n-in", "6", "--steps",
                                         "20", "--store", store, "--json"]).stdout)
    assert out["spec"]["strategy_options"]["seeds"] == 2 and out["trials"] == 20
    assert {r["hparams"].get("restart", 0) for r in out["runs"] if r["hparams"].get("restart", 0) < 2} == {0, 1}


def test_bad_input_creates_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["capacity", "--cell", "rnn", "--budget", "-5"], ["memory", "--cell", "rnn", "--units", "4,x"],
                 ["capacity", "--cell", "nope"]):
        assert runner.invoke(app, args).exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_killed_capacity_measurement_resumes(tmp_path):
    """kill -9 in the middle, the same command again: 6 trials in all, each once (two at b = 4P, then the
    grid of four as one population, which the kill interrupts)."""
    store = tmp_path / "S.sqlite"
    command = [sys.executable, "-m", "rnncap", "capacity", "--cell", "rnn", "--budget", "300", "--trials", "6",
               "--seeds", "1", "--steps", "1500", "--store", str(store), "--json"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:
        if store.exists():
            with Store(store) as db:
                studies = db.studies()
                if studies and studies[0]["trials"] - studies[0]["running"] >= 1:
                    break
        time.sleep(0.1)
    assert first.poll() is None, "the measurement finished before it could be killed: make it longer"
    first.send_signal(signal.SIGKILL)
    first.wait()
    with Store(store) as db:
        (study,) = db.studies()
        before = {r["number"]: r for r in db.trials(study["name"]) if r["status"] != "running"}
    assert 1 <= len(before) < 6
    out = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)
    assert out["trials"] == 6
    with Store(store) as db:
        rows = db.trials(study["name"])
    assert [r["number"] for r in rows] == [0, 1, 2, 3, 4, 5] and len({r["key"] for r in rows}) == 6
    assert all(r["status"] == "done" for r in rows)
    for number, row in before.items():                   # finished before the kill: kept, not run again
        assert rows[number]["finished"] == row["finished"] and rows[number]["objective"] == row["objective"]
    listed = runner.invoke(app, ["study", "list", "--store", str(store)])
    assert study["name"] in listed.stdout


def test_bsearch_is_refused_off_the_capacity_task_before_any_store_is_made(tmp_path):
    store = tmp_path / "s.sqlite"
    result = runner.invoke(app, ["tune", "--study", "x", "--task", "memory", "--cell", "rnn", "--units", "3",
                                 "--strategy", "bsearch", "--store", str(store)])
    assert result.exit_code == 2 and "capacity task" in result.stderr and not store.exists()
