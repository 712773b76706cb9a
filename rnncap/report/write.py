"""report.md and its figures: every experiment of the registry that the store has studies for.

The experiments, their order, the paper's figure each reproduces, the
finding each section opens with, and the function that draws it all come from
:data:`rnncap.experiments.EXPERIMENTS`. Section functions are imported when
they are first needed, so importing :mod:`rnncap.report` (for
:func:`rnncap.report.capacity_headline`, say) never loads matplotlib.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from rnncap.experiments import EXPERIMENTS, PRESETS, Experiment
from rnncap.formatting import duration, plain
from rnncap.report.markdown import Section, markdown_table
from rnncap.report.results import as_tuple, collect_results, elapsed


def section_function(experiment: Experiment):
    """The function the registry names (``"module:function"``) to draw ``experiment``, imported now."""
    module, function = experiment.section.split(":")
    return getattr(importlib.import_module(module), function)


def write_report(store, out_dir, presets=None) -> dict:
    """Draw every figure the store has data for into ``out_dir``, and write ``out_dir/report.md``.

    ``presets``: a preset name or a list of them that may be reported (default: any); per experiment the
    largest is reported (see :mod:`rnncap.report.results`). Returns a JSON-ready dict: ``report`` (the
    markdown's path), ``figures`` (every PNG written, in report order), ``figures_by_experiment``,
    ``tables`` (per experiment, the numbers of its markdown tables; NaN as None), ``experiments`` (per
    experiment reported: preset, studies, trial counts, ``trial_time`` (each trial's own time, added up)
    and ``elapsed`` (first trial start to last finish), in seconds), ``presets`` and ``not_run``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    collected = collect_results(store, presets)
    result = {"report": str(out / "report.md"), "figures": [], "figures_by_experiment": {}, "tables": {},
              "experiments": {}, "presets": {}, "not_run": []}
    overview, body = [], []
    for name, experiment in EXPERIMENTS.items():
        if experiment.source not in collected.chosen:
            result["not_run"].append(name)
            continue
        preset, results = collected.chosen[experiment.source]
        section = section_function(experiment)(results, out, preset)
        counts = {k: sum(getattr(r, k) for r in results) for k in ("trials", "done", "infeasible", "failed",
                                                                   "running")}
        trial_time, span = sum(r.trial_time for r in results), elapsed(results)
        result["figures"] += section.figures
        result["figures_by_experiment"][name] = section.figures
        result["tables"][name] = plain(section.tables)
        result["presets"][name] = preset
        result["experiments"][name] = {"preset": preset, "studies": len(results), **counts,
                                       "trial_time": trial_time, "elapsed": span}
        span_text = "—" if span is None else duration(span)
        overview.append([name, experiment.figure, preset, len(results), counts["trials"], duration(trial_time),
                         span_text])
        body += [f"## {name} (Figure {experiment.figure})\n", experiment.finding + "\n",
                 f"Preset `{preset}`" + (f" (studies of `{experiment.source}`)" if experiment.studies_of else "")
                 + f": {len(results)} studies, {counts['trials']} trials ({counts['done']} feasible, "
                 f"{counts['infeasible']} infeasible, {counts['failed']} failed, {counts['running']} running); "
                 f"trial time (sum) {duration(trial_time)}, elapsed {span_text}.\n"]
        body += section.lines
    result["experiments"] = plain(result["experiments"])
    only = f" for preset(s) {', '.join(as_tuple(presets))}" if presets else ""
    header = ["# rnncap report\n", f"Store: `{store.path}`.\n",
              "Figures reproduce Collins, Sohl-Dickstein & Sussillo (ICLR 2017); \"best\" is the best objective "
              "over a study's feasible trials. One preset is reported per experiment: the largest present "
              f"({' > '.join(reversed(PRESETS))}) that has feasible trials"
              + (f", among {', '.join(as_tuple(presets))}" if presets else "") + ".\n"]
    if overview:
        header += markdown_table(["experiment", "figure", "preset", "studies", "trials", "trial time (sum)",
                                  "elapsed"], overview)
        header.append("Trial time (sum) adds up each trial's own training time (trials run at once with "
                      "`--workers` each count in full); elapsed runs from the first trial's start to the last "
                      "one's finish, pauses between resumed runs included.\n")
    else:
        header.append(f"No experiment has studies in this store{only}: run `rnncap reproduce NAME` first.\n")
    if collected.skipped:
        header.append("Also in the store, not reported: " + "; ".join(
            f"{e}: " + ", ".join(f"{p} ({n} studies)" for p, n in left.items())
            for e, left in collected.skipped.items()) + ".\n")
    if collected.untagged:
        header.append(f"Studies without an experiment tag (not reported): {len(collected.untagged)}.\n")
    if result["not_run"] and overview:
        header.append(f"Not run (no study in the store{only}): " + ", ".join(
            f"{name} (Figure {EXPERIMENTS[name].figure})" for name in result["not_run"]) + ".\n")
    Path(result["report"]).write_text("\n".join(header + body), encoding="utf-8")
    return result
