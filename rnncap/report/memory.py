"""The memory task (Figure 2c): recall error against units per layer, beside ``max(0, 1 - n_h/n_in)``.

File: ``memory.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy
from matplotlib.lines import Line2D

from rnncap.report.drawing import add_legend, cell_handles, hide_unused, mark_empty, new_figure, panel_grid, save_figure
from rnncap.report.fits import best_by
from rnncap.report.markdown import Section, markdown_image, markdown_table, number
from rnncap.report.paper import PAPER_MEMORY_N_IN
from rnncap.report.results import StudyResult, depths_of
from rnncap.report.styles import cell_label, cell_style
from rnncap.tasks.memory import reference_error


def memory_n_in(r: StudyResult) -> int:
    return int(r.spec["task_options"].get("n_in", PAPER_MEMORY_N_IN))


def memory_section(results, out: Path, preset: str) -> Section:
    section = Section()
    depths = depths_of(results)
    curves = best_by(results, lambda r: r.n_h)
    n_ins = sorted({memory_n_in(r) for r in results})
    rows, cols = panel_grid(len(depths), 3)
    fig, axes = new_figure(rows, cols, width=4.8, height=3.8)
    top = max([n for pts in curves.values() for n, _ in pts] + n_ins) * 1.1
    for ax, depth in zip(axes.flat, depths):
        for n_in in n_ins:
            span = numpy.linspace(0, top, 200)                                          # (200,)
            ax.plot(span, reference_error(span, n_in), color="black", linestyle="--", linewidth=1.2, zorder=5)
            ax.axvline(n_in, color="grey", linestyle=":", linewidth=1)
        for (d, cell), pts in curves.items():
            if d == depth:
                ax.plot(*zip(*pts), linestyle="-", **cell_style(cell), alpha=0.85)
        if not any(d == depth for d, _ in curves):
            mark_empty(ax)
        ax.set_xlim(0, top)
        errors = [y for (d, _), pts in curves.items() if d == depth for _, y in pts]
        ax.set_ylim(-0.03, max(1.05, max(errors + [0]) * 1.05))
        ax.grid(True, alpha=0.3)
        ax.set(xlabel="units per layer n_h", ylabel="normalised recall error ‖û−u‖²/‖u‖²",
               title=f"depth {depth}")
    hide_unused(axes, len(depths))
    add_legend(fig, cell_handles(c for _, c in curves) + [
        Line2D([], [], color="black", linestyle="--", label="max(0, 1 − n_h/n_in)"),
        Line2D([], [], color="grey", linestyle=":", label="n_h = n_in (" + ", ".join(map(str, n_ins)) + ")")])
    fig.suptitle(f"Figure 2c: memory task ({preset})")
    section.figures.append(save_figure(fig, out / "memory.png"))
    section.lines.append(markdown_image(section.figures[-1], "Figure 2c: recall error vs units"))
    units = sorted({n for pts in curves.values() for n, _ in pts})
    table_rows = [[cell_label(c), d] + [number(dict(pts).get(n), ".3f") for n in units]
                  for (d, c), pts in curves.items()]
    table_rows += [[f"reference (n_in = {n_in})", ""] + [number(reference_error(n, n_in), ".3f") for n in units]
                   for n_in in n_ins]
    section.tables["error"] = {f"{cell} d{depth}": dict(pts) for (depth, cell), pts in curves.items()}
    section.tables["reference"] = {n_in: {n: reference_error(n, n_in) for n in units} for n_in in n_ins}
    section.lines.append("Best normalised recall error by units per layer (columns), against the reference:\n")
    section.lines += markdown_table(["cell", "depth"] + [f"n_h={n}" for n in units], table_rows)
    section.lines.append(f"Paper: perfect recall iff n_h ≥ n_in (n_in = {PAPER_MEMORY_N_IN} there).\n")
    return section
