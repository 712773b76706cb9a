"""The tasks where all cells do about the same per parameter (Figure 3): text8 and random continuous functions.

Files: ``text8-params.png``, ``text8-units.png``, ``rcf.png``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from matplotlib.lines import Line2D

from rnncap.report.drawing import (add_legend, cell_handles, hide_unused, mark_empty, new_figure, panel_grid,
                                   positive_points, readable_log_axis, save_figure)
from rnncap.report.fits import best_by
from rnncap.report.markdown import Section, markdown_image, markdown_table, number
from rnncap.report.results import depths_of, is_finite_number
from rnncap.report.styles import cell_label, cell_style


def _budget(r) -> int:
    """The parameter budget a study was planned at (its actual count where it has none)."""
    return r.spec.get("budget") or r.params


def best_by_size_figure(results, out: Path, name: str, title: str, ylabel: str, x_of, xlabel: str,
                        loglog: bool, reference=None) -> str:
    """One panel per depth: each cell's best objective against a size (parameters or units), log x axis.

    ``reference``: ``{depth: value}`` drawn as a dashed horizontal line (text8's unigram entropy).
    """
    depths = depths_of(results)
    curves = best_by(results, x_of)
    xs = [x for pts in curves.values() for x, _ in pts]
    rows, cols = panel_grid(len(depths), 3)
    fig, axes = new_figure(rows, cols, width=4.6, height=3.7)
    for ax, depth in zip(axes.flat, depths):
        values = []
        for (d, cell), pts in curves.items():
            if d == depth:
                pts = positive_points(pts) if loglog else pts
                values += [y for _, y in pts]
                if pts:
                    ax.plot(*zip(*pts), linestyle="-", **cell_style(cell))
        if reference is not None and is_finite_number(reference.get(depth)):
            ax.axhline(reference[depth], color="black", linestyle="--", linewidth=1)
        readable_log_axis(ax, "x", xs)
        if xs:                                                  # one x range for every panel
            ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
        if loglog:
            readable_log_axis(ax, "y", values)
        if not values:
            mark_empty(ax)
        ax.grid(True, which="major", alpha=0.3)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=f"depth {depth}")
    hide_unused(axes, len(depths))
    handles = cell_handles(c for _, c in curves)
    if reference:
        handles.append(Line2D([], [], color="black", linestyle="--", label="unigram entropy"))
    add_legend(fig, handles)
    fig.suptitle(title)
    return save_figure(fig, out / f"{name}.png")


def best_by_budget_table(results, spec: str) -> tuple[dict, list[str]]:
    """Each cell's best objective per parameter budget, with the actual parameter count in brackets."""
    curves = best_by(results, _budget)
    params = best_by(results, _budget, lambda r: float(r.params))
    columns = sorted({x for pts in curves.values() for x, _ in pts})
    rows = [[cell_label(c), d] + [(number(dict(pts).get(x), spec) + (f" ({int(dict(params[(d, c)])[x])} p)"
                                                                      if x in dict(pts) else ""))
                                  for x in columns]
            for (d, c), pts in curves.items()]
    return ({f"{c} d{d}": dict(pts) for (d, c), pts in curves.items()},
            markdown_table(["cell", "depth"] + [f"≤{x}" for x in columns], rows))


def text8_section(results, out: Path, preset: str) -> Section:
    section = Section()
    unigram = {}
    for depth in depths_of(results):
        values = [r.best_metrics.get("unigram_bpc") for r in results if r.depth == depth]
        values = [v for v in values if is_finite_number(v)]
        if values:
            unigram[depth] = statistics.median(values)
    section.figures.append(best_by_size_figure(
        results, out, "text8-params", f"Figure 3a-c: text8, bits per character vs parameters ({preset})",
        "held-out bits per character (bpc)", lambda r: r.params, "parameters (log scale)", False, unigram))
    section.figures.append(best_by_size_figure(
        results, out, "text8-units", f"Figure 3d: text8, bits per character vs units ({preset})",
        "held-out bits per character (bpc)", lambda r: r.n_h, "units per layer n_h (log scale)", False, unigram))
    section.lines.append(markdown_image(section.figures[0], "Figure 3a-c: bpc vs parameters"))
    section.lines.append(markdown_image(section.figures[1], "Figure 3d: bpc vs units"))
    section.tables["bpc"], lines = best_by_budget_table(results, ".3f")
    section.tables["unigram_bpc"] = unigram
    section.lines.append("Best held-out bpc by parameter budget (actual parameter count in brackets):\n")
    section.lines += lines
    if unigram:
        section.lines.append("Unigram entropy of the training text (a model that ignores context): "
                             + ", ".join(f"depth {d}: {v:.3f} bpc" for d, v in unigram.items()) + ".\n")
    return section


def rcf_section(results, out: Path, preset: str) -> Section:
    section = Section()
    section.figures.append(best_by_size_figure(
        results, out, "rcf", f"Figure 3: random continuous functions, error vs parameters ({preset})",
        "mean squared error, best trial", lambda r: r.params, "parameters (log scale)", True))
    section.lines.append(markdown_image(section.figures[0], "Figure 3: RCF loss vs parameters"))
    section.tables["loss"], lines = best_by_budget_table(results, ".4f")
    section.lines.append("Best squared error by parameter budget (actual parameter count in brackets):\n")
    section.lines += lines
    return section
