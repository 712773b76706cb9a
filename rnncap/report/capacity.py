"""The capacity-task figures: bits against parameters (Figure 1a-h), the multiplier table (1i), ReLU only
against a tuned nonlinearity (2a), and bits per parameter against unrolled steps (2b).

Files: ``capacity.png``, ``capacity-table.png``, ``relu.png``, ``unroll.png``.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rnncap.report.drawing import (add_legend, cell_handles, depth_handles, hide_unused, mark_empty, new_figure,
                                   panel_grid, positive_points, readable_log_axis, save_figure)
from rnncap.report.fits import best_by, bits_per_parameter, capacity_points, capacity_slope, multiplier_table
from rnncap.report.markdown import Section, markdown_image, markdown_table, number
from rnncap.report.paper import PAPER_BITS_BAND, PAPER_BITS_PER_PARAMETER, PAPER_RELU_BITS_PER_PARAMETER
from rnncap.report.results import depths_of, is_finite_number
from rnncap.report.styles import DEPTH_STYLES, cell_color, cell_index, cell_label, cell_style

PAPER_BAND_TEXT = f"{PAPER_BITS_BAND[0]:g}-{PAPER_BITS_BAND[1]:g}"


def capacity_section(results, out: Path, preset: str) -> Section:
    """Per depth, one row of two panels: bits stored, and bits per parameter, against parameters."""
    section = Section()
    depths = depths_of(results)
    bits = best_by(results, lambda r: r.params)
    bpp = best_by(results, lambda r: r.params, bits_per_parameter)
    fig, axes = new_figure(len(depths), 2, width=5.0, height=3.8)
    all_params = [p for pts in bits.values() for p, _ in pts]
    for row, depth in enumerate(depths):
        ax_bits, ax_bpp = axes[row]
        for (d, cell), pts in bits.items():
            pts = positive_points(pts) if d == depth else []
            if pts:
                ax_bits.plot(*zip(*pts), linestyle="-", **cell_style(cell))
        for (d, cell), pts in bpp.items():
            if d == depth and pts:
                ax_bpp.plot(*zip(*pts), linestyle="-", **cell_style(cell))
        if all_params:
            span = numpy.geomspace(min(all_params) / 1.3, max(all_params) * 1.3, 50)     # (50,)
            ax_bits.plot(span, PAPER_BITS_PER_PARAMETER * span, color="black", linestyle=":", linewidth=1)
        for ax in (ax_bits, ax_bpp):                          # one parameter axis for every panel
            readable_log_axis(ax, "x", all_params)
            if all_params:
                ax.set_xlim(min(all_params) / 1.4, max(all_params) * 1.4)
        readable_log_axis(ax_bits, "y", [y for (d, _), pts in bits.items() if d == depth for _, y in pts]
                          + [PAPER_BITS_PER_PARAMETER * p for p in all_params])
        ax_bits.set(title=f"depth {depth}: bits stored", xlabel="parameters (log scale)",
                    ylabel="bits stored, best trial (bits)")
        ax_bpp.axhspan(*PAPER_BITS_BAND, color="grey", alpha=0.15, linewidth=0)
        ax_bpp.axhline(PAPER_BITS_PER_PARAMETER, color="black", linestyle="--", linewidth=1)
        ax_bpp.set_ylim(bottom=0)
        ax_bpp.set(title=f"depth {depth}: bits per parameter", xlabel="parameters (log scale)",
                   ylabel="bits per parameter (bits)")
        for ax in (ax_bits, ax_bpp):
            ax.grid(True, which="major", alpha=0.3)
            if not any(d == depth for d, _ in bits):
                mark_empty(ax)
    add_legend(fig, cell_handles(c for _, c in bits) + [
        Line2D([], [], color="black", linestyle="--", label=f"paper ~{PAPER_BITS_PER_PARAMETER:g} bits/param"),
        Patch(color="grey", alpha=0.15, label=f"paper range {PAPER_BAND_TEXT}"),
        Line2D([], [], color="black", linestyle=":", label=f"{PAPER_BITS_PER_PARAMETER:g} × parameters")])
    depth_text = "depth" + ("s " if len(depths) > 1 else " ") + ", ".join(map(str, depths))
    fig.suptitle(f"Capacity task: bits stored and bits per parameter vs parameters, {depth_text} ({preset})")
    section.figures.append(save_figure(fig, out / "capacity.png"))
    section.lines.append(markdown_image(section.figures[-1], "bits and bits per parameter vs parameters"))

    budget_bpp = best_by(results, lambda r: r.spec.get("budget") or r.params, bits_per_parameter)
    section.tables["bits_per_parameter"] = {}
    for depth in depths:
        budgets = sorted({b for (d, _), pts in budget_bpp.items() if d == depth for b, _ in pts})
        rows, table = [], {}
        for (d, cell), pts in budget_bpp.items():
            if d != depth:
                continue
            values = dict(pts)
            fit = capacity_slope(bits.get((d, cell), []))
            table[cell] = {"by_budget": values, "fit": fit}
            rows.append([cell_label(cell)] + [number(values.get(b)) for b in budgets] + [number(fit)])
        section.tables["bits_per_parameter"][depth] = table
        section.lines.append(f"Bits per parameter (best trial / parameters), depth {depth}; columns are "
                             "parameter budgets, the last the fitted slope (geometric mean):\n")
        section.lines += markdown_table(["cell"] + [f"≤{b}" for b in budgets] + ["fit"], rows)
    fits = [v["fit"] for t in section.tables["bits_per_parameter"].values() for v in t.values()
            if is_finite_number(v["fit"])]
    mean = statistics.fmean(fits) if fits else None
    section.lines.append(f"Mean fitted bits per parameter over cells and depths: **{number(mean)}**; "
                         f"paper: {PAPER_BAND_TEXT}, about {PAPER_BITS_PER_PARAMETER:g} "
                         f"on average (IRNN about {PAPER_RELU_BITS_PER_PARAMETER:g}).\n")
    return section


def capacity_table_section(results, out: Path, preset: str) -> Section:
    """Figure 1i: one multiplier heatmap per depth with at least two cells, and one over all depths pooled.

    A depth where a single cell ran (the +RNN alone at depth 2 when the others ran at depth 1) would be a
    1 x 1 table of 1.00: it is not drawn, and the text says so.
    """
    section = Section()
    groups = capacity_points(results)
    tables = {name: multiplier_table(points) for name, points in groups.items() if len(points) >= 2}
    lone = {name: list(points) for name, points in groups.items() if len(points) < 2}
    section.tables["multiplier"] = tables
    section.tables["not_drawn"] = lone
    rows, cols = panel_grid(len(tables), 3)
    fig, axes = new_figure(rows, cols, width=4.8, height=4.3)
    for ax, (name, table) in zip(axes.flat, tables.items()):
        _draw_multipliers(fig, ax, name, table)
    if tables:
        hide_unused(axes, len(tables))
    else:
        mark_empty(axes[0, 0], "fewer than two cells with feasible trials")
    fig.suptitle(f"Figure 1i: parameter multiplier for equal capacity ({preset})")
    section.figures.append(save_figure(fig, out / "capacity-table.png"))
    section.lines.append(markdown_image(section.figures[-1], "Figure 1i: multiplier table"))
    for name, cells in lone.items():
        only = ", ".join(cell_label(c) for c in cells) or "no cell"
        pooled = " (it is compared with the others in the pooled table)" if "all depths" in tables else ""
        section.lines.append(f"{name.capitalize()} is not tabled: only {only} has feasible trials there, and a "
                             f"multiplier compares two cells{pooled}.\n")
    for name, table in tables.items():
        cells = list(table)
        section.lines.append(f"Multiplier, {name} (row x, column y: parameters x needs / parameters y needs; "
                             "slope = geometric mean of bits per parameter):\n")
        section.lines += markdown_table(["x \\ y"] + [cell_label(c) for c in cells],
                                        [[cell_label(x)] + [number(table[x][y]) for y in cells] for x in cells])
    section.lines.append("Paper: the ordering RNN > UGRNN > GRU > LSTM > +RNN in bits per parameter, with "
                         f"factors close to 1 (all cells {PAPER_BAND_TEXT} bits per parameter); the IRNN is "
                         "lowest.\n")
    return section


def _draw_multipliers(fig, ax, name: str, table: dict) -> None:
    """One heatmap, coloured by log2 of the multiplier so that 2 and 1/2 are equally far from white."""
    cells = list(table)
    values = numpy.array([[table[x][y] for y in cells] for x in cells], dtype=float)     # (cells, cells)
    with numpy.errstate(divide="ignore", invalid="ignore"):
        logs = numpy.log2(values)                                                        # (cells, cells)
    limit = max(0.5, float(numpy.nanmax(numpy.abs(logs)))) if numpy.isfinite(logs).any() else 1.0
    image = ax.imshow(numpy.ma.masked_invalid(logs), cmap="RdBu_r", vmin=-limit, vmax=limit)
    for i in range(len(cells)):
        for j in range(len(cells)):
            dark = numpy.isfinite(logs[i, j]) and abs(logs[i, j]) > 0.6 * limit
            ax.text(j, i, number(values[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(cells)), [cell_label(c) for c in cells], rotation=45, ha="right")
    ax.set_yticks(range(len(cells)), [cell_label(c) for c in cells])
    ax.set(title=name, xlabel="cell y", ylabel="cell x (needs this many times\nthe parameters of y)")
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label="multiplier (log scale)")
    bar.ax.yaxis.set_major_formatter(lambda v, _: f"{2 ** v:.2g}")


def relu_section(results, out: Path, preset: str) -> Section:
    section = Section()
    values: dict[str, dict[str, float]] = {}              # cell -> variant ('all' or 'relu') -> bits/param
    for r in results:
        bpp, by_variant = bits_per_parameter(r), values.setdefault(r.cell, {})
        variant = r.tags.get("variant", "all")
        if is_finite_number(bpp) and bpp > by_variant.get(variant, -math.inf):
            by_variant[variant] = bpp
    cells = sorted(values, key=cell_index)
    fig, axes = new_figure(1, 1, width=6.5, height=4.0)
    ax = axes[0, 0]
    width = 0.38
    for i, cell in enumerate(cells):
        for offset, variant, hatch, alpha in ((-width / 2, "all", None, 0.9), (width / 2, "relu", "//", 0.45)):
            value = values[cell].get(variant)
            if value is None:
                continue
            ax.bar(i + offset, value, width, color=cell_color(cell), alpha=alpha, hatch=hatch,
                   edgecolor="black", linewidth=0.6)
            ax.annotate(f"{value:.2f}", (i + offset, value), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8,
                        bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))   # legible on a paper line
    ax.axhline(PAPER_RELU_BITS_PER_PARAMETER, color="black", linestyle="--", linewidth=1)
    ax.axhline(PAPER_BITS_PER_PARAMETER, color="black", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(cells)), [cell_label(c) for c in cells])
    ax.set(ylabel="bits per parameter, best trial (bits)", xlabel="cell",
           title=f"Figure 2a: ReLU only vs tuned nonlinearity ({preset})")
    ax.set_ylim(0, max([PAPER_BITS_PER_PARAMETER] + [v for d in values.values() for v in d.values()]) * 1.15)
    if not cells:
        mark_empty(ax)
    add_legend(fig, [Patch(facecolor="lightgrey", edgecolor="black", label="tuned (tanh or ReLU)"),
                     Patch(facecolor="white", edgecolor="black", hatch="//", label="ReLU only"),
                     Line2D([], [], color="black", linestyle="--",
                            label=f"paper ReLU-only ~{PAPER_RELU_BITS_PER_PARAMETER:g}"),
                     Line2D([], [], color="black", linestyle=":",
                            label=f"paper tuned ~{PAPER_BITS_PER_PARAMETER:g}")])
    section.figures.append(save_figure(fig, out / "relu.png"))
    section.lines.append(markdown_image(section.figures[-1], "Figure 2a: ReLU only vs tuned"))
    section.tables["bits_per_parameter"] = values
    section.lines += markdown_table(
        ["cell", "tuned (all)", "ReLU only", "paper tuned", "paper ReLU only"],
        [[cell_label(c), number(values[c].get("all")), number(values[c].get("relu")),
          f"~{PAPER_BITS_PER_PARAMETER:g}", f"~{PAPER_RELU_BITS_PER_PARAMETER:g}"] for c in cells])
    return section


def unroll_section(results, out: Path, preset: str) -> Section:
    section = Section()
    curves = best_by(results, lambda r: r.tags.get("unroll", r.spec["task_options"].get("unroll")),
                     bits_per_parameter)
    fig, axes = new_figure(1, 1, width=6.0, height=4.0)
    ax = axes[0, 0]
    ax.axhspan(*PAPER_BITS_BAND, color="grey", alpha=0.15, linewidth=0)
    for (depth, cell), pts in curves.items():
        ax.plot(*zip(*pts), linestyle=DEPTH_STYLES.get(depth, "-"), **cell_style(cell))
    if not curves:
        mark_empty(ax)
    steps = sorted({x for pts in curves.values() for x, _ in pts})
    if steps:
        ax.set_xticks(steps)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set(xlabel="unrolled steps T (input at step 1, label at step T)", ylabel="bits per parameter (bits)",
           title=f"Figure 2b: capacity vs unrolled steps ({preset})")
    add_legend(fig, cell_handles(c for _, c in curves) + depth_handles(d for d, _ in curves) + [
        Patch(color="grey", alpha=0.15, label=f"paper range {PAPER_BAND_TEXT}")])
    section.figures.append(save_figure(fig, out / "unroll.png"))
    section.lines.append(markdown_image(section.figures[-1], "Figure 2b: bits per parameter vs unrolled steps"))
    section.tables["bits_per_parameter"] = {f"{cell} d{depth}": dict(pts) for (depth, cell), pts in curves.items()}
    section.lines += markdown_table(["cell", "depth"] + [f"T={s}" for s in steps],
                                    [[cell_label(c), d] + [number(dict(pts).get(s)) for s in steps]
                                     for (d, c), pts in curves.items()])
    return section
