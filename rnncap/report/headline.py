"""The capacity result in a few lines, for a terminal: per cell and depth, the best bits per parameter.

:func:`capacity_headline` reads the store only (no matplotlib), so the CLI can
print it right after ``rnncap reproduce capacity``.
"""

from __future__ import annotations

from rnncap.experiments import EXPERIMENTS
from rnncap.report.fits import bits_per_parameter
from rnncap.report.paper import PAPER_BITS_BAND, PAPER_BITS_PER_PARAMETER
from rnncap.report.results import collect_results
from rnncap.report.styles import cell_index, cell_label


def capacity_headline(store, presets=None) -> list[dict]:
    """One row per (cell, depth) of the capacity experiment: the best bits per parameter over its budgets.

    The preset is chosen as the report chooses it (``presets`` restricts the choice). Each row holds
    ``cell``, ``label``, ``depth``, ``preset``; ``bits_per_parameter``, ``bits``, ``params``, ``budget``
    and ``study`` of the best study (None where no trial was feasible); ``studies`` and the trial counts
    (``trials``, ``done``, ``infeasible``, ``failed``) over all budgets; the paper's ``paper_band`` (3, 6)
    and ``paper_typical`` 5 bits per parameter, and ``in_paper_band``. An empty list when the store holds
    no capacity study.
    """
    source = EXPERIMENTS["capacity"].source
    collected = collect_results(store, presets, experiments=(source,))
    if source not in collected.chosen:
        return []
    preset, results = collected.chosen[source]
    by_line: dict[tuple[int, str], list] = {}
    for r in results:
        by_line.setdefault((r.depth, r.cell), []).append(r)
    rows = []
    for depth, cell in sorted(by_line, key=lambda line: (line[0], cell_index(line[1]))):
        studies = by_line[(depth, cell)]
        scored = [r for r in studies if r.best is not None]
        best = max(scored, key=bits_per_parameter) if scored else None
        value = None if best is None else bits_per_parameter(best)
        rows.append({
            "cell": cell, "label": cell_label(cell), "depth": depth, "preset": preset,
            "bits_per_parameter": value, "bits": None if best is None else best.best,
            "params": None if best is None else best.params,
            "budget": None if best is None else best.spec.get("budget"),
            "study": None if best is None else best.name,
            "studies": len(studies), "trials": sum(r.trials for r in studies),
            "done": sum(r.done for r in studies), "infeasible": sum(r.infeasible for r in studies),
            "failed": sum(r.failed for r in studies),
            "paper_band": PAPER_BITS_BAND, "paper_typical": PAPER_BITS_PER_PARAMETER,
            "in_paper_band": None if value is None else PAPER_BITS_BAND[0] <= value <= PAPER_BITS_BAND[1],
        })
    return rows
