"""The report: the multiplier table on known answers, and every figure from a planted store."""

from __future__ import annotations

import json
import math

import numpy
import pytest

from rnncap.experiments import EXPERIMENTS, experiment_plans
from rnncap.report import (CELL_COLORS, CELL_LABELS, CELL_ORDER, PAPER_TABLE1, capacity_slope, choose_preset,
                           infeasible_fraction, memory_reference, multiplier_table, write_report)
from rnncap.store import Store

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
        error = float(memory_reference(spec["n_h"], n_in)) + rng.uniform(0, 0.05)
        return error, {"error": error, "reference": float(memory_reference(spec["n_h"], n_in)), "n_h": spec["n_h"]}
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
        for experiment in EXPERIMENTS:
            if experiment != "capacity-table":                 # capacity-table reads capacity's studies
                plant_experiment(store, experiment, rng)
        result = write_report(store, root / "out")
    return root / "out", result


def test_every_experiment_gets_its_figures(full_report):
    out, result = full_report
    assert result["not_run"] == []
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


def test_trial_counts_and_wall_time_are_reported(full_report):
    out, _ = full_report
    text = (out / "report.md").read_text()
    n = len(experiment_plans("relu", "smoke"))
    assert f"{n} studies, {3 * n} trials ({3 * n} feasible" in text
    assert f"total trial wall time {3 * n * 1.5:.1f} s" in text


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
    for experiment in result["not_run"]:
        section = text.split(f"## {experiment} (")[1].split("## ")[0]
        assert "Not run" in section
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
