"""Reading the store: every tagged study reduced to what the figures need, one preset per experiment.

A study's counts (done, infeasible, failed, running), its best trial and
Figure 4's curves come from :func:`rnncap.tune.study.summarize`, the one
definition the CLI's ``study show`` uses too; this module adds only what the
figures need besides: the objectives of the feasible trials and the time the
trials took.

**Presets**: one preset per experiment, the largest present (full > standard >
quick > smoke, then any other tag), preferring one that has at least one feasible
trial, so that a full run just started does not hide a finished quick one.
``presets`` restricts the choice (``presets="quick"`` reports quick runs even
when a full run exists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rnncap.experiments import PRESETS
from rnncap.tune.study import summarize


def is_finite_number(value) -> bool:
    """A number that is neither NaN nor infinite (None, strings and lists are not)."""
    try:
        return value is not None and math.isfinite(value)
    except TypeError:
        return False


@dataclass(frozen=True)
class StudyResult:
    """One study, reduced to what the figures need."""

    name: str
    spec: dict
    best: float | None              # best objective over feasible trials
    best_metrics: dict
    feasible: tuple                 # objectives of the feasible trials, in trial order
    done: int
    infeasible: int
    failed: int
    running: int
    trial_time: float               # seconds, each trial's own wall time added up
    first_start: float | None       # Unix time the earliest trial started
    last_finish: float | None       # Unix time the latest trial finished
    curve: tuple = ()               # summarize()'s best and median so far, per trial

    @property
    def cell(self) -> str:
        return self.spec["cell"]

    @property
    def depth(self) -> int:
        return int(self.spec["depth"])

    @property
    def params(self) -> int:
        return int(self.spec["params"])

    @property
    def n_h(self) -> int:
        return int(self.spec["n_h"])

    @property
    def tags(self) -> dict:
        return self.spec.get("tags") or {}

    @property
    def maximise(self) -> bool:
        return self.spec.get("direction") == "max"

    @property
    def trials(self) -> int:
        return self.done + self.infeasible + self.failed + self.running


def load_study(store, name: str) -> StudyResult:
    summary = summarize(store, name)
    rows = store.trials(name)
    best = summary["best"]
    best_value = None if best is None or not is_finite_number(best["objective"]) else float(best["objective"])
    starts = [r["started"] for r in rows if is_finite_number(r["started"])]
    finishes = [r["finished"] for r in rows if is_finite_number(r["finished"])]
    return StudyResult(
        name=name, spec=summary["spec"], best=best_value,
        best_metrics={} if best_value is None else dict(best["metrics"]),
        feasible=tuple(float(r["objective"]) for r in rows
                       if r["status"] == "done" and is_finite_number(r["objective"])),
        done=summary["done"], infeasible=summary["infeasible"], failed=summary["failed"],
        running=summary["running"],
        trial_time=float(sum(r["wall_time"] for r in rows if is_finite_number(r["wall_time"]))),
        first_start=min(starts) if starts else None, last_finish=max(finishes) if finishes else None,
        curve=tuple(summary["curve"]))


def elapsed(results) -> float | None:
    """Seconds from the first trial's start to the last one's finish (pauses between resumed runs included)."""
    starts = [r.first_start for r in results if r.first_start is not None]
    finishes = [r.last_finish for r in results if r.last_finish is not None]
    return max(finishes) - min(starts) if starts and finishes else None


def depths_of(results) -> list[int]:
    return sorted({r.depth for r in results})


def _preset_rank(preset: str) -> int:
    return PRESETS.index(preset) if preset in PRESETS else -1


def choose_preset(available: dict[str, list[StudyResult]], presets=None) -> str | None:
    """The preset to report for one experiment: the largest allowed one, preferring one with feasible trials."""
    allowed = [p for p in available if presets is None or p in presets]
    if not allowed:
        return None
    return max(allowed, key=lambda p: (any(r.best is not None for r in available[p]), _preset_rank(p), p))


def as_tuple(presets) -> tuple:
    """``"quick"`` -> ``("quick",)``; a list stays as it is; None -> ``()``."""
    return (presets,) if isinstance(presets, str) else tuple(presets or ())


@dataclass
class Collected:
    chosen: dict = field(default_factory=dict)      # experiment -> (preset, [StudyResult])
    skipped: dict = field(default_factory=dict)     # experiment -> {preset: number of studies} not reported
    untagged: list = field(default_factory=list)    # studies without an experiment tag


def collect_results(store, presets=None, experiments=None) -> Collected:
    """Every tagged study of the store, grouped by experiment, one preset per experiment.

    ``experiments``: the experiment tags to read (default: all), so that a caller that needs one
    experiment does not summarise every study of a large store.
    """
    presets = (presets,) if isinstance(presets, str) else presets
    grouped: dict[str, dict[str, list[StudyResult]]] = {}
    collected = Collected()
    for entry in store.studies():
        tags = entry["spec"].get("tags") or {}
        experiment = tags.get("experiment")
        if not experiment:
            collected.untagged.append(entry["name"])
            continue
        if experiments is not None and experiment not in experiments:
            continue
        preset = str(tags.get("preset") or "untagged")
        grouped.setdefault(experiment, {}).setdefault(preset, []).append(load_study(store, entry["name"]))
    for experiment, by_preset in grouped.items():
        preset = choose_preset(by_preset, presets)
        if preset is not None:
            collected.chosen[experiment] = (preset, by_preset[preset])
        left = {p: len(rs) for p, rs in by_preset.items() if p != preset}
        if left:
            collected.skipped[experiment] = left
    return collected
