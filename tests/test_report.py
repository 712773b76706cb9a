"""The report: the multiplier table on known answers, and every figure from a planted store."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy
import pytest

from rnncap.experiments import EXPERIMENTS, experiment_plans
from rnncap.report import (CELL_COLORS, CELL_LABELS, CELL_ORDER, PAPER_BITS_BAND, PAPER_TABLE1, capacity_headline,
                           capacity_slope, choose_preset, multiplier_table, write_report)
from rnncap.report.write import section_function
from rnncap.store import Store
from rnncap.tasks.memory import reference_error
from rnncap.tune.study import infeasible_fraction, summarize

EXPECTED_FIGURES = {
    "capacity": ["capacity.png"], "capacity-table": ["capacity-table.png"], "relu": ["relu.png"],
    "unroll": ["unroll.png"], "memory": ["memory.png"], "text8": ["text8-params.png", "text8-units.png"],
    "rcf": ["rcf.png"], "parens": ["parens.png"], "arith": ["arith.png"], "random-hp": ["random-hp.png"],
}


def fake_outcome(spec: dict, rng: numpy.random.Generator) -> tuple[float, dict]:
    """A made-up objective and metrics of the right kind for the study's task (no training)."""
    task, params = spec["task"], spec["params"]
    if task == "capacity":
        bits = 4.5 * params * rng.uniform(0.8, 1.1)
        return bits, {"bits": bits, "bits_per_parameter": bits / params, "accuracy": 0.9, "b": 2 * params}
    if task == "memory":
        n_in = spec["task_options"].get("n_in", 64)
        error = reference_error(spec["n_h"], n_in) + rng.uniform(0, 0.05)
        return error, {"error": error, "reference": reference_error(spec["n_h"], n_in), "n_h": spec["n_h"]}
    if task == "text8":
        bpc = 1.5 + 10 / params ** 0.3 + rng.uniform(0, 0.1)
        return bpc, {"bpc": bpc, "test_bpc": bpc, "unigram_bpc": 4.1}
    loss = rng.uniform(0.1, 2.0)
    return loss, {"loss": loss, "accuracy": rng.uniform()}


def plant(store: Store, name: str, spec: dict, statuses: list[str], rng: numpy.random.Generator) -> None:
    """Finished trials with the given statuses, as if a study had run them."""
    spec = store.create_or_open_study(name, spec)
    for number, status in enumerate(statuses, start=store.next_number(name)):
        store.start_trial(name, number, f"k{number}", {}, {})
        objective, metrics = fake_outcome(spec, rng) if status == "done" else (None, {})
        store.finish_trial(name, number, status, objective, metrics, None if status == "done" else "nan loss", 1.5)


def plant_experiment(store: Store, experiment: str, rng, trials: int = 3) -> list:
    plans = experiment_plans(experiment, "smoke")
    for plan in plans:
        plant(store, plan.name, plan.spec, ["done"] * trials, rng)
    return plans


# the multiplier table ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["loglog", "origin"])
def test_the_multiplier_table_has_known_answers(method):
    sizes = [300, 1000, 3000, 10000]
    points = {"a": [(p, 10.0 * p) for p in sizes], "b": [(p, 5.0 * p) for p in sizes],
              "c": [(p, 2.5 * p) for p in sizes]}
    table = multiplier_table(points, method)
    assert table["b"]["a"] == pytest.approx(2.0)         # b needs twice the parameters of a
    assert table["a"]["b"] == pytest.approx(0.5)
    assert table["c"]["a"] == pytest.approx(4.0)
    assert all(table[x][x] == pytest.approx(1.0) for x in points)
    assert capacity_slope(points["b"], method) == pytest.approx(5.0)


def test_the_loglog_fit_weights_budgets_equally_and_the_origin_fit_does_not():
    points = [(100, 200.0), (100000, 500000.0)]          # 2 and 5 bits per parameter
    assert capacity_slope(points, "loglog") == pytest.approx(math.sqrt(2 * 5))
    assert capacity_slope(points, "origin") == pytest.approx(5.0, rel=1e-4)


def test_a_cell_with_no_bits_gets_nan_not_an_error():
    table = multiplier_table({"a": [(100, 400.0)], "b": [(100, 0.0)]})
    assert table["a"]["a"] == 1.0 and math.isnan(table["a"]["b"]) and math.isnan(table["b"]["a"])
    with pytest.raises(ValueError):
        capacity_slope([(1, 1)], "cubic")


def test_every_cell_has_a_colour_and_a_label():
    assert set(CELL_COLORS) == set(CELL_LABELS) == set(CELL_ORDER)
    assert len(set(CELL_COLORS.values())) == len(CELL_COLORS)
    assert CELL_LABELS["plusrnn"] == "+RNN"


# the whole report -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """A store with made-up trials for every experiment's smoke studies, and its report."""
    root = tmp_path_factory.mktemp("report")
    rng = numpy.random.default_rng(0)
    with Store(root / "s.sqlite") as store:
        for experiment in EXPERIMENTS.values():
            if experiment.studies_of is None:                  # capacity-table reads capacity's studies
                plant_experiment(store, experiment.name, rng)
        result = write_report(store, root / "out")
    return root / "out", result


def test_every_experiment_gets_its_figures(full_report):
    out, result = full_report
    assert set(EXPECTED_FIGURES) == set(EXPERIMENTS)            # a new experiment names its figures here
    assert result["not_run"] == []
    assert list(result["figures_by_experiment"]) == list(EXPERIMENTS)          # the registry's order
    for experiment, names in EXPECTED_FIGURES.items():
        assert [p.split("/")[-1] for p in result["figures_by_experiment"][experiment]] == names
        for name in names:
            assert (out / name).stat().st_size > 1000, name
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(result["figures"]) == sorted(p for ps in result["figures_by_experiment"].values() for p in ps)
    json.dumps(result, allow_nan=False)                          # the CLI prints it with --json


def test_the_markdown_mentions_every_experiment_and_embeds_its_figures(full_report):
    out, result = full_report
    text = (out / "report.md").read_text()
    for experiment, names in EXPECTED_FIGURES.items():
        assert f"## {experiment} (Figure {EXPERIMENTS[experiment].figure})" in text
        for name in names:
            assert f"]({name})" in text                          # relative path
    assert "not run" not in text.lower()
    assert "15.5 %" in text and "excluded" in text              # the paper's Table 1 beside ours
    assert "paper ~5" not in text and "about 5" in text         # the paper's bits per parameter


def test_the_bits_per_parameter_table_and_multipliers_come_from_the_planted_bits(full_report):
    _, result = full_report
    fits = result["tables"]["capacity"]["bits_per_parameter"]["1"]
    assert all(4.5 * 0.8 <= v["fit"] <= 4.5 * 1.1 for v in fits.values())
    multipliers = result["tables"]["capacity-table"]["multiplier"]
    assert "all depths" in multipliers                               # the +RNN sits at depth 2
    assert multipliers["all depths"]["plusrnn"]["rnn"] == pytest.approx(1.0, abs=0.4)


def test_trial_counts_and_trial_time_are_reported(full_report):
    out, result = full_report
    text = (out / "report.md").read_text()
    n = len(experiment_plans("relu", "smoke"))
    assert f"{n} studies, {3 * n} trials ({3 * n} feasible" in text
    assert f"trial time (sum) {3 * n * 1.5:.1f} s" in text                   # the trials' own times, added up
    assert "wall time" not in text
    relu = result["experiments"]["relu"]
    assert relu["trial_time"] == pytest.approx(3 * n * 1.5)
    assert 0 <= relu["elapsed"] < 60                                         # first start to last finish


def test_a_missing_experiment_is_reported_as_not_run_and_the_infeasible_table_matches(tmp_path):
    rng = numpy.random.default_rng(1)
    planted = {}
    with Store(tmp_path / "s.sqlite") as store:
        for k, plan in enumerate(experiment_plans("random-hp", "smoke")):
            infeasible, done = k % 4, 1 + k % 3
            statuses = ["infeasible"] * infeasible + ["done"] * done + ["failed"] * (k % 2)
            rng.shuffle(statuses)
            plant(store, plan.name, plan.spec, statuses, rng)
            planted[(plan.spec["cell"], plan.spec["depth"])] = (infeasible, done)
        result = write_report(store, tmp_path / "out")
    assert set(result["not_run"]) == set(EXPERIMENTS) - {"random-hp"}
    assert list(result["figures_by_experiment"]) == ["random-hp"]
    assert result["experiments"]["random-hp"]["infeasible"] == sum(i for i, _ in planted.values())
    text = (tmp_path / "out" / "report.md").read_text()
    not_run = [line for line in text.splitlines() if line.startswith("Not run")]
    assert len(not_run) == 1 and text.lower().count("not run") == 1          # said once, on one line
    for experiment in result["not_run"]:
        assert f"## {experiment} (" not in text                              # no empty section
        assert f"{experiment} (Figure {EXPERIMENTS[experiment].figure})" in not_run[0]
    fractions = result["tables"]["random-hp"]["infeasible_fraction"]
    for (cell, depth), (infeasible, done) in planted.items():
        assert fractions[cell][str(depth)] == pytest.approx(infeasible / (infeasible + done))
        assert f"({infeasible} of {infeasible + done})" in text
    assert PAPER_TABLE1["irnn"][1] == 56.7 and "56.7 %" in text
    assert infeasible_fraction(0, 0) != infeasible_fraction(0, 0)       # NaN without finished trials


def test_a_store_where_every_trial_diverged_still_gets_every_figure(tmp_path):
    rng = numpy.random.default_rng(3)
    with Store(tmp_path / "s.sqlite") as store:
        for experiment in EXPERIMENTS:
            for plan in experiment_plans(experiment, "smoke"):
                if not store.next_number(plan.name):
                    plant(store, plan.name, plan.spec, ["infeasible", "failed"], rng)
        result = write_report(store, tmp_path / "out")
    assert result["not_run"] == []
    for names in EXPECTED_FIGURES.values():
        assert all((tmp_path / "out" / name).stat().st_size > 1000 for name in names)
    assert "100.0 % (1 of 1), 1 failed" in (tmp_path / "out" / "report.md").read_text()
    json.dumps(result, allow_nan=False)


def test_the_largest_preset_with_feasible_trials_is_chosen():
    class R:
        def __init__(self, best):
            self.best = best
    assert choose_preset({"smoke": [R(1.0)], "quick": [R(2.0)]}) == "quick"
    assert choose_preset({"quick": [R(2.0)], "full": [R(None)]}) == "quick"          # full only started
    assert choose_preset({"quick": [R(2.0)], "full": [R(3.0)]}) == "full"
    assert choose_preset({"quick": [R(2.0)], "full": [R(3.0)]}, presets=("quick",)) == "quick"
    assert choose_preset({"quick": [R(2.0)]}, presets=("full",)) is None


def test_presets_are_reported_once_each_and_the_others_named(tmp_path):
    rng = numpy.random.default_rng(2)
    with Store(tmp_path / "s.sqlite") as store:
        for preset in ("smoke", "quick"):
            for plan in experiment_plans("unroll", preset)[:2]:
                plant(store, plan.name, plan.spec, ["done"], rng)
        result = write_report(store, tmp_path / "all")
        only_smoke = write_report(store, tmp_path / "smoke", presets="smoke")
    assert result["presets"] == {"unroll": "quick"}
    assert "unroll: smoke (2 studies)" in (tmp_path / "all" / "report.md").read_text()
    assert only_smoke["presets"] == {"unroll": "smoke"}


# one registry, one count, one headline ------------------------------------------------------------

def test_every_experiment_in_the_registry_has_a_section_that_draws_it():
    for experiment in EXPERIMENTS.values():
        assert experiment.source in EXPERIMENTS and EXPERIMENTS[experiment.source].studies_of is None
        assert experiment.finding and experiment.figure and experiment.summary
        assert callable(section_function(experiment))


def test_the_report_and_summarize_count_the_infeasible_fraction_alike(tmp_path):
    """Failed trials count on neither side: 3 done, 1 infeasible, 1 failed is 1 / 4 in both."""
    plan = next(p for p in experiment_plans("random-hp", "smoke") if (p.spec["cell"], p.spec["depth"]) == ("gru", 1))
    with Store(tmp_path / "s.sqlite") as store:
        plant(store, plan.name, plan.spec, ["done", "infeasible", "done", "failed", "done"],
              numpy.random.default_rng(4))
        result = write_report(store, tmp_path / "out")
        summary = summarize(store, plan.name)
    assert summary["infeasible_fraction"] == 0.25
    assert result["tables"]["random-hp"]["infeasible_fraction"]["gru"]["1"] == 0.25
    assert result["experiments"]["random-hp"]["failed"] == summary["failed"] == 1
    assert "25.0 % (1 of 4), 1 failed" in (tmp_path / "out" / "report.md").read_text()


def test_a_depth_with_one_cell_gets_no_multiplier_table_and_the_text_says_why(full_report):
    out, result = full_report
    multipliers = result["tables"]["capacity-table"]["multiplier"]
    assert set(multipliers) == {"depth 1", "all depths"}                      # the +RNN alone at depth 2
    assert result["tables"]["capacity-table"]["not_drawn"] == {"depth 2": ["plusrnn"]}
    text = (out / "report.md").read_text()
    assert "Depth 2 is not tabled: only +RNN has feasible trials there" in text
    assert "Multiplier, depth 2" not in text


def test_the_capacity_headline_has_one_row_per_cell_and_depth_with_the_best_budget(tmp_path):
    rng = numpy.random.default_rng(5)
    with Store(tmp_path / "s.sqlite") as store:
        assert capacity_headline(store) == []
        plans = plant_experiment(store, "capacity", rng)
        plant_experiment(store, "relu", rng)                                  # other experiments are ignored
        rows = capacity_headline(store)
        expected = {}
        for plan in plans:
            spec = plan.spec
            best = max(r["objective"] for r in store.trials(plan.name)) / spec["params"]
            expected[(spec["cell"], spec["depth"])] = max(best, expected.get((spec["cell"], spec["depth"]), 0.0))
    assert [(r["cell"], r["depth"]) for r in rows] == [(c, d) for c, d in sorted(expected, key=lambda k: k[1])]
    for row in rows:
        assert row["bits_per_parameter"] == pytest.approx(expected[(row["cell"], row["depth"])])
        assert row["bits"] == pytest.approx(row["bits_per_parameter"] * row["params"])
        assert row["params"] <= row["budget"] and row["preset"] == "smoke" and row["trials"] == 3
        assert row["paper_band"] == PAPER_BITS_BAND == (3.0, 6.0) and row["paper_typical"] == 5.0
        assert row["in_paper_band"] == (3.0 <= row["bits_per_parameter"] <= 6.0)
    json.dumps(rows, allow_nan=False)


def test_the_headline_reads_the_store_without_matplotlib(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        plant_experiment(store, "capacity", numpy.random.default_rng(6))
    code = ("import sys\nfrom rnncap.report import capacity_headline\nfrom rnncap.store import Store\n"
            f"rows = capacity_headline(Store({str(tmp_path / 's.sqlite')!r}))\n"
            "assert rows and 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplotlib' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)
